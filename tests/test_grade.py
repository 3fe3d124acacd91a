"""`course grade` opens with its table: nothing from the kernel (its TCP warning) comes before or after it."""

import subprocess
import sys

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from course_utils import config
from course_utils.checks import exercises_of

TCP_WARNING = "without encryption"


@pytest.mark.slow
def test_grade_output_is_the_table_and_nothing_else(tmp_path):
    notebook = tmp_path / "02_autograd.ipynb"
    nbformat.write(new_notebook(cells=[new_code_cell('from course_utils import check\ncheck("02.1", None)')]), notebook)
    result = subprocess.run([sys.executable, "-m", "course_utils.tools.cli", "grade", str(notebook)],
                            capture_output=True, text=True, timeout=300, cwd=config.REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert TCP_WARNING not in result.stdout + result.stderr, result.stderr
    assert result.stderr == "", result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"Grading {notebook.name}" and lines[-1] == f"Score: 0/{len(exercises_of('02'))} exercises passed"
    assert "❌ failed" in next(line for line in lines if line.startswith("02.1 "))


def test_the_course_kernels_declare_curve_encryption():
    """What makes the encrypted start possible: the kernelspec `make setup` installs says it supports it."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec(config.CPU_KERNEL)
    assert "curve" in spec.metadata.get("supported_encryption", []), "reinstall the kernels: make setup"
