"""The second-numerics comparison: it must catch a machine-dependent print and pass an exact one."""

import copy

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from course_utils.tools import pipeline, portability


def test_second_numerics_switch_off_only_what_the_machine_has():
    env = portability.second_numerics_env(numpy_groups=["X86_V3", "X86_V4"], torch_capability="avx512")
    assert env == {
        "COURSE_THREADS": "2",
        "COURSE_BLAS_THREADS": "1",
        "OMP_WAIT_POLICY": "PASSIVE",
        "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4",
        "ATEN_CPU_CAPABILITY": "default",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    }
    plain = portability.second_numerics_env(numpy_groups=[], torch_capability="default")
    assert plain == {"COURSE_THREADS": "2", "COURSE_BLAS_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE"}  # only threads change


def test_second_numerics_never_touch_the_per_machine_openblas_settings():
    env = portability.second_numerics_env()
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env
    assert env["COURSE_THREADS"] == "2"


def test_comparable_joins_streams_and_applies_the_nbval_sanitizer():
    outputs = [
        new_output("stream", name="stdout", text="took 3.2 s at 0x7f00deadbeef\n"),
        new_output("stream", name="stdout", text="done\n"),
        new_output("display_data", data={"text/plain": "<Figure>", "image/png": "AAAA"}),
    ]
    flat = portability.comparable(outputs, portability.sanitize_patterns())
    assert flat == {"stdout": ["took TIME at 0xADDRESS\ndone\n"], "text/plain": ["<Figure>"]}


def _chapter_like_notebook():
    title = new_markdown_cell("# 99 · Title")
    lesson = new_code_cell("print(1)", outputs=[new_output("stream", name="stdout", text="1\n")])
    ignored = new_code_cell("print(2)", metadata={"tags": ["nbval-ignore-output"]})
    prompt = new_markdown_cell("### Exercise 99.1 · Something")
    answer = new_code_cell("x = 1", outputs=[new_output("stream", name="stdout", text="x\n")])
    discussion = new_markdown_cell("discussion", metadata={"tags": ["solution"]})
    after = new_markdown_cell("## Further reading")
    tail = new_code_cell("print(3)")
    return new_notebook(cells=[title, lesson, ignored, prompt, answer, discussion, after, tail])


def test_lesson_cells_skip_exercises_ignored_cells_and_line_up_past_solution_cells():
    full = _chapter_like_notebook()
    exercises = copy.deepcopy(full)
    exercises.cells = [c for c in exercises.cells if "solution" not in c.metadata.get("tags", [])]
    assert portability.lesson_cell_pairs(full, exercises) == [(1, 1), (7, 6)]


def _run(nb, extra_env):
    return pipeline.execute(nb, cwd=pipeline.config.REPO_ROOT, env=portability.kernel_env(extra_env))


@pytest.mark.slow
def test_a_planted_machine_dependent_print_fails_the_comparison_and_exact_prints_pass():
    setup = new_code_cell("from course_utils import setup\nimport numpy as np, torch\ndevice = setup(quiet=True)")
    exact = new_code_cell(
        "g = torch.Generator().manual_seed(0)\n"
        "a = torch.randn(300, 500, generator=g)\n"
        "print('shape', tuple(a.shape), '| positive', int((a > 0).sum()), '| mean near 0:', bool(a.mean().abs() < 0.01))"
    )
    # float32 reductions and float64 transcendental sums printed to their last digits: their value
    # depends on the summation order and the SIMD kernels, which the second numerics change.
    planted = new_code_cell(
        "print(f'{torch.tanh(a).sum().item():.9g}', f'{(a @ a.T)[0, 1].item():.9g}',\n"
        "      f'{np.tanh(a.double().numpy()).sum():.17g}')"
    )
    nb = new_notebook(cells=[new_markdown_cell("# 99 · Planted"), setup, exact, planted])
    stored = _run(nb, {})
    rerun = _run(nb, portability.second_numerics_env())
    found = portability.differences("99_planted", stored, rerun)
    assert [d.cell for d in found] == [3], [str(d) for d in found]
    assert "second numerics" in found[0].diff and "99_planted, full notebook cell 3" in str(found[0])
    same = _run(nb, {})
    assert portability.differences("99_planted", stored, same) == []


def test_every_chapter_lines_up_with_its_exercise_notebook_and_answer_key():
    for chapter in pipeline.all_chapters():
        full = nbformat.read(chapter.full, as_version=4)
        exercises = nbformat.read(chapter.exercises, as_version=4)
        pairs = portability.lesson_cell_pairs(full, exercises)
        assert len(pairs) > 20, chapter.slug
