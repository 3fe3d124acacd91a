"""What a learner sees beside the lesson: a static figure for every explorer, and no files left behind.

Both read the chapter sources only (nothing runs here):
- every explorer cell (a widget: it shows nothing on GitHub, nbviewer or in the stored outputs) is
  tagged `nbval-ignore-output` and has a plain code cell beside it, in the same section, that draws
  the same figure with the static draw function and the same data;
- nothing a chapter writes lands beside the notebook: fastai learners that save (`lr_find` saves and
  restores the weights under `learn.path / learn.model_dir`) get a temporary folder, and every other
  file write goes into a temporary folder or an in-memory buffer.
The exercise-notebook runs (tests/test_exercise_notebooks.py) check the same on the real folder.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass

import pytest

from course_utils import plots
from course_utils.tools import pipeline

# Each explorer and the function that draws its default view statically ("explorer" draws with its first argument).
STATIC_DRAW = {
    "stride_explorer": "show_view",
    "ct_slicer": "draw_ct_slice",
    "gd_explorer": "draw_gd_explorer",
    "neuron_composer": "draw_neuron_composer",
    "digit_explorer": "draw_digit_explorer",
    "cam_explorer": "draw_cam_explorer",
    "kernel_explorer": "draw_kernel_explorer",
    "leaf_size_explorer": "draw_leaf_size",
    "house_explorer": "draw_house",
    "recommendation_explorer": "draw_recommendations",
    "ct_explorer": "draw_ct_explorer",
    "threshold_explorer": "draw_threshold_explorer",
    "inference_playground": "draw_playground",
    "explorer": None,
}
RAW_WIDGETS = {"interact", "interactive", "interact_manual"}  # compute while the cell runs; use plots.explorer
IGNORE_TAG = "nbval-ignore-output"
HEADING = re.compile(r"^#{1,4} ", re.MULTILINE)


@dataclass
class Cell:
    index: int
    kind: str
    source: str
    tags: list
    tree: ast.Module | None


def cells_of(chapter: pipeline.Chapter) -> list[Cell]:
    """The chapter's cells; code cells parsed, with magics (`%pip`, `!cmd`) read as `pass`."""
    import jupytext

    cells = []
    for index, cell in enumerate(jupytext.read(chapter.source).cells):
        tree = None
        if cell.cell_type == "code":
            lines = [re.sub(r"^(\s*)[%!].*$", r"\1pass", line) for line in cell.source.split("\n")]
            tree = ast.parse("\n".join(lines))
        cells.append(Cell(index, cell.cell_type, cell.source, list(cell.metadata.get("tags", [])), tree))
    return cells


def called_name(call: ast.Call) -> str | None:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None


def calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


CHAPTERS = pipeline.all_chapters()


def test_every_explorer_in_the_plots_package_has_a_static_draw_function():
    found = set()
    for name in plots.__all__:
        obj = getattr(plots, name)
        if inspect.isfunction(obj) and name not in ("explorer_box", "pyplot"):
            source = inspect.getsource(obj)
            if "ipywidgets" in source:
                found.add(name)
    assert found == set(STATIC_DRAW), f"add each explorer's static draw function to STATIC_DRAW: {found ^ set(STATIC_DRAW)}"
    for name, draw in STATIC_DRAW.items():
        assert draw is None or callable(getattr(plots, draw)), draw


def widget_calls(chapter: pipeline.Chapter) -> list[tuple[Cell, ast.Call]]:
    return [(cell, call) for cell in cells_of(chapter) if cell.tree is not None for call in calls(cell.tree)
            if called_name(call) in STATIC_DRAW]


def test_the_audit_finds_every_explorer_of_the_course():
    found = {chapter.number: sorted(called_name(call) for _, call in widget_calls(chapter)) for chapter in CHAPTERS}
    assert found.get("01") == ["ct_slicer", "stride_explorer"]
    assert all(found.get(n) for n in ("01", "02", "03", "04", "05")), found


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_every_explorer_cell_has_a_static_figure_beside_it(chapter):
    problems = explorer_problems(chapter)
    assert not problems, f"{chapter.slug}:\n" + "\n".join(problems)


def test_the_explorer_audit_catches_a_missing_or_distant_figure(tmp_path, monkeypatch):
    source = tmp_path / "99_planted.py"
    source.write_text(
        "# %% [markdown]\n# ## 1. Slices\n\n# %%\nplots.draw_ct_slice(vol, spacing)\n\n"
        "# %% tags=[\"nbval-ignore-output\"]\nplots.ct_slicer(vol, spacing)\n\n"          # fine
        "# %% [markdown]\n# ## 2. Digits\n\n# %% tags=[\"nbval-ignore-output\"]\ndigit_explorer(net, x, y)\n\n"
        "# %%\ndraw_digit_explorer(other_net, x, y)\n\n"                                     # other data
        "# %% [markdown]\n# ## 3. Kernels\n\n# %%\nkernel_explorer(images)\n\n"           # untagged, no figure
        "# %% [markdown]\n# ## 4. Later\n\n# %%\ndraw_kernel_explorer(images)\n\n"         # another section
        "# %%\ninteract(f, x=1)\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(pipeline.Chapter, "source", property(lambda self: source))
    problems = explorer_problems(pipeline.Chapter("99_planted"))
    assert len(problems) == 4, problems
    assert "digit_explorer" in problems[0] and "draw_digit_explorer(net, x, y" in problems[0]
    assert "tag the explorer cell" in problems[1] and "kernel_explorer" in problems[2] and "interact" in problems[3]


def explorer_problems(chapter: pipeline.Chapter) -> list[str]:
    cells = cells_of(chapter)
    problems = []
    for cell in cells:
        if cell.tree is None:
            continue
        for call in calls(cell.tree):
            if called_name(call) in RAW_WIDGETS:
                problems.append(f"cell {cell.index}: {called_name(call)}(...) computes while the cell runs: use plots.explorer")
        for call in [c for c in calls(cell.tree) if called_name(c) in STATIC_DRAW]:
            name = called_name(call)
            where = f"cell {cell.index} ({name})"
            if IGNORE_TAG not in cell.tags:
                problems.append(f"{where}: tag the explorer cell {IGNORE_TAG}")
            if name == "explorer":
                if not call.args or not isinstance(call.args[0], ast.Name):
                    problems.append(f"{where}: pass the draw function by name as explorer's first argument")
                    continue
                draw, prefix = call.args[0].id, []
            else:
                draw, prefix = STATIC_DRAW[name], [ast.unparse(a) for a in call.args]
            if not any(draws(neighbour, draw, prefix) for neighbour in neighbours(cells, cell)):
                problems.append(
                    f"{where}: no code cell right before or after it (in the same section) draws "
                    f"{draw}({', '.join(prefix)}{', ...' if prefix else ''}) for readers without widgets"
                )
    return problems


def neighbours(cells: list[Cell], cell: Cell) -> list[Cell]:
    """The nearest code cell before and after `cell`, past markdown but not past a heading (the section's edge)."""
    found = []
    for step in (-1, 1):
        i = cell.index + step
        while 0 <= i < len(cells) and not (cells[i].kind == "markdown" and HEADING.search(cells[i].source)):
            if cells[i].kind == "code":
                found.append(cells[i])
                break
            i += step
    return found


def draws(cell: Cell, draw: str, prefix: list[str]) -> bool:
    """Whether `cell`, itself no explorer cell, calls `draw` with positional arguments that start with `prefix`."""
    if cell.tree is None or any(called_name(c) in STATIC_DRAW for c in calls(cell.tree)):
        return False
    return any(called_name(c) == draw and [ast.unparse(a) for a in c.args[: len(prefix)]] == prefix
               for c in calls(cell.tree))


# ----------------------------------------------------------------------------------------------
# No files beside the notebook
# ----------------------------------------------------------------------------------------------

LEARNER_WRITES = {"lr_find", "save", "save_encoder", "export"}  # write under learn.path / learn.model_dir
# torch's own savers and exporters write to the file they are given: (name, owner) -> the position of that file
TORCH_WRITES = {("save", "torch"): 1, ("save", "torch.jit"): 1, ("save", "torch.export"): 1, ("export", "torch.onnx"): 2}
IN_MEMORY = {("export", "torch.export")}  # torch.export.export returns a program and writes nothing
FILE_WRITES = {"savefig", "to_csv", "to_parquet", "to_pickle", "to_hdf", "write_text", "write_bytes", "mkdir", "dump"}
CALLBACK_WRITES = {"SaveModelCallback", "CSVLogger"}


def derived_names(trees: list[ast.AST], seeds: set[str], temporary_calls: bool = True) -> set[str]:
    """`seeds`, and the names bound (anywhere in `trees`) to a value made from them; with `temporary_calls`,
    also names bound to a temporary folder or an in-memory buffer (and paths inside them)."""
    names = set(seeds)

    def made_from(expr: ast.AST) -> bool:
        text = ast.unparse(expr)
        return (temporary_calls and ("tempfile." in text or "BytesIO(" in text or "StringIO(" in text)
                or any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(expr)))

    for _ in range(4):  # names made from names made from a temporary folder
        for tree in trees:
            for node in ast.walk(tree):
                if isinstance(node, ast.With):
                    for item in node.items:
                        if isinstance(item.optional_vars, ast.Name) and made_from(item.context_expr):
                            names.add(item.optional_vars.id)
                elif isinstance(node, ast.Assign) and made_from(node.value):
                    names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def learners_on_temporary_paths(trees: list[ast.Module], temp: set[str]) -> set[str]:
    """Names of learners built with `path=` or `model_dir=` a temporary folder."""
    found = set()
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                for call in calls(node.value):
                    for kw in call.keywords:
                        if kw.arg in ("path", "model_dir") and any(isinstance(n, ast.Name) and n.id in temp for n in ast.walk(kw.value)):
                            found |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return found


def with_parents(tree: ast.AST):
    """(node, the temporary-folder `with` blocks around it)."""
    def walk(node, stack):
        yield node, stack
        inner = stack
        if isinstance(node, ast.With) and any("tempfile." in ast.unparse(i.context_expr) for i in node.items):
            inner = [*stack, node]
        for child in ast.iter_child_nodes(node):
            yield from walk(child, inner)

    yield from walk(tree, [])


def receiver(call: ast.Call) -> str | None:
    return ast.unparse(call.func.value) if isinstance(call.func, ast.Attribute) else None


def model_dir_set_inside(blocks: list[ast.With], learner: str) -> bool:
    for block in blocks:
        for node in ast.walk(block):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Attribute) and target.attr in ("model_dir", "path") and ast.unparse(target.value) == learner:
                        return True
    return False


def uses(node: ast.Call, names: set[str]) -> bool:
    """Whether the call or its receiver mentions one of `names`."""
    parts = [*node.args, *node.keywords] + ([node.func.value] if isinstance(node.func, ast.Attribute) else [])
    return mentions(parts, names)


def mentions(exprs: list[ast.AST], names: set[str]) -> bool:
    return any(isinstance(n, ast.Name) and n.id in names for e in exprs for n in ast.walk(e))


def write_targets(node: ast.Call, name: str | None, owner: str | None) -> list[ast.AST]:
    """Where a file-writing call writes: its receiver, or the argument that names the file."""
    if name in ("write_text", "write_bytes", "mkdir"):
        return [node.func.value]
    position = TORCH_WRITES.get((name, owner), 1 if (name, owner) == ("dump", "pickle") else 0)
    return node.args[position : position + 1] or [k.value for k in node.keywords if k.arg in ("f", "file", "fname", "path", "path_or_buf")]


def writes_beside_the_notebook(chapter: pipeline.Chapter) -> list[str]:
    cells = [c for c in cells_of(chapter) if c.tree is not None]
    trees = [c.tree for c in cells]
    temp = derived_names(trees, set())
    safe_learners = learners_on_temporary_paths(trees, temp)
    functions = {node.name: node for tree in trees for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)}
    problems, deferred = [], {}  # deferred: function name -> parameters its writes go into
    for cell in cells:
        for node, blocks in with_parents(cell.tree):
            if not isinstance(node, ast.Call):
                continue
            name, owner = called_name(node), receiver(node)
            where = f"cell {cell.index}: {ast.unparse(node)[:80]}"
            if (name, owner) in IN_MEMORY:
                continue
            if name in LEARNER_WRITES and owner not in ("torch", "pickle") and (name, owner) not in TORCH_WRITES:
                if not (uses(node, temp) or owner in safe_learners or model_dir_set_inside(blocks, owner)):
                    problems.append(f"{where}: writes under {owner}.path / {owner}.model_dir: give it a temporary folder")
                continue
            if name in CALLBACK_WRITES:
                problems.append(f"{where}: writes files beside the notebook")
                continue
            writes = ((name, owner) in TORCH_WRITES or name in FILE_WRITES
                      or name == "open" and len(node.args) > 1 and re.search(r"[wax]", ast.unparse(node.args[1])))
            if not writes or blocks or mentions(write_targets(node, name, owner), temp):
                continue
            # inside a function, a write into a folder the caller passes is the caller's to check
            inside = [f for f in functions.values() if any(n is node for n in ast.walk(f))]
            params = {a.arg for f in inside for a in f.args.args}
            targets = write_targets(node, name, owner)
            if inside and mentions(targets, derived_names(inside, params, temporary_calls=False)):
                deferred[inside[-1].name] = [
                    a.arg for a in inside[-1].args.args if mentions(targets, derived_names(inside, {a.arg}, temporary_calls=False))
                ]
                continue
            problems.append(f"{where}: write into a temporary folder or a buffer")
    for function, params in deferred.items():
        positions = [a.arg for a in functions[function].args.args]
        for cell in cells:
            for node, blocks in with_parents(cell.tree):
                if isinstance(node, ast.Call) and called_name(node) == function and not blocks:
                    given = {**dict(zip(positions, node.args)), **{k.arg: k.value for k in node.keywords}}
                    for param in params:
                        arg = given.get(param)
                        if arg is not None and not any(isinstance(n, ast.Name) and n.id in temp for n in ast.walk(arg)):
                            problems.append(f"cell {cell.index}: {ast.unparse(node)[:80]}: {function} writes into `{param}`: "
                                            "pass a temporary folder")
    return problems


@pytest.mark.parametrize("chapter", CHAPTERS, ids=lambda c: c.slug)
def test_nothing_is_written_beside_the_notebook(chapter):
    problems = writes_beside_the_notebook(chapter)
    assert not problems, f"{chapter.slug}:\n" + "\n".join(problems)


def test_the_write_audit_catches_a_bare_lr_find(tmp_path, monkeypatch):
    source = tmp_path / "99_planted.py"
    source.write_text(
        "# %%\nimport tempfile, torch\nlearn = make()\nsuggested = learn.lr_find()\n"
        "# %%\ntorch.save(model.state_dict(), 'model.pt')\n"
        "# %%\nwith tempfile.TemporaryDirectory() as tmp:\n    learn.model_dir = tmp\n    learn.lr_find()\n"
        "# %%\nwith tempfile.TemporaryDirectory() as tmp:\n    torch.save(model, tmp + '/m.pt')\n"
        "# %%\nwith tempfile.TemporaryDirectory() as tmp:\n    other.lr_find()\n"
        "# %%\ndef keep(rows, folder):\n    (folder / 'rows.csv').write_text(rows)\n\n\nkeep('a', tmp_dir)\n",
        encoding="utf-8",
    )
    planted = pipeline.Chapter("99_planted")
    monkeypatch.setattr(pipeline.Chapter, "source", property(lambda self: source))
    problems = writes_beside_the_notebook(planted)
    assert len(problems) == 4, problems
    assert "learn.lr_find()" in problems[0] and "model.pt" in problems[1] and "other.lr_find()" in problems[2]
    assert "keep writes into `folder`" in problems[3]
