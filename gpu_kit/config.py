"""The kit's settings: how the chapters are split into bundles, the size limit, and the GPU machine.

Only the standard library is imported here: run.sh and the modules it uses on the GPU machine read it.
"""

from __future__ import annotations

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
KIT_DIR = REPO_ROOT / "gpu_kit"
BUNDLES_DIR = REPO_ROOT / ".gpu"  # git-ignored: one folder per bundle, plus the wheel cache
WHEEL_CACHE = BUNDLES_DIR / "wheel-cache"
GPU_MACHINE_LIST = KIT_DIR / "gpu_machine.txt"

# One bundle per group of chapters (by number). Every chapter in chapters/ must be in exactly one.
# Each bundle travels with the working tree, and the two together must stay under LIMIT_BYTES.
BUNDLES = {
    "ch01-03": ("01", "02", "03"),
    "ch04": ("04",),
    "ch05": ("05",),
    "ch06": ("06",),
    "ch07": ("07",),
    "ch08": ("08",),
    "ch09": ("09",),
}
LIMIT_BYTES = 64 * 2**20  # what one call to the GPU machine may carry: working tree + carried paths

# The files of a bundle folder.
MANIFEST = "manifest.json"
WHEELS_ARCHIVE = "wheels.tar.xz"  # the wheels, re-zipped without compression (archive.stored_wheel)
DATA_ARCHIVE = "data.tar.xz"  # the carried datasets in the cache layout
ARCHIVES = {"wheels": WHEELS_ARCHIVE, "data": DATA_ARCHIVE}

# The GPU machine's Python, for which wheels are chosen and markers evaluated.
TARGET_PYTHON = "3.12"
TARGET_PYTHON_FULL = "3.12.3"
TARGET_MARKERS = {
    "python_version": TARGET_PYTHON,
    "python_full_version": TARGET_PYTHON_FULL,
    "implementation_name": "cpython",
    "implementation_version": TARGET_PYTHON_FULL,
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "sys_platform": "linux",
    "platform_machine": "x86_64",
    "os_name": "posix",
    "platform_release": "",
    "platform_version": "",
}
# pip matches manylinux_2_N exactly, so every glibc level up to the machine's (Ubuntu 24.04: 2.39).
TARGET_PLATFORMS = (
    *(f"manylinux_2_{n}_x86_64" for n in range(39, 16, -1)),
    "manylinux2014_x86_64",
    "manylinux2010_x86_64",
    "manylinux1_x86_64",
    "linux_x86_64",
)

# What running nbval on a notebook needs besides the notebook's own imports: the plugin and the kernel.
RUNNER_DISTRIBUTIONS = ("nbval", "ipykernel")

# Metadata dependencies bundled only with a chapter that imports them itself, and why the others do
# without: `make gpu-bundle` checks the claim by importing every chapter's modules with it blocked.
DEFERRED = {
    "spacy": "fastai imports spaCy only in fastai.text (fastai/text/core.py), which only 05_nlp uses",
}
