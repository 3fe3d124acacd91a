"""The check framework: one line, a result that is a bool to code that asks, never an exception, whatever the learner hands in."""

import random

import numpy as np
import pytest
import torch

from course_utils.checks import FAIL_MARK, LINE_PATTERN, PASS_MARK, Wrong, check, exercise, run_check
from course_utils.checks import framework as fw


@exercise("99.1", "square a tensor")
def _check_square(square):
    fw.require_callable(square, "square")
    x = torch.arange(4.0)
    fw.assert_close(fw.call(square, x), x**2, "square(x)", hint="multiply x by itself")


@exercise("99.2", "a check with a bug of its own")
def _check_broken(answer):
    raise KeyError("oops")


@exercise("99.3", "uses randomness")
def _check_random(answer):
    torch.rand(5)
    random.random()
    np.random.rand(3)
    fw.require(answer, "answer")


def test_correct_answer_prints_one_pass_line_and_returns_true(capsys):
    assert check("99.1", lambda x: x * x) == True  # noqa: E712 (a CheckResult, equal to the bool)
    out = capsys.readouterr().out
    assert out == f"{PASS_MARK} 99.1 square a tensor\n"
    assert LINE_PATTERN.match(out.strip())


@pytest.mark.parametrize(
    "answer, fragment",
    [
        (..., "not answered yet"),
        (None, "not answered yet"),
        (42, "should be a function"),
        (lambda x: None, "returned None"),
        (lambda x: x + 1, "expected"),
        (lambda x: x[:2] ** 2, "shape"),
        (lambda x: "text", "should be a tensor"),
        (lambda x: 1 / 0, "ZeroDivisionError"),
        (lambda x: x * float("nan"), "inf or nan"),
    ],
)
def test_wrong_answers_print_one_fail_line_and_return_false(capsys, answer, fragment):
    assert check("99.1", answer) == False  # noqa: E712
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith(f"{FAIL_MARK} 99.1 square a tensor: ")
    assert fragment in out


def test_numpy_answers_are_accepted():
    assert run_check("99.1", lambda x: np.asarray(x) ** 2)[0]


def test_learner_prints_and_warnings_do_not_reach_the_notebook(capsys):
    def noisy(x):
        print("debugging output")
        import warnings

        warnings.warn("careful")
        return x * x

    assert check("99.1", noisy)
    assert capsys.readouterr().out.count("\n") == 1


def test_a_bug_inside_a_check_is_reported_not_raised(capsys):
    assert check("99.2", 1) == False  # noqa: E712
    assert "could not be checked" in capsys.readouterr().out


def test_unknown_ids_are_reported(capsys):
    assert check("99.99", 1) == False  # noqa: E712
    assert check("not-an-id", 1) == False  # noqa: E712
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and all(line.startswith(FAIL_MARK) for line in out)


def test_wrong_number_of_answers_is_reported():
    passed, line = run_check("99.1")
    assert not passed and "could not be checked" in line


def test_checks_do_not_move_the_notebooks_random_state():
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    run_check("99.3", 1)
    assert torch.equal(torch.rand(1), expected)


@pytest.mark.parametrize("answer", [1, ...])  # passing and failing checks alike
def test_checks_do_not_move_pythons_or_numpys_random_state(answer):
    random.seed(0)
    np.random.seed(0)
    expected = random.random(), np.random.rand()
    random.seed(0)
    np.random.seed(0)
    run_check("99.3", answer)
    assert (random.random(), np.random.rand()) == expected


def test_messages_are_one_line_even_when_errors_span_lines():
    @exercise("99.4", "multi-line message")
    def _check(answer):
        raise Wrong("first line\nsecond line")

    passed, line = run_check("99.4", 1)
    assert not passed and "\n" not in line and "first line second line" in line


def test_ids_are_validated_at_registration():
    with pytest.raises(ValueError):
        exercise("2.1", "bad id")


def test_as_tensor_rejects_non_numbers():
    with pytest.raises(Wrong):
        fw.as_tensor(["a", "b"], "x")
    with pytest.raises(Wrong):
        fw.as_tensor(True, "x")
    assert fw.as_tensor([1, 2], "x").dtype == torch.float64


def test_one_coercer_per_kind_accepts_the_same_answers_in_every_chapter():
    import numpy as np

    from course_utils.checks.framework import Wrong, as_array, as_bool, as_int

    for answer in (3, np.int64(3), np.array(3), torch.tensor(3)):
        assert as_int(answer, "n") == 3
    for wrong in (True, 3.0, torch.tensor(3.0), np.array([1, 2])):
        with pytest.raises(Wrong):
            as_int(wrong, "n")
    for answer, expected in ((True, True), (np.bool_(False), False), (torch.tensor(True), True)):
        assert as_bool(answer, "b") is expected
    for wrong in (1, "yes", torch.tensor([True, False])):
        with pytest.raises(Wrong, match="should be True or False"):
            as_bool(wrong, "b")
    assert as_array(torch.ones(2, 3), "a", (2, 3)).dtype == np.float64
    with pytest.raises(Wrong, match="expected"):
        as_array([1.0, 2.0], "a", (3,))
    with pytest.raises(Wrong, match="not answered|your code here|None"):
        as_array(None, "a")


def test_the_result_is_a_bool_to_code_that_asks(capsys):
    passed, failed = check("99.1", lambda x: x * x), check("99.1", None)
    assert bool(passed) and not failed and passed == True and failed == False  # noqa: E712
    assert passed != failed and passed == 1 and failed == 0 and passed != "True"
    assert repr(passed) == str(passed) == "True" and f"{failed}" == "False"
    assert {passed, True} == {True} and hash(failed) == hash(False)
    assert all([passed]) and not any([failed])
    assert passed.line == f"{PASS_MARK} 99.1 square a tensor"
    assert capsys.readouterr().out.count("\n") == 2


@pytest.mark.slow
def test_a_notebook_cell_ending_in_check_shows_only_the_line(tmp_path):
    """In a real kernel: the line is the cell's only output (no `True`/`False` execute_result), with and
    without `;`, while code that uses the result still sees a bool."""
    import nbformat
    from nbformat.v4 import new_code_cell, new_notebook

    from course_utils.tools import pipeline

    setup = "from course_utils.checks import check, exercise\n@exercise('99.1', 'square')\ndef _c(f):\n    assert f(3) == 9, 'no'\n"
    nb = new_notebook(cells=[
        new_code_cell(setup),
        new_code_cell("check('99.1', lambda x: x * x)"),
        new_code_cell("check('99.1', None)"),
        new_code_cell("check('99.1', lambda x: x * x);"),
        new_code_cell("print(check('99.1', lambda x: x * x) == True, bool(check('99.1', None)))"),
    ])
    executed = pipeline.execute(nb, cwd=tmp_path, timeout=120)
    outputs = [[(o.output_type, o.get("name"), o.get("text")) for o in cell.outputs] for cell in executed.cells]
    assert outputs[1] == [("stream", "stdout", "✅ 99.1 square\n")]
    assert outputs[2] == [("stream", "stdout", "❌ 99.1 square: your answer could not be checked (TypeError: 'NoneType' object is not callable). Look at what type and shape it has.\n")]
    assert outputs[3] == outputs[1]
    assert outputs[4] == [("stream", "stdout", "✅ 99.1 square\n❌ 99.1 square: your answer could not be checked (TypeError: 'NoneType' object is not callable). Look at what type and shape it has.\nTrue False\n")]
    assert not any(o.output_type == "execute_result" for cell in executed.cells for o in cell.outputs)
    assert nbformat.validate(executed) is None
