"""The package's layout rules (CONTRIBUTING, "Where things live"), checked by machine.

- the import-linter contracts in pyproject.toml hold, and a planted back-import breaks them;
- no import cycle among course_utils modules, counting imports inside functions;
- no two modules share a name (per-chapter `chNN` modules and `__init__` excepted);
- every "Taught in NN_slug" names a chapter whose code uses the helper;
- every built chapter has its checks and their tests;
- no answer coercer or check-module header is written twice.
"""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from course_utils import config
from course_utils.tools import api, pipeline

PACKAGE_DIR = config.REPO_ROOT / "course_utils"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CHECKS_DIR = PACKAGE_DIR / "checks"


def _lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the package found under `root`, with `root`'s pyproject.toml."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", str(root / "pyproject.toml")],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_the_import_contracts_hold():
    result = _lint_imports(config.REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("module, planted", [
    ("data/cache.py", "def _planted():\n    from course_utils.checks import framework\n"),  # data -> checks
    ("plots/ch01.py", "def _planted():\n    from course_utils.tools import pipeline\n"),  # helpers -> tools
    ("checks/ch02.py", "def _planted():\n    from course_utils.checks import ch03\n"),  # an earlier chapter -> a later one
])
def test_a_planted_back_import_breaks_the_contracts(tmp_path, module, planted):
    shutil.copytree(PACKAGE_DIR, tmp_path / "course_utils", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(config.REPO_ROOT / "pyproject.toml", tmp_path)
    target = tmp_path / "course_utils" / module
    target.write_text(target.read_text(encoding="utf-8") + "\n\n" + planted, encoding="utf-8")
    result = _lint_imports(tmp_path)
    assert result.returncode != 0, result.stdout
    assert "BROKEN" in result.stdout and str(tmp_path) not in str(config.REPO_ROOT)


def _strongly_connected(graph: dict[str, set[str]]) -> list[set[str]]:
    """Tarjan's strongly connected components of a directed graph {node: successors}."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            components.append(component)

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def test_strongly_connected_components_find_a_cycle():
    components = _strongly_connected({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}})
    assert {"a", "b", "c"} in components and {"d"} in components


def test_no_import_cycle_among_modules_counting_function_level_imports():
    graph = grimp.build_graph("course_utils", cache_dir=None)
    edges = {m: graph.find_modules_directly_imported_by(m) for m in graph.modules}
    cycles = [sorted(c) for c in _strongly_connected(edges) if len(c) > 1]
    assert not cycles, f"import cycles: {cycles}"


def test_no_two_modules_share_a_name():
    seen: dict[str, Path] = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.stem == "__init__" or re.fullmatch(r"ch\d\d", path.stem):
            continue
        assert path.stem not in seen, f"{path.relative_to(PACKAGE_DIR)} and {seen[path.stem].relative_to(PACKAGE_DIR)}"
        seen[path.stem] = path


def test_every_module_declares_its_public_names():
    import importlib

    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        if path.name == "__init__.py" and path.parent.name == "tools":
            continue
        relative = path.relative_to(config.REPO_ROOT).with_suffix("")
        name = ".".join(relative.parts).removesuffix(".__init__")
        module = importlib.import_module(name)
        assert hasattr(module, "__all__"), f"{name} has no __all__"
        missing = [n for n in module.__all__ if not hasattr(module, n)]
        assert not missing, f"{name}.__all__ names what it does not define: {missing}"


def test_every_taught_in_names_a_chapter_that_uses_the_helper():
    problems = api.false_claims()
    assert not problems, "\n".join(problems)


def test_the_taught_in_test_catches_a_false_tag(monkeypatch):
    real = api.helpers()
    helper = next(h for h in real if h.qualified == "course_utils.train.fit")
    liar = api.Helper(helper.module, helper.name, ("01_tensors",), ())  # 01 never trains a model with fit
    monkeypatch.setattr(api, "helpers", lambda: (*real, liar))
    assert any("course_utils.train.fit: says 'Taught in 01_tensors'" in p for p in api.false_claims())


def test_chapter_uses_resolve_re_exports_and_module_attributes():
    uses = api.code_uses("from course_utils import data, plots\nfrom course_utils.plots import gd_explorer\n"
                         "data.photo('chelsea')\nplots.draw_storage(x)\n")
    assert {"course_utils.data.loaders.photo", "course_utils.plots.ch01.draw_storage",
            "course_utils.plots.ch02.gd_explorer"} <= uses


def test_learner_helpers_name_their_chapter():
    """Every public helper of a module a notebook reaches directly names a chapter (Taught or Used in)."""
    facing = ("course_utils.env", "course_utils.train", "course_utils.models", "course_utils.hooks",
              "course_utils.plots.", "course_utils.pretrained.", "course_utils.ct.")
    missing = [q for q in api.untagged() if q.startswith(facing)]
    import course_utils.data as data

    missing += [f"course_utils.data.{name}" for name in data.__all__
                if callable(getattr(data, name)) and not (getattr(data, name).__doc__ or "").count(" in ")]
    assert not missing, f"name the chapter in these docstrings: {missing}"


def test_every_built_chapter_has_its_checks_and_their_tests():
    for chapter in pipeline.all_chapters():
        number = chapter.slug[:2]
        assert (CHECKS_DIR / f"ch{number}.py").is_file(), chapter.slug
        assert (config.REPO_ROOT / "tests" / f"test_checks_{number}.py").is_file(), chapter.slug


def _definitions(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for node in tree.body:
        if isinstance(node, ast.Assign):
            names |= {t.id for t in node.targets if isinstance(t, ast.Name) and not t.id.startswith("__")}
    return names


def test_coercers_and_shared_constants_live_only_in_the_framework():
    shared = _definitions(CHECKS_DIR / "framework.py")
    coercer = re.compile(r"_?as_(bool|int|float|array|tensor|shape)$")
    for path in sorted(CHECKS_DIR.glob("ch*.py")):
        defined = _definitions(path)
        assert not {n for n in defined if coercer.match(n)}, f"{path.name} defines its own coercer"
        assert not (defined & shared), f"{path.name} redefines {sorted(defined & shared)} from framework.py"


def _header_lines(path: Path) -> list[str]:
    """A module's header, normalised: everything before its first function or class, imports left out.

    Import lists and `__all__` differ by what each module takes and gives, so they do not count.
    """
    text = path.read_text(encoding="utf-8")
    tree = ast.parse(text)
    first_def = min((min([n.lineno, *(d.lineno for d in n.decorator_list)]) for n in tree.body
                     if isinstance(n, (ast.FunctionDef, ast.ClassDef))), default=len(text.splitlines()) + 1)
    imports = set()
    for node in tree.body:
        is_all = isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets)
        if isinstance(node, (ast.Import, ast.ImportFrom)) or is_all:
            imports |= set(range(node.lineno, node.end_lineno + 1))
    lines = text.splitlines()[: first_def - 1]
    return [line.strip() for number, line in enumerate(lines, 1)
            if line.strip() and number not in imports and not line.strip().startswith("# ---")]


def test_no_check_module_repeats_another_ones_header():
    """No two lines in a row of a check module's header (docstring, constants) appear in another's."""
    runs: dict[tuple[str, ...], str] = {}
    for path in sorted(CHECKS_DIR.glob("ch*.py")):
        lines = _header_lines(path)
        for run in {tuple(lines[i:i + 2]) for i in range(len(lines) - 1)}:
            assert run not in runs, f"{path.name} repeats {runs[run]}: {run}"
            runs[run] = path.name


def test_the_header_test_sees_a_copied_preamble(tmp_path, monkeypatch):
    for name, extra in (("ch01.py", ""), ("ch02.py", "X = 1\n")):
        (tmp_path / name).write_text(f'"""Checks.\n\nEvery check runs on seeded inputs\nand compares with a reference.\n"""\n{extra}'
                                     "import torch\n\n\ndef f():\n    pass\n", encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "CHECKS_DIR", tmp_path)
    with pytest.raises(AssertionError, match="ch02.py repeats ch01.py"):
        test_no_check_module_repeats_another_ones_header()
