"""Builder of `fmnist_png`: Fashion-MNIST written as image folders, the layout fastai's examples read.

The dataset stands in for the image folders of Oxford Pets / Imagenette in 04_cnns: 300 train images
(from the training set) and 100 valid images (from the test set) per class, as RGB PNGs.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from course_utils.data.images import FASHION_CLASSES, read_idx

__all__ = ["PNG_DIR", "PNG_TRAIN", "PNG_VALID", "build_fmnist_png", "export_png_folders"]

PNG_DIR = "fmnist_png"
PNG_TRAIN, PNG_VALID = 300, 100  # per class


def _class_folder(name: str) -> str:
    """A folder-safe class name: 'T-shirt/top' -> 'T-shirt_top', 'Ankle boot' -> 'Ankle_boot'."""
    return name.replace("/", "_").replace(" ", "_")


def export_png_folders(x_train, y_train, x_valid, y_valid, root: Path, n_train: int = PNG_TRAIN,
                       n_valid: int = PNG_VALID, rgb: bool = True) -> Path:
    """Write `root/train/<class>/<index>.png` and `root/valid/<class>/<index>.png`. Used in 04_cnns.

    Takes the first n_train images of each class from (x_train, y_train) and the first n_valid of each
    class from (x_valid, y_valid): uint8 (N, 28, 28) and int labels 0..9. RGB by default (fastai's
    ImageBlock default, and what `vision_learner` expects). Deterministic: same input, same bytes.
    """
    from PIL import Image

    root = Path(root)
    for split, xs, ys, n in (("train", x_train, y_train, n_train), ("valid", x_valid, y_valid, n_valid)):
        xs, ys = np.asarray(xs, dtype=np.uint8), np.asarray(ys)
        for c, name in enumerate(FASHION_CLASSES):
            folder = root / split / _class_folder(name)
            folder.mkdir(parents=True, exist_ok=True)
            for i in np.flatnonzero(ys == c)[:n]:
                img = Image.fromarray(xs[i], mode="L")
                (img.convert("RGB") if rgb else img).save(folder / f"{i:05d}.png", optimize=False)
    return root


def build_fmnist_png(source: tuple[Path, ...], out: Path) -> None:
    """Builder of `fmnist_png` from its one input, the prepared fashion_mnist folder."""
    folder = Path(source[0])
    export_png_folders(
        read_idx(folder / "train-images-idx3-ubyte.gz"),
        read_idx(folder / "train-labels-idx1-ubyte.gz"),
        read_idx(folder / "t10k-images-idx3-ubyte.gz"),
        read_idx(folder / "t10k-labels-idx1-ubyte.gz"),
        out / PNG_DIR,
    )
