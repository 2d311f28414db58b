"""The one inference contract, used by `affsr upscale`, `affsr eval` and the tests alike (as
spandrel's model descriptors: one place that pads, runs, clamps and rounds, so every caller gets
the same pixels):

    load checkpoint ─▶ device / precision ─▶ f on overlapping tiles, seams blended ─▶ f(x) (C, s·h, s·w)
    ─▶ Π_x over the whole image ─▶ box fit into [0, 1] ─▶ shaped rounding to the saved bit depth
    (consistency.py)  =  Upscaler(x, bits=...)  ->  Output (the floats and the levels that are saved)

Tiles: a tile's output is exact wherever it lies at least R LR pixels (the network's receptive
radius) inside the tile, so neighbouring tiles are cross-faded only over the part of their overlap
where both are exact: tiled output = untiled output up to float rounding when overlap ≥ 2R + 2.
Π_x runs once over the whole image afterwards, so Aŷ = x never depends on the tiling.

The engine never prints; notes and progress reach the caller through `on_note` and `on_tile`.
"""

from __future__ import annotations

import functools
import math
import warnings
from typing import Callable

import torch

from . import boxfit, checkpoint, consistency, detail, dihedral, foreign
from . import weights as weights_io
from .consistency import Output, Stage, make_consistent  # the contract after f (also imported from here)
from .descriptor import Descriptor
from .device import available_memory, busy_elsewhere, cpu_mark, is_out_of_memory, pick_device, pick_dtype
from .errors import AffsrError
from .model import SRModel
from .projection import OperatorSpec, choose_operator, project_without_grid
from .tiles import blend_weights, bytes_per_pixel, fuse_batchnorm, receptive_radius, tile_spans

CPU_TILE_BUDGET = 1 << 30  # peak bytes of one tile's forward pass on the CPU (tile="auto")
# tiles.bytes_per_pixel counts live tensors on square inputs of whole windows, not oneDNN's scratch,
# glibc's heap slack (blocks under 32 MiB are not given back at once), a window network's padding of a
# tile to its windows or a longer last tile: the peak RSS rise of a forward pass measured 1.0–1.6× it
# (benchmarks/tile_memory.py; at the tile chosen, 67 % of the budget for SPAN, 86 % for DAT)
MEMORY_MARGIN = 1.5
MAX_TILE = 1024  # LR pixels per side
Note = Callable[[str], None]


class OperatorWarning(UserWarning):
    """Outputs made consistent with another A than the one the network was trained for (`--operator`)."""


class Upscaler:
    """The network f of a checkpoint, prepared for inference (batch norm folded, on `device` in
    `precision`), run on overlapping tiles; `up(x, bits=8)` is the whole contract (Output),
    `up.network(x)` only f(x), before the projection."""

    @classmethod
    def load(
        cls,
        weights: str,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        tile: int | None = None,
        overlap: int | None = None,
        on_note: Note | None = None,
        operator: str | OperatorSpec | None = None,
        boundary: str | None = None,
        ensemble: bool = False,
        kernel_size: int | None = None,
        sigma: float | None = None,
        detail_weights: str | None = None,
        detail_limit: float | None = None,
        detail_mode: str | None = None,
        keep_grid: bool = False,
    ) -> "Upscaler":
        """From a path, a shipped name or hf://owner/repo/file.safetensors (checkpoint.resolve_weights):
        an affsr checkpoint, or another tool's network that spandrel recognises (foreign.py), which needs
        `operator` (the family of A; `boundary` optional): its file does not name the degradation.

        The A its outputs are consistent with: the weights' own, unless the A options name another
        (`operator`: a family or an OperatorSpec; `boundary`, `kernel_size`, `sigma`), chosen by the one
        rule of every command (projection.choose_operator); an A other than the one the network was
        trained for gives an OperatorWarning (the outputs stay consistent with the A named).

        `detail_weights`: a second network (a GAN that draws texture, e.g. the shipped realesrgan-x4plus,
        Real-ESRGAN x4plus), loaded the same way and made consistent with the same A,
        whose detail is added within ±`detail_limit` 8-bit levels (detail.py; default detail.DEFAULT_LIMIT);
        `ensemble` averages the weights' f only: the detail network runs once. `detail_mode` "more" takes
        the detail only where that network draws more than the weights (default "all": detail.py)."""
        if detail_weights is None and (detail_limit is not None or detail_mode is not None):  # before any file is read
            which = "limit" if detail_limit is not None else "mode"
            raise AffsrError(f"a detail {which} without a detail network: give --detail WEIGHTS too")
        if detail_mode is not None:
            detail.check_mode(detail_mode)
        path = checkpoint.resolve_weights(weights)
        tensors, meta = weights_io.load(path)  # read once, for either kind
        named = operator if isinstance(operator, OperatorSpec) else None
        family = named.family if named is not None else operator
        boundary = boundary if boundary is not None or named is None else named.boundary
        if foreign.is_foreign(meta):
            model = foreign.load(path, tensors, family, boundary)  # its A comes from these options
        else:
            model = checkpoint.generator_from(path, tensors, meta, "cpu")
        up = cls(model, device, precision, tile, overlap, on_note, ensemble, keep_grid)
        if not up.foreign and any(o is not None for o in (operator, boundary, kernel_size, sigma)):
            spec = named or choose_operator(family, up.scale, kernel_size, sigma, boundary, trained=up.trained_for)
            if spec != up.trained_for:
                warnings.warn(
                    f"{weights} was trained for another degradation ({up.trained_for.describe()}); its "
                    f"outputs are made consistent with {spec.describe()}",
                    OperatorWarning,
                    stacklevel=2,
                )
            up.set_operator(spec)
        if detail_weights is not None:
            family, edge = up.spec.family, up.spec.boundary  # at the detail network's own scale: add_detail checks it
            other = cls.load(detail_weights, device, precision, tile, overlap, on_note, family, edge)  # once, not ×8
            up.add_detail(other, detail.DEFAULT_LIMIT if detail_limit is None else detail_limit, detail_mode or "all")
        return up

    def __init__(
        self,
        model: Descriptor | SRModel,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
        tile: int | None = None,
        overlap: int | None = None,
        on_note: Note | None = None,
        ensemble: bool = False,
        keep_grid: bool = False,
    ):
        d = model if isinstance(model, Descriptor) else model.describe()
        self.note = on_note or (lambda message: None)
        self.trained_for = d.spec  # the A of the training data; `spec` is the one outputs are consistent with
        self.device = device if isinstance(device, torch.device) else pick_device(device)
        self.dtype, note = pick_dtype(precision, self.device)
        if self.dtype == torch.float16 and not d.supports_half:
            self.dtype, note = torch.float32, f"{d.architecture} does not run in fp16 (spandrel); running in fp32"
        if note:
            self.note(note)
        self.spec, self.scale, self.grid = d.spec, d.scale, d.grid
        self.A, self.pinv = d.spec.build()  # on the CPU: the whole-image work runs there
        self.noise_channels, self.channels, self.tile_multiple = d.noise_channels, d.channels, d.tile_multiple
        self.ensemble = ensemble  # f averaged over the 8 flips and transposes of x (8× the time)
        self.keep_grid = keep_grid  # leave f's image-wide period-s pattern in (projection.remove_grid)
        # channels_last: the layout oneDNN's (and cuDNN's) convolutions run fastest in, ~20% here
        self.net = fuse_batchnorm(d.net).to(self.device, self.dtype, memory_format=torch.channels_last)
        g = self.scale if self.grid == "hr" else 1  # input pixels per LR pixel
        self.radius = math.ceil(receptive_radius(self.net, d.radius_bounds) / g)  # in LR pixels
        if overlap is not None and (isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0):
            raise AffsrError(
                f"--overlap must be a whole number of LR pixels, 0 or more, got {overlap!r}"
            )  # < 0 left gaps
        self.overlap = 2 * self.radius + 8 if overlap is None else overlap
        if tile is not None and (isinstance(tile, bool) or not isinstance(tile, int) or (tile != 0 and tile < 8)):
            raise AffsrError(
                f"tile size must be 0 (no tiling: the whole image at once) or at least 8 LR pixels, got {tile!r}"
            )
        self._tile = tile  # LR side of a tile; 0: the whole image in one; None: sized to the memory (tile, _tile_for)
        self._auto, self._cut = tile is None, False  # the size is automatic; an image was cut into tiles
        self.foreign = d.architecture  # the spandrel architecture's name, or None (ours)
        self.detail: Upscaler | None = None  # a network whose detail is added within ±detail_limit (add_detail)
        self.detail_limit = 0.0  # 8-bit levels
        self.detail_mode = "all"  # detail.MODES
        self.constraint = None if self.foreign else d.constraint  # what training put around f: aff, soft, none
        if self.foreign:
            self.note(
                f"a {self.foreign} network ({self.scale}×, through spandrel); its outputs are made consistent "
                f"with {self.spec.describe()}"
            )
        elif d.constraint != "aff":
            self.note(
                f"checkpoint trained without the projection layer ({d.constraint}); its outputs are projected here"
            )

    def set_operator(self, spec: OperatorSpec):
        """Make outputs consistent with `spec`, the A that made the inputs, instead of the A the network
        was trained for (Π, the box fit and the rounding use it)."""
        if spec.scale != self.scale:
            raise AffsrError(f"the operator's scale {spec.scale} is not the checkpoint's ({self.scale})")
        self.spec, (self.A, self.pinv) = spec, spec.build()
        if self.detail is not None:
            self.detail.set_operator(spec)

    def add_detail(self, other: "Upscaler", limit: float = detail.DEFAULT_LIMIT, mode: str = "all"):
        """Add `other`'s detail to this network's f within ±`limit` 8-bit levels (detail.py: f + clip(N (t − f),
        ±limit), then the contract's Π; `mode` "more": only where `other` draws more detail than f);
        made consistent with this Upscaler's A."""
        if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not 0 <= limit < math.inf:
            raise AffsrError(f"the detail limit must be a number of 8-bit levels, 0 or more, got {limit!r}")
        detail.check_mode(mode)
        if other.scale != self.scale:
            raise AffsrError(f"the detail network upscales {other.scale}×, the weights {self.scale}×")
        if other.detail is not None:
            raise AffsrError("the detail network has a detail network of its own")
        other.set_operator(self.spec)
        other.keep_grid = True  # the grid is removed once, from the sum (network)
        self.detail, self.detail_limit, self.detail_mode = other, float(limit), mode

    @property
    def tile(self) -> int:
        """LR side of a tile, 0 for the whole image in one; the automatic size is measured when first asked for."""
        if self._tile is None:
            self._tile = self._auto_tile()
        return self._tile

    @tile.setter
    def tile(self, side: int):
        self._tile = side

    def describe_tiling(self) -> str:
        """The tiles of the images run so far, for reports (the automatic size is not measured for this)."""
        if self._auto and not self._cut:
            return "tiles sized to the memory (none needed)"
        if not self._tile:
            return "no tiling"
        return f"tiles of {self._tile} LR px" + (" (sized to the memory)" if self._auto else "")

    def _tile_for(self, h: int, w: int) -> int:
        """The tile side for an h×w LR image. With the automatic size, an image that fits the budget whole by a
        cheap upper bound (every leaf module's output kept at once: 1.4–5× the real peak) runs whole without
        the measurement of _auto_tile (0.1 s for SPAN, 3 s for DAT-light on the CPU), and whole also after an
        earlier image was measured (a 1000×20 strip after a big photo is not cut into tiles of its width)."""
        if self._auto and h * w * self._upper_bound <= self._budget():
            return max(h, w)
        return self.tile or max(h, w)

    def _budget(self) -> int:
        free = available_memory(self.device)
        return free // 2 if self.device.type == "cuda" else min(free // 4, CPU_TILE_BUDGET)

    def _lr_run(self, n: int) -> torch.Tensor:
        g = self.scale if self.grid == "hr" else 1  # input pixels per LR pixel
        with torch.no_grad():
            return self._forward(
                torch.zeros(1, self.channels, g * n, g * n), torch.zeros(1, self.noise_channels, g * n, g * n)
            )

    @functools.cached_property
    def _upper_bound(self) -> float:
        """Bytes per LR pixel if no activation were ever freed: every leaf module's output on a 16² LR input."""
        sizes = []
        hooks = [
            m.register_forward_hook(lambda m, i, o: sizes.append(o.numel() * o.element_size()))
            for m in self.net.modules()
            if not list(m.children())
        ]
        try:
            self._lr_run(16)
        finally:
            for h in hooks:
                h.remove()
        return sum(sizes) / 256

    def _auto_tile(self) -> int:
        """Side of the largest square LR tile whose forward pass fits the memory budget: its peak memory
        per LR pixel (tiles.bytes_per_pixel, measured on 32² and 64² LR inputs) times MEMORY_MARGIN."""
        per_pixel = MEMORY_MARGIN * bytes_per_pixel(self._lr_run, self.device)  # bytes per LR pixel
        return int(max(32, min(MAX_TILE, math.sqrt(self._budget() / per_pixel))))

    def _forward(self, inp: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """f on one tile of its input (B, C, ·, ·) (x, or A⁺x for HR-grid networks) with noise z; float32 on the CPU."""
        last = torch.channels_last
        z = z.to(self.device, self.dtype, memory_format=last) if self.noise_channels else None
        return self.net(inp.to(self.device, self.dtype, memory_format=last), z).float().cpu().contiguous()

    def noise(self, batch: int, h: int, w: int, seed: int) -> torch.Tensor:
        """z ~ N(0, I) for the whole image, drawn on the CPU from `seed`: the same seed gives the
        same sample on every device and for every tiling."""
        g = self.scale if self.grid == "hr" else 1
        gen = torch.Generator().manual_seed(seed)
        return torch.randn(batch, self.noise_channels, g * h, g * w, generator=gen)

    def __call__(
        self,
        x: torch.Tensor,
        *,
        bits: int | None = 8,
        seed: int = 0,
        rounding: bool = True,
        on_tile: Callable[[int, int], None] | None = None,
        on_stage: Stage | None = None,
    ) -> Output:
        """x (C, h, w) in [0, 1] -> the saved image: f on tiles, one Π_x over the whole image (so Aŷ = x
        never depends on the tiling), the box fit into [0, 1] and, when `rounding`, error-fed rounding to
        `bits` (8 or 16); 8-bit inputs under one of Pillow's operators are then nudged until Pillow's own
        resize of the levels gives x back. bits=None: Π alone, unclipped float32 (exact consistency)."""
        if bits not in (None, 8, 16):
            raise AffsrError(f"bits must be 8, 16 or None (float), got {bits!r}")
        mark = cpu_mark() if self.device.type == "cpu" else None
        f = self.network(x, seed, on_tile)  # f(x), (C, s·h, s·w)
        # while f ran, did anything else keep a core busy? If not, the box fit may use every core (~40 %
        # faster); if so, one thread (a busy core stalls the others' short passes: 3× slower)
        others = busy_elsewhere(mark)
        small_threads = None if others is not None and others < 0.5 else 1
        return make_consistent(f, x, self.spec, self.A, self.pinv, bits, rounding, self.device, on_stage, small_threads)

    def alpha(self, alpha: torch.Tensor, bits: int | None = 8) -> torch.Tensor:
        """An alpha channel (1, h, w): upscaled bicubic, then made consistent and fitted as the colour is."""
        out = consistency.upscale_alpha(alpha, self.scale)
        boxfit.fit_box(out, alpha, self.A, self.pinv, bits, device=self.device)
        return out.clamp_(0, 1)

    @torch.no_grad()
    def network(
        self, x: torch.Tensor, seed: int = 0, on_tile: Callable[[int, int], None] | None = None
    ) -> torch.Tensor:
        """f(x) (C, s·h, s·w) float32 on the CPU for x (C, h, w) in [0, 1]; C = 1 or 3 whatever the
        checkpoint's channels (gray models run on each colour channel, RGB models on gray replicated
        and averaged back: every channel stays consistent). With a detail network (add_detail), f with
        its detail added within the limit (detail.bounded); then, unless `keep_grid`, Π_x of it less its
        image-wide period-s pattern (projection.project_without_grid): Π_x of what it returns is the result."""
        f = self._network(x, seed, on_tile)
        if self.detail is not None:
            t = self.detail.network(x, seed, on_tile)  # (C, s·h, s·w), the detail network's f
            f = detail.bounded(f, t, x.float(), self.A, self.pinv, self.detail_limit / 255, self.detail_mode)
        if self.keep_grid:
            return f
        return project_without_grid(f, x.float(), self.A, self.pinv)

    def _network(self, x: torch.Tensor, seed: int, on_tile: Callable[[int, int], None] | None) -> torch.Tensor:
        c, h, w = x.shape
        if self.channels == c:
            batch = x[None]
        elif self.channels == 1:
            batch = x[:, None]  # (C, 1, h, w)
        elif c == 1:
            batch = x.expand(self.channels, h, w)[None]
        else:
            raise AffsrError(f"a {c}-channel image and a {self.channels}-channel checkpoint do not fit")
        g = self.scale if self.grid == "hr" else 1
        z = (
            self.noise(batch.shape[0], h, w, seed)
            if self.noise_channels
            else torch.zeros(batch.shape[0], 0, g * h, g * w)
        )
        inp = self.pinv(batch.float()) if self.grid == "hr" else batch.float()  # A⁺x of the whole image, not of tiles
        while True:
            try:
                f = self._ensemble(inp, z, on_tile) if self.ensemble else self._tiled(inp, z, on_tile)
                break
            except Exception as e:
                side = self._tile_for(h, w)  # the tile side that ran out of memory
                if not is_out_of_memory(e) or side <= 16:
                    raise
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                self.note(
                    f"out of memory with {f'{side}-pixel tiles' if side < max(h, w) else 'the whole image at once'}; "
                    f"retrying with tiles of {side // 2}"
                )
                self.tile = side // 2
        if self.channels == c:
            return f[0]
        return f[:, 0] if self.channels == 1 else f[0].mean(0, keepdim=True)

    def _ensemble(self, inp: torch.Tensor, z: torch.Tensor, on_tile) -> torch.Tensor:
        """The mean of f over the 8 flips and transposes of the input, each mapped back (the ×8
        self-ensemble of EDSR+ and BasicSR): 8× the time; Π comes after, so consistency is the same."""
        total = None
        for k in range(len(dihedral.GROUP)):
            tiles = (lambda done, n, k=k: on_tile(k * n + done, len(dihedral.GROUP) * n)) if on_tile else None
            f = dihedral.undo(self._tiled(dihedral.apply(inp, k), dihedral.apply(z, k), tiles), k)
            total = f.clone() if total is None else total.add_(f)
        return total.div_(len(dihedral.GROUP))

    def _tiled(self, inp: torch.Tensor, z: torch.Tensor, on_tile) -> torch.Tensor:
        s, g = self.scale, self.scale if self.grid == "hr" else 1
        B, h, w = inp.shape[0], inp.shape[2] // g, inp.shape[3] // g  # LR size
        align = self.tile_multiple
        tile = self._tile_for(h, w)
        rows, cols = tile_spans(h, tile, self.overlap, align), tile_spans(w, tile, self.overlap, align)
        if len(rows) == len(cols) == 1:
            out = self._forward(inp, z)
            if on_tile:
                on_tile(1, 1)
            return out
        self._cut = True
        wr, wc = blend_weights(rows, s, self.radius), blend_weights(cols, s, self.radius)
        out = torch.zeros(B, self.channels, s * h, s * w)  # (B, C, H, W): the blended f(x)
        done, total = 0, len(rows) * len(cols)
        for (a, b), u in zip(rows, wr):
            for (c, d), v in zip(cols, wc):
                part = self._forward(
                    inp[..., g * a : g * b, g * c : g * d], z[..., g * a : g * b, g * c : g * d]
                )  # (B, C, s·th, s·tw)
                out[..., s * a : s * b, s * c : s * d].addcmul_(part, u[:, None] * v[None, :])
                done += 1
                if on_tile:
                    on_tile(done, total)
        return out
