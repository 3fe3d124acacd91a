"""The check tests use their own correct answers, never the chapter's (issue 11, Build point 6).

The full notebook under nbval already proves that each chapter's reference solution passes its
check. tests/test_checks_NN.py exist to catch a check that accepts only one spelling, so their
correct answers must be written another way. This test fails when a test_checks_NN.py shares a run
of WINDOW or more consecutive code lines with chapters/NN_slug.py.

Lines are compared after normalising: comments dropped, whitespace collapsed, blank lines skipped.
The scan looks twice, once with the `def` / `class` header lines and once without them, so renaming a
pasted function does not hide it.

A fixture that copies chapter code on purpose (the exercise's buggy code as a planted wrong answer)
carries the marker `# planted: copied from the chapter` on its `def`/`class` line or on the comment
line just above it; the whole definition is then left out of the comparison.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 4
MARKER = "# planted: copied from the chapter"
_HEADER = re.compile(r"^(async\s+def|def|class)\s")


def code_lines(source: str, headers: bool = True) -> list[tuple[int, str]]:
    """(line number, normalised text) of the code lines: comments dropped, whitespace collapsed, blank
    lines skipped, and def/class header lines too unless `headers`."""
    lines = source.splitlines()
    cut: dict[int, int] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            cut[tok.start[0]] = tok.start[1]
    out = []
    for number, text in enumerate(lines, 1):
        text = " ".join(text[: cut.get(number, len(text))].split())
        if text and (headers or not _HEADER.match(text)):
            out.append((number, text))
    return out


def planted_lines(source: str) -> set[int]:
    """Line numbers of the definitions marked as planted copies (decorators included)."""
    lines = source.splitlines()
    skip: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            first = min([node.lineno] + [d.lineno for d in node.decorator_list])
            marked = MARKER in lines[node.lineno - 1] or (first >= 2 and lines[first - 2].strip().startswith(MARKER))
            if marked:
                skip.update(range(first, node.end_lineno + 1))
    return skip


def shared_runs(test_source: str, chapter_source: str, window: int = WINDOW) -> list[tuple[int, int, str]]:
    """(test line, chapter line, first line's text) for every run of `window` consecutive normalised code
    lines of the test source that also occurs in the chapter source; runs inside planted definitions excepted."""
    skip = planted_lines(test_source)
    hits: dict[int, tuple[int, int, str]] = {}
    for headers in (True, False):
        test = [(n, t) for n, t in code_lines(test_source, headers) if n not in skip]
        chapter = code_lines(chapter_source, headers)
        seen: dict[tuple[str, ...], int] = {}
        for k in range(len(chapter) - window + 1):
            seen.setdefault(tuple(t for _, t in chapter[k:k + window]), chapter[k][0])
        for k in range(len(test) - window + 1):
            run = tuple(t for _, t in test[k:k + window])
            if run in seen:
                hits.setdefault(test[k][0], (test[k][0], seen[run], run[0]))
    return sorted(hits.values())


def _pairs() -> list[tuple[Path, Path]]:
    pairs = []
    for test in sorted((ROOT / "tests").glob("test_checks_[0-9][0-9].py")):
        chapters = sorted((ROOT / "chapters").glob(f"{test.stem[-2:]}_*.py"))
        if chapters:
            pairs.append((test, chapters[0]))
    return pairs


def test_every_chapter_has_check_tests():
    assert len(_pairs()) >= 5, [p.name for p, _ in _pairs()]


@pytest.mark.parametrize("test_file, chapter", _pairs(), ids=lambda p: p.name)
def test_check_tests_do_not_retype_the_chapter(test_file, chapter):
    hits = shared_runs(test_file.read_text(encoding="utf-8"), chapter.read_text(encoding="utf-8"))
    where = "\n".join(f"  {test_file.name}:{t} ~ {chapter.name}:{c}   {text}" for t, c, text in hits)
    assert not hits, (
        f"{len(hits)} run(s) of {WINDOW} code lines of {test_file.name} also appear in {chapter.name}:\n{where}\n"
        "Write the correct answer another way (nbval already runs the chapter's), or, for a planted wrong answer "
        f"copied on purpose, put `{MARKER}` on its def/class line."
    )


# the scan itself -----------------------------------------------------------------------------------

_CHAPTER = '''
# %% [markdown]
# ### Exercise 99.1

# %%
def tidy(xs):
    # BEGIN SOLUTION
    out = []
    for x in xs:
        if x > 0:
            out.append(x)   # keep it
    return out
    # END SOLUTION
'''


def test_the_scan_finds_a_renamed_copy_with_other_comments():
    copy = ("def mine(values):  # mine\n    out = []\n\n    for x in xs:\n        if   x > 0:\n"
            "            out.append(x)\n    return out\n")
    assert [t for t, _, _ in shared_runs(copy, _CHAPTER)] == [2, 4]


def test_the_scan_passes_another_spelling_and_short_overlaps():
    assert shared_runs("def mine(xs):\n    return [x for x in xs if x > 0]\n", _CHAPTER) == []
    three_shared = "def mine(xs):\n    out = []\n    for x in xs:\n        out.append(x)\n    return out\n"
    assert shared_runs(three_shared, _CHAPTER) == []


def test_a_marked_planted_copy_is_left_out():
    body = "    out = []\n    for x in xs:\n        if x > 0:\n            out.append(x)\n    return out\n"
    assert shared_runs(f"def buggy(xs):  {MARKER}\n" + body, _CHAPTER) == []
    assert shared_runs(f"{MARKER} (the exercise's code)\n@staticmethod\ndef buggy(xs):\n" + body, _CHAPTER) == []
    assert shared_runs("def buggy(xs):  # planted\n" + body, _CHAPTER) != []
