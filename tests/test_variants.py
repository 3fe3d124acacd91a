"""Every committed notebook is what the pipeline makes from the chapter sources (no execution)."""

import nbformat
import pytest

from course_utils.tools import pipeline
from course_utils.checks import exercises_of

CHAPTERS = pipeline.all_chapters()
IDS = [c.slug for c in CHAPTERS]


def read(path):
    return nbformat.read(path, as_version=4)


def inputs(nb):
    return [(c.cell_type, c.source, c.get("metadata", {}).get("tags", [])) for c in nb.cells]


def test_there_are_chapters():
    assert CHAPTERS, "no chapters/NN_slug.py found"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_all_variants_are_committed(chapter):
    for path in (chapter.full, chapter.exercises, chapter.solutions):
        assert path.exists(), f"{path} is missing: run `make build`"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_source_managed_lines_are_fresh(chapter):
    text = chapter.source.read_text(encoding="utf-8")
    assert pipeline.refresh_managed_lines(text, chapter.full) == text, "run `make build` to refresh badges"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_full_notebook_inputs_equal_the_source(chapter):
    assert inputs(read(chapter.full)) == inputs(pipeline.read_source(chapter)), (
        f"{chapter.full.name} is stale: the .py changed after the last build. Run `course build {chapter.number}`."
    )


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_full_notebook_was_executed_cleanly_and_normalised(chapter):
    full = read(chapter.full)
    code = [c for c in full.cells if c.cell_type == "code"]
    assert all(c.execution_count is not None for c in code), "some cells were never executed"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"], "the stored run has errors"
    assert pipeline.notebook_text(pipeline.normalise(full)) == chapter.full.read_text(encoding="utf-8")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_exercise_notebook_and_answer_key_are_generated_from_the_full_one(chapter):
    full = read(chapter.full)
    for path, expected in pipeline.variants_from_full(full, chapter).items():
        assert path.read_text(encoding="utf-8") == pipeline.notebook_text(expected), f"{path} is stale: run `make build`"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_no_solution_line_reaches_an_exercise_notebook(chapter):
    source = pipeline.read_source(chapter)
    hidden = {line.strip() for c in source.cells if c.cell_type == "code" for line in pipeline.solution_lines(c.source)}
    visible = {  # lines the source shows outside any solution block, in prose or code
        line.strip()
        for c in source.cells
        for line in (pipeline.replace_solution_blocks(c.source) if c.cell_type == "code" else c.source).split("\n")
    }
    secret = {line for line in hidden - visible if line and line not in {"...", "pass"}}
    exercise_text = chapter.exercises.read_text(encoding="utf-8")
    stripped = read(chapter.exercises)
    lines = {line.strip() for c in stripped.cells for line in c.source.split("\n")}
    assert "BEGIN SOLUTION" not in exercise_text and "END SOLUTION" not in exercise_text
    assert not secret & lines, f"solution lines leaked: {sorted(secret & lines)[:3]}"
    assert all(not c.get("outputs") for c in stripped.cells if c.cell_type == "code")


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_notebook_exercises_match_the_registered_checks(chapter):
    in_notebook = list(pipeline.exercise_spans(read(chapter.full)))
    registered = [ex.id for ex in exercises_of(chapter.number)]
    assert in_notebook == registered
    assert len(registered) >= 8, "each chapter has at least 8 checked exercises"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=IDS)
def test_every_check_passes_in_the_stored_full_notebook(chapter):
    from course_utils.tools.grade import check_lines

    lines = check_lines(read(chapter.full))
    assert sorted(i for _, i, _ in lines) == sorted(ex.id for ex in exercises_of(chapter.number))
    assert all(passed for passed, _, _ in lines), [i for p, i, _ in lines if not p]
