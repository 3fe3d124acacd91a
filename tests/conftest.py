"""Shared test set-up: the Agg backend, figures closed after each test, and the per-notebook timing table.

nbval items (one per cell of chapters/NN_slug.ipynb) and the exercise-notebook runs record their
durations; under pytest-xdist the reports travel back to the controller, which sums them per
chapter and prints one table after the run.

Figures: tests draw with matplotlib's Agg backend (no display), and every figure a test opened is
closed after it. Notebooks under nbval run in their own kernels and keep their inline backend.

Threads: a module that trains inside checks asks for `one_thread`
(`pytestmark = pytest.mark.usefixtures("one_thread")`), one torch thread as setup() pins in the notebooks.
"""

from __future__ import annotations

import re
import sys
import time
from collections import defaultdict

import matplotlib
import pytest

matplotlib.use("Agg")

_NBVAL_ITEM = re.compile(r"^chapters/(\d\d_[a-z0-9_]+)\.ipynb::")
_times: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
_started = time.monotonic()


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module's tests, as setup() pins in the notebooks (tiny ops crawl when threads fight)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _close_figures():
    """Close the figures a test drew (only where pyplot was imported at all)."""
    yield
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:
        pyplot.close("all")


def record_notebook_time(request: pytest.FixtureRequest, chapter: str, kind: str, seconds: float) -> None:
    """Attach a notebook timing to the current test's report (tests call this)."""
    request.node.user_properties.append(("notebook_time", (chapter, kind, seconds)))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    match = _NBVAL_ITEM.match(report.nodeid)
    if match:
        _times[match.group(1)]["full notebook (nbval)"] += report.duration
    for name, value in getattr(report, "user_properties", []):
        if name == "notebook_time" and report.when == "call":
            chapter, kind, seconds = value
            _times[chapter][kind] += seconds


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    if not _times:
        return
    kinds = sorted({k for per in _times.values() for k in per})
    write = terminalreporter.write_line
    terminalreporter.section("per-notebook CPU times (seconds, this machine)")
    write(f"{'chapter':<16}" + "".join(f"{k:>34}" for k in kinds))
    for chapter in sorted(_times):
        write(f"{chapter:<16}" + "".join(f"{_times[chapter].get(k, 0.0):>34.1f}" for k in kinds))
    write(f"whole pytest run: {time.monotonic() - _started:.0f} s wall clock")
