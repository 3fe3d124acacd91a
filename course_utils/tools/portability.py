"""The second machine inside `make test`: run a chapter under other numerics, compare with the stored run.

A learner's laptop, Colab's CPU and a GPU all compute the same lesson with other kernels: other SIMD
widths in NumPy's loops and torch's vectorised ops, another oneDNN/MKL code path, another thread
count. A stored output that depends on floating-point order then prints differently there. This
module recreates such a machine on the one at hand, by switching off what it supports:

    NPY_DISABLE_CPU_FEATURES   NumPy's dispatched SIMD groups (AVX2 and AVX-512 on x86-64)
    ATEN_CPU_CAPABILITY        torch's CPU kernel set: "default", the unvectorised one
    ONEDNN_MAX_CPU_ISA         oneDNN's instruction-set cap (convolutions, some matmuls)
    MKL_ENABLE_INSTRUCTIONS    MKL's instruction-set cap (torch's BLAS on x86-64)
    COURSE_THREADS=2           another split of torch's parallel reductions (with OMP_WAIT_POLICY=PASSIVE;
                               NumPy's BLAS stays at one thread, COURSE_BLAS_THREADS=1)

OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE are left alone: some machines set them on purpose. Idle threads
sleep instead of spinning (OMP_WAIT_POLICY), which changes no result.

`make test` executes each chapter's exercise notebook, then its answer key's cells in the same kernel,
under `second_numerics_env()` (`run_chapter`), and compares the lesson cells with the stored full
notebook and the answer cells with the stored answer key, with nbval's own sanitizer, so a cell that
prints round-off fails there, naming the chapter, the cell and the diff. `course compare CHAPTER`
runs the same comparison for an author before a commit.
"""

from __future__ import annotations

import copy
import difflib
import os
import re
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat import NotebookNode

from course_utils import config
from course_utils.tools import pipeline

__all__ = [
    "answer_differences", "CellDifference", "ChapterRun", "comparable", "differences", "is_compared",
    "kernel_env", "lesson_cell_pairs", "run_chapter", "SANITIZE_FILE", "sanitize_patterns",
    "second_numerics_env", "SKIP_COMPARE",
]

SANITIZE_FILE = config.REPO_ROOT / "tests" / "sanitize.cfg"

# What nbval leaves out of a comparison (nbval.plugin.IPyNbFile.skip_compare, without nbdime).
SKIP_COMPARE = frozenset(
    {
        "metadata",
        "traceback",
        "prompt_number",
        "output_type",
        "name",
        "execution_count",
        "application/vnd.jupyter.widget-view+json",
        "image/png",
        "image/jpeg",
    }
)

# torch's CPU kernel sets, best first (torch.backends.cpu.get_cpu_capability() names them in upper case).
# The run goes down to "default": measured here, "avx2" on an AVX-512 machine changed no printed digit
# of 01-05, while "default" moved six cells of 03 (matmul and reduction paths change with it).
_ATEN_LEVELS = ("avx512", "avx2", "default")


def _numpy_dispatch_groups() -> list[str]:
    """NumPy's runtime-dispatched SIMD groups that this CPU supports (those NumPy lets us switch off)."""
    from numpy._core import _multiarray_umath as umath

    return [name for name in umath.__cpu_dispatch__ if umath.__cpu_features__.get(name)]


def _torch_capability() -> str:
    import torch

    return torch.backends.cpu.get_cpu_capability().lower()


def second_numerics_env(numpy_groups: list[str] | None = None, torch_capability: str | None = None) -> dict[str, str]:
    """Environment variables that give this machine other floating-point numerics than the stored run's.

    Each value is valid here: only SIMD groups the CPU has are switched off, torch's kernel set goes
    down to its unvectorised "default" and the oneDNN/MKL caps one level below what the machine
    would pick. The arguments exist for tests; by default both are read from the running NumPy and
    torch.
    """
    groups = _numpy_dispatch_groups() if numpy_groups is None else numpy_groups
    capability = _torch_capability() if torch_capability is None else torch_capability
    # PASSIVE: a waiting OpenMP thread sleeps instead of spinning. Two threads on a 2-core machine that
    # runs two notebooks at once spin against each other: a small MLP's training took 2.7 s instead of
    # 0.3 s. It changes no result, only how idle threads wait.
    # NumPy's OpenBLAS keeps one thread, as on every learner's machine (setup() gives BLAS the
    # COURSE_THREADS count, default 1): with both cores busy (two notebooks at once, as in `make test`)
    # two OpenBLAS threads ran 03 in 316 s instead of 38 s. A second BLAS thread does change the
    # digits of a NumPy matmul (measured), so this axis is covered only by NumPy's SIMD switch above.
    env = {"COURSE_THREADS": "2", "COURSE_BLAS_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}
    if groups:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(groups)
    if capability in _ATEN_LEVELS[:-1]:
        env["ATEN_CPU_CAPABILITY"] = _ATEN_LEVELS[-1]
    if capability == "avx512":
        env["ONEDNN_MAX_CPU_ISA"] = "AVX2"
        env["MKL_ENABLE_INSTRUCTIONS"] = "AVX2"
    elif capability == "avx2":
        env["ONEDNN_MAX_CPU_ISA"] = "SSE41"
        env["MKL_ENABLE_INSTRUCTIONS"] = "SSE4_2"
    return env


# ----------------------------------------------------------------------------------------------
# Comparing outputs the way nbval does
# ----------------------------------------------------------------------------------------------


def sanitize_patterns(path: Path = SANITIZE_FILE) -> list[tuple[str, str]]:
    """The (regex, replacement) pairs of nbval's sanitize file, read with nbval's own parser."""
    from nbval.plugin import get_sanitize_patterns

    return get_sanitize_patterns(path.read_text(encoding="utf-8"))


def _sanitize(value, patterns):
    if isinstance(value, list):  # nbformat may keep multi-line text as a list of lines
        value = "".join(value)
    if not isinstance(value, str):
        return value
    for regex, replacement in patterns:
        value = re.sub(regex, replacement, value)
    return value


def comparable(outputs: list, patterns: list[tuple[str, str]]) -> dict[str, list]:
    """A cell's outputs as nbval compares them: streams joined per name, MIME types flattened, sanitized."""
    from nbval.plugin import coalesce_streams

    flat: dict[str, list] = defaultdict(list)
    for out in coalesce_streams([NotebookNode(**dict(o)) for o in outputs]):
        if out.output_type == "stream":
            flat[out.name].append(_sanitize(out.text, patterns))
            continue
        for key, value in out.items():
            if key in SKIP_COMPARE:
                continue
            if key == "data":
                for mime, content in value.items():
                    if mime not in SKIP_COMPARE:
                        flat[mime].append(_sanitize(content, patterns))
            else:
                flat[key].append(_sanitize(value, patterns))
    return dict(flat)


def is_compared(cell: NotebookNode) -> bool:
    """Whether nbval compares this cell's outputs (no nbval-ignore-output/-skip tag or comment marker)."""
    from nbval.plugin import find_comment_markers, find_metadata_tags

    if cell.cell_type != "code":
        return False
    options = dict(find_comment_markers(cell.source))
    options.update(find_metadata_tags(cell.get("metadata", {})))
    return options.get("check", True) and not options.get("skip", False)


def lesson_cell_pairs(full: NotebookNode, exercises: NotebookNode) -> list[tuple[int, int]]:
    """(index in the full notebook, index in the exercise notebook) of every compared lesson cell.

    The exercise notebook is the full one without `solution` cells, so the two line up once those are
    skipped. Cells inside an exercise (prompt to the next heading) are left out: a stub prints other
    things than a solution.
    """
    in_exercise = {id(c) for cells in pipeline.exercise_spans(full).values() for c in cells}
    kept = [(i, c) for i, c in enumerate(full.cells) if pipeline.SOLUTION_TAG not in c.get("metadata", {}).get("tags", [])]
    if len(kept) != len(exercises.cells):
        raise ValueError(f"the exercise notebook has {len(exercises.cells)} cells, the full one {len(kept)} outside `solution` cells")
    pairs = []
    for j, (i, cell) in enumerate(kept):
        if id(cell) in in_exercise or not is_compared(cell):
            continue
        if exercises.cells[j].source != cell.source:
            raise ValueError(f"cell {i} of the full notebook and cell {j} of the exercise notebook differ in source")
        pairs.append((i, j))
    return pairs


@dataclass
class CellDifference:
    """One cell whose output under other numerics differs from the stored one."""

    chapter: str
    cell: int  # index in the stored notebook (nbval numbers the full notebook's items the same way)
    source: str
    diff: str
    notebook: str = "full notebook"

    def __str__(self) -> str:
        first_line = self.source.strip().split("\n", 1)[0][:80]
        return f"{self.chapter}, {self.notebook} cell {self.cell} ({first_line!r}):\n{self.diff}"


def _as_text(flat: dict[str, list]) -> list[str]:
    lines = []
    for key in sorted(flat):
        for value in flat[key]:
            text = value if isinstance(value, str) else repr(value)
            lines += [f"[{key}] {line}" for line in text.splitlines()]
    return lines


def _difference(chapter: str, index: int, stored_cell, fresh_cell, patterns, notebook: str) -> CellDifference | None:
    stored = comparable(stored_cell.outputs, patterns)
    fresh = comparable(fresh_cell.outputs, patterns)
    if stored == fresh:
        return None
    diff = "\n".join(difflib.unified_diff(_as_text(stored), _as_text(fresh), "stored", "second numerics", lineterm="", n=1))
    return CellDifference(chapter, index, stored_cell.source, diff, notebook)


def differences(chapter: str, full: NotebookNode, executed_exercises: NotebookNode, patterns=None) -> list[CellDifference]:
    """Every compared lesson cell whose outputs in `executed_exercises` differ from the stored `full` ones."""
    patterns = sanitize_patterns() if patterns is None else patterns
    found = [
        _difference(chapter, i, full.cells[i], executed_exercises.cells[j], patterns, "full notebook")
        for i, j in lesson_cell_pairs(full, executed_exercises)
    ]
    return [d for d in found if d]


def answer_differences(chapter: str, key: NotebookNode, executed_answers: list, patterns=None) -> list[CellDifference]:
    """Every compared answer-key code cell whose rerun outputs differ from the stored answer key's."""
    patterns = sanitize_patterns() if patterns is None else patterns
    stored = [(i, c) for i, c in enumerate(key.cells) if i > 0 and c.cell_type == "code"]
    if len(stored) != len(executed_answers):
        raise ValueError(f"{len(executed_answers)} answer cells ran, the answer key has {len(stored)}")
    found = [
        _difference(chapter, i, cell, fresh, patterns, "answer key")
        for (i, cell), fresh in zip(stored, executed_answers)
        if is_compared(cell)
    ]
    return [d for d in found if d]


@dataclass
class ChapterRun:
    """One chapter's exercise notebook, then its answer key, executed in one kernel."""

    chapter: str
    exercises: NotebookNode  # the executed exercise notebook (every check should print ❌)
    answers: NotebookNode  # the executed answer-key cells (every check should print ✅)
    seconds: float
    env: dict[str, str] = field(default_factory=dict)
    differences: list[CellDifference] = field(default_factory=list)


def run_chapter(chapter: pipeline.Chapter, extra_env: dict[str, str] | None = None) -> ChapterRun:
    """Run the exercise notebook, then the answer key's code cells, in one kernel with `extra_env`.

    Then compare: lesson cells with the stored full notebook, answer cells with the stored answer key.
    With `extra_env=None` the kernel gets `second_numerics_env()`; pass `{}` for this machine's own.
    """
    extra = second_numerics_env() if extra_env is None else extra_env
    stripped = nbformat.read(chapter.exercises, as_version=4)
    key = nbformat.read(chapter.solutions, as_version=4)
    full = nbformat.read(chapter.full, as_version=4)
    combined = copy.deepcopy(stripped)
    combined.cells += [copy.deepcopy(c) for c in key.cells[1:] if c.cell_type == "code"]
    started = time.monotonic()
    executed = pipeline.execute(combined, cwd=chapter.exercises.parent, env=kernel_env(extra))
    seconds = time.monotonic() - started
    head, tail = copy.deepcopy(executed), copy.deepcopy(executed)
    head.cells = executed.cells[: len(stripped.cells)]
    tail.cells = executed.cells[len(stripped.cells) :]
    patterns = sanitize_patterns()
    found = differences(chapter.slug, full, head, patterns) + answer_differences(chapter.slug, key, tail.cells, patterns)
    return ChapterRun(chapter.slug, head, tail, seconds, extra, found)


def kernel_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment plus `extra`: what a kernel started with other numerics sees."""
    return {**os.environ, **extra}
