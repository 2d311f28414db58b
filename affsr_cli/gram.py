"""The three solvers of the 1-D Gram system (A₁A₁ᵀ) u = r that the exact A⁺ = Aᵀ(AAᵀ)⁻¹ needs per image
side (projection.ExactPinv): a dense inverse for short sides, the FFT of a circulant for circular borders,
a block Cholesky factor of the banded Gram for long sides, so that time and memory grow with the pixel
count whatever the aspect ratio. Each is factored once in float64; `to` casts it for a dtype and device."""

from __future__ import annotations

from contextlib import contextmanager

import torch

DENSE_MAX = 256  # LR lengths up to this get a dense (A₁A₁ᵀ)⁻¹ (n² numbers); longer ones the banded solver below
BLOCK = 64  # rows per block of the banded solver (at least the Gram's bandwidth)
SMALL_SOLVE = 1 << 16  # block × columns: below this the banded solver runs on one CPU thread


@contextmanager
def _one_thread(on: bool = True):
    """Run the block on one torch CPU thread: operations of microseconds (the m × m pieces of the banded
    solver) wait far longer for a second core that is busy elsewhere than they gain from it."""
    before = torch.get_num_threads()
    if on and before > 1:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if on and before > 1:
            torch.set_num_threads(before)


class DenseGram:
    """(A₁A₁ᵀ)⁻¹ as a dense n × n matrix: short sides."""

    def __init__(self, band: torch.Tensor, B: int, n: int, circular: bool):
        i = torch.arange(n).expand(2 * B + 1, n)
        j = i + torch.arange(-B, B + 1).unsqueeze(1)
        j = j % n if circular else j
        inside = (j >= 0) & (j < n)
        G = torch.zeros(n, n, dtype=torch.float64).index_put_((i[inside], j[inside]), band[inside], accumulate=True)
        self.inverse = torch.cholesky_inverse(torch.linalg.cholesky(G))  # (n, n)

    def to(self, dtype, device) -> "DenseGram":
        self.inverse = self.inverse.to(dtype).to(device)  # cast on the CPU: MPS holds no float64
        return self

    def solve(self, r: torch.Tensor, dim: int) -> torch.Tensor:
        return self.inverse @ r if dim == -2 else r @ self.inverse  # G⁻¹ is symmetric


class CirculantGram:
    """(A₁A₁ᵀ)⁻¹ for circular borders: A₁ commutes with a shift by s HR / 1 LR sample, so G is circulant and
    G⁻¹r = irfft(rfft(r) / rfft(c)), c its first row. O(n) memory, O(n log n) time."""

    def __init__(self, band: torch.Tensor, B: int, n: int):
        c = torch.zeros(n, dtype=torch.float64).index_add_(0, torch.arange(-B, B + 1) % n, band.mean(1))  # first row
        self.eigenvalues = torch.fft.rfft(c).real  # (n//2 + 1,) c is symmetric: real and positive

    def to(self, dtype, device) -> "CirculantGram":
        self.eigenvalues = self.eigenvalues.to(dtype).to(device)  # cast on the CPU: MPS holds no float64
        return self

    def solve(self, r: torch.Tensor, dim: int) -> torch.Tensor:
        n = r.shape[dim]
        shape = [-1, 1] if dim == -2 else [-1]
        return torch.fft.irfft(torch.fft.rfft(r, dim=dim) / self.eigenvalues.view(shape), n=n, dim=dim)


class BandedGram:
    """(A₁A₁ᵀ)⁻¹ for long sides, by a block Cholesky factor of the banded Gram: O(n·m) numbers and O(n·m) work
    per column, m = the block size, instead of the n² of a dense inverse (a 1×20000 image needed 12.8 GB).

    G (n × n, G[i, j] = 0 for |i − j| > B, and m > B) is cut into blocks of m rows, padded with identity rows
    to nb·m. It is block tridiagonal: diagonal blocks D_k, below them E_k = G[block k+1, block k], whose
    nonzeros are in its first b = B + 1 rows. Block Cholesky G = L Lᵀ: L_0 = chol(D_0), C_k = E_k L_k⁻ᵀ,
    L_{k+1} = chol(D_{k+1} − C_k C_kᵀ); C_k, like E_k, is nonzero in its first b rows only.
    Solve G u = r: L z = r (z_0 = L_0⁻¹r_0, z_{k+1} = L_{k+1}⁻¹(r_{k+1} − C_k z_k)), then Lᵀ u = z
    (u_last = L_last⁻ᵀ z_last, u_k = L_k⁻ᵀ(z_k − C_kᵀ u_{k+1})). Kept: every L_k⁻¹, and the rank-b pieces
    P_k = L_{k+1}⁻¹[:, :b], Q_k = C_k[:b] and H_k = L_k⁻ᵀ C_k[:b]ᵀ, so that each step costs O(m·b) a column."""

    def __init__(self, band: torch.Tensor, B: int, n: int):
        m = max(BLOCK, B + 1)
        nb = -(-n // m)
        b = self.b = B + 1  # rows of E_k (and C_k) that can be nonzero
        self.n, self.m = n, m
        padded = torch.zeros(2 * B + 1, (nb + 1) * m, dtype=torch.float64)
        padded[:, :n] = band
        padded[B, n:] = 1.0  # identity rows beyond n: decoupled, never read back
        p, q = torch.arange(m).unsqueeze(1), torch.arange(m).unsqueeze(0)
        near = (q - p).abs() <= B  # D_k[p, q] = G[km + p, km + q] = padded[B + q − p, km + p]
        diagonal = (B + (q - p)).clamp(0, 2 * B)
        low = (q - m - p).abs() <= B  # E_k[p, q] = G[(k+1)m + p, km + q] = padded[B + q − m − p, (k+1)m + p], p < b
        lower = (B + (q - m - p)).clamp(0, 2 * B)[:b]
        eye = torch.eye(m, dtype=torch.float64)
        inverses, P, Q, H = [], [], [], []
        C = None
        with _one_thread():  # m × m pieces: waiting for a busy second core costs more than it gives
            for k in range(nb):
                S = padded[diagonal, k * m + p] * near  # D_k
                if C is not None:
                    S[:b, :b] -= C @ C.T  # D_k − C_{k−1} C_{k−1}ᵀ
                Linv = torch.linalg.solve_triangular(torch.linalg.cholesky(S), eye, upper=False)  # L_k⁻¹
                inverses.append(Linv)
                if k:
                    P.append(Linv[:, :b])  # (m, b)
                if k + 1 < nb:
                    E = padded[lower, (k + 1) * m + p[:b]] * low[:b]  # the first b rows of E_k
                    C = E @ Linv.T  # the nonzero rows of C_k = E_k L_k⁻ᵀ, (b, m)
                    Q.append(C)
                    H.append(Linv.T @ C.T)  # (m, b)
        self.Linv = torch.stack(inverses)  # (nb, m, m)
        empty = torch.zeros(0, m, b, dtype=torch.float64)
        self.P = torch.stack(P) if P else empty  # (nb − 1, m, b)
        self.Q = torch.stack(Q) if Q else empty.transpose(1, 2)  # (nb − 1, b, m)
        self.H = torch.stack(H) if H else empty  # (nb − 1, m, b)

    def to(self, dtype, device) -> "BandedGram":
        for name in ("Linv", "P", "Q", "H"):
            setattr(self, name, getattr(self, name).to(dtype).to(device))  # cast on the CPU: MPS holds no float64
        return self

    def solve(self, r: torch.Tensor, dim: int) -> torch.Tensor:
        n, m, b, nb = self.n, self.m, self.b, self.Linv.shape[0]
        moved = r.movedim(dim, 0)
        rest = moved.shape[1:]
        t = moved.reshape(n, -1)  # (n, R)
        t = torch.cat([t, t.new_zeros(nb * m - n, t.shape[1])]) if nb * m > n else t
        with _one_thread(t.shape[1] * m <= SMALL_SOLVE and t.device.type == "cpu"):
            w = self.Linv @ t.view(nb, m, -1)  # (nb, m, R): L_k⁻¹ r_k
            z = [w[0]]
            for k in range(nb - 1):  # z_{k+1} = L_{k+1}⁻¹ r_{k+1} − P_k (Q_k z_k)
                z.append(w[k + 1] - self.P[k] @ (self.Q[k] @ z[k]))
            v = self.Linv.transpose(1, 2) @ torch.stack(z)  # L_k⁻ᵀ z_k
            u = [v[-1]]
            for k in range(nb - 2, -1, -1):  # u_k = L_k⁻ᵀ z_k − H_k u_{k+1}[:b]
                u.append(v[k] - self.H[k] @ u[-1][:b])
            out = torch.cat(u[::-1])[:n]  # (n, R)
        return out.reshape(n, *rest).movedim(0, dim)
