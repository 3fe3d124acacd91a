"""The offline datasets in the shared cache: every loader's type and shape, with the network blocked.

`make test` runs `course data` first; the `prepared` fixture prepares whatever is still missing,
so this file also runs on its own. Cache mechanics (atomicity, corruption, errors) are tested on
temporary caches in test_data_cache.py.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import torch

import course_utils.data as data
from course_utils.config import REPO_ROOT
from course_utils.data import debian


def _no_network(*args, **kwargs):
    raise AssertionError("a test tried to open a network connection")


@pytest.fixture(scope="module")
def prepared():
    """Prepare every dataset into the shared cache (a few seconds when `course data` already ran)."""
    results = data.prepare(progress=False)
    failed = [r.error for r in results if r.status == "failed"]
    assert not failed, "\n\n".join(failed)
    return results


@pytest.fixture
def offline(monkeypatch):
    """Block sockets, and Debian downloads (a subprocess the socket patch would not see)."""
    monkeypatch.setattr(socket.socket, "connect", _no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", _no_network)
    monkeypatch.setattr(socket, "create_connection", _no_network)
    monkeypatch.setattr(socket, "getaddrinfo", _no_network)
    monkeypatch.setattr(debian, "download", _no_network)
    monkeypatch.delenv("COURSE_ONLINE", raising=False)


def test_every_dataset_loads_with_the_network_blocked(prepared, offline):
    for name in data.DATASETS:
        assert data.load(name) is not None, name
    assert [row["status"] for row in data.dataset_table()] == ["ready"] * len(data.DATASETS)


def test_warm_prepare_is_fast_and_changes_nothing(prepared, offline):
    manifests = data.cache_dir() / "manifests"
    before = {p.name: p.stat().st_mtime_ns for p in manifests.iterdir()}
    started = time.perf_counter()
    results = data.prepare(progress=False)
    assert time.perf_counter() - started < 10
    assert {r.status for r in results} == {"ready"}
    assert {p.name: p.stat().st_mtime_ns for p in manifests.iterdir()} == before


def test_importing_the_package_has_no_side_effects(tmp_path):
    target = tmp_path / "cache"
    code = "import course_utils.data, os; print(os.path.exists(os.environ['COURSE_DATA']))"
    env = {**os.environ, "COURSE_DATA": str(target)}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=REPO_ROOT, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False" and not target.exists()


# ------------------------------------------------------------------------------------------------
# Types and shapes, as the chapters rely on them
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, shape",
    [
        ("chelsea", (300, 451, 3)),
        ("coffee", (400, 600, 3)),
        ("astronaut", (512, 512, 3)),
        ("horse", (328, 400, 4)),
        ("china", (427, 640, 3)),
        ("flower", (427, 640, 3)),
    ],
)
def test_photos(prepared, offline, name, shape):
    image = data.photo(name)
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == shape
    assert data.photo_path(name).is_file()


def test_ct_volume_and_dicom_series_agree(prepared, offline):
    import pydicom

    volume, spacing = data.ct_volume()
    assert volume.dtype == np.int16 and volume.shape == (108, 256, 256)
    assert (volume.min(), volume.max()) == (-1024, 2986)
    assert spacing == (1.5, 0.9570312, 0.9570312)

    files = sorted(data.ct_dicom_dir().glob("*.dcm"))
    assert len(files) == 108
    slices = sorted((pydicom.dcmread(f) for f in files), key=lambda s: float(s.ImagePositionPatient[2]))
    hu = np.stack([s.pixel_array * float(s.RescaleSlope) + float(s.RescaleIntercept) for s in slices])
    assert np.array_equal(hu, volume)
    first = slices[0]
    assert (first.Rows, first.Columns, float(first.SliceThickness)) == (256, 256, 1.5)
    assert len({s.SOPInstanceUID for s in slices}) == 108 and len({s.SeriesInstanceUID for s in slices}) == 1


@pytest.mark.filterwarnings("ignore:The legacy `DICOM` plugin is deprecated")
def test_dicom_series_reads_back_with_imageio(prepared, offline):
    import imageio.v2 as iio

    volume, _ = data.ct_volume()
    assert np.array_equal(iio.volread(data.ct_dicom_dir(), "DICOM"), volume)


@pytest.fixture(scope="module")
def cranium():
    """Prepare only the Cranium CT (its masks and window came with version 2 of the record)."""
    data.ensure("ct_volume")


def test_cranium_masks_are_its_hu_thresholds_and_its_window_is_stored(cranium, offline):
    volume, _ = data.ct_volume()
    masks, info = data.ct_masks(), data.ct_info()
    assert sorted(masks) == ["mask_0", "mask_1"]
    assert (info["window_level"], info["window_width"]) == (-18.0, 406.0)
    for name, (low, high) in {"mask_0": (226, 3071), "mask_1": (-142, 2986)}.items():
        mask = masks[name]
        assert mask.dtype == np.bool_ and mask.shape == (108, 256, 256)
        assert info["masks"][name]["threshold_range"] == [low, high]
        assert np.array_equal(mask, (volume >= low) & (volume <= high))  # IoU 1.000: the very same voxels
    assert (masks["mask_0"].sum(), masks["mask_1"].sum()) == (475759, 2319106)


def test_read_inv3_drops_the_flag_border_of_each_mask(tmp_path):
    """A hand-made InVesalius archive: the masks come back one voxel smaller on each axis, as booleans."""
    import io
    import plistlib
    import tarfile

    from course_utils.data import ct

    volume = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4) - 5
    stored = np.zeros((3, 4, 5), np.uint8)
    stored[0, 0, 2] = stored[1, 0, 0] = 1  # flags on the border
    stored[1:, 1:, 1:][volume >= 0] = 255
    files = {
        "main.plist": plistlib.dumps({
            "matrix": {"filename": "matrix.dat", "shape": [2, 3, 4], "dtype": "int16"},
            "spacing": [0.5, 0.5, 2.0], "name": "toy", "modality": "CT", "window_level": 40.0,
            "window_width": 400.0, "masks": {"0": "mask_0.plist"}}),
        "matrix.dat": volume.astype("<i2").tobytes(),
        "mask_0.plist": plistlib.dumps({"mask_file": "mask_0.dat", "mask_shape": [3, 4, 5], "name": "bone",
                                        "threshold_range": [0, 3071]}),
        "mask_0.dat": stored.tobytes(),
    }
    inv3 = tmp_path / "toy.inv3"
    with tarfile.open(inv3, "w:gz") as archive:
        for name, payload in files.items():
            entry = tarfile.TarInfo(f"tmpdir/{name}")
            entry.size = len(payload)
            archive.addfile(entry, io.BytesIO(payload))
    ct.build_cranium(inv3, tmp_path / "out")
    with np.load(tmp_path / "out" / ct.MASKS_FILE) as masks:
        assert masks["mask_0"].dtype == np.bool_ and np.array_equal(masks["mask_0"], volume >= 0)
    info = json.loads((tmp_path / "out" / ct.INFO_FILE).read_text())
    assert info["spacing_zyx"] == [2.0, 0.5, 0.5] and (info["window_level"], info["window_width"]) == (40.0, 400.0)
    assert info["masks"] == {"mask_0": {"name": "bone", "threshold_range": [0, 3071]}}
    assert np.array_equal(np.load(tmp_path / "out" / ct.VOLUME_FILE), volume)


def test_ct_slice(prepared, offline):
    import pydicom

    ds = pydicom.dcmread(data.ct_slice_path())
    assert ds.pixel_array.shape == (128, 128) and float(ds.RescaleIntercept) == -1024


@pytest.mark.parametrize(
    "name, shape", [("diamonds", (53940, 11)), ("ames", (2930, 75)), ("wage", (3000, 12)),
                    ("credit", (4454, 15)), ("attrition", (1470, 32)), ("concrete", (1030, 10))]
)  # fmt: skip
def test_tables(prepared, offline, name, shape):
    frame = data.table(name)
    assert isinstance(frame, pd.DataFrame) and frame.shape == shape


def test_diamonds_csv_is_semicolon_separated_with_cut_last(prepared, offline):
    lines = data.path("diamonds").read_text().splitlines()
    assert lines[0] == "carat;color;clarity;depth;table;price;x;y;z;cut"
    assert len(lines) == 53941 and lines[1].endswith(";Ideal")


def test_ewr_hourly(prepared, offline):
    frame = data.ewr_hourly()
    assert frame.shape == (8760, 15) and not frame.isna().any().any()
    assert list(frame.columns[:7]) == ["instant", "month", "day", "hour", "weekday", "workingday", "weathersit"]
    assert frame["instant"].tolist() == list(range(1, 8761))
    assert set(frame["weathersit"]) == {1, 2, 3, 4} and frame["departures"].min() == 0
    assert frame["departures"].sum() == 120_835  # every scheduled EWR flight of 2013 (01_tensors.md)
    assert frame["workingday"].sum() == 251 * 24
    assert frame["weathersit"].value_counts().sort_index().tolist() == [7226, 785, 527, 222]
    first_day = frame[(frame.month == 1) & (frame.day == 1)]
    assert first_day["weekday"].eq(1).all() and first_day["workingday"].eq(0).all()  # a Tuesday, New Year
    table = np.loadtxt(data.path("ewr_hourly"), delimiter=",", skiprows=1)
    assert table.shape == (8760, 15)


def test_movielens_and_reviews(prepared, offline):
    ratings = data.movielens()
    assert ratings.shape == (100004, 7)
    assert ratings["userId"].nunique() == 671 and ratings["movieId"].nunique() == 9066
    train, test = data.reviews()
    assert train.shape == (4000, 3) and test.shape == (1000, 3)
    assert list(train.columns) == ["product", "review", "score"]
    assert train["score"].value_counts().to_dict() == {"great": 2600, "other": 1400}


def test_mnist5k(prepared, offline):
    x, y = data.mnist5k()
    assert x.dtype == torch.uint8 and x.shape == (5000, 28, 28)
    assert y.dtype == torch.int64 and y.shape == (5000,)
    assert torch.equal(y, torch.arange(10).repeat_interleave(500))  # sorted by label, 500 each


def test_fashion_mnist(prepared, offline):
    x, y = data.fashion_mnist()
    assert x.dtype == torch.uint8 and x.shape == (60000, 28, 28) and y.dtype == torch.int64
    assert torch.bincount(y).tolist() == [6000] * 10
    assert abs(x.float().div(255).mean().item() - 0.2860) < 1e-4
    x_test, y_test = data.fashion_mnist(train=False)
    assert x_test.shape == (10000, 28, 28) and y_test.shape == (10000,)
    assert len(data.FASHION_CLASSES) == 10


def test_austen(prepared, offline):
    text = data.austen()
    lines = text.split("\n")
    assert len(lines) == 13030 and text.isascii() and lines[0] == "PRIDE AND PREJUDICE"
    assert any(line.startswith('"Impossible, Mr. Bennet') for line in lines)
    books = data.austen_books()
    assert list(books)[:2] == ["sensesensibility", "prideprejudice"] and len(books) == 6
    assert sum(len(b.split("\n")) for b in books.values()) == 73422
    assert sum(len(b.split()) for b in books.values()) == 717537


def test_human_numbers_reproduces_the_book_counts(prepared, offline):
    train, valid = data.human_numbers()
    assert (len(train), len(valid)) == (7999, 1999)
    assert train[0] == "one \n" and valid[120] == "eight thousand one hundred twenty one \n"
    tokens = " . ".join(line.strip() for line in train + valid).split(" ")
    assert len(tokens) == 63095
    vocab = list(dict.fromkeys(tokens))
    assert len(vocab) == 30 and vocab[:3] == ["one", ".", "two"] and vocab[-2:] == ["hundred", "thousand"]
    assert len(range(0, len(tokens) - 4, 3)) == 21031
    assert len(range(0, len(tokens) - 17, 16)) == 3943


def test_thermometer_is_still_importable():
    from course_utils.data import thermometer

    t_c, t_u = thermometer()
    assert t_c.dtype == torch.float32 and t_u.shape == (11,)


def test_export_png_folders(tmp_path):
    """The fmnist_png builder's writer: class folders, sizes, RGB pixels, identical bytes on a rerun."""
    from PIL import Image

    from course_utils.data import export_png_folders

    g = torch.Generator().manual_seed(1)
    x = (torch.rand(40, 28, 28, generator=g) * 255).to(torch.uint8).numpy()
    y = np.arange(40) % 10
    root = export_png_folders(x, y, x, y, tmp_path / "png", n_train=3, n_valid=1)
    assert len(list((root / "train" / "T-shirt_top").glob("*.png"))) == 3
    assert len(list((root / "valid" / "Ankle_boot").glob("*.png"))) == 1
    img = np.asarray(Image.open(root / "train" / "Trouser" / "00001.png"))
    assert img.shape == (28, 28, 3) and np.array_equal(img[..., 0], x[1])
    again = export_png_folders(x, y, x, y, tmp_path / "png2", n_train=3, n_valid=1)
    assert (root / "train/Bag/00008.png").read_bytes() == (again / "train/Bag/00008.png").read_bytes()
