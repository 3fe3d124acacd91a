"""Shared test set-up: the Agg backend, figures closed after each test, and the per-notebook timing table.

nbval items (one per cell of chapters/NN_slug.ipynb) and the exercise-notebook runs record their
durations; under pytest-xdist the reports travel back to the controller, which sums them per
chapter and prints one table after the run.

Figures: tests draw with matplotlib's Agg backend (no display), and every figure a test opened is
closed after it. Notebooks under nbval run in their own kernels and keep their inline backend.

Threads: a module that trains inside checks asks for `one_thread`
(`pytestmark = pytest.mark.usefixtures("one_thread")`), one torch thread as setup() pins in the notebooks.

Order: the longest work is collected first, so that `make test` (pytest-xdist, `--dist loadscope
--no-loadscope-reorder`) hands it out first and the run ends on short unit tests, with both workers busy
to the end. xdist's own reorder sends the scopes with the most items first, which left the exercise
runs (one test each, and the longest tests of the suite) to the end, where one worker could be left
with two of them.
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
_CHECK_TESTS = re.compile(r"^tests/test_checks_\d\d\.py::")
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


def _scope(nodeid: str) -> str:
    """pytest-xdist's loadscope unit: the test's class, else its module (a notebook for nbval)."""
    return nodeid.rsplit("::", 1)[0]


def _rank(nodeid: str, slow: bool) -> int:
    if nodeid.startswith("tests/test_exercise_notebooks.py::"):
        return 0  # a chapter's exercise notebook and answer key under second numerics: the longest tests
    if _NBVAL_ITEM.match(nodeid):
        return 1  # a full notebook under nbval
    if slow:
        return 2  # notebooks, servers, the Colab simulation
    if _CHECK_TESTS.match(nodeid):
        return 3  # a chapter's check tests and planted mistakes: they train reference answers
    return 4


def pytest_collection_modifyitems(session, config, items) -> None:
    """Longest work first (see the module docstring), each scope's items kept together and in order."""
    ranks: dict[str, int] = {}
    for item in items:
        scope = _scope(item.nodeid)
        ranks[scope] = min(ranks.get(scope, 4), _rank(item.nodeid, item.get_closest_marker("slow") is not None))
    items.sort(key=lambda item: ranks[_scope(item.nodeid)])  # stable: collection order within a rank


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
