"""Each exercise notebook runs to the end with every check ❌, and the answer key then turns them ✅.

One kernel per chapter does both: it runs the exercise notebook top to bottom, then the answer key's
code cells in the same session, so each chapter executes once here (nbval runs the full notebook).
One test class per chapter lets pytest-xdist (--dist loadscope) spread chapters over the workers.
"""

import copy
import time

import nbformat
import pytest

from conftest import record_notebook_time
from course_utils import pipeline
from course_utils.checks import exercises_of
from course_utils.grade import check_lines


def run_exercises_then_answers(chapter: pipeline.Chapter):
    stripped = nbformat.read(chapter.exercises, as_version=4)
    key = nbformat.read(chapter.solutions, as_version=4)
    combined = copy.deepcopy(stripped)
    answers = [c for c in key.cells[1:] if c.cell_type == "code"]
    combined.cells += copy.deepcopy(answers)
    executed = pipeline.execute(combined, cwd=chapter.exercises.parent)
    head = copy.deepcopy(executed)
    head.cells = executed.cells[: len(stripped.cells)]
    tail = copy.deepcopy(executed)
    tail.cells = executed.cells[len(stripped.cells) :]
    return check_lines(head), check_lines(tail)


def _make_test_class(chapter: pipeline.Chapter):
    @pytest.mark.slow
    class ExerciseNotebook:
        def test_runs_to_the_end_unsolved_then_passes_with_the_answer_key(self, request):
            started = time.monotonic()
            unsolved, solved = run_exercises_then_answers(chapter)
            record_notebook_time(request, chapter.slug, "exercises + answer key", time.monotonic() - started)
            expected = [ex.id for ex in exercises_of(chapter.number)]
            assert [i for _, i, _ in unsolved] == expected, "every exercise's check must run in the exercise notebook"
            assert not [i for passed, i, _ in unsolved if passed], "a stub passed its check"
            assert [i for _, i, _ in solved] == expected
            assert all(passed for passed, _, _ in solved), [f"{i}: {rest}" for p, i, rest in solved if not p]

    ExerciseNotebook.__name__ = ExerciseNotebook.__qualname__ = f"TestExerciseNotebook_{chapter.slug}"
    return ExerciseNotebook


for _chapter in pipeline.all_chapters():
    _cls = _make_test_class(_chapter)
    globals()[_cls.__name__] = _cls
