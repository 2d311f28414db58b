"""What `affsr project` gains on other upscalers' results: Y-PSNR (crop 4) and LR-PSNR of the 8-bit
file before and after Π with the operator that made the LR image, and with a mismatched one.

    python benchmarks/project_gain.py --hr data/photos/val [-w weights/affmse-x4.safetensors ...]

For each degradation D (Pillow bicubic 8-bit; the paper's Gaussian A, rounded to 8 bits) the LR
photos x are made from the HR photos; the "foreign" results are PIL bicubic upsampling and each
checkpoint's network f(x) *without* Π (what a tool without the projection layer gives), saved as
8-bit files. Each is then projected as `affsr project` does (infer.make_consistent) with A = D and
with the other operator. Times: project per output megapixel beside PIL bicubic 4× in the same run.
"""

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from affsr_cli import metrics as M
from affsr_cli.downsample import Downsample
from affsr_cli.images import quantize, read_image
from affsr_cli.infer import Upscaler, make_consistent
from affsr_cli.projection import OperatorSpec
from affsr_cli.upscalers import bicubic

OPS = {"bicubic": OperatorSpec(4, family="bicubic"), "gaussian": OperatorSpec(4)}


def degrade(y: torch.Tensor, name: str) -> torch.Tensor:
    """x (C, h, w) on the 8-bit grid: Pillow's own 8-bit bicubic resize, or A y rounded."""
    if name == "bicubic":
        im = Image.fromarray((y.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8))
        lr = im.resize((y.shape[2] // 4, y.shape[1] // 4), Image.BICUBIC)
        return torch.from_numpy(np.array(lr)).permute(2, 0, 1).double() / 255
    return quantize(Downsample(OPS[name])(y), 8)


def ypsnr(y: torch.Tensor, y_hat: torch.Tensor) -> float:
    return M.psnr(M.crop_border(M.to_y(y), 4), M.crop_border(M.to_y(y_hat), 4), 1.0)


def lrpsnr(y_hat: torch.Tensor, x: torch.Tensor, spec: OperatorSpec) -> float:
    mse = float(((Downsample(spec)(y_hat) - x) ** 2).mean())
    return 10 * math.log10(1 / mse) if mse else math.inf


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hr", type=Path, required=True)
    ap.add_argument("-w", "--weights", action="append", default=[])
    args = ap.parse_args()
    files = sorted(p for p in args.hr.iterdir() if p.suffix.lower() == ".png")
    # a run folder's generator.safetensors is named after its run
    nets = {
        (Path(w).parent.name if Path(w).stem == "generator" else Path(w).stem): Upscaler.load(w, tile=512)
        for w in args.weights
    }
    rows: dict = {}  # (degradation, upscaler, projected with) -> [(ypsnr, lrpsnr)]
    t_project, t_bicubic, mp, mp_bicubic = 0.0, 0.0, 0.0, 0.0
    for path in files:
        y = read_image(path, torch.float64).pixels
        y = y[:, : y.shape[1] // 4 * 4, : y.shape[2] // 4 * 4]
        for deg in OPS:
            x = degrade(y, deg)
            t0 = time.perf_counter()
            foreign = {"bicubic": bicubic(x.float(), 4)}
            t_bicubic += time.perf_counter() - t0
            mp_bicubic += y[0].numel() / 1e6
            foreign.update({name: up.network(x.float()) for name, up in nets.items()})
            for name, f in foreign.items():
                saved = quantize(f.double().clamp(0, 1), 8)  # the other tool's 8-bit file
                rows.setdefault((deg, name, "—"), []).append((ypsnr(y, saved), lrpsnr(saved, x, OPS[deg])))
                for with_ in OPS:
                    spec = OPS[with_]
                    A, pinv = spec.build()
                    t0 = time.perf_counter()
                    out = make_consistent(saved.float().clone(), x.float(), spec, A, pinv, 8)
                    t_project += time.perf_counter() - t0
                    mp += saved[0].numel() / 1e6
                    result = out.saved()
                    rows.setdefault((deg, name, with_), []).append((ypsnr(y, result), lrpsnr(result, x, OPS[deg])))
    print(
        f"{len(files)} photos from {args.hr}; Y-PSNR with a 4-pixel crop; LR-PSNR of the 8-bit file against x, "
        "measured with the degradation's operator\n"
    )
    print(f"{'degradation':12s} {'upscaler':24s} {'projected with':15s} {'Y-PSNR':>8s} {'gain':>7s} {'LR-PSNR':>8s}")
    for (deg, name, with_), v in rows.items():
        ps, lr = np.mean([a for a, _ in v]), np.mean([b for _, b in v])
        base = np.mean([a for a, _ in rows[(deg, name, "—")]])
        print(f"{deg:12s} {name:24s} {with_:15s} {ps:8.3f} {ps - base:+7.3f} {lr:8.2f}")
    print(
        f"\nproject: {t_project / mp:.3f} s per output MP (Π, box fit, rounding, Pillow match); "
        f"PIL bicubic 4× of the same inputs: {t_bicubic / mp_bicubic:.3f} s per output MP"
    )


if __name__ == "__main__":
    main()
