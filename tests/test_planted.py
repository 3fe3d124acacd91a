"""Every check rejects at least two plausible learner mistakes, each with a hint that names it.

Each tests/test_checks_NN.py lists its mistakes in `PLANTED` (see `check_helpers.Planted`): an
off-by-one, a missing rescale, the wrong axis or mode, a forbidden shortcut, made-up numbers for an
experiment. Stubs and crashes are tested beside them but do not count here.

The mistakes run in their chapter's module (`check_helpers.planted_test`), beside the tests that
train the same reference answers, so that pytest-xdist keeps them in one worker; this module
counts them and checks that every module runs its whole list.
"""

from __future__ import annotations

import importlib
from collections import Counter

import pytest

from check_helpers import Planted
from course_utils.checks import exercises_of
from course_utils.tools import pipeline

CHAPTERS = [chapter.number for chapter in pipeline.all_chapters()]
MINIMUM = 2


def planted_of(chapter: str) -> list[Planted]:
    module = importlib.import_module(f"test_checks_{chapter}")
    planted = getattr(module, "PLANTED", [])
    assert all(isinstance(p, Planted) for p in planted), f"test_checks_{chapter}.PLANTED holds something else"
    return planted


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_check_has_two_planted_mistakes(chapter):
    planted = planted_of(chapter)
    counts = Counter(p.exercise for p in planted)
    short = {e.id: counts[e.id] for e in exercises_of(chapter) if counts[e.id] < MINIMUM}
    assert not short, f"checks of {chapter} with fewer than {MINIMUM} planted mistakes: {short}"
    unknown = set(counts) - {e.id for e in exercises_of(chapter)}
    assert not unknown, f"planted mistakes for checks that do not exist: {sorted(unknown)}"


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_planted_mistakes_are_described_and_distinct(chapter):
    planted = planted_of(chapter)
    for p in planted:
        assert p.mistake.strip() and p.mentions.strip(), f"{p}: say what the mistake is and what the hint names"
    names = Counter((p.exercise, p.mistake) for p in planted)
    assert all(n == 1 for n in names.values()), [k for k, n in names.items() if n > 1]


@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_planted_mistake_is_run_by_its_chapters_module(chapter):
    module = importlib.import_module(f"test_checks_{chapter}")
    test = getattr(module, "test_planted_mistake_is_rejected_with_a_hint", None)
    assert test is not None, f"test_checks_{chapter}: end it with `test_planted_mistake_is_rejected_with_a_hint = planted_test(PLANTED)`"
    parametrized = [mark for mark in getattr(test, "pytestmark", []) if mark.name == "parametrize"]
    assert len(parametrized) == 1 and list(parametrized[0].args[1]) == planted_of(chapter), (
        f"test_checks_{chapter}'s planted test must run exactly its PLANTED list")
