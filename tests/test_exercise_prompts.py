"""Exercise prompts: each shows its difficulty and a time box, and asks for something not already on the page.

Read from the chapter sources (nothing runs). An exercise "stands on the page" when half or more of
its solution's lines (two at least, 12 characters or longer, comments, spacing and
`super().__init__()`-like boilerplate ignored) appear
word for word in the lesson cells before the exercises. One exercise per chapter may be a
deliberate "rebuild it from memory", and its prompt says so.
"""

from __future__ import annotations

import re

import jupytext
import pytest

from course_utils.tools import pipeline

CHAPTERS = pipeline.all_chapters()
TIME_BOX = re.compile(r"\(difficulty [1-3], about \d+ minutes\)\s*$")
FROM_MEMORY = re.compile(r"rebuild (it|them|this|these)? ?from memory", re.IGNORECASE)
SHORTEST_LINE = 12


def _normal(line: str) -> str:
    code = line.split("  #", 1)[0].strip()
    return "" if code.startswith("#") else re.sub(r"\s+", "", code)


BOILERPLATE = re.compile(r"^(super\(\)\.__init__\(.*\)|for\w+inrange\(\w+\):|return\w+|else:|withtorch\.no_grad\(\):)$")


def _lines(source: str) -> list[str]:
    normal = map(_normal, source.split("\n"))
    return [n for n in normal if len(n) >= SHORTEST_LINE and not BOILERPLATE.match(n)]


def exercises(chapter):
    """(id, prompt heading, prompt text, solution lines, lesson lines before the exercises) per exercise."""
    nb = jupytext.read(chapter.source)
    spans = pipeline.exercise_spans(nb)
    start = min(nb.cells.index(cells[0]) for cells in spans.values())
    lesson = {n for c in nb.cells[:start] if c.cell_type == "code" for n in _lines(c.source)}
    for exercise_id, cells in spans.items():
        prompt = cells[0].source
        solution = [n for c in cells if c.cell_type == "code"
                    for n in _lines("\n".join(pipeline.solution_lines(c.source)))]
        yield exercise_id, prompt.split("\n", 1)[0], prompt, solution, lesson


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.number)
def test_every_prompt_shows_difficulty_and_a_time_box(chapter):
    bad = [heading for _, heading, *_ in exercises(chapter) if not TIME_BOX.search(heading)]
    assert not bad, f"headings without '(difficulty N, about M minutes)': {bad}"


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.number)
def test_no_solution_stands_earlier_in_the_lesson(chapter):
    found, from_memory = [], []
    for exercise_id, _, prompt, solution, lesson in exercises(chapter):
        if FROM_MEMORY.search(prompt):
            from_memory.append(exercise_id)
            continue
        seen = [line for line in solution if line in lesson]
        if len(seen) >= 2 and len(seen) >= len(solution) / 2:
            found.append(f"{exercise_id} ({len(seen)} of {len(solution)} lines, e.g. {seen[0]!r})")
    assert not found, f"solutions that re-type the lesson: {found}"
    assert len(from_memory) <= 1, f"more than one 'rebuild from memory' exercise: {from_memory}"


def test_the_detector_finds_a_copied_solution(tmp_path):
    lesson = {"defdouble(x):", "returnx*2+0.0"}
    copied = ["defdouble(x):", "returnx*2+0.0"]
    assert sum(line in lesson for line in copied) >= 2
    assert _lines("def double(x):  # twice\n    return x * 2 + 0.0\n# a comment") == copied
