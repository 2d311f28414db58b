"""Our NIQE (affsr_cli.niqe, pristine model fitted on the corpus) beside scikit-video's
`skvideo.measure.niqe` (its own port of NIQE with the pristine parameters it ships) on real photos
and their degradations: blur, noise, bicubic ×4 down-up, JPEG. The absolute values differ (another
pristine model, and skvideo's variant of the features: constant-padded MSCN, an AGGD fit where the
paper has a GGD, no antialiasing at scale 2); what should agree is the ranking.

    pip install --no-deps scikit-video     # pure Python; numpy, scipy and pillow are already there
    OMP_NUM_THREADS=1 python benchmarks/niqe_reference.py [IMAGES...]

scikit-video 1.1.11 (2018) predates NumPy 2 and SciPy 1.3: this script gives it, in its own process
only, the two names it misses (`np.int`, `scipy.misc.imresize` as Pillow's bicubic in float mode 'F',
which is what scipy's was). Prints one line per image and degradation, then Pearson and Spearman
correlations over all of them, the mean per-image Kendall τ of the two rankings, and the agreement
inside each family of one degradation at rising strength (original first), where the two may rank
the families against each other differently (how much worse is noise σ 5 than blur σ 1) and still
agree on what is worse within one.
"""

from __future__ import annotations

import io
import sys
import time
import types
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from affsr_cli import niqe as N  # noqa: E402


def skvideo_niqe():
    """skvideo.measure.niqe with the shims it needs on today's NumPy and SciPy, or None."""
    import scipy

    if not hasattr(np, "int"):
        np.int = int  # noqa: NPY001 -- skvideo's np.int(patch_size)
    try:
        import scipy.misc as misc
    except ImportError:
        misc = types.ModuleType("scipy.misc")
        sys.modules["scipy.misc"] = scipy.misc = misc
    if not hasattr(misc, "imresize"):

        def imresize(arr, size, interp="bicubic", mode=None):
            h, w = arr.shape
            if np.isscalar(size):
                h2, w2 = int(h * size), int(w * size)
            else:
                h2, w2 = size[:2]
            return np.asarray(Image.fromarray(np.asarray(arr, np.float32), mode="F").resize((w2, h2), Image.BICUBIC))

        misc.imresize = imresize
    try:
        import skvideo.measure
    except ImportError:
        return None
    return lambda y: float(skvideo.measure.niqe(y.astype(np.float64))[0])


def degradations(rgb: np.ndarray, rng) -> dict[str, np.ndarray]:
    """name -> (H, W, 3) uint8."""
    im = Image.fromarray(rgb)
    h, w = rgb.shape[:2]
    out = {"original": rgb}
    from affsr_cli import metrics as M

    for s in (1, 2, 3):
        taps = M.gaussian_taps(s, 4.0).numpy()
        r = len(taps) // 2
        a = np.pad(rgb.astype(np.float64), ((r, r), (r, r), (0, 0)), mode="reflect")
        a = sum(t * a[k : k + h] for k, t in enumerate(taps))
        a = sum(t * a[:, k : k + w] for k, t in enumerate(taps))
        out[f"blur σ{s}"] = np.clip(np.round(a), 0, 255).astype(np.uint8)
    for s in (5, 10, 20):
        out[f"noise σ{s}"] = np.clip(np.round(rgb + rng.normal(0, s, rgb.shape)), 0, 255).astype(np.uint8)
    out["bicubic ×4"] = np.asarray(
        im.resize((w // 4, h // 4), Image.BICUBIC).resize((w // 4 * 4, h // 4 * 4), Image.BICUBIC)
    )
    for q in (30, 10):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=q)
        out[f"JPEG q{q}"] = np.asarray(Image.open(buf).convert("RGB"))
    return out


def ranks(v: np.ndarray) -> np.ndarray:
    r = np.empty(len(v))
    r[np.argsort(v, kind="stable")] = np.arange(len(v))
    return r


def kendall(a: np.ndarray, b: np.ndarray) -> float:
    i, j = np.triu_indices(len(a), 1)
    return float(np.mean(np.sign(a[i] - a[j]) * np.sign(b[i] - b[j])))


def default_images() -> list[Path]:
    paths = sorted((ROOT / "examples" / "val").glob("*.png"))
    val = ROOT / "data" / "photos" / "val"  # the corpus's held-out photos, where it is built
    paths += sorted(p for p in val.glob("skimage-*.png"))
    return paths


def main(argv: list[str]) -> int:
    ref = skvideo_niqe()
    if ref is None:
        print("scikit-video is not installed (pip install --no-deps scikit-video): nothing to compare with")
        return 0
    paths = [Path(p) for p in argv] or default_images()
    rng = np.random.default_rng(0)
    ours_all, ref_all, taus = [], [], []
    families = {
        "blur": ("original", "blur σ1", "blur σ2", "blur σ3"),
        "noise": ("original", "noise σ5", "noise σ10", "noise σ20"),
        "JPEG": ("original", "JPEG q30", "JPEG q10"),
        "bicubic": ("original", "bicubic ×4"),
    }
    within: dict[str, list[tuple[float, float]]] = {f: [] for f in families}
    print(f"{'image':28s} {'degradation':12s} {'ours':>7s} {'skvideo':>8s}")
    start = time.time()
    for p in paths:
        rgb = np.asarray(Image.open(p).convert("RGB"))
        ours, theirs, by_name = [], [], {}
        for name, img in degradations(rgb, rng).items():
            y = N.luma255(img.transpose(2, 0, 1) / 255.0)  # BT.601 luma on 0–255, rounded: the same input for both
            ours.append(N.niqe_luma(y))
            theirs.append(ref(y))
            by_name[name] = (ours[-1], theirs[-1])
            print(f"{p.stem[:28]:28s} {name:12s} {ours[-1]:7.3f} {theirs[-1]:8.3f}", flush=True)
        for fam, names in families.items():  # τ of each against the strength order
            strength = np.arange(len(names))
            within[fam].append(tuple(kendall(np.array([by_name[n][k] for n in names]), strength) for k in (0, 1)))
        ours_all += ours
        ref_all += theirs
        taus.append(kendall(np.array(ours), np.array(theirs)))
    a, b = np.array(ours_all), np.array(ref_all)
    pearson = float(np.corrcoef(a, b)[0, 1])
    spearman = float(np.corrcoef(ranks(a), ranks(b))[0, 1])
    print(
        f"\n{len(paths)} images × {len(a) // len(paths)} versions: Pearson {pearson:.3f}, Spearman {spearman:.3f}; "
        f"per-image Kendall τ mean {np.mean(taus):.3f} (min {np.min(taus):.3f}); {time.time() - start:.0f} s"
    )
    print(
        "within one degradation, Kendall τ of the score against the strength (1 = always worse when stronger), "
        "mean over images: ours / skvideo"
    )
    for fam, pairs in within.items():
        o, s = np.array(pairs).T
        print(
            f"  {fam:8s} {o.mean():6.3f} / {s.mean():6.3f}   (images where ours < 1: {int((o < 1).sum())}, skvideo: {int((s < 1).sum())})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
