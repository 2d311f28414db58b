"""The paper's §5.3 grass experiment data: scikit-image's grass texture (512×512, gray), split by
columns into a training part (left 384) and a held-out test strip (right 128); the test strip is
also cut into 16 tiles of 64×64 for `affsr train --val` (which takes one centre crop per image).

    python examples/grass/make_data.py DIR   # writes DIR/train/grass.png, DIR/test/grass.png, DIR/val/tile-NN.png
"""

import sys
from pathlib import Path

from PIL import Image
from skimage import data


def main(root: str):
    root = Path(root)
    grass = data.grass()  # (512, 512) uint8
    for name, part in (("train", grass[:, :384]), ("test", grass[:, 384:])):
        (root / name).mkdir(parents=True, exist_ok=True)
        Image.fromarray(part).save(root / name / "grass.png")
    (root / "val").mkdir(parents=True, exist_ok=True)
    test = grass[:, 384:]
    tiles = [test[r : r + 64, c : c + 64] for r in range(0, 512, 64) for c in range(0, 128, 64)]
    for i, tile in enumerate(tiles):
        Image.fromarray(tile).save(root / "val" / f"tile-{i:02d}.png")
    print(f"wrote {root}/train/grass.png (512×384), {root}/test/grass.png (512×128) and {len(tiles)} val tiles (64×64)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/grass")
