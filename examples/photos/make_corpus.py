"""Build the photo corpus the shipped 4× checkpoints are trained on, offline, from freely licensed
photographs in Debian packages and in the sample data of scikit-image, scikit-learn and matplotlib.

    python examples/photos/make_corpus.py --out data/photos

    pip install 'affsr[corpus]'   # scikit-image, scikit-learn, matplotlib: their sample photos
    pip install pillow-jxl-plugin  # decodes the JPEG XL photos of budgie-backgrounds 4.2

Sources and licences: `sources.py` beside this script (every photo listed by hand; renders and
drawings left out). Debian packages are fetched with `apt-get download` (nothing installed) and
unpacked with `dpkg-deb -x` into `--cache`; packages of other Debian suites (the photos of
GNOME 3.38, Budgie, UKUI, newer Plasma, LXQt 2.4, GRUB splash images, Tux Paint 0.9.34) through a
private apt list of those suites on the mirror this machine's apt already uses (the system's apt
configuration is not changed). Where a package of the system's suite is installed, its files under
/usr/share are used as they are. When a source cannot be fetched, the script stops with one line and
builds nothing (`--allow-missing` builds a smaller corpus, saying what it left out). Near-duplicates
(the same photo in two packages) are removed by comparing 32×32 thumbnails. Each photo's package
version, path, author, licence, size and nearest other photo are recorded in `sources.csv`.

JPEG XL files are read with the Pillow plugin of PyPI's pillow-jxl-plugin (GPL-3.0-or-later; a tool
of this script only, never imported by affsr); without it the script stops with one line.

Preprocessing: every photo is turned upright (EXIF orientation), downscaled (PIL Lanczos,
antialiased) so that its longer side is at most `--max-side` pixels, which also suppresses JPEG
blocking and sensor noise, and converted to 8-bit RGB (gray photos stay gray). A photo already
within `--max-side` (the small ones, e.g. 512×512 avatars or 800×600 demo photos) is used at its own
size, never upscaled. Then the split:
- `val/`: whole images (sides cut to multiples of 4), never seen in training — the 7 Debian photos
  of `sources.VAL` (the held-out photos of the first corpus, kept so that numbers stay comparable),
  plus the scikit-image photos of `examples/val` (astronaut, chelsea, coffee, rocket, hubble);
- `train/`: the remaining photos cut into `--tile`×`--tile` PNG tiles that cover the whole photo,
  edges included (spaced evenly, at most tile − 32 apart, so neighbours overlap by ≥ 32 px), so that
  a training step decodes small files; `affsr train --data data/photos/train --patch 128` crops
  random patches from them. A training photo with a side shorter than one tile is left out (with a
  note): the trainer would have to upscale it.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from sources import DEBIAN, SAMPLE_DATA, VAL  # noqa: E402  (beside this script)

MIN_PIXELS = 2_000_000  # the summary counts the training photos of at least this size (before downscaling)
DUPLICATE_LEVELS = 4.0  # 32×32 thumbnails closer than this (mean absolute 8-bit difference): one photo
CORPUS_EXTRA = "pip install 'affsr[corpus]'"
JXL_PLUGIN = "pip install pillow-jxl-plugin"


class SourceError(Exception):
    """A source of the corpus cannot be had: the corpus is not built (unless --allow-missing)."""


def apt_mirror() -> tuple[str, str]:
    """The Debian mirror and keyring this machine's apt is set up with (deb822 or one-line lists)."""
    lists = sorted(Path("/etc/apt/sources.list.d").glob("*")) + [Path("/etc/apt/sources.list")]
    for f in lists:
        if not f.is_file():
            continue
        text = f.read_text(errors="replace")
        for block in text.split("\n\n"):  # deb822 stanzas
            fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line and not line.startswith("#"))
            uri, suites = fields.get("URIs", "").split(), fields.get("Suites", "")
            if uri and "-security" not in suites and "debian" in uri[0]:
                key = fields.get("Signed-By", "").strip() or "/usr/share/keyrings/debian-archive-keyring.gpg"
                return uri[0], key
        for line in text.splitlines():  # one-line format
            m = re.match(r"deb\s+(\[[^]]*\]\s+)?(\S+)\s+(\S+)", line)
            if m and "-security" not in m.group(3) and "debian" in m.group(2):
                key = re.search(r"signed-by=(\S+?)[\s\]]", m.group(1) or "")
                return m.group(2), key.group(1) if key else "/usr/share/keyrings/debian-archive-keyring.gpg"
    raise SourceError("no Debian mirror found in /etc/apt/sources.list(.d): cannot fetch the named suites")


class Apt:
    """apt-get with a private list of suites under cache/apt: the system's configuration is untouched."""

    def __init__(self, cache: Path, suites: set[str]):
        self.root = cache.resolve() / "apt"  # apt reads a relative Dir::Etc path under /etc/apt
        self.suites = sorted(suites)
        self.ready = False

    def options(self) -> list[str]:
        r = self.root
        return [
            "-o",
            f"Dir::Etc::SourceList={r / 'sources.list'}",
            "-o",
            "Dir::Etc::SourceParts=/nonexistent",
            "-o",
            f"Dir::State::Lists={r / 'lists'}",
            "-o",
            f"Dir::Cache={r / 'cache'}",
            "-o",
            "Debug::NoLocking=1",
            "-o",
            "Acquire::IndexTargets::deb::Contents-deb::DefaultEnabled=false",
        ]

    def update(self):
        if self.ready or not self.suites:
            return
        uri, key = apt_mirror()
        for d in ("lists/partial", "cache/archives/partial"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        (self.root / "sources.list").write_text("".join(f"deb [signed-by={key}] {uri} {s} main\n" for s in self.suites))
        r = subprocess.run(["apt-get", *self.options(), "update"], capture_output=True, text=True)
        if r.returncode:
            raise SourceError(f"apt-get update for suites {', '.join(self.suites)} failed: {last_line(r.stderr)}")
        self.ready = True

    def download(self, package: str, suite: str | None, into: Path) -> Path:
        if suite is None:
            cmd = ["apt-get", "download", package]
        else:
            self.update()
            cmd = ["apt-get", *self.options(), "download", f"{package}/{suite}"]
        r = subprocess.run(cmd, cwd=into, capture_output=True, text=True)
        debs = list(into.glob("*.deb"))
        if r.returncode or not debs:
            raise SourceError(f"apt-get download {package}{'/' + suite if suite else ''} failed: {last_line(r.stderr)}")
        return debs[0]


def last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no message)"


def package_root(package: str, suite: str | None, cache: Path, apt: Apt) -> Path:
    """/ when the package is installed (system suites only), else its unpacked .deb under cache."""
    paths = DEBIAN[package, suite]
    if suite is None and all((Path("/") / p).exists() for p in paths):
        return Path("/")
    root = cache / (package if suite is None else f"{package}_{suite}")
    if root.exists():
        return root
    if shutil.which("apt-get") is None:
        raise SourceError(f"apt-get not found: cannot fetch the Debian package {package}")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        deb = apt.download(package, suite, Path(tmp))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(Path(tmp) / "root")], check=True)
        (Path(tmp) / "root" / ".deb").write_text(deb.name)  # the version fetched, for sources.csv
        os.replace(Path(tmp) / "root", root)
    return root


def plasma_photo(folder: Path) -> tuple[Path, str, str]:
    """The largest landscape image of a Plasma wallpaper package, its author and licence (metadata.json)."""
    images = [p for p in (folder / "contents" / "images").iterdir() if p.suffix.lower() in (".jpg", ".png")]
    best = max(images, key=lambda p: (lambda s: (s[0] >= s[1], s[0] * s[1]))(Image.open(p).size))
    meta = json.loads((folder / "metadata.json").read_text())["KPlugin"]
    author = ", ".join(a.get("Name", "?") for a in meta.get("Authors", []))
    return best, author, meta.get("License", "see debian/copyright")


def jxl_decoder() -> bool:
    """Register the JPEG XL plugin with Pillow (pillow-jxl-plugin); False when it is not installed."""
    try:
        importlib.import_module("pillow_jxl")  # registers .jxl with Image.open
    except ImportError:
        return False
    return True


def photo_name(package: str, rel: str) -> str:
    """`lomiri-Dragonfly_by_Bolly`: the package's first word and the file's stem, spaces as _."""
    return f"{package.split('-')[0]}-{Path(rel).stem}".replace(" ", "_")


def debian_photos(cache: Path, allow_missing: bool) -> tuple[list[dict], list[str]]:
    apt = Apt(cache, {suite for _, suite in DEBIAN if suite})
    rows, missing = [], []
    names = {}
    for (package, suite), files in DEBIAN.items():
        for rel in files:
            name = photo_name(package, rel)
            if name in names:
                raise SourceError(
                    f"two photos named {name} ({names[name]} and {package}:/{rel}): "
                    "rename one in examples/photos/sources.py"
                )
            names[name] = f"{package}:/{rel}"
    jxl = [f"{package}:/{rel}" for (package, _), files in DEBIAN.items() for rel in files if rel.endswith(".jxl")]
    has_jxl = not jxl or jxl_decoder()
    if not has_jxl and not allow_missing:
        raise SourceError(f"{len(jxl)} photos are JPEG XL ({jxl[0]}, ...) and no decoder is installed ({JXL_PLUGIN})")
    for (package, suite), files in DEBIAN.items():
        try:
            root = package_root(package, suite, cache, apt)
        except SourceError as e:
            if not allow_missing:
                raise
            missing.append(str(e))
            continue
        deb = (root / ".deb").read_text() if (root / ".deb").exists() else f"{package} (installed)"
        for rel, (author, licence) in files.items():
            path = root / rel
            if not path.exists():
                raise SourceError(f"{deb} has no /{rel}: the package changed, update examples/photos/sources.py")
            if rel.endswith(".jxl") and not has_jxl:
                missing.append(f"{package}:/{rel} is JPEG XL and no decoder is installed ({JXL_PLUGIN})")
                continue
            if author is None:
                path, author, licence = plasma_photo(path)
            name = photo_name(package, rel)
            rows.append(
                dict(
                    name=name,
                    path=path,
                    package=package,
                    source=f"Debian {deb}: /{path.relative_to(root)}",
                    author=author,
                    licence=licence,
                    split="val" if name in VAL else "train",
                )
            )
    return sorted(rows, key=lambda r: r["name"].lower()), missing


def sample_photos(allow_missing: bool) -> tuple[list[dict], list[str]]:
    rows, missing = [], []
    for module, rel, author, licence, split in SAMPLE_DATA:
        try:
            base = Path(importlib.import_module(module).__file__).parent
        except ImportError:
            if not allow_missing:
                raise SourceError(f"{module} is not installed ({CORPUS_EXTRA})") from None
            missing.append(f"{module} is not installed: {rel}")
            continue
        if module == "matplotlib":
            import matplotlib

            base = Path(matplotlib.get_data_path()).parent
        path = base / rel
        if not path.exists():
            raise SourceError(f"{module} has no {rel}: its sample data changed")
        rows.append(
            dict(
                name=f"{module}-{path.stem}",
                path=path,
                package=module,
                source=f"{module} sample data: {rel}",
                author=author,
                licence=licence,
                split=split,
            )
        )
    return rows, missing


def thumbnail(im: Image.Image) -> np.ndarray:
    """The gray 32×32 thumbnail (aspect ignored) two copies of one photo share, whatever their size."""
    return np.asarray(im.convert("L").resize((32, 32), Image.BOX), dtype=np.float32)


def drop_duplicates(rows: list[dict], thumbs: dict[str, np.ndarray]) -> list[tuple[str, str, float]]:
    """Remove a photo whose thumbnail is within DUPLICATE_LEVELS (mean absolute difference, 8-bit
    levels) of one kept before it; validation photos are kept first, so that no copy of a validation
    photo is trained on. Returns (dropped, kept, difference) triples."""
    kept, dropped = [], []
    for r in sorted(rows, key=lambda r: (r["split"] != "val", r["name"].lower())):
        diffs = [(float(np.abs(thumbs[k["name"]] - thumbs[r["name"]]).mean()), k["name"]) for k in kept]
        nearest = min(diffs, default=(np.inf, ""))
        r["nearest"] = f"{nearest[1]} ({nearest[0]:.1f})" if diffs else ""
        if nearest[0] < DUPLICATE_LEVELS:
            dropped.append((r["name"], nearest[1], nearest[0]))
        else:
            kept.append(r)
    rows[:] = [r for r in rows if r in kept]
    return dropped


def prepare(path: Path, max_side: int) -> Image.Image:
    """The photo upright, 8-bit, its longer side at most max_side (never upscaled), sides cut to ×4."""
    im = ImageOps.exif_transpose(Image.open(path))
    im = im.convert("L" if im.mode in ("L", "I;16", "I") else "RGB")
    scale = max_side / max(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    return im.crop((0, 0, im.width // 4 * 4, im.height // 4 * 4))


def tile_starts(length: int, tile: int, step: int) -> list[int]:
    """Offsets of the tiles along one side: the first at 0, the last flush with the far edge, spaced
    evenly and at most `step` apart; [] when the side is shorter than one tile."""
    if length < tile:
        return []
    n = math.ceil((length - tile) / step) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)] if n > 1 else [0]


def cut_tiles(a: np.ndarray, tile: int, step: int):
    """(top, left, tile×tile view) covering every pixel of the image a; flat tiles (std < 2: clear sky,
    black border) are skipped: nothing to learn."""
    for top in tile_starts(a.shape[0], tile, step):
        for left in tile_starts(a.shape[1], tile, step):
            t = a[top : top + tile, left : left + tile]
            if t.std() >= 2:
                yield top, left, t


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("data/photos"), help="corpus folder (train/, val/, sources.csv)")
    p.add_argument("--cache", type=Path, default=Path("data/debs"), help="where .deb packages are unpacked")
    p.add_argument("--max-side", type=int, default=1600, help="longer side after downscaling (px)")
    p.add_argument("--tile", type=int, default=256, help="side of the training tiles (px)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing corpus folder")
    p.add_argument(
        "--allow-missing",
        action="store_true",
        help="build a smaller corpus when a source cannot be fetched (default: stop with an error)",
    )
    args = p.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        print(f"error: {args.out} exists and is not empty (use --overwrite)", file=sys.stderr)
        return 2
    args.cache.mkdir(parents=True, exist_ok=True)
    try:
        debian, missing = debian_photos(args.cache, args.allow_missing)
        samples, missing_samples = sample_photos(args.allow_missing)
    except SourceError as e:
        print(f"error: {e}; the corpus was not built (--allow-missing builds it without that source)", file=sys.stderr)
        return 1
    for m in missing + missing_samples:
        print(f"warning: {m}: left out (--allow-missing)", file=sys.stderr)
    rows = debian + samples
    images, thumbs = {}, {}
    for r in rows:
        w, h = Image.open(r["path"]).size
        r["megapixels"] = round(w * h / 1e6, 2)
        images[r["name"]] = im = prepare(r["path"], args.max_side)
        thumbs[r["name"]] = thumbnail(im)
    for dropped, kept, d in drop_duplicates(rows, thumbs):
        print(f"note: {dropped} is a copy of {kept} (thumbnails {d:.1f} levels apart): left out", file=sys.stderr)
    for r in [r for r in rows if r["split"] == "train" and min(images[r["name"]].size) < args.tile]:
        print(
            f"note: {r['name']} ({images[r['name']].width}x{images[r['name']].height}) is smaller than one "
            f"{args.tile}x{args.tile} tile: left out",
            file=sys.stderr,
        )
        rows.remove(r)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.", dir=args.out.parent))  # replaces --out only when done
    (tmp / "train").mkdir()
    (tmp / "val").mkdir()
    step = args.tile - 32
    for r in rows:
        im = images[r["name"]]
        r["size"] = f"{im.width}x{im.height}"
        if r["split"] == "val":
            im.save(tmp / "val" / f"{r['name']}.png")
            r["files"] = 1
            continue
        n = 0
        for top, left, tile in cut_tiles(np.asarray(im), args.tile, step):
            Image.fromarray(tile).save(tmp / "train" / f"{r['name']}_{top:04d}_{left:04d}.png")
            n += 1
        r["files"] = n
    with open(tmp / "sources.csv", "w", newline="") as f:
        w = csv.DictWriter(
            f,
            ["name", "split", "megapixels", "size", "files", "author", "licence", "source", "nearest"],
            extrasaction="ignore",
        )
        w.writeheader()
        w.writerows(rows)
    if args.out.exists():
        shutil.rmtree(args.out)
    os.replace(tmp, args.out)
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    big = [r for r in train if r["megapixels"] * 1e6 >= MIN_PIXELS]
    sources = {r["package"] for r in rows}
    mp = sum(images[r["name"]].width * images[r["name"]].height for r in train) / 1e6
    print(
        f"{len(train)} training photos ({len(big)} of ≥ {MIN_PIXELS / 1e6:g} MP before downscaling; "
        f"{mp:.1f} MP as used) from {len(sources)} sources → {sum(r['files'] for r in train)} tiles in "
        f"{args.out / 'train'}; {len(val)} validation photos in {args.out / 'val'}; sources in "
        f"{args.out / 'sources.csv'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
