"""Speed of `affsr upscale` on one machine, in one run: 256×256 → 1024×1024 RGB, our generators
(random weights until shipped ones exist) beside PIL bicubic and a Real-ESRGAN-sized RRDBNet; where
the time of a whole file goes (network, projection + box fit, rounding, I/O); the network's achieved
GFLOP/s beside a plain 3×3 convolution's. `--large` measures the peak resident memory of a
2048×2048 → 8192×8192 RGB upscale through the CLI in a child process.

    python benchmarks/upscale.py [--device cpu|cuda] [--precision fp32|bf16] [--skip-rrdb]
    python benchmarks/upscale.py --large [--large-preset texture|small|imagenet|…]
    python benchmarks/upscale.py --compare-with DIR [--rounds N]   # DIR: another checkout (e.g. `git worktree add`)
    python benchmarks/upscale.py --models affmse-x4 affmse-x4-dat [--rounds N]   # weights of this tree, in turns
    python benchmarks/upscale.py --tiles [--size 600]

`--tiles` times f of the shipped default weights on a SIZE×SIZE LR image cut into tiles (the
automatic size, 256, 128): seconds, the pixels the tiles compute over the image's, and the share of
the time spent outside the network (slicing, blending); beside it, in the same run, the same tiles
at their full length (how `tiles.tile_spans` cut before it shortened them).

`--compare-with` times whole files (`affsr upscale --json`'s per-file seconds: read, f, Π, box fit,
rounding, write, read back; not the start-up) with the shipped default weights, 256² → 1024², for
this tree and DIR in turns (interleaved, so that a busy machine slows both alike); `--models` the same for
several weights of this tree, each beside the first; an entry may carry upscale options after its weights
('affmse-x4 --detail weights/import/realesrgan-x4plus.safetensors': both networks of `--detail`).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from PIL import Image
from timing import best  # benchmarks/timing.py
from torch import nn

from affsr_cli import boxfit, checkpoint, consistency, infer, methods
from affsr_cli import images as X
from affsr_cli.device import PRECISIONS, pick_device, pick_dtype
from affsr_cli.images import read_image
from affsr_cli.nets.rrdb import RRDBNet  # Real-ESRGAN's generator: 23 RRDB, 64 features, growth 32
from affsr_cli.projection import OperatorSpec

ROOT = Path(__file__).resolve().parent.parent


PRESETS = ("tiny", "small", "base", "imagenet", "texture")


def operator(preset: str) -> OperatorSpec:
    """The efficient family is trained with the bicubic A by default, the paper's presets with the Gaussian."""
    return OperatorSpec(4, family="bicubic") if preset in ("tiny", "small", "base") else OperatorSpec()


def conv_flops(net: nn.Module, *inputs) -> int:
    """FLOPs (2 per multiply-add) of the convolutions of one forward pass."""
    total = [0]

    def hook(m, i, o):
        total[0] += 2 * o.numel() * (m.in_channels // m.groups) * m.kernel_size[0] * m.kernel_size[1]

    hooks = [m.register_forward_hook(hook) for m in net.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        net(*inputs)
    for h in hooks:
        h.remove()
    return total[0]


def lr_input(size=256) -> Path:
    """A 256×256 LR photo: the centre of the bundled astronaut, reduced 1.25× (bicubic) as photos are."""
    im = Image.open(ROOT / "examples" / "val" / "astronaut.png").convert("RGB")
    side = min(im.size)
    im = im.crop(((im.width - side) // 2, (im.height - side) // 2, (im.width + side) // 2, (im.height + side) // 2))
    path = Path(tempfile.mkdtemp()) / "lr.png"
    im.resize((size, size), Image.BICUBIC).save(path)
    return path


def sync(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def pipeline(up: infer.Upscaler, src: Path, out: Path) -> dict:
    """One file as `affsr upscale` does it, timed stage by stage."""
    t = {}
    t0 = time.perf_counter()
    pic = read_image(src)
    t["read"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    y = up.network(pic.pixels)
    sync(up.device)
    t["network"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    boxfit.fit_box(y.clone(), pic.pixels, up.A, up.pinv, None, device=up.device)  # Π_x alone, for comparison
    sync(up.device)
    t["pi"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    pillow = consistency.matches_pillow(up.spec, pic.pixels, 8)
    t["iterations"] = boxfit.fit_box(
        y, pic.pixels, up.A, up.pinv, 8, device=up.device, max_error=boxfit.MAX_FIT_ERROR if pillow else None
    )
    sync(up.device)
    t["projection"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    levels = boxfit.round_shaped(y, 8)
    if pillow:
        consistency.match_pillow(levels, pic.pixels, up.spec)
    t["rounding"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    X.write_image(out, levels, overwrite=True)
    t["write"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    stored = X.read_stored(out)
    t["read back"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    t["lr_psnr"] = consistency.lr_psnr(stored, pic.pixels, up.A, 255)[0]
    t["measure"] = time.perf_counter() - t0
    return t


def speed(args):
    device = pick_device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.manual_seed(0)
    src = lr_input()
    x = read_image(src).pixels[None]  # (1, 3, 256, 256)
    mp = 1024 * 1024 / 1e6
    img = Image.open(src)
    rows = [("PIL bicubic 256→1024", best(lambda: img.resize((1024, 1024), Image.BICUBIC), 20), None)]
    ups = {}
    for preset in PRESETS:
        model = methods.build_generator(preset, operator(preset), "aff").eval()
        up = ups[preset] = infer.Upscaler(model, device, args.precision, tile=256)
        up.network(x[0])  # warm-up (and the Gram inverses)
        seconds = best(lambda: up.network(x[0]), args.repeat, sync)
        rows.append((f"affsr f, {preset} preset", seconds, conv_flops(up.net.float().to(device), x.to(device))))
        up.net.to(up.dtype)
    if not args.skip_rrdb:
        rrdb = RRDBNet().eval().to(device, pick_dtype(args.precision, device)[0])
        with torch.no_grad():
            xr = x.to(device, next(rrdb.parameters()).dtype)
            seconds = best(lambda: rrdb(xr), 1, sync)
        rows.append(("RRDBNet 23×RRDB, 64 f, growth 32", seconds, conv_flops(rrdb.float(), x.to(device))))
    conv = nn.Conv2d(128, 128, 3, 1, 1).to(device, pick_dtype(args.precision, device)[0])
    feat = torch.rand(1, 128, 256, 256, device=device, dtype=conv.weight.dtype)
    with torch.no_grad():
        conv(feat)
        conv_s = best(lambda: conv(feat), 5, sync)
    conv_gflops = 2 * 128 * 128 * 9 * 256 * 256 / conv_s / 1e9

    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} CPU threads, precision "
        f"{str(ups['imagenet'].dtype).replace('torch.', '')}; input {src.name} 256×256 → 1024×1024 RGB"
    )
    print(
        f"{'upscaler':36s} {'seconds':>8s} {'MP/s':>8s} {'× RRDBNet':>10s} {'GFLOP':>8s} {'GFLOP/s':>8s} {'% of conv':>9s}"
    )
    rrdb_s = next((s for name, s, _ in rows if name.startswith("RRDB")), None)
    for name, seconds, flops in rows:
        gf = (
            f"{flops / 1e9:8.1f} {flops / seconds / 1e9:8.1f} {100 * flops / seconds / 1e9 / conv_gflops:8.0f}%"
            if flops
            else ""
        )
        ratio = f"{rrdb_s / seconds:10.1f}" if rrdb_s else f"{'':10s}"
        print(f"{name:36s} {seconds:8.3f} {mp / seconds:8.3f} {ratio} {gf}")
    print(
        f"{'plain 3×3 conv 128→128 on 256×256':36s} {conv_s:8.3f} {'':8s} {'':10s} "
        f"{2 * 128 * 128 * 9 * 256 * 256 / 1e9:8.1f} {conv_gflops:8.1f} {100:8.0f}%"
    )

    stages = lambda t: sum(v for k, v in t.items() if k not in ("iterations", "lr_psnr", "pi"))  # noqa: E731
    for preset in PRESETS:  # the whole file --repeat times; the fastest run is reported
        t = min(
            (pipeline(ups[preset], src, Path(tempfile.mkdtemp()) / "out.png") for _ in range(args.repeat)), key=stages
        )
        total = stages(t)
        io = t["read"] + t["write"] + t["read back"]
        proj = t["projection"] + t["measure"]
        print(
            f"whole file, {preset} ({ups[preset].spec.family} A): {total:.2f} s = network {t['network']:.2f} + projection & box fit "
            f"{t['projection']:.3f} ({t['iterations']} POCS iterations) + LR-PSNR {t['measure']:.3f} + rounding (and Pillow match) "
            f"{t['rounding']:.3f} + I/O {io:.3f} (read {t['read']:.3f}, write PNG {t['write']:.3f}, read back "
            f"{t['read back']:.3f}); projection {100 * proj / total:.1f}%, I/O {100 * io / total:.1f}%, "
            f"projection + rounding + I/O {100 * (proj + io + t['rounding']) / total:.1f}%; LR-PSNR {t['lr_psnr']:.2f} dB; "
            f"Π alone {1e3 * t['pi']:.0f} ms ({100 * t['pi'] / total:.1f}%, Π + I/O {100 * (t['pi'] + io) / total:.1f}%)"
        )


def large(args):
    """Peak RSS of `affsr upscale` on a 2048×2048 RGB photo-like image (→ 8192×8192 PNG), in a child process."""
    with tempfile.TemporaryDirectory() as tmp:  # the 8192² PNG is ~85 MiB
        _large(args, Path(tmp))


def _large(args, d: Path):
    torch.manual_seed(0)
    checkpoint.save_generator(
        d / "net.safetensors", methods.build_generator(args.large_preset, OperatorSpec(), "aff").eval()
    )
    im = Image.open(ROOT / "examples" / "val" / "coffee.png").convert("RGB")
    im.resize((2048, 2048), Image.BICUBIC).save(d / "in.png")
    cmd = [
        sys.executable,
        "-m",
        "affsr_cli",
        "upscale",
        str(d / "in.png"),
        "-o",
        str(d / "out.png"),
        "-w",
        str(d / "net.safetensors"),
        "--json",
        "--device",
        args.device,
    ]
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # Linux: kilobytes
    if r.returncode:
        sys.exit(f"the upscale failed: {r.stderr}")
    print(
        f"2048×2048 → 8192×8192 RGB ({args.large_preset} preset, {args.device}): peak resident memory "
        f"{peak / 2**30:.2f} GiB, {seconds:.0f} s; {r.stdout.strip()}"
    )
    print(
        f"output {os.path.getsize(d / 'out.png') / 2**20:.0f} MiB PNG; the float32 HR image alone is "
        f"{3 * 8192 * 8192 * 4 / 2**30:.2f} GiB"
    )


def full_length_spans(n: int, tile: int, overlap: int, align: int = 1) -> list[tuple[int, int]]:
    """The reference: tiles.tile_spans as it was, k tiles of the full `tile` length evenly spread."""
    if n <= tile:
        return [(0, n)]
    overlap = min(overlap, tile // 2)
    k = -(-(n - overlap) // (tile - overlap))
    starts = [round(i * (n - tile) / (k - 1)) // align * align for i in range(k)]
    return [(a, n if i == k - 1 else a + tile) for i, a in enumerate(starts)]


def tiles(args):
    """f on tiles: time, pixels computed, time outside the network; shortened vs full-length tiles."""
    torch.manual_seed(0)
    model = checkpoint.load_generator(checkpoint.resolve_weights("affmse-x4")).eval()
    x = torch.rand(3, args.size, args.size)
    auto = infer.Upscaler(model, args.device).tile
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads; f of affmse-x4 on a {args.size}² LR image "
        f"→ {4 * args.size}² (best of {args.repeat})"
    )
    print(f"{'tile':>10s} {'spans':>13s} {'tiles':>6s} {'computed/image':>15s} {'seconds':>8s} {'outside f':>10s}")
    for tile in dict.fromkeys([auto, 256, 128]):
        up = infer.Upscaler(model, args.device, tile=tile)
        inner, forward = [0.0], up._forward

        def timed(inp, z):
            t0 = time.perf_counter()
            out = forward(inp, z)
            inner[0] += time.perf_counter() - t0
            return out

        up._forward = timed
        up.network(x[:, :32, :32])  # warm-up
        for name, spans in (("shortened", infer.tile_spans), ("full-length", full_length_spans)):
            original, infer.tile_spans = infer.tile_spans, spans
            try:
                runs = []
                for _ in range(args.repeat):
                    inner[0], t0 = 0.0, time.perf_counter()
                    up.network(x)
                    runs.append((time.perf_counter() - t0, inner[0]))
            finally:
                infer.tile_spans = original
            total, in_f = min(runs)
            cut = spans(args.size, tile, up.overlap)
            area = sum(b - a for a, b in cut) ** 2 / args.size**2
            print(
                f"{tile:10d} {name:>13s} {len(cut) ** 2:6d} {area:15.2f} {total:8.2f} {100 * (total - in_f) / total:9.1f}%"
            )


def compare(args):
    """Interleaved whole-file upscales through the CLI: of this tree and of args.compare_with (each with its
    default weights), or of this tree with each of args.models."""
    if args.models:
        runs = {name: (ROOT, ["-w", *name.split()]) for name in args.models}  # "W --detail R": options after W
    else:
        runs = {"this tree": (ROOT, []), "other": (Path(args.compare_with).resolve(), [])}
    src, d = lr_input(), Path(tempfile.mkdtemp())
    times: dict[str, list[float]] = {k: [] for k in runs}
    for r in range(args.rounds):
        for name, (root, weights) in runs.items():
            cmd = [sys.executable, "-m", "affsr_cli", "upscale", str(src), "-o", str(d / "out.png"), *weights]
            cmd += ["--overwrite", "--json", "--device", args.device]
            p = subprocess.run(
                cmd, cwd=root, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(root)}
            )
            if p.returncode:
                sys.exit(f"{root} {' '.join(weights)}: the upscale failed: {p.stderr.strip()[-500:]}")
            times[name].append(json.loads(p.stdout)[0]["seconds"])
    which = "each file" if args.models else "shipped default weights"
    print(f"whole file 256×256 → 1024×1024 RGB, {which}, {args.rounds} interleaved rounds (best, median):")
    first = min(next(iter(times.values())))
    for name, t in times.items():
        where = "" if args.models else f" {runs[name][0]}"
        print(f"  {name:18s}{where}: best {min(t):.3f} s, median {statistics.median(t):.3f} s, {min(t) / first:.2f}×")
    if not args.models:
        a, b = min(times["this tree"]), min(times["other"])
        print(f"this tree / other: {a / b:.3f} (best of each)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--precision", default="fp32", choices=list(PRECISIONS))
    ap.add_argument(
        "--repeat", type=int, default=2, help="runs of each generator and of each whole file (the best is kept)"
    )
    ap.add_argument("--skip-rrdb", action="store_true", help="leave out RRDBNet (about a minute on 2 CPU cores)")
    ap.add_argument("--compare-with", metavar="DIR", help="another checkout to time against, interleaved (see above)")
    ap.add_argument(
        "--models",
        nargs="+",
        metavar="W",
        help="time these weights (names or files) in turns instead; one may carry upscale options after the "
        "weights in the same argument: 'affmse-x4 --detail FILE'",
    )
    ap.add_argument("--rounds", type=int, default=5, help="rounds of --compare-with or --models")
    ap.add_argument("--tiles", action="store_true", help="time f on tiles, shortened vs full-length (see above)")
    ap.add_argument("--size", type=int, default=600, help="LR side for --tiles")
    ap.add_argument("--large", action="store_true", help="measure the peak memory of a 2048² → 8192² upscale instead")
    ap.add_argument(
        "--large-preset",
        default="texture",
        choices=PRESETS,
        help="generator for --large (the tile budget bounds its activations either way)",
    )
    args = ap.parse_args()
    compare(args) if args.compare_with or args.models else large(args) if args.large else tiles(
        args
    ) if args.tiles else speed(args)


if __name__ == "__main__":
    main()
