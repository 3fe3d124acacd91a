"""The `course` command: grade, build and doctor, including the errors a user can make."""

import copy
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_utils import config
from course_utils.tools import pipeline

COURSE = [sys.executable, "-m", "course_utils.tools.cli"]
PILOT = pipeline.Chapter("02_autograd")


def course(*args, timeout=600):
    return subprocess.run(COURSE + list(args), capture_output=True, text=True, timeout=timeout, cwd=config.REPO_ROOT)


def filled_with_answer_key(chapter: pipeline.Chapter) -> nbformat.NotebookNode:
    """The exercise notebook with each stubbed cell replaced by the answer key's cell of the same id."""
    stripped = nbformat.read(chapter.exercises, as_version=4)
    key = {c.id: c for c in nbformat.read(chapter.solutions, as_version=4).cells}
    filled = copy.deepcopy(stripped)
    for cell in filled.cells:
        if cell.cell_type == "code" and pipeline.STUB_LINE in cell.source:
            cell.source = key[cell.id].source
    return filled


@pytest.mark.slow
def test_grade_reports_every_exercise_unsolved_in_the_exercise_notebook():
    result = course("grade", str(PILOT.exercises))
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("02.")]
    assert len(rows) >= 8 and all("❌ failed" in row for row in rows), result.stdout
    assert f"Score: 0/{len(rows)} exercises passed" in result.stdout


@pytest.mark.slow
def test_grade_passes_every_exercise_when_filled_with_the_answer_key(tmp_path):
    copy_path = tmp_path / PILOT.exercises.name
    nbformat.write(filled_with_answer_key(PILOT), copy_path)
    result = course("grade", str(copy_path))
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("02.")]
    assert rows and all("✅ passed" in row for row in rows), result.stdout
    assert f"Score: {len(rows)}/{len(rows)} exercises passed" in result.stdout


def test_grade_rejects_unreadable_notebooks_in_one_line(tmp_path):
    broken = tmp_path / "02_autograd.ipynb"
    broken.write_text("{ not json")
    for target in (broken, tmp_path / "missing.ipynb"):
        result = course("grade", str(target))
        assert result.returncode == 2
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("course: error: cannot grade")


def test_build_rejects_unknown_chapters_in_one_line():
    result = course("build", "99_nothing")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "no chapter called '99_nothing'" in result.stderr


def test_doctor_reports_versions_kernels_and_data():
    result = course("doctor", timeout=120)
    assert "torch" in result.stdout and "course-cpu" in result.stdout and "data" in result.stdout
    assert result.returncode in (0, 1)


def test_help_lists_every_command():
    result = course("--help")
    for command in ("doctor", "data", "build", "grade"):
        assert command in result.stdout


def test_course_help_answers_without_importing_torch():
    probe = (
        "import sys\n"
        "from course_utils.tools import cli\n"
        "try:\n"
        "    cli.main(['--help'])\n"
        "except SystemExit as done:\n"
        "    assert done.code == 0\n"
        "print('torch imported:', 'torch' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, cwd=config.REPO_ROOT)
    assert "course data" in result.stdout or "COMMAND" in result.stdout, result.stderr
    assert "torch imported: False" in result.stdout, result.stdout + result.stderr


def test_notebook_imports_still_resolve_lazily():
    import course_utils

    from course_utils import check, get_device, setup  # noqa: F401  (what every chapter's second cell does)

    assert callable(setup) and callable(check) and callable(get_device)
    with pytest.raises(AttributeError):
        course_utils.no_such_name  # noqa: B018
