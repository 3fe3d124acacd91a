"""Assertions shared by the tests of every chapter's checks (tests/test_checks_NN.py)."""

from course_utils.checks import FAIL_MARK, PASS_MARK, run_check


def passes(exercise_id, *answers):
    """Assert that the answers pass the check, with one ✅ line; return the line."""
    ok, line = run_check(exercise_id, *answers)
    assert ok is True, line
    assert line.startswith(f"{PASS_MARK} {exercise_id} "), line
    return line


def fails(exercise_id, *answers, mentions=None):
    """Assert that the answers fail the check with one ❌ line (naming `mentions`); return the line."""
    ok, line = run_check(exercise_id, *answers)
    assert ok is False, f"a wrong answer passed {exercise_id}"
    assert line.startswith(f"{FAIL_MARK} {exercise_id} ") and "\n" not in line, line
    if mentions is not None:
        assert mentions.lower() in line.lower(), line
    return line


def crash(*args, **kwargs):
    """A learner's function that raises."""
    raise RuntimeError("boom")


def returns_none(*args, **kwargs):
    """A learner's function whose body is still the stub."""
    return None
