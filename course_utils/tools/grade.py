"""`course grade NOTEBOOK`: run a learner's exercise notebook and score its check lines.

The notebook is executed top to bottom on the CPU kernel, errors allowed (a broken lesson cell should
not hide the exercises after it). Every `check(...)` prints one line; the last line printed for each
exercise id decides its result. Exercises the notebook never checked are reported as "not run".

The kernel's sockets are encrypted (see `pipeline.execute`), so the output opens with the table, not
with ipykernel's "Kernel is running over TCP without encryption".
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import nbformat

from course_utils import config
from course_utils.checks import LINE_PATTERN, PASS_MARK, exercises_of
from course_utils.tools import pipeline

__all__ = [
    "chapter_of", "check_lines", "format_table", "grade", "GradeError", "read_notebook", "Result",
]


class GradeError(RuntimeError):
    """The notebook cannot be graded (unreadable, not a chapter notebook)."""


@dataclass
class Result:
    exercise_id: str
    title: str
    status: str  # "passed", "failed" or "not run"
    message: str = ""


def check_lines(nb: nbformat.NotebookNode) -> list[tuple[bool, str, str]]:
    """(passed, exercise id, rest of line) for every check line in the notebook's outputs."""
    found = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stdout":
                for line in out.text.splitlines():
                    match = LINE_PATTERN.match(line)
                    if match:
                        found.append((match.group(1) == PASS_MARK, match.group(2), match.group(3)))
    return found


def read_notebook(path: Path) -> nbformat.NotebookNode:
    try:
        return nbformat.read(path, as_version=4)
    except FileNotFoundError:
        raise GradeError(f"cannot grade {path}: no such file") from None
    except Exception as err:  # nbformat raises several types for a file that is not a notebook
        raise GradeError(f"cannot grade {path}: not a readable notebook ({type(err).__name__})") from None


def chapter_of(path: Path, nb: nbformat.NotebookNode) -> str:
    """The chapter number ("02"), from the file name or, failing that, the check calls inside."""
    stem = path.stem
    if stem[:2].isdigit():
        return stem[:2]
    ids = [m for c in nb.cells if c.cell_type == "code" for m in pipeline.CHECK_CALL.findall(c.source)]
    if not ids:
        raise GradeError(f"cannot grade {path}: it has no check(...) calls, so it is not an exercise notebook")
    return ids[0][:2]


def grade(path: Path, kernel_name: str = config.CPU_KERNEL, timeout: int = 900) -> list[Result]:
    """Execute the notebook and return one Result per exercise of its chapter."""
    path = Path(path)
    nb = read_notebook(path)
    chapter = chapter_of(path, nb)
    exercises = exercises_of(chapter)
    if not exercises:
        raise GradeError(f"cannot grade {path}: chapter {chapter} has no registered exercises")
    executed = pipeline.execute(nb, cwd=path.resolve().parent, kernel_name=kernel_name, allow_errors=True, timeout=timeout)
    last: dict[str, tuple[bool, str]] = {}
    for passed, exercise_id, rest in check_lines(executed):
        last[exercise_id] = (passed, rest)
    results = []
    for ex in exercises:
        if ex.id not in last:
            results.append(Result(ex.id, ex.title, "not run", "no check line: did an earlier cell fail?"))
            continue
        passed, rest = last[ex.id]
        message = rest[len(ex.title) :].lstrip(": ") if rest.startswith(ex.title) else rest
        results.append(Result(ex.id, ex.title, "passed" if passed else "failed", "" if passed else message))
    return results


def format_table(results: list[Result], name: str) -> str:
    """A plain-text score table, one row per exercise, and a total."""
    width = max(len(r.title) for r in results)
    marks = {"passed": "✅ passed", "failed": "❌ failed", "not run": "⏹ not run"}
    rows = [f"Grading {name}", f"{'exercise':<9} {'title':<{width}}  {'result':<10} message"]
    for r in results:
        message = r.message if len(r.message) <= 100 else r.message[:99] + "…"
        rows.append(f"{r.exercise_id:<9} {r.title:<{width}}  {marks[r.status]:<10} {message}".rstrip())
    passed = sum(r.status == "passed" for r in results)
    rows.append(f"Score: {passed}/{len(results)} exercises passed")
    return "\n".join(rows)
