"""Time of `affsr eval` on 100 pairs of 512×512 RGB images (CPU), beside scikit-image's time for
the same PSNR + SSIM on the same images in the same run.

    python benchmarks/eval.py [--pairs 100] [--size 512] [--threads N]

Rows: scikit-image psnr + ssim (gaussian_weights, σ 1.5, population covariance) on in-memory
float64 arrays; ours on the same arrays; ours with the LR metrics and both sharpness measures
added; and the whole of mode (b), `evaluate_pairs`, reading the 2 × 100 PNG files from disk.
Ours runs on one torch thread, as `affsr eval` measures (scikit-image's filters are single-threaded).
"""

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from skimage import data
from skimage.metrics import peak_signal_noise_ratio as sk_psnr
from skimage.metrics import structural_similarity as sk_ssim

from affsr_cli import evaluate as E
from affsr_cli import metrics as M
from affsr_cli.downsample import Downsample
from affsr_cli.images import write_image
from affsr_cli.projection import OperatorSpec


def make_pairs(n: int, size: int):
    """Crops of scikit-image's photos as y; ŷ = y blurred by a 3×3 box and with noise added."""
    rng = np.random.default_rng(0)
    photos = [np.asarray(data.astronaut()), np.pad(data.coffee(), ((56, 56), (0, 0), (0, 0)), mode="reflect")]
    pairs = []
    for i in range(n):
        p = photos[i % len(photos)]
        top, left = rng.integers(0, p.shape[0] - size + 1), rng.integers(0, p.shape[1] - size + 1)
        y = torch.from_numpy(p[top : top + size, left : left + size].astype(np.float64) / 255).permute(2, 0, 1)
        blur = torch.nn.functional.avg_pool2d(y[None], 3, 1, 1, count_include_pad=False)[0]
        y_hat = (blur + torch.from_numpy(rng.normal(0, 0.02, y.shape))).clamp(0, 1)
        pairs.append(((y * 255).round() / 255, (y_hat * 255).round() / 255))
    return pairs


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=100)
    ap.add_argument("--size", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    pairs = make_pairs(args.pairs, args.size)
    arrays = [(y.permute(1, 2, 0).numpy(), yh.permute(1, 2, 0).numpy()) for y, yh in pairs]
    A = Downsample(OperatorSpec())

    t_sk, sk = timed(
        lambda: [
            (
                sk_psnr(y, yh, data_range=1),
                sk_ssim(
                    y, yh, data_range=1, channel_axis=2, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
                ),
            )
            for y, yh in arrays
        ]
    )
    t_ours, ours = timed(E.single_threaded(lambda: [(M.psnr(y, yh), M.ssim(y, yh)) for y, yh in pairs]))

    @E.single_threaded  # as affsr eval measures
    def everything():
        for y, yh in pairs:
            M.psnr(y, yh), M.ssim(y, yh)
            x = (A(y) * 255).round() / 255
            M.psnr(x, A(yh))
            p, q = M.spectrum(y), M.spectrum(yh)
            M.hf_ratio(p, q, 4), M.spectrum_db(p, q, 4)

    t_all, _ = timed(everything)
    with tempfile.TemporaryDirectory() as tmp:
        hr, sr = Path(tmp, "hr"), Path(tmp, "sr")
        hr.mkdir(), sr.mkdir()
        for i, (y, yh) in enumerate(pairs):
            write_image(hr / f"{i:03d}.png", y), write_image(sr / f"{i:03d}.png", yh)
        metrics = ("psnr", "ssim", "lr-psnr-ay", "hf-ratio", "spectrum-db")
        t_files, res = timed(lambda: E.evaluate_pairs(hr, sr, None, metrics))

    worst = max(max(abs(a[0] - b[0]), abs(a[1] - b[1])) for a, b in zip(sk, ours))
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; {args.pairs} pairs of {args.size}×{args.size} RGB, float64"
    )
    print(f"{'what':58s} {'seconds':>8s} {'× skimage':>10s}")
    rows = [
        ("scikit-image psnr + ssim (reference)", t_sk),
        ("ours psnr + ssim", t_ours),
        ("ours psnr + ssim + lr-psnr + hf-ratio + spectrum-db", t_all),
        ("affsr eval mode (b): read 200 PNGs + the same metrics", t_files),
    ]
    for name, t in rows:
        print(f"{name:58s} {t:8.2f} {t / t_sk:10.2f}")
    print(f"max |ours − skimage| over psnr and ssim: {worst:.1e}; mean PSNR {res.means()['sr']['psnr']:.3f} dB")


if __name__ == "__main__":
    main()
