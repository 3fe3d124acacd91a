"""What a chapter imports: the modules named in its code cells and in the course_utils modules they reach.

Read with `ast`, without running anything. Every import statement counts, also one inside a function or
a `with` block, so the answer is a superset of what a run loads; the one exception is an optional
dependency, an import inside a `try:` whose `except` catches ImportError (or ModuleNotFoundError): the
code runs without it, so no bundle or extra has to carry it. Inside course_utils the walk follows
`course_utils.X` imports, string imports (`__import__("course_utils.pretrained")`), the data registry's
"module:function" names of builders and loaders (`"course_utils.pretrained.ch05:review_lm"`, imported when
a dataset is built or loaded) and the exercise checks, which `check()` imports by chapter number
(course_utils/checks/chNN.py).
"""

from __future__ import annotations

import ast
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from course_utils.tools.api import chapter_code  # the chapter's code cells, magics made `pass`
from gpu_kit.config import REPO_ROOT

PACKAGE = "course_utils"
_SPEC = re.compile(rf"^({PACKAGE}(?:\.\w+)+):\w+$")  # a registry's "module:function" inside the package


def imported_modules(source: str, package_root: Path = REPO_ROOT) -> set[str]:
    """Dotted names of the modules a piece of code imports (at any depth of the code).

    `from a.b import c` yields a.b, and a.b.c too when that is a module of the course package, so
    `from course_utils import data` is followed into course_utils/data/. Literal strings passed to
    `__import__` or `importlib.import_module` count as imports, and so does the module of a literal
    "course_utils.x.y:function" (how the data registry names builders and loaders).
    """
    found = set()
    tree = ast.parse(source)
    optional = _optional_imports(tree)
    for node in ast.walk(tree):
        if id(node) in optional:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            if node.module.split(".")[0] == PACKAGE:
                found |= {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}", package_root)}
        elif isinstance(node, ast.Call) and _is_string_import(node):
            found.add(node.args[0].value)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and (spec := _SPEC.match(node.value)):
            found.add(spec.group(1))
    return found


_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _optional_imports(tree: ast.AST) -> set[int]:
    """ids of the import statements in a `try:` body whose handlers catch ImportError: optional dependencies."""
    optional = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Try) and any(_catches_import_error(h.type) for h in node.handlers):
            optional |= {id(n) for stmt in node.body for n in ast.walk(stmt) if isinstance(n, (ast.Import, ast.ImportFrom))}
    return optional


def _catches_import_error(handler_type: ast.expr | None) -> bool:
    names = handler_type.elts if isinstance(handler_type, ast.Tuple) else [handler_type]
    return any(isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS for n in names)


def _is_string_import(node: ast.Call) -> bool:
    func = node.func
    name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
    return (
        name in ("__import__", "import_module")
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    )


def module_file(module: str, package_root: Path = REPO_ROOT) -> Path | None:
    """The source file of a module of the course package (a.b -> a/b.py or a/b/__init__.py), or None."""
    base = package_root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def course_closure(modules: Iterable[str], package_root: Path = REPO_ROOT) -> set[str]:
    """`modules` plus every module they reach through the course package, and each package's __init__."""
    seen: set[str] = set()
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in seen:
            continue
        seen.add(module)
        if module.split(".")[0] != PACKAGE:
            continue
        parts = module.split(".")
        todo += [".".join(parts[:i]) for i in range(1, len(parts))]  # importing a.b.c runs a and a.b
        path = module_file(module, package_root)
        if path is not None:
            todo += imported_modules(path.read_text(encoding="utf-8"), package_root)
    return seen


def chapter_modules(chapter_py: Path, package_root: Path = REPO_ROOT) -> set[str]:
    """Every module a chapter may import: its own imports, through course_utils, and its checks."""
    number = chapter_py.name[:2]
    start = imported_modules(chapter_code(chapter_py), package_root) | {f"{PACKAGE}.checks.ch{number}"}
    return course_closure(start, package_root)


def third_party(modules: Iterable[str]) -> set[str]:
    """The top-level names that are neither the standard library nor the course package."""
    tops = {m.split(".")[0] for m in modules}
    return {t for t in tops if t not in sys.stdlib_module_names and t != PACKAGE and t != "__future__"}


def distributions(modules: Iterable[str], owners: Mapping[str, list[str]]) -> dict[str, set[str]]:
    """Distribution name -> the top-level modules it provides, e.g. {"scikit-learn": {"sklearn"}}.

    `owners` is importlib.metadata.packages_distributions() of the course environment. A module that
    no installed distribution provides raises a LookupError: the course environment lacks it.
    """
    result: dict[str, set[str]] = {}
    unknown = []
    for top in sorted(third_party(modules)):
        if top not in owners:
            unknown.append(top)
            continue
        for dist in owners[top]:
            result.setdefault(dist, set()).add(top)
    if unknown:
        raise LookupError(f"no installed distribution provides {', '.join(unknown)} (run `make setup`)")
    return result
