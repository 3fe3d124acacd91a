"""Image sets made by the course for 04_cnns: Fashion-MNIST as PNG folders, and synthetic sky shapes.

`fmnist_png` is prepared by `course data` (the dataset of the same name) and stands in for the image
folders of Oxford Pets / Imagenette; `sky_shapes` is generated on demand (it takes milliseconds) and
stands in for the Pets images of the CAM chapter: the object sits at a known box.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

PNG_DIR = "fmnist_png"
PNG_TRAIN, PNG_VALID = 300, 100  # per class


def _class_folder(name: str) -> str:
    """A folder-safe class name: 'T-shirt/top' -> 'T-shirt_top', 'Ankle boot' -> 'Ankle_boot'."""
    return name.replace("/", "_").replace(" ", "_")


def export_png_folders(x_train, y_train, x_valid, y_valid, root: Path, n_train: int = PNG_TRAIN,
                       n_valid: int = PNG_VALID, rgb: bool = True) -> Path:
    """Write `root/train/<class>/<index>.png` and `root/valid/<class>/<index>.png`. Taught in 04_cnns.

    Takes the first n_train images of each class from (x_train, y_train) and the first n_valid of each
    class from (x_valid, y_valid): uint8 (N, 28, 28) and int labels 0..9. RGB by default (fastai's
    ImageBlock default, and what `vision_learner` expects). Deterministic: same input, same bytes.
    """
    from PIL import Image

    from course_utils.data.images import FASHION_CLASSES

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
    """Builder of `fmnist_png`: 300 train (from the training set) + 100 valid (from the test set) per class."""
    from course_utils.data.images import read_idx

    folder = Path(source[0])
    export_png_folders(
        read_idx(folder / "train-images-idx3-ubyte.gz"),
        read_idx(folder / "train-labels-idx1-ubyte.gz"),
        read_idx(folder / "t10k-images-idx3-ubyte.gz"),
        read_idx(folder / "t10k-labels-idx1-ubyte.gz"),
        out / PNG_DIR,
    )


def _cross(size: int, r: int) -> np.ndarray:
    """A 'plane': a bright cross (wings and fuselage) of half-size r, in a (2r+1)^2 patch."""
    patch = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    patch[r, :] = 1.0
    patch[:, r] = 1.0
    patch[r - 1 : r + 2, r] = 1.0
    return patch


def _chevron(size: int, r: int) -> np.ndarray:
    """A 'bird': a bright V (two wings meeting at the bottom centre) of half-size r."""
    patch = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    for k in range(r + 1):
        row = 2 * k if 2 * k <= 2 * r else 2 * r
        patch[row, k] = 1.0
        patch[row, 2 * r - k] = 1.0
        if row + 1 <= 2 * r:
            patch[row + 1, k] = 1.0
            patch[row + 1, 2 * r - k] = 1.0
    return patch


def sky_shapes(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic 'planes' (crosses, label 0) and 'birds' (chevrons, label 1) on a sky. Taught in 04_cnns.

    Each image is a vertical sky gradient plus Gaussian noise (sigma 0.15) with one bright shape of
    half-size 3-5 px at a uniform random position. Returns (images float32 (n, 1, size, size),
    labels int64 (n,), boxes int64 (n, 4) as (row0, col0, row1, col1) inclusive). Made on the CPU
    from a generator seeded with `seed`, so every device and run gets the same set.
    """
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    radii = torch.randint(3, 6, (n,), generator=gen)
    images = torch.empty(n, 1, size, size)
    boxes = torch.empty(n, 4, dtype=torch.long)
    top = torch.rand(n, generator=gen) * 0.3 + 0.2
    sky = torch.linspace(0, 1, size).view(1, size, 1)
    noise = torch.randn(n, 1, size, size, generator=gen) * 0.15
    u = torch.rand(n, 2, generator=gen)
    for i in range(n):
        r = int(radii[i])
        r0 = int(u[i, 0] * (size - 2 * r))
        c0 = int(u[i, 1] * (size - 2 * r))
        img = (top[i] + 0.3 * sky).expand(1, size, size).clone()
        patch = torch.from_numpy((_cross if labels[i] == 0 else _chevron)(size, r))
        region = img[0, r0 : r0 + 2 * r + 1, c0 : c0 + 2 * r + 1]
        img[0, r0 : r0 + 2 * r + 1, c0 : c0 + 2 * r + 1] = torch.where(patch > 0, torch.ones_like(region), region)
        images[i] = img
        boxes[i] = torch.tensor([r0, c0, r0 + 2 * r, c0 + 2 * r])
    return images + noise, labels, boxes


def box_area_fraction(boxes: torch.Tensor, size: int = 32, dilate: int = 3) -> float:
    """Mean fraction of the image covered by the (dilated) boxes: the chance rate of a random peak. Taught in 04_cnns."""
    b = boxes.clone()
    b[:, :2] = (b[:, :2] - dilate).clamp(min=0)
    b[:, 2:] = (b[:, 2:] + dilate).clamp(max=size - 1)
    areas = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return float(areas.float().mean() / size**2)
