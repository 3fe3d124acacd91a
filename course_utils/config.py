"""Course-wide settings that several tools share.

The GitHub location is written here once. Badges in the first cell of every notebook variant and the
Colab install line in the second cell are generated from it by `course build`, so a fork changes this
file, runs `make build`, and every link follows. The Colab runtime the course assumes is written here
once too (COLAB_RUNTIME): the install cell states it, and tests/test_colab.py derives the `[colab]` extra's
contents and the Colab simulation from it.
"""

import importlib.util
import sys
from pathlib import Path

__all__ = [
    "CHAPTER_TITLES", "CHAPTERS_DIR", "COLAB_EXTRA", "COLAB_RUNTIME", "CPU_KERNEL", "DISTRIBUTION",
    "EXERCISES_DIR", "GITHUB_BRANCH", "GITHUB_REPO", "GPU_KERNEL", "on_colab", "REPO_ROOT", "SOLUTIONS_DIR",
]

GITHUB_REPO = "dl-course/executable-deep-learning"
GITHUB_BRANCH = "main"

# The package's distribution name (pyproject.toml) and the extra that Colab's install cell asks for.
DISTRIBUTION = "course-utils"
COLAB_EXTRA = "colab"

# The Colab runtime the course assumes, in one place. "ships": the distributions the chapters need that
# Colab has preinstalled, so the `[colab]` extra leaves them alone (torch above all: Colab's CUDA build
# stays); every other distribution a chapter needs is in the extra (tests/test_colab.py checks both ways).
# The versions are those of requirements.txt (a test keeps them equal): the Colab simulation
# (tests/test_colab.py, Python "python") runs with exactly these, and the install cell states them. What is
# assumed, not tested: that Colab's runtime of "date" still ships every distribution named here, and that
# its versions (Colab updates them a few times a year; its Python was 3.12 in 2025) behave as these do.
COLAB_RUNTIME = {
    "date": "2026-12",
    "python": "3.11",
    "ships": {
        "torch": "2.14.1",
        "torchvision": "0.29.1",
        "fastai": "2.8.12",
        "fastcore": "2.2.39",
        "spacy": "3.8.18",
        "sentencepiece": "0.2.3",
        "numpy": "2.4.6",
        "scipy": "1.17.1",
        "pandas": "3.1.1",
        "scikit-learn": "1.9.1",
        "scikit-image": "0.26.0",
        "threadpoolctl": "3.8.0",
        "matplotlib": "3.11.2",
        "pillow": "13.0.0",
        "imageio": "2.38.1",
        "h5py": "3.16.0",
        "pyarrow": "26.0.1",
        "tqdm": "4.70.1",
        "filelock": "4.2.11",
        "ipython": "9.18.1",
        "ipykernel": "7.4.0",
        "ipywidgets": "8.1.9",
        "tensorboard": "2.21.0",
    },
}


def on_colab() -> bool:
    """True inside Google Colab, i.e. when `google.colab` is imported or importable."""
    if "google.colab" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("google.colab") is not None
    except (ImportError, ValueError):  # no `google` package at all
        return False

# The repository root, found from this file, so no path depends on the working directory.
REPO_ROOT = Path(__file__).resolve().parent.parent

CHAPTERS_DIR = REPO_ROOT / "chapters"
EXERCISES_DIR = CHAPTERS_DIR / "exercises"
SOLUTIONS_DIR = REPO_ROOT / "solutions"

CPU_KERNEL = "course-cpu"
GPU_KERNEL = "course-gpu"

# The course's chapters, in order, with one-line titles for README's table. A chapter without a
# source in chapters/ yet is listed as planned.
CHAPTER_TITLES = {
    "01_tensors": "Tensors: the memory model, broadcasting, real data as tensors",
    "02_autograd": "Derivatives, gradient descent and autograd",
    "03_nn": "From one neuron to a tested mini-framework; MNIST from scratch",
    "04_cnns": "Convolutions by hand, ResNets, transfer learning, CAM",
    "05_nlp": "Tokens, the RNN-to-LSTM ladder, language-model transfer",
    "06_tabular": "Tabular data: embeddings, trees and neural nets",
    "07_collab": "Collaborative filtering on real MovieLens ratings",
    "08_ct": "CT scans: a nodule-candidate classifier on LUNA-style volumes",
    "09_deploy": "Deployment: export, serve and test a trained model",
}
