"""The build pipeline's pure steps, on small synthetic notebooks (no kernel needed)."""

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_utils import config
from course_utils.tools import pipeline
from course_utils.tools.pipeline import BuildError, Chapter

CHAPTER = Chapter("02_autograd")


def synthetic_notebook():
    title = new_markdown_cell("# 02 · Title\n\n[![Open In Colab](x)](y)\n\n*Runs on a CPU in about 1 minute.*")
    lesson = new_code_cell("x = 1\nprint(x)", outputs=[new_output("stream", name="stdout", text="1\n")], execution_count=1)
    prompt = new_markdown_cell("### Exercise 02.1 · Square (difficulty 1)\nWrite `square`.")
    answer = new_code_cell(
        "def square(x):\n    # BEGIN SOLUTION\n    y = x * x\n    return y\n    # END SOLUTION\n",
        outputs=[],
        execution_count=2,
    )
    checked = new_code_cell('check("02.1", square)', outputs=[new_output("stream", name="stdout", text="✅ 02.1 square\n")], execution_count=3)
    discussion = new_markdown_cell("The secret answer is discussed here.", metadata={"tags": ["solution"]})
    prompt2 = new_markdown_cell("### Exercise 02.2 · Predict\nWhat is it?")
    value = new_code_cell("guess = ...  # your answer\n# BEGIN SOLUTION\nguess = 12\n# END SOLUTION", execution_count=4)
    checked2 = new_code_cell('check("02.2", guess)', execution_count=5)
    reading = new_markdown_cell("## Further reading\nBooks.")
    return new_notebook(cells=[title, lesson, prompt, answer, checked, discussion, prompt2, value, checked2, reading])


def test_solution_blocks_become_stubs_at_their_indent():
    source = "def f(x):\n    # BEGIN SOLUTION\n    return x\n    # END SOLUTION\n\n# BEGIN SOLUTION\ny = 2\n# END SOLUTION"
    assert pipeline.replace_solution_blocks(source) == "def f(x):\n    ...  # your code here\n\n...  # your code here"


@pytest.mark.parametrize(
    "broken",
    ["# BEGIN SOLUTION\nx = 1", "x = 1\n# END SOLUTION", "# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION"],
)
def test_unpaired_markers_are_build_errors(broken):
    with pytest.raises(BuildError):
        pipeline.replace_solution_blocks(broken)


def test_solution_lines_lists_only_the_inside_of_blocks():
    assert pipeline.solution_lines("a\n# BEGIN SOLUTION\nb\nc\n# END SOLUTION\nd") == ["b", "c"]


def test_exercise_notebook_strips_solutions_outputs_and_solution_cells():
    nb = pipeline.make_exercises(synthetic_notebook(), CHAPTER)
    text = pipeline.notebook_text(nb)
    assert "y = x * x" not in text and "guess = 12" not in text and "secret answer" not in text
    assert "BEGIN SOLUTION" not in text
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    assert nb.cells[3].source.startswith("def square(x):\n    ...  # your code here")
    assert "guess = ...  # your answer\n...  # your code here" in nb.cells[6].source
    assert "chapters/exercises/02_autograd.ipynb" in nb.cells[0].source
    assert "Exercise notebook" in nb.cells[0].source


def test_answer_key_keeps_each_exercise_with_its_outputs_and_discussion():
    key = pipeline.make_answer_key(synthetic_notebook(), CHAPTER)
    sources = [c.source for c in key.cells]
    assert sources[0].startswith("# 02 · Title") and "solutions/02_autograd.ipynb" in sources[0]
    assert "x = 1\nprint(x)" not in sources  # the lesson is not in the key
    assert any("y = x * x" in s for s in sources)
    assert any("secret answer" in s for s in sources)
    assert not any("Further reading" in s for s in sources)
    assert key.cells[3].outputs[0].text == "✅ 02.1 square\n"


def test_exercise_spans_require_one_check_per_exercise():
    nb = synthetic_notebook()
    pipeline.validate_exercises(nb, CHAPTER)
    nb.cells[4].source = "print('no check here')"
    with pytest.raises(BuildError, match="02.1"):
        pipeline.validate_exercises(nb, CHAPTER)


def test_normalise_is_idempotent_and_drops_volatile_parts():
    nb = synthetic_notebook()
    nb.metadata["widgets"] = {"state": {"random": 1}}
    cell = nb.cells[1]
    cell.metadata["execution"] = {"iopub.execute_input": "2026-01-01T00:00:00"}
    cell.outputs = [
        new_output("stream", name="stdout", text="a\n"),
        new_output("stream", name="stdout", text="b\n"),
        new_output("display_data", data={"text/plain": "w", "application/vnd.jupyter.widget-view+json": {"model_id": "abc"}}),
    ]
    once = pipeline.normalise(nb)
    assert "widgets" not in once.metadata and once.cells[1].metadata == {}
    assert once.cells[1].outputs[0].text == "a\nb\n"
    assert "application/vnd.jupyter.widget-view+json" not in once.cells[1].outputs[1].data
    assert pipeline.notebook_text(pipeline.normalise(once)) == pipeline.notebook_text(once)
    assert len({c.id for c in once.cells}) == len(once.cells)


def test_cell_ids_follow_content_not_position():
    nb = pipeline.normalise(synthetic_notebook())
    shifted = synthetic_notebook()
    shifted.cells.insert(1, new_markdown_cell("a new paragraph"))
    shifted = pipeline.normalise(shifted)
    assert nb.cells[3].id == shifted.cells[4].id


def test_managed_lines_follow_the_config(monkeypatch):
    monkeypatch.setattr(config, "GITHUB_REPO", "someone/fork")
    text = ('# [![Open In Colab](old)](old)\nimport sys\nif "google.colab" in sys.modules:  # old comment\n'
            '    %pip install -q --no-deps "git+https://github.com/a/b@main"\nfrom course_utils import setup')
    fresh = pipeline.refresh_managed_lines(text, CHAPTER.full)
    assert fresh.startswith("# [![Open In Colab]")
    assert "github/someone/fork/blob/main/chapters/02_autograd.ipynb" in fresh
    assert "mybinder.org/v2/gh/someone/fork/main?labpath=chapters%2F02_autograd.ipynb" in fresh
    assert '    %pip install -q "course-utils[colab] @ git+https://github.com/someone/fork@main"\n' in fresh
    assert "--no-deps" not in fresh and "    # tested against a simulated Colab runtime" in fresh
    assert fresh.endswith("\nfrom course_utils import setup")
    assert pipeline.refresh_managed_lines(fresh, CHAPTER.full) == fresh  # refreshing twice changes nothing


def test_unknown_chapters_are_named_in_the_error():
    with pytest.raises(pipeline.ChapterNotFound, match="99"):
        pipeline.find_chapter("99")


def test_write_atomic_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "nb.ipynb"
    pipeline.write_atomic(target, "content")
    assert target.read_text() == "content" and [p.name for p in tmp_path.iterdir()] == ["nb.ipynb"]


def test_notebook_text_is_valid_nbformat():
    nbformat.validate(nbformat.reads(pipeline.notebook_text(pipeline.normalise(synthetic_notebook())), as_version=4))


def test_a_silenced_check_call_is_a_build_error():
    nb = synthetic_notebook()
    nb.cells[4].source = 'check("02.1", square);'
    with pytest.raises(BuildError, match="trailing `;`"):
        pipeline.validate_exercises(nb, CHAPTER)


def test_normalise_masks_object_addresses():
    nb = synthetic_notebook()
    nb.cells[1].outputs = [new_output("stream", name="stdout", text="Optimizer used: <function Adam at 0x7fa43797a340>\n")]
    assert pipeline.normalise(nb).cells[1].outputs[0].text == "Optimizer used: <function Adam at 0x…>\n"
