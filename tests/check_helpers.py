"""Assertions shared by the tests of every chapter's checks (tests/test_checks_NN.py)."""

from collections.abc import Callable
from dataclasses import dataclass

import pytest

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


@dataclass(frozen=True)
class Planted:
    """One plausible learner mistake for a check (an off-by-one, a missing rescale, the wrong axis or mode,
    a forbidden shortcut): not a stub and not a crash.

    `answers` builds what the learner would pass to `check` (built lazily, so collecting the tests
    trains nothing); `mentions` is a word the ❌ hint must contain, so the hint points at the mistake.
    Each tests/test_checks_NN.py lists its mistakes in `PLANTED` and runs them with `planted_test(PLANTED)`;
    tests/test_planted.py requires two or more per check and that every module runs all of its list.
    """

    exercise: str
    mistake: str
    answers: Callable[[], tuple]
    mentions: str

    def __str__(self) -> str:
        return f"{self.exercise} {self.mistake}"


def rejects(planted: Planted) -> str:
    """Assert that the check rejects the planted mistake with a hint naming it; return the ❌ line."""
    return fails(planted.exercise, *planted.answers(), mentions=planted.mentions)


def planted_test(planted: list[Planted]) -> Callable:
    """The test that runs a chapter's `PLANTED`, for its tests/test_checks_NN.py to hold at module level.

    It lives in the chapter's own module, not in tests/test_planted.py, so that under pytest-xdist's
    `--dist loadscope` the planted mistakes run in the same worker as the chapter's other check tests and
    reuse their cached reference answers (04.9's four kernel nets and 04.13's transfer arms were trained
    twice per run, once in each worker, before).
    """

    @pytest.mark.parametrize("planted", planted, ids=str)
    def test_planted_mistake_is_rejected_with_a_hint(planted):
        rejects(planted)

    return test_planted_mistake_is_rejected_with_a_hint
