"""Build the photo corpus the shipped 4× checkpoints are trained on, offline, from freely licensed
photographs in Debian packages and in the sample data of scikit-image, scikit-learn and matplotlib.

    python examples/photos/make_corpus.py --out data/photos

Debian packages are fetched with `apt-get download` (no root, nothing installed) and unpacked with
`dpkg-deb -x` into `--cache`; where a package is already installed, its files under /usr/share are
used as they are. Only photographs are taken (the packages also hold drawings and renders); each
file's package, path, author and licence are recorded in `sources.csv`.

Preprocessing: every photo is downscaled (PIL Lanczos, antialiased) so that its longer side is at
most `--max-side` pixels, which also suppresses JPEG blocking and sensor noise, and converted to
8-bit RGB (gray photos stay gray). Then the split:
- `val/`: whole images (sides cut to multiples of 4), never seen in training — every fifth Debian
  photo in name order, plus the scikit-image photos of `examples/val` (astronaut, chelsea, coffee,
  rocket, hubble), which are excluded from training as well;
- `train/`: the remaining photos cut into `--tile`×`--tile` PNG tiles (stride tile − 32), so that
  a training step decodes small files; `affsr train --data data/photos/train --patch 128` crops
  random patches from them.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

# package: {path under the package root: (author, licence)}; author/licence None = read from the
# package (Plasma's metadata.json); licences as stated in each package's debian/copyright
DEBIAN = {
    "lomiri-wallpapers-16.04": {
        f"usr/share/backgrounds/{n}.jpg": (a, l) for n, a, l in [
            ("Bridge_by_Sander_Klootwijk", "Sander Klootwijk", "CC-BY-SA-4.0"),
            ("Dragonfly_by_Bolly", "Bolly", "CC-BY-SA-4.0"),
            ("Picture_0B_by_freespace", "Trevor Freespace", "CC-BY-4.0"),
            ("Picture_1A_by_freespace", "Trevor Freespace", "CC-BY-4.0"),
            ("Wine_by_Jakkub_Mede", "Jakub Mede", "CC-BY-4.0"),
            ("aitzgorri_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("analogpattern_by_Peter_Nerlich", "Peter Nerlich", "CC-BY-SA-4.0"),
            ("free_by_Peter_Nerlich", "Peter Nerlich", "CC-BY-SA-4.0"),
            ("friends_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("life_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("picosdeeuropa_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
            ("seeding_by_Clements_Engelhardt", "Clemens Engelhardt", "CC0-1.0"),
            ("sunset_by_Aitzol_Berasategi", "Aitzol Berasategi", "CC-BY-4.0"),
        ]},
    "lomiri-wallpapers-20.04": {
        "usr/share/backgrounds/Kleiber_by_Lukas_Baubkus.jpg": ("Lukas Baubkus", "CC-BY-SA-3.0"),
    },
    "mate-backgrounds": {
        f"usr/share/backgrounds/mate/nature/{n}.jpg": (a, "GPL-2+") for n, a in [
            ("Aqua", "Charles Barbin"), ("Blinds", "Lennart Poettering, Andrea Cimitan"),
            ("Dune", "Marco Cogoni, Hylke Bons"), ("FreshFlower", "Jens Ansorg"),
            ("Garden", "Charles Barbin"), ("GreenMeadow", "Timothy Schellhase, Lapo Calamandrei"),
            ("LadyBird", "Charles Barbin"), ("RainDrops", "blackcombwhistler07"),
            ("Storm", "Sergey Nazarov"), ("TwoWings", "Charles Barbin, Hylke Bons"),
            ("Wood", "Jean-François Fortin Tam"), ("YellowFlower", "Charles Barbin"),
        ]},
    "plasma-workspace-wallpapers": {
        f"usr/share/wallpapers/{n}": (None, None) for n in [
            "BytheWater", "ColorfulCups", "EveningGlow", "FallenLeaf", "Grey", "Kite", "MilkyWay",
            "OneStandsOut", "Path", "summer_1am", "DarkestHour",
        ]},
}

# (module, file under its data folder, author, licence, split)
SAMPLE_DATA = [  # licences as stated in skimage.data's docstrings and sklearn's datasets/images/README.txt
    ("skimage", "data/camera.png", "Lav Varshney", "CC0", "train"),
    ("skimage", "data/ihc.png", "Yale Rosen (immunohistochemistry)", "no known copyright restrictions", "train"),
    ("skimage", "data/coins.png", "Brooklyn Museum", "no known copyright restrictions", "train"),
    ("skimage", "data/grass.png", "linolafett (DeviantArt)", "CC0", "train"),
    ("skimage", "data/gravel.png", "CC0Textures", "CC0", "train"),
    ("skimage", "data/brick.png", "CC0Textures", "CC0", "train"),
    ("sklearn", "datasets/images/china.jpg", "danielbuechele (Flickr)", "CC-BY-2.0", "train"),
    ("sklearn", "datasets/images/flower.jpg", "vultilion (Flickr)", "CC-BY-2.0", "train"),
    ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg", "US Navy", "public domain (US Navy photograph)", "train"),
    # the photos of examples/val (examples/val/SOURCES.md): validation only
    ("skimage", "data/astronaut.png", "NASA", "public domain", "val"),
    ("skimage", "data/chelsea.png", "Stefan van der Walt", "CC0", "val"),
    ("skimage", "data/coffee.png", "Rachel Michetti", "CC0", "val"),
    ("skimage", "data/rocket.jpg", "SpaceX", "public domain", "val"),
    ("skimage", "data/hubble_deep_field.jpg", "NASA", "public domain", "val"),
]
VAL_EVERY = 5  # every fifth Debian photo (name order) is held out


def package_root(package: str, cache: Path) -> Path | None:
    """/ when the package is installed, else its unpacked .deb under cache (downloaded once)."""
    paths = DEBIAN[package]
    if all((Path("/") / p).exists() for p in paths):
        return Path("/")
    root = cache / package
    if root.exists():
        return root
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        r = subprocess.run(["apt-get", "download", package], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("*.deb"))
        if r.returncode or not debs:
            print(f"warning: apt-get download {package} failed, skipped: {r.stderr.strip()[:200]}", file=sys.stderr)
            return None
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(Path(tmp) / "root")], check=True)
        os.replace(Path(tmp) / "root", root)
    return root


def plasma_photo(folder: Path) -> tuple[Path, str, str]:
    """The largest image of a Plasma wallpaper package, its author and licence (metadata.json)."""
    images = [p for p in (folder / "contents" / "images").iterdir() if p.suffix.lower() in (".jpg", ".png")]
    best = max(images, key=lambda p: (lambda s: s[0] * s[1])(Image.open(p).size))
    meta = json.loads((folder / "metadata.json").read_text())["KPlugin"]
    author = ", ".join(a.get("Name", "?") for a in meta.get("Authors", []))
    return best, author, meta.get("License", "see debian/copyright")


def debian_photos(cache: Path) -> list[dict]:
    rows = []
    for package, files in DEBIAN.items():
        root = package_root(package, cache)
        if root is None:
            continue
        for rel, (author, licence) in files.items():
            path = root / rel
            if author is None:
                path, author, licence = plasma_photo(path)
            rows.append(dict(name=f"{package.split('-')[0]}-{Path(rel).stem}", path=path, source=f"Debian package {package}: /{rel}",
                             author=author, licence=licence))
    rows.sort(key=lambda r: r["name"].lower())
    for i, r in enumerate(rows):
        r["split"] = "val" if i % VAL_EVERY == VAL_EVERY - 1 else "train"
    return rows


def sample_photos() -> list[dict]:
    rows = []
    for module, rel, author, licence, split in SAMPLE_DATA:
        try:
            base = Path(__import__(module).__file__).parent
        except ImportError:
            print(f"warning: {module} is not installed: {rel} skipped", file=sys.stderr)
            continue
        if module == "matplotlib":
            import matplotlib
            base = Path(matplotlib.get_data_path()).parent
        path = base / rel
        if path.exists():
            rows.append(dict(name=f"{module}-{path.stem}", path=path, source=f"{module} sample data: {rel}",
                             author=author, licence=licence, split=split))
    return rows


def prepare(path: Path, max_side: int) -> Image.Image:
    im = Image.open(path)
    im = im.convert("L" if im.mode in ("L", "I;16", "I") else "RGB")
    scale = max_side / max(im.size)
    if scale < 1:
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    return im.crop((0, 0, im.width // 4 * 4, im.height // 4 * 4))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, default=Path("data/photos"), help="corpus folder (train/, val/, sources.csv)")
    p.add_argument("--cache", type=Path, default=Path("data/debs"), help="where .deb packages are unpacked")
    p.add_argument("--max-side", type=int, default=1600, help="longer side after downscaling (px)")
    p.add_argument("--tile", type=int, default=256, help="side of the training tiles (px)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing corpus folder")
    args = p.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()) and not args.overwrite:
        print(f"error: {args.out} exists and is not empty (use --overwrite)", file=sys.stderr)
        return 2
    if shutil.which("apt-get") is None:
        print("warning: apt-get not found: only the Python packages' sample photos are used", file=sys.stderr)
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = (debian_photos(args.cache) if shutil.which("apt-get") else []) + sample_photos()
    shutil.rmtree(args.out, ignore_errors=True)
    (args.out / "train").mkdir(parents=True)
    (args.out / "val").mkdir()
    step = args.tile - 32
    for r in rows:
        im = prepare(r["path"], args.max_side)
        r["size"] = f"{im.width}x{im.height}"
        if r["split"] == "val":
            im.save(args.out / "val" / f"{r['name']}.png")
            r["files"] = 1
            continue
        a = np.asarray(im)
        n = 0
        for top in range(0, max(a.shape[0] - args.tile, 0) + 1, step):
            for left in range(0, max(a.shape[1] - args.tile, 0) + 1, step):
                tile = a[top:top + args.tile, left:left + args.tile]
                if tile.std() < 2:  # flat sky or black border: nothing to learn
                    continue
                Image.fromarray(tile).save(args.out / "train" / f"{r['name']}_{top:04d}_{left:04d}.png")
                n += 1
        r["files"] = n
    with open(args.out / "sources.csv", "w", newline="") as f:
        w = csv.DictWriter(f, ["name", "split", "size", "files", "author", "licence", "source"], extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    train = [r for r in rows if r["split"] == "train"]
    val = [r for r in rows if r["split"] == "val"]
    print(f"{len(train)} training photos → {sum(r['files'] for r in train)} tiles in {args.out / 'train'}; "
          f"{len(val)} validation photos in {args.out / 'val'}; sources in {args.out / 'sources.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
