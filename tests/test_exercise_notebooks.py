"""Each chapter runs a second time, on a "second machine": other numerics, the same stored outputs.

One kernel per chapter runs the exercise notebook top to bottom (every check must print ❌), then the
answer key's code cells in the same session (every check must print ✅). The kernel starts under
`portability.second_numerics_env()`: NumPy's AVX2/AVX-512 loops off, torch's CPU kernel set and the
oneDNN/MKL instruction sets one level down, two threads. Its lesson cells must print what the stored
full notebook prints, and its answer cells what the stored answer key prints, after nbval's
sanitizer: an output that depends on floating-point order fails here, with the chapter, cell and diff.
nbval runs the full notebook under this machine's own numerics, so each chapter executes once here.
Nothing but notebooks may be left in the folder the runs use (fastai's `lr_find` once left `models/`).
One test class per chapter lets pytest-xdist (--dist loadscope) spread chapters over the workers.
"""

import pytest

from conftest import record_notebook_time
from course_utils.tools import pipeline, portability
from course_utils.checks import exercises_of
from course_utils.tools.grade import check_lines


def _make_test_class(chapter: pipeline.Chapter):
    @pytest.mark.slow
    class ExerciseNotebook:
        def test_second_numerics_unsolved_then_solved_with_the_stored_outputs(self, request):
            run = portability.run_chapter(chapter)
            record_notebook_time(request, chapter.slug, "exercises + answer key", run.seconds)
            unsolved, solved = check_lines(run.exercises), check_lines(run.answers)
            expected = [ex.id for ex in exercises_of(chapter.number)]
            assert [i for _, i, _ in unsolved] == expected, "every exercise's check must run in the exercise notebook"
            assert not [i for passed, i, _ in unsolved if passed], "a stub passed its check"
            assert [i for _, i, _ in solved] == expected
            assert all(passed for passed, _, _ in solved), [f"{i}: {rest}" for p, i, rest in solved if not p]
            left = [p.name for p in chapter.exercises.parent.iterdir()
                    if not (p.is_file() and p.suffix == ".ipynb") and p.name != ".ipynb_checkpoints"]
            assert not left, f"a notebook run left {left} beside the notebooks (use a temporary folder)"
            assert not run.differences, (
                f"{len(run.differences)} cell(s) print other outputs under second numerics {run.env}:\n\n"
                + "\n\n".join(map(str, run.differences))
            )

    ExerciseNotebook.__name__ = ExerciseNotebook.__qualname__ = f"TestExerciseNotebook_{chapter.slug}"
    return ExerciseNotebook


for _chapter in pipeline.all_chapters():
    _cls = _make_test_class(_chapter)
    globals()[_cls.__name__] = _cls
