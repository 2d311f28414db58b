"""Validation PSNR and SSIM over training for the grass runs (the paper's Fig. 7), from the
`val_psnr`/`val_ssim` lines of each run's metrics.jsonl (`affsr train --val`).

    python examples/grass/curves.py RUNS_DIR OUT.png   # reads RUNS_DIR/{affdg,affll,affmse,affgan,affgan-aa,softgan}

x: generator steps. For affdg/affll that is step − prior_steps (the prior phase leaves the
generator untouched); affgan, affgan-aa and softgan, started from the affmse weights, are drawn
from affmse's last step on. Top row: affdg and affll (with affmse for reference), the paper's
Fig. 7; bottom row: every run. Dotted verticals: where affdg loads the next ladder rung (a DAE of
lower σ, its σ written at the foot: the steps of Fig. 7). Drawn with PIL alone.
"""

import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

RUNS = {
    "affdg": (200, 40, 40),
    "affll": (40, 90, 200),
    "affmse": (110, 110, 110),
    "affgan": (30, 150, 60),
    "affgan-aa": (220, 150, 0),
    "softgan": (150, 60, 170),
}
W, H, M = 600, 380, (70, 20, 20, 50)  # panel size, margins left, top, right, bottom


def read(run: Path) -> dict:
    """{'val': [(generator step, psnr, ssim)], 'rungs': [(generator step where each dg rung starts, its σ)], 'steps': last}"""
    cfg = json.loads((run / "config.json").read_text())
    cfg = cfg.get("config", cfg)
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines() if l.strip()]
    prior = cfg.get("prior_steps", 0) if cfg.get("method", "")[-2:] in ("dg", "ll") else 0
    val = [(l["step"] - prior, l["val_psnr"], l["val_ssim"]) for l in lines if "val_psnr" in l and l["step"] >= prior]
    # dg walks its ladder evenly over the generator phase (objectives.DenoiserObjective.rung_for)
    left, n = cfg.get("steps", 0) - prior, cfg.get("ladder", 0)
    rungs = [-(-k * left // n) for k in range(n)] if cfg.get("method", "").endswith("dg") and n > 1 else []
    # each rung's σ: the first dae_sigma logged in it
    sigmas = [next((l["dae_sigma"] for l in lines if l["step"] - prior > r and "lr_mse" in l), None) for r in rungs]
    return {"val": val, "rungs": list(zip(rungs, sigmas)), "steps": lines[-1]["step"] - prior if lines else 0}


def ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    raw = (hi - lo) / n
    step = min((m * 10**e for e in range(-4, 6) for m in (1, 2, 5)), key=lambda s: abs(s - raw))
    first = -(-lo // step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def panel(series: dict, key: int, title: str, rungs: list, font, small, legend: str = "se") -> Image.Image:
    img = Image.new("RGB", (W, H), "white")
    d = ImageDraw.Draw(img)
    pts = [p for s in series.values() for p in s]
    x0, x1 = 0, max(p[0] for p in pts)
    lo, hi = min(p[key] for p in pts), max(p[key] for p in pts)
    pad = (hi - lo) * 0.08 or 0.01
    lo, hi = lo - pad, hi + pad
    L, T, R, B = M[0], M[1], W - M[2], H - M[3]
    px = lambda v: L + (v - x0) / (x1 - x0 or 1) * (R - L)
    py = lambda v: B - (v - lo) / (hi - lo) * (B - T)
    for r, sigma in rungs:
        if r > 0:
            for yy in range(T, B, 6):
                d.line([(px(r), yy), (px(r), yy + 2)], fill=(200, 120, 120))
        if sigma is not None and r < x1:
            d.text((px(r) + 3, B - 4), f"{sigma:.2g}", fill=(180, 60, 60), font=small, anchor="ld")
    d.rectangle([L, T, R, B], outline="black")
    for t in ticks(x0, x1):
        d.line([(px(t), B), (px(t), B + 4)], fill="black")
        d.text((px(t), B + 6), f"{t:g}", fill="black", font=font, anchor="mt")
    for t in ticks(lo, hi):
        d.line([(L - 4, py(t)), (L, py(t))], fill="black")
        d.text((L - 6, py(t)), f"{t:.3g}", fill="black", font=font, anchor="rm")
    d.text(((L + R) / 2, H - 8), "generator steps", fill="black", font=font, anchor="md")
    d.text((L + 6, T + 6), title, fill="black", font=font)
    for i, (name, s) in enumerate(series.items()):
        colour = RUNS[name]
        if len(s) > 1:
            d.line([(px(p[0]), py(p[key])) for p in s], fill=colour, width=2)
        for p in s:
            d.ellipse([px(p[0]) - 2, py(p[key]) - 2, px(p[0]) + 2, py(p[key]) + 2], fill=colour)
        lx = R - 150 if legend[1] == "e" else L + 20  # legend corner: se (lower right) or sw (lower left)
        ly = B - 20 - 18 * (len(series) - 1 - i) - (20 if rungs else 0)
        d.line([(lx, ly), (lx + 25, ly)], fill=colour, width=3)
        d.text((lx + 32, ly), name, fill="black", font=font, anchor="lm")
    return img


def main(runs: str, out: str):
    runs = Path(runs)
    data = {name: read(runs / name) for name in RUNS if (runs / name / "metrics.jsonl").is_file()}
    for name in ("affgan", "affgan-aa", "softgan"):  # these continue from affmse's weights
        if name in data and "affmse" in data:
            off = data["affmse"]["steps"]
            data[name]["val"] = [(s + off, p, q) for s, p, q in data[name]["val"]]
    series = {n: d["val"] for n, d in data.items() if d["val"]}
    if not series:
        sys.exit(f"no val_psnr lines under {runs} (train with --val)")
    rungs = data.get("affdg", {}).get("rungs", [])
    try:
        font, small = ImageFont.load_default(size=14), ImageFont.load_default(size=10)
    except TypeError:  # Pillow < 10.1
        font = small = ImageFont.load_default()
    # top: the paper's Fig. 7 (affdg, affll; affmse for reference), bottom: every run
    fig7 = {n: s for n, s in series.items() if n in ("affdg", "affll", "affmse")}
    rows = (
        [(fig7, rungs, "affdg / affll (Fig. 7)", "se"), (series, [], "all runs", "sw")]
        if fig7 and len(fig7) < len(series)
        else [(series, rungs, "", "se")]
    )
    img = Image.new("RGB", (2 * W, H * len(rows)), "white")
    for i, (sub, marks, name, corner) in enumerate(rows):
        img.paste(panel(sub, 1, f"val PSNR (dB), {name}".rstrip(", "), marks, font, small, corner), (0, H * i))
        img.paste(panel(sub, 2, f"val SSIM, {name}".rstrip(", "), marks, font, small, corner), (W, H * i))
    img.save(out)
    for name, s in series.items():
        picks = [s[0], s[len(s) // 4], s[len(s) // 2], s[3 * len(s) // 4], s[-1]]
        print(f"{name}: " + ", ".join(f"step {g}: {p:.2f} dB / {q:.4f}" for g, p, q in picks))
    if rungs:
        print("affdg ladder (generator step: σ): " + ", ".join(f"{r}: {sg:.3g}" for r, sg in rungs if sg is not None))
    print(f"-> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
