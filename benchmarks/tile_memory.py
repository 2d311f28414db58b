"""The memory that sets `--tile auto`: the estimate of a forward pass's peak per LR pixel (tiles.bytes_per_pixel,
live tensors during 32² and 64² passes) and the old one (every leaf module's output summed, as if nothing were
freed) beside the measured peak: the rise of the resident set (VmHWM after − VmRSS before, the high-water mark
reset through /proc/self/clear_refs) over one untiled forward at each --sizes, and the tile that each estimate
gives under the 1 GiB CPU budget. Each measurement runs in its own process, so none sees another's caches.

    OMP_NUM_THREADS=1 python benchmarks/tile_memory.py [--weights affmse-x4 affmse-x4-dat] [--sizes 128 192] [--at-tile]

--at-tile also measures one forward on a tile of the side that the new estimate picks (~1 min for DAT on one
thread): its peak should stay under the budget.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import time

import torch

from affsr_cli import infer, tiles
from affsr_cli.device import available_memory


def hooks_per_pixel(up: infer.Upscaler) -> float:
    """The reference, the old estimate: bytes of every leaf module's output on a 16² LR input, per LR pixel."""
    sizes, n = [], 16 * (up.scale if up.grid == "hr" else 1)
    hooks = [
        m.register_forward_hook(lambda m, i, o: sizes.append(o.numel() * o.element_size()))
        for m in up.net.modules()
        if not list(m.children())
    ]
    with torch.no_grad():
        up._forward(torch.zeros(1, up.channels, n, n), torch.zeros(1, up.noise_channels, n, n))
    for h in hooks:
        h.remove()
    return sum(sizes) / 256


def tile_for(per_pixel: float) -> int:
    """_auto_tile's rule on the CPU for a per-pixel cost (margin included)."""
    budget = min(available_memory(torch.device("cpu")) // 4, infer.CPU_TILE_BUDGET)
    return int(max(32, min(infer.MAX_TILE, math.sqrt(budget / per_pixel))))


def estimate(name: str) -> dict:
    up = infer.Upscaler.load(name, "cpu", tile=0)
    g = up.scale if up.grid == "hr" else 1

    @torch.no_grad()
    def run(n):
        return up._forward(torch.zeros(1, up.channels, g * n, g * n), torch.zeros(1, up.noise_channels, g * n, g * n))

    t0 = time.perf_counter()
    new = tiles.bytes_per_pixel(run, up.device)
    t1 = time.perf_counter()
    old = hooks_per_pixel(up)
    t2 = time.perf_counter()
    return {"new": new, "new_s": t1 - t0, "old": old, "old_s": t2 - t1}


def auto_tile(name: str) -> dict:
    return {"tile": infer.Upscaler.load(name, "cpu").tile}  # what `affsr upscale -w NAME` picks in a new process


def status(field: str) -> int:
    """A field of /proc/self/status in bytes (VmRSS, VmHWM)."""
    with open("/proc/self/status") as fh:
        line = next(line for line in fh if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def peak(name: str, size: int) -> dict:
    up = infer.Upscaler.load(name, "cpu", tile=0)
    up.network(torch.rand(3, 16, 16))  # oneDNN's first-use set-up, outside the measurement
    x = torch.rand(3, size, size)
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")  # VmHWM := VmRSS
    before = status("VmRSS")
    t0 = time.perf_counter()
    f = up.network(x)
    seconds = time.perf_counter() - t0
    return {"rise": status("VmHWM") - before, "s": seconds, "output": f.numel() * 4}


def child(*args) -> dict:
    r = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], capture_output=True, text=True)
    if r.returncode:
        sys.exit(r.stderr)
    return json.loads(r.stdout.splitlines()[-1])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", nargs="+", default=["affmse-x4", "affmse-x4-dat"])
    p.add_argument("--sizes", nargs=2, type=int, default=[128, 192], help="LR sides of the measured forwards")
    p.add_argument("--at-tile", action="store_true", help="also measure a forward on the auto tile (slow)")
    p.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        kind, name, *rest = args.child
        out = {"estimate": estimate, "tile": auto_tile, "peak": peak}[kind](name, *map(int, rest))
        print(json.dumps(out))
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s); KB = 1000 bytes, per LR pixel")
    a, b = args.sizes
    for name in args.weights:
        e, t = child("estimate", name), child("tile", name)
        m = {n: child("peak", name, n) for n in (a, b)}
        slope = (m[b]["rise"] - m[a]["rise"]) / (b * b - a * a)
        print(f"\n{name}")
        print(
            f"  estimate, new (live tensors, 32²/64² slope): {e['new'] / 1e3:6.2f} KB  ({e['new_s']:.2f} s); "
            f"× {infer.MEMORY_MARGIN} margin: {infer.MEMORY_MARGIN * e['new'] / 1e3:.2f} KB"
        )
        print(f"  estimate, old (sum of leaf outputs, 16²):    {e['old'] / 1e3:6.2f} KB  ({e['old_s']:.2f} s)")
        for n in (a, b):
            r = m[n]
            print(
                f"  measured: peak RSS rise, untiled {n}²: {r['rise'] / 2**20:7.1f} MiB = {r['rise'] / n / n / 1e3:6.2f} KB"
                f"  (new ×{r['rise'] / n / n / e['new']:.2f}, old ×{r['rise'] / n / n / e['old']:.2f}; {r['s']:.1f} s)"
            )
        print(
            f"  measured slope {a}²→{b}²: {slope / 1e3:.2f} KB  (new ×{slope / e['new']:.2f}, old ×{slope / e['old']:.2f})"
        )
        print(
            f"  auto tile: new {t['tile']}, old {tile_for(e['old'])}; "
            f"budget min(free/4, {infer.CPU_TILE_BUDGET / 2**30:.0f} GiB)"
        )
        if args.at_tile:
            r, budget = (
                child("peak", name, t["tile"]),
                min(available_memory(torch.device("cpu")) // 4, infer.CPU_TILE_BUDGET),
            )
            print(
                f"  measured at the auto tile {t['tile']}²: peak RSS rise {r['rise'] / 2**20:.1f} MiB = "
                f"{r['rise'] / budget:.0%} of the budget, {r['rise'] / t['tile'] ** 2 / e['new']:.2f}× the estimate ({r['s']:.1f} s)"
            )


if __name__ == "__main__":
    main()
