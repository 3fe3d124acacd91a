"""Which chapter teaches and uses which course_utils helper, read from the code, not written by hand.

A learner-facing helper's docstring says "Taught in NN_slug" (the chapter explains it and calls it)
or "Used in NN_slug" (the chapter or another helper calls it, without teaching it). Here:
- `helpers()` reads those tags from every module a notebook may import (everything but `tools/`);
- `chapter_uses(slug)` resolves what a chapter's code cells name from course_utils to the objects
  they are (`from course_utils.plots import gd_explorer`, `data.photo(...)` after
  `from course_utils import data`), so a re-exported name counts for the module that defines it;
- `false_claims()` lists every "Taught in" whose chapter never uses the helper (tests/test_layout.py);
- `by_chapter_table()` is README's generated "course_utils by chapter" table.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import inspect
import pkgutil
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from course_utils import config

__all__ = [
    "by_chapter_table", "chapter_code", "chapter_source", "chapter_tags", "chapter_uses", "code_uses", "false_claims",
    "Helper", "helpers", "learner_modules", "PACKAGE", "untagged",
]

PACKAGE = "course_utils"
_TAG = re.compile(r"\b(Taught|Used) in ((?:\d\d_[a-z]+[\s,;]*(?:and|to)?\s*)+)")
_SLUG = re.compile(r"\d\d_[a-z]+")
_MAGIC = re.compile(r"^(\s*)[%!].*$", re.MULTILINE)


@dataclass(frozen=True)
class Helper:
    """One public function or class of a learner module, with the chapters its docstring names."""

    module: str  # where it is defined, e.g. "course_utils.plots.ch02"
    name: str
    taught_in: tuple[str, ...]
    used_in: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{self.module}.{self.name}"


def learner_modules() -> list[str]:
    """Every module of the package a notebook may import: all but the authoring tools."""
    package = importlib.import_module(PACKAGE)
    names = [PACKAGE]
    for info in pkgutil.walk_packages(package.__path__, prefix=f"{PACKAGE}."):
        if not info.name.startswith(f"{PACKAGE}.tools"):
            names.append(info.name)
    return sorted(names)


def chapter_tags(docstring: str) -> dict[str, tuple[str, ...]]:
    """{"Taught": slugs, "Used": slugs} named by a docstring's first "Taught in"/"Used in" phrases."""
    tags: dict[str, tuple[str, ...]] = {"Taught": (), "Used": ()}
    for kind, slugs in _TAG.findall(docstring or ""):
        if not tags[kind]:
            tags[kind] = tuple(_SLUG.findall(slugs))
    return tags


@cache
def helpers() -> tuple[Helper, ...]:
    """Every public function and class defined in a learner module (re-exports counted once)."""
    found = []
    for module_name in learner_modules():
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            if name.startswith("_") or not (inspect.isfunction(obj) or inspect.isclass(obj)):
                continue
            if obj.__module__ != module_name:
                continue
            tags = chapter_tags(inspect.getdoc(obj) or "")
            found.append(Helper(module_name, name, tags["Taught"], tags["Used"]))
    return tuple(found)


def _defined_at(obj) -> str | None:
    """"module.name" of the function or class `obj`, or None for anything else."""
    if inspect.isfunction(obj) or inspect.isclass(obj):
        return f"{obj.__module__}.{obj.__name__}"
    return None


def _resolve(module_name: str, attribute: str) -> str | None:
    try:
        module = importlib.import_module(module_name)
        obj = getattr(module, attribute)
    except (ImportError, AttributeError):
        return None
    return _defined_at(obj)


def code_uses(source: str) -> set[str]:
    """The course_utils functions and classes a piece of code names, as "defining_module.name"."""
    tree = ast.parse(source)
    uses: set[str] = set()
    aliases: dict[str, str] = {}  # local name -> course_utils module it stands for
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == PACKAGE:
            for alias in node.names:
                local = alias.asname or alias.name
                submodule = f"{node.module}.{alias.name}"
                if _is_module(submodule):
                    aliases[local] = submodule
                elif (where := _resolve(node.module, alias.name)) is not None:
                    uses.add(where)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == PACKAGE and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            if (where := _resolve(aliases[node.value.id], node.attr)) is not None:
                uses.add(where)
    return uses


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def chapter_code(chapter_py: Path) -> str:
    """The code cells of a jupytext chapter source, joined; magics (`%pip`, `!ls`) become `pass`.

    Also what the GPU kit reads to find a chapter's imports (gpu_kit/imports.py).
    """
    import jupytext

    cells = jupytext.read(chapter_py).cells
    return "\n\n".join(_MAGIC.sub(r"\1pass", c.source) for c in cells if c.cell_type == "code")


def chapter_source(slug: str) -> str | None:
    """The code of a built chapter (see `chapter_code`); None for a planned chapter."""
    path = config.REPO_ROOT / "chapters" / f"{slug}.py"
    return chapter_code(path) if path.is_file() else None


@cache
def chapter_uses(slug: str) -> frozenset[str]:
    """What a chapter's code uses from course_utils ("module.name"); empty for a planned chapter."""
    source = chapter_source(slug)
    return frozenset(code_uses(source)) if source is not None else frozenset()


def false_claims() -> list[str]:
    """One line per tag that cannot be true: an unknown chapter, or "Taught in" a chapter that never uses it."""
    problems = []
    for helper in helpers():
        for slug in helper.taught_in + helper.used_in:
            if slug not in config.CHAPTER_TITLES:
                problems.append(f"{helper.qualified}: names {slug}, which is not a chapter of the course")
        for slug in helper.taught_in:
            if chapter_source(slug) is not None and helper.qualified not in chapter_uses(slug):
                problems.append(
                    f"{helper.qualified}: says 'Taught in {slug}', but chapters/{slug}.py never uses it "
                    f"(write 'Used in {slug}' if the chapter only relies on it through another helper)"
                )
    return problems


def untagged() -> list[str]:
    """Public helpers whose docstring names no chapter at all."""
    return [h.qualified for h in helpers() if not h.taught_in and not h.used_in]


def _short(qualified: str) -> str:
    return qualified.removeprefix(f"{PACKAGE}.")


def by_chapter_table() -> str:
    """A markdown table: per built chapter, the helpers it teaches and the others it calls, by module."""
    taught = {h.qualified: h.taught_in for h in helpers()}
    rows = ["| chapter | taught here | also used here |", "|---|---|---|"]
    for slug in config.CHAPTER_TITLES:
        if chapter_source(slug) is None:
            continue
        uses = sorted(chapter_uses(slug))
        here = [q for q in uses if slug in taught.get(q, ())]
        other = [q for q in uses if q not in here]
        rows.append(f"| {slug} | {_grouped(here)} | {_grouped(other)} |")
    return "\n".join(rows)


def _grouped(qualified: list[str]) -> str:
    """`plots.ch02`: `draw_gd_explorer`, `gd_explorer`<br>... for a table cell."""
    by_module: dict[str, list[str]] = {}
    for q in qualified:
        module, name = q.rsplit(".", 1)
        by_module.setdefault(_short(module), []).append(f"`{name}`")
    return "<br>".join(f"`{m}`: {', '.join(names)}" for m, names in sorted(by_module.items()))
