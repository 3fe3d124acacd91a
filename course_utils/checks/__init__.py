"""Exercise checks: `check(id, *answers)` prints one ✅/❌ line and returns a `CheckResult`
(true or false to code that asks; a notebook shows only the line).

The framework is in `framework.py`; each chapter's checks are in `chNN.py` and are imported the first
time one of that chapter's ids is checked.
"""

from course_utils.checks.framework import (
    FAIL_MARK,
    LINE_PATTERN,
    PASS_MARK,
    CheckResult,
    Exercise,
    Wrong,
    check,
    exercise,
    exercises_of,
    find_exercise,
    run_check,
)

__all__ = [
    "FAIL_MARK",
    "LINE_PATTERN",
    "PASS_MARK",
    "CheckResult",
    "Exercise",
    "Wrong",
    "check",
    "exercise",
    "exercises_of",
    "find_exercise",
    "run_check",
]
