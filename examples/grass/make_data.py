"""The paper's §5.3 grass experiment data: scikit-image's grass texture (512×512, gray), split by
columns into a training part (left 384) and a held-out test strip (right 128).

    python examples/grass/make_data.py DIR   # writes DIR/train/grass.png and DIR/test/grass.png
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
    print(f"wrote {root}/train/grass.png (512×384) and {root}/test/grass.png (512×128)")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "data/grass")
