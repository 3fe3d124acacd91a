"""Setup, device choice, seeding and determinism. Taught in 01_tensors; every chapter calls `setup()`.

Two environment variables steer a run without editing a notebook:

    COURSE_DEVICE   cpu | cuda | mps | auto (default auto: CUDA, then MPS, then CPU)
    COURSE_THREADS  torch's intra-op thread count (default 1, see DEFAULT_THREADS)
    COURSE_BLAS_THREADS  NumPy's BLAS thread count (default: the same as COURSE_THREADS)

The two Jupyter kernels that `make setup` registers set COURSE_DEVICE: `course-cpu` and `course-gpu`.
"""

from __future__ import annotations

import contextlib
import os
import platform
import random
import sys
import warnings
from collections.abc import Iterator
from importlib import import_module, metadata

import numpy as np
import torch

__all__ = [
    "DEFAULT_SEED", "DEFAULT_THREADS", "DEVICE_CHOICES", "get_device", "make_deterministic", "quiet_stderr",
    "run_app", "seed_everything", "set_display_defaults", "set_threads", "setup", "summary_line",
]

DEVICE_CHOICES = ("auto", "cpu", "cuda", "mps")

# Measured on a 2-core machine running two notebooks at once (the test suite's layout): a small
# MLP+CNN training run took 4.6 s with one torch thread per process and 20.9 s with two, because
# two processes with two threads each fight over two cores. Alone, two threads won only 5.5 s -> 4.1 s.
DEFAULT_THREADS = 1

DEFAULT_SEED = 42


def get_device(name: str | None = None) -> torch.device:
    """Return the torch device to compute on. Taught in 01_tensors.

    `name` (or, when it is None, the COURSE_DEVICE environment variable) is one of cpu, cuda, mps
    or auto. auto picks CUDA, then Apple's MPS, then the CPU. Asking for a device that is not
    there raises a ValueError that says what is available, instead of failing later in a kernel.
    """
    choice = (name or os.environ.get("COURSE_DEVICE") or "auto").strip().lower()
    if choice not in DEVICE_CHOICES:
        raise ValueError(
            f"COURSE_DEVICE={choice!r} is not one of {', '.join(DEVICE_CHOICES)}."
        )
    cuda_ok = torch.cuda.is_available()
    mps_ok = bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()
    if choice == "auto":
        choice = "cuda" if cuda_ok else "mps" if mps_ok else "cpu"
    if choice == "cuda" and not cuda_ok:
        raise ValueError(
            "COURSE_DEVICE=cuda, but torch sees no CUDA GPU. Use the course-cpu kernel, "
            "or set COURSE_DEVICE=auto to fall back to the CPU."
        )
    if choice == "mps" and not mps_ok:
        raise ValueError("COURSE_DEVICE=mps, but this torch build has no usable MPS device.")
    return torch.device(choice)


def seed_everything(seed: int = DEFAULT_SEED) -> None:
    """Seed Python's, NumPy's and torch's global generators (CPU and every GPU). Used in 01_tensors, by `setup()`.

    Global seeding makes a notebook repeatable on one device. To get the *same numbers* on the CPU
    and the GPU, create random tensors on the CPU with an explicit torch.Generator, then move them.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device


def make_deterministic() -> None:
    """Ask torch for deterministic kernels and full-precision matmuls. Used in 01_tensors, by `setup()`.

    TF32 would make GPU matmuls differ from the CPU's in the fourth digit, so it is switched off.
    Ops without a deterministic GPU kernel warn instead of failing; those warnings appear on one
    device only, so they are silenced to keep the stored outputs identical on both kernels.
    """
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.use_deterministic_algorithms(True, warn_only=True)
    warnings.filterwarnings("ignore", message=".*does not have a deterministic implementation.*")


def set_threads(n: int | None = None) -> int:
    """Fix the CPU thread count of torch and of NumPy's BLAS (COURSE_THREADS, else DEFAULT_THREADS).

    Used in 01_tensors, by `setup()`.

    NumPy's BLAS follows COURSE_BLAS_THREADS when it is set: the test suite's second-numerics run
    gives torch two threads and keeps NumPy's OpenBLAS at one, whose threads spin-wait and ran 03
    eight times slower on a 2-core machine busy with another notebook.

    NumPy's BLAS would otherwise start one thread per core in every process: the from-scratch
    NumPy training of 03_nn ran three times slower that way on a busy 2-core machine.
    """
    from threadpoolctl import threadpool_limits

    if n is None:
        n = int(os.environ.get("COURSE_THREADS", DEFAULT_THREADS))
    if n < 1:
        raise ValueError(f"COURSE_THREADS must be at least 1, got {n}.")
    blas = int(os.environ.get("COURSE_BLAS_THREADS", n))
    if blas < 1:
        raise ValueError(f"COURSE_BLAS_THREADS must be at least 1, got {blas}.")
    torch.set_num_threads(n)
    threadpool_limits(limits=blas, user_api="blas")
    return n


def set_display_defaults() -> None:
    """Short, stable printing of tensors and arrays, and compact figures. Used in 01_tensors, by `setup()`."""
    torch.set_printoptions(precision=4, sci_mode=None, edgeitems=2, linewidth=100)
    np.set_printoptions(precision=4, suppress=True, edgeitems=2, linewidth=100)
    import matplotlib as mpl

    mpl.rcParams.update(
        {
            "figure.figsize": (6.0, 3.6),
            "figure.dpi": 100,  # text stays readable on HiDPI screens (about 14 px at font size 10)
            "axes.grid": False,  # a grid would cross every image; line plots that need one ask for it
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 10,
        }
    )


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Silence everything written to standard error inside the block, Python's and C's. Taught in 05_nlp.

    Some libraries write log lines with timestamps and temporary paths straight to file descriptor 2
    (sentencepiece's trainer does), bypassing `sys.stderr`; Jupyter shows them, and they would differ
    on every run. This points descriptor 2 and `sys.stderr` at /dev/null for the block and restores
    both afterwards, also when the block raises. Errors still propagate as exceptions.
    """
    sys.stderr.flush()
    saved_fd = os.dup(2)
    saved_stream = sys.stderr
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 2)
        sys.stderr = devnull
        try:
            yield
        finally:
            sys.stderr.flush()
            sys.stderr = saved_stream
            os.dup2(saved_fd, 2)
            os.close(saved_fd)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def summary_line(device: torch.device, threads: int, seed: int) -> str:
    """The one line `setup()` prints: versions, device, threads and seed. Used in 01_tensors, by `setup()`."""
    torch_version = torch.__version__.split("+")[0]
    return (
        f"course_utils {_version('course-utils')} | Python {platform.python_version()} | "
        f"torch {torch_version} | fastai {_version('fastai')} | device {device.type} | "
        f"threads {threads} | seed {seed}"
    )


def setup(seed: int = DEFAULT_SEED, device: str | None = None, quiet: bool = False) -> torch.device:
    """Prepare a notebook and return its device. The first code cell of every chapter calls it.

    Seeds every generator, picks the device (COURSE_DEVICE or `device`), turns on deterministic
    kernels, fixes the thread count (COURSE_THREADS), sets print and plot defaults, and prints
    one line with the versions and the device. Taught in 01_tensors.
    """
    chosen = get_device(device)
    seed_everything(seed)
    make_deterministic()
    threads = set_threads()
    set_display_defaults()
    if not quiet:
        print(summary_line(chosen, threads, seed))
    return chosen


def run_app(app: str, *argv: str):
    """Run a command-line application in this process: `run_app("pkg.module.AppClass", "--epochs", "1")`.

    The class is imported by its dotted path, built with the argument list (as `sys.argv[1:]` would be)
    and its `main()` result returned, so a notebook trains exactly what `python -m pkg.module ...` would.
    The book's `run('p2ch11.training.LunaTrainingApp', '--epochs=1')`. Taught in 08_ct.
    """
    module, _, name = app.rpartition(".")
    if not module:
        raise ValueError(f"{app!r} is not a dotted path such as 'course_utils.ct.training.LunaTrainingApp'")
    app_class = getattr(import_module(module), name)
    return app_class([str(a) for a in argv]).main()
