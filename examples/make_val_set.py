"""Recreate examples/val/, the small validation set of `affsr eval`, from the photographs that ship
inside scikit-image (skimage/data; no download). Each is cropped to a size that is a multiple of 4
and saved as an 8-bit RGB PNG; SOURCES.md beside them records where each comes from and its licence.

    pip install scikit-image && python examples/make_val_set.py
"""

from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data

OUT = Path(__file__).resolve().parent / "val"

# name: (scikit-image loader, rows, columns) — crops that keep the main subject
CROPS = {
    "astronaut": (data.astronaut, slice(16, 336), slice(96, 384)),  # 320×288
    "chelsea": (data.chelsea, slice(20, 296), slice(60, 384)),  # 276×324
    "coffee": (data.coffee, slice(24, 344), slice(120, 440)),  # 320×320
    "rocket": (data.rocket, slice(40, 348), slice(200, 436)),  # 308×236
    "hubble": (data.hubble_deep_field, slice(300, 556), slice(380, 636)),  # 256×256
}


def main():
    OUT.mkdir(exist_ok=True)
    for name, (load, rows, cols) in CROPS.items():
        img = np.ascontiguousarray(load()[rows, cols, :3])
        assert img.dtype == np.uint8 and img.shape[0] % 4 == 0 and img.shape[1] % 4 == 0, (name, img.shape)
        Image.fromarray(img).save(OUT / f"{name}.png", optimize=True)
        print(f"{name}.png  {img.shape[1]}×{img.shape[0]}  {(OUT / f'{name}.png').stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
