"""The build pipeline behind `course build`: one source per chapter becomes three notebooks.

    chapters/NN_slug.py  --sync-->  cells  --execute (course-cpu)-->  normalise  -->  chapters/NN_slug.ipynb
                                                                          |--strip-->  chapters/exercises/NN_slug.ipynb
                                                                          `--key---->  solutions/NN_slug.ipynb

Every step is a pure function of its input except `execute`, so the tests can regenerate the
exercise notebook and the answer key from the committed full notebook and compare, without running
anything twice. See CONTRIBUTING.md for the source conventions these functions rely on.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import nbformat
from nbformat import NotebookNode

from course_utils import config

__all__ = [
    "ADDRESS", "all_chapters", "BADGE_LINE", "badge_line", "BEGIN_MARK", "build", "BuildError", "Chapter",
    "ChapterNotFound", "CHECK_CALL", "colab_install_command", "colab_install_target", "colab_runtime_line",
    "COLAB_SETUP", "END_MARK", "execute",
    "EXERCISE_HEADING", "exercise_spans", "find_chapter", "make_answer_key", "make_exercises", "normalise",
    "NOTEBOOK_METADATA", "notebook_text", "read_source", "refresh_managed_lines", "relative",
    "replace_solution_blocks", "SILENCED_CALL", "solution_lines", "SOLUTION_TAG", "stable_ids", "STUB_LINE",
    "sync_source", "validate_exercises", "variants_from_full", "VOLATILE_MIME", "write_atomic",
    "write_notebook",
]

BEGIN_MARK = "# BEGIN SOLUTION"
END_MARK = "# END SOLUTION"
STUB_LINE = "...  # your code here"
SOLUTION_TAG = "solution"

EXERCISE_HEADING = re.compile(r"^#{2,4} Exercise (\d\d\.\d+)\b")
CHECK_CALL = re.compile(r"""\bcheck\(\s*["'](\d\d\.\d+)["']""")
# nbval runs cells without history, where a trailing `;` does not hide a result: the stored run and
# nbval's would then disagree on whether the returned bool is shown.
SILENCED_CALL = re.compile(r"\)\s*;\s*$", re.MULTILINE)
BADGE_LINE = re.compile(r"^(# )?\[!\[Open In Colab\]\(.*$", re.MULTILINE)
# The Colab guard of the set-up cell: its `if` line, the comment that states the Colab runtime, and the
# `%pip install` line (written `# %pip` in the .py). All three are managed; an older guard without the
# runtime comment matches too, so `course build` brings it up to date.
COLAB_SETUP = re.compile(
    r'^(?P<indent>[ \t]*)if "google\.colab" in sys\.modules:[^\n]*\n'
    r"(?:[ \t]*# (?!%pip)[^\n]*\n)?"
    r"(?P<body>[ \t]*)(?P<hash># )?%pip install [^\n]*$",
    re.MULTILINE,
)

NOTEBOOK_METADATA = {
    "jupytext": {"formats": "ipynb,py:percent"},
    "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
    "language_info": {"name": "python"},
}

# Mime types whose content changes from run to run for reasons unrelated to the lesson.
VOLATILE_MIME = ("application/vnd.jupyter.widget-view+json",)
# Object addresses in reprs ("<function Adam at 0x7fa4...>") change on every run; they are masked.
ADDRESS = re.compile(r"\b0x[0-9a-f]{8,16}\b")


class BuildError(RuntimeError):
    """A chapter source breaks a convention the pipeline relies on (the message says which)."""


class ChapterNotFound(LookupError):
    """No chapter matches the name given to `course build` or `course grade`."""


# ----------------------------------------------------------------------------------------------
# Finding chapters
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Chapter:
    """The four files of one chapter, named by its slug ("02_autograd")."""

    slug: str

    @property
    def number(self) -> str:
        return self.slug[:2]

    @property
    def source(self) -> Path:
        return config.CHAPTERS_DIR / f"{self.slug}.py"

    @property
    def full(self) -> Path:
        return config.CHAPTERS_DIR / f"{self.slug}.ipynb"

    @property
    def exercises(self) -> Path:
        return config.EXERCISES_DIR / f"{self.slug}.ipynb"

    @property
    def solutions(self) -> Path:
        return config.SOLUTIONS_DIR / f"{self.slug}.ipynb"


def all_chapters() -> list[Chapter]:
    """Every chapter that has a source, in order."""
    return [Chapter(p.stem) for p in sorted(config.CHAPTERS_DIR.glob("[0-9][0-9]_*.py"))]


def find_chapter(name: str) -> Chapter:
    """Resolve "02", "2", "02_autograd" or a path to one of its files into a Chapter."""
    stem = Path(name).stem if name.endswith((".py", ".ipynb")) else name
    for chapter in all_chapters():
        if stem in (chapter.slug, chapter.number) or (stem.isdigit() and int(stem) == int(chapter.number)):
            return chapter
    known = ", ".join(c.slug for c in all_chapters()) or "none yet"
    raise ChapterNotFound(f"no chapter called {name!r} (chapters: {known})")


# ----------------------------------------------------------------------------------------------
# Step 1: sync the cells from the source, with the managed lines refreshed
# ----------------------------------------------------------------------------------------------


def relative(path: Path) -> str:
    return path.resolve().relative_to(config.REPO_ROOT).as_posix()


def badge_line(notebook_path: Path) -> str:
    """Colab and Binder badges that open this very notebook variant."""
    rel = relative(notebook_path)
    colab = f"https://colab.research.google.com/github/{config.GITHUB_REPO}/blob/{config.GITHUB_BRANCH}/{rel}"
    binder = f"https://mybinder.org/v2/gh/{config.GITHUB_REPO}/{config.GITHUB_BRANCH}?labpath={quote(rel, safe='')}"
    return (
        f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({colab}) "
        f"[![Binder](https://mybinder.org/badge_logo.svg)]({binder})"
    )


def colab_install_target() -> str:
    return f"git+https://github.com/{config.GITHUB_REPO}@{config.GITHUB_BRANCH}"


def colab_install_command() -> str:
    """The install line of the Colab guard: the course's package with the extra of what Colab lacks.

    Plain dependencies, no --no-deps and no pins: what Colab ships (torch above all) already satisfies
    them and stays; pip adds only what is missing (config.COLAB_RUNTIME, pyproject's [colab]).
    """
    return f'%pip install -q "{config.DISTRIBUTION}[{config.COLAB_EXTRA}] @ {colab_install_target()}"'


def colab_runtime_line() -> str:
    """The comment under the Colab guard that states the runtime the course was tested against."""
    runtime = config.COLAB_RUNTIME
    ships = runtime["ships"]
    versions = ", ".join(f"{name} {ships[name]}" for name in ("torch", "fastai", "numpy", "pandas"))
    return f"# tested against a simulated Colab runtime ({runtime['date']}): Python {runtime['python']}, {versions}"


def refresh_managed_lines(text: str, notebook_path: Path) -> str:
    """Rewrite the badge line and the Colab guard (runtime comment, install line) from course_utils.config.

    Works on a .py source (where markdown lines start with "# " and the magic is written `# %pip`) and
    on a cell's source alike.
    """
    def badge(match: re.Match) -> str:
        return (match.group(1) or "") + badge_line(notebook_path)

    def guard(match: re.Match) -> str:
        indent, body = match.group("indent"), match.group("body")
        return (
            f'{indent}if "google.colab" in sys.modules:  # Colab only: add the course\'s package and what Colab lacks, keep Colab\'s torch\n'
            f"{body}{colab_runtime_line()}\n"
            f"{body}{match.group('hash') or ''}{colab_install_command()}"
        )

    text = BADGE_LINE.sub(badge, text)
    return COLAB_SETUP.sub(guard, text)


def read_source(chapter: Chapter) -> NotebookNode:
    """The chapter's cells, read from its .py (jupytext), with managed lines refreshed."""
    import jupytext

    text = refresh_managed_lines(chapter.source.read_text(encoding="utf-8"), chapter.full)
    nb = jupytext.reads(text, fmt="py:percent")
    validate_exercises(nb, chapter)
    return nb


def sync_source(chapter: Chapter) -> bool:
    """Write the managed lines back into the .py if they are stale. Returns True if it changed."""
    text = chapter.source.read_text(encoding="utf-8")
    fresh = refresh_managed_lines(text, chapter.full)
    if fresh != text:
        write_atomic(chapter.source, fresh)
    return fresh != text


def validate_exercises(nb: NotebookNode, chapter: Chapter) -> None:
    """Each exercise heading needs one check cell with its id, and markers must pair up."""
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            replace_solution_blocks(cell.source, where=f"{chapter.slug} cell {index}")
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "code" and CHECK_CALL.search(cell.source) and SILENCED_CALL.search(cell.source):
            raise BuildError(
                f"{chapter.slug} cell {index}: drop the trailing `;` after check(...): nbval runs cells "
                "without history, where `;` does not hide the returned bool"
            )
    for exercise_id, cells in exercise_spans(nb).items():
        if not exercise_id.startswith(chapter.number + "."):
            raise BuildError(f"{chapter.slug}: exercise {exercise_id} belongs to another chapter")
        checked = [m for c in cells if c.cell_type == "code" for m in CHECK_CALL.findall(c.source)]
        if checked != [exercise_id]:
            raise BuildError(
                f"{chapter.slug}: exercise {exercise_id} needs exactly one check(\"{exercise_id}\", ...) "
                f"cell, found {checked or 'none'}"
            )


# ----------------------------------------------------------------------------------------------
# Step 2: execute on the CPU kernel
# ----------------------------------------------------------------------------------------------


def execute(
    nb: NotebookNode,
    cwd: Path,
    kernel_name: str = config.CPU_KERNEL,
    allow_errors: bool = False,
    timeout: int = 900,
    env: dict[str, str] | None = None,
) -> NotebookNode:
    """Run every cell on a kernel (the course-cpu kernel by default) and return the executed copy.

    `env`, when given, is the kernel's whole environment (the kernelspec's variables still apply on
    top); the portability test uses it to start a kernel with other numerics.

    The kernel's sockets use CurveZMQ encryption where pyzmq supports it: jupyter_client provisions the
    keys (`transport_encryption="auto"`) and ipykernel declares support in every kernelspec it writes.
    Over plain TCP ipykernel prints "Kernel is running over TCP without encryption" to the terminal.
    """
    from jupyter_client.kernelspec import NoSuchKernel
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    options: dict = {} if env is None else {"env": env}
    try:
        KernelManager(transport_encryption="auto")  # refused where pyzmq was built without CurveZMQ
        options["transport_encryption"] = "auto"
    except Exception:
        pass

    nb = copy.deepcopy(nb)
    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=timeout,
        allow_errors=allow_errors,
        record_timing=False,
        resources={"metadata": {"path": str(cwd)}},
    )
    try:
        client.execute(**options)
    except NoSuchKernel as err:
        raise BuildError(f"the Jupyter kernel {kernel_name!r} is not installed: run `make setup`") from err
    return nb


# ----------------------------------------------------------------------------------------------
# Step 3: normalise, so that a rebuild from the same source writes the same bytes
# ----------------------------------------------------------------------------------------------


def stable_ids(nb: NotebookNode) -> None:
    """Give each cell an id derived from its content, so ids survive edits elsewhere in the file."""
    seen: dict[str, int] = {}
    for cell in nb.cells:
        digest = hashlib.sha1(f"{cell.cell_type}\n{cell.source}".encode()).hexdigest()[:8]
        seen[digest] = seen.get(digest, 0) + 1
        cell["id"] = digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"


def _merge_streams(outputs: list) -> list:
    """Join consecutive stream outputs of the same name: how a kernel chunks them is timing."""
    merged: list = []
    for out in outputs:
        if merged and out.output_type == "stream" and merged[-1].output_type == "stream" and merged[-1].name == out.name:
            merged[-1]["text"] += out.text
        else:
            merged.append(out)
    return merged


def _mask_addresses(text):
    if isinstance(text, list):
        return [ADDRESS.sub("0x…", line) for line in text]
    return ADDRESS.sub("0x…", text) if isinstance(text, str) else text


def _clean_output(out: NotebookNode) -> NotebookNode:
    out.pop("transient", None)
    if "text" in out:
        out["text"] = _mask_addresses(out["text"])
    if "text/plain" in out.get("data", {}):
        out["data"]["text/plain"] = _mask_addresses(out["data"]["text/plain"])
    if "data" in out:
        for mime in VOLATILE_MIME:
            out["data"].pop(mime, None)
    if "metadata" in out:
        out["metadata"] = {}
    return out


def normalise(nb: NotebookNode) -> NotebookNode:
    """Stable ids, fixed notebook metadata, only tags on cells, no timing, no widget state."""
    nb = copy.deepcopy(nb)
    nb.metadata = nbformat.from_dict(copy.deepcopy(NOTEBOOK_METADATA))
    nb.nbformat, nb.nbformat_minor = 4, 5
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags")
        cell["metadata"] = nbformat.from_dict({"tags": list(tags)} if tags else {})
        if cell.cell_type == "code":
            cell["outputs"] = [_clean_output(o) for o in _merge_streams(cell.get("outputs", []))]
            cell["outputs"] = [o for o in cell["outputs"] if o.output_type == "stream" or o.get("data") or o.output_type == "error"]
    stable_ids(nb)
    return nb


# ----------------------------------------------------------------------------------------------
# Step 4: the exercise notebook
# ----------------------------------------------------------------------------------------------


def replace_solution_blocks(source: str, where: str = "a cell") -> str:
    """Replace each BEGIN/END SOLUTION block by a stub line at the indent of its BEGIN marker."""
    out: list[str] = []
    inside = False
    for number, line in enumerate(source.split("\n"), start=1):
        stripped = line.strip()
        if stripped == BEGIN_MARK:
            if inside:
                raise BuildError(f"{where}, line {number}: BEGIN SOLUTION inside another solution block")
            inside = True
            out.append(line[: len(line) - len(line.lstrip())] + STUB_LINE)
        elif stripped == END_MARK:
            if not inside:
                raise BuildError(f"{where}, line {number}: END SOLUTION without BEGIN SOLUTION")
            inside = False
        elif not inside:
            out.append(line)
    if inside:
        raise BuildError(f"{where}: BEGIN SOLUTION is never closed by END SOLUTION")
    return "\n".join(out)


def solution_lines(source: str) -> list[str]:
    """The lines inside a cell's solution blocks (what must never reach an exercise notebook)."""
    lines, inside = [], False
    for line in source.split("\n"):
        if line.strip() == BEGIN_MARK:
            inside = True
        elif line.strip() == END_MARK:
            inside = False
        elif inside:
            lines.append(line)
    return lines


def _retitle(nb: NotebookNode, notebook_path: Path, note: str) -> None:
    """Point the first cell's badges at this variant and add a one-line note under them."""
    first = nb.cells[0]
    if first.cell_type != "markdown":
        raise BuildError("the first cell of a chapter must be its markdown title cell")
    source = refresh_managed_lines(first.source, notebook_path)
    lines = source.split("\n")
    at = next((i for i, line in enumerate(lines) if line.startswith("[![Open In Colab]")), 0)
    lines[at + 1 : at + 1] = ["", note]
    first["source"] = "\n".join(lines)


def make_exercises(full: NotebookNode, chapter: Chapter) -> NotebookNode:
    """The exercise notebook: solutions become stubs, `solution` cells go, outputs are cleared."""
    nb = copy.deepcopy(full)
    nb.cells = [c for c in nb.cells if SOLUTION_TAG not in c.get("metadata", {}).get("tags", [])]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell["source"] = replace_solution_blocks(cell.source)
            cell["outputs"] = []
            cell["execution_count"] = None
    _retitle(
        nb,
        chapter.exercises,
        "> **Exercise notebook.** Each solution is replaced by `...  # your code here`. Fill it in and run "
        "the `check(...)` cell under it: ✅ means your answer passed the hidden tests, ❌ says what is wrong.",
    )
    return nb


# ----------------------------------------------------------------------------------------------
# Step 5: the answer key
# ----------------------------------------------------------------------------------------------


def _heading(cell: NotebookNode) -> str | None:
    if cell.cell_type != "markdown":
        return None
    first = cell.source.lstrip().split("\n", 1)[0]
    return first if first.startswith("#") else None


def exercise_spans(nb: NotebookNode) -> dict[str, list[NotebookNode]]:
    """Exercise id -> its cells: the prompt, everything up to the next heading, `solution` cells included."""
    spans: dict[str, list[NotebookNode]] = {}
    current: str | None = None
    for cell in nb.cells:
        heading = _heading(cell)
        is_solution = SOLUTION_TAG in cell.get("metadata", {}).get("tags", [])
        if heading is not None and not is_solution:
            match = EXERCISE_HEADING.match(heading)
            current = match.group(1) if match else None
            if current in spans:
                raise BuildError(f"exercise {current} appears twice")
            if current:
                spans[current] = []
        if current:
            spans[current].append(cell)
    return spans


def make_answer_key(full: NotebookNode, chapter: Chapter) -> NotebookNode:
    """The answer key: the title cell, then each exercise's prompt, solution, check and output."""
    nb = copy.deepcopy(full)
    spans = exercise_spans(nb)
    nb.cells = [nb.cells[0]] + [cell for cells in spans.values() for cell in cells]
    _retitle(
        nb,
        chapter.solutions,
        f"> **Answer key** for the {len(spans)} exercises of this chapter: each prompt, a reference "
        "solution between the `BEGIN/END SOLUTION` markers, and the check's output. Open the full chapter "
        "for the lesson.",
    )
    return nb


# ----------------------------------------------------------------------------------------------
# The whole build
# ----------------------------------------------------------------------------------------------


def write_atomic(path: Path, text: str) -> None:
    """Write text to a temporary file beside `path`, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def notebook_text(nb: NotebookNode) -> str:
    """A notebook as the exact JSON text the pipeline commits (sorted keys, one-space indent)."""
    return nbformat.writes(nb, version=4) + "\n"


def write_notebook(nb: NotebookNode, path: Path) -> None:
    write_atomic(path, notebook_text(nb))


def variants_from_full(full: NotebookNode, chapter: Chapter) -> dict[Path, NotebookNode]:
    """The exercise notebook and the answer key, derived from an executed full notebook.

    Only the full notebook is paired with the chapter's .py: a learner who saves the exercise
    notebook in JupyterLab gets no stray .py written beside it.
    """
    variants = {chapter.exercises: make_exercises(full, chapter), chapter.solutions: make_answer_key(full, chapter)}
    for nb in variants.values():
        nb.metadata.pop("jupytext", None)
    return variants


def build(chapter: Chapter, log=print) -> None:
    """Sync, execute, normalise and write all three variants of one chapter."""
    if sync_source(chapter):
        log(f"{chapter.slug}: refreshed the managed badge and install lines in {relative(chapter.source)}")
    cells = read_source(chapter)
    log(f"{chapter.slug}: executing on the {config.CPU_KERNEL} kernel ...")
    full = normalise(execute(cells, cwd=config.CHAPTERS_DIR))
    write_notebook(full, chapter.full)
    for path, nb in variants_from_full(full, chapter).items():
        write_notebook(nb, path)
    # JupyterLab's jupytext refuses to open a paired notebook that is newer than its .py; the .py is the source.
    os.utime(chapter.source)
    log(f"{chapter.slug}: wrote {relative(chapter.full)}, {relative(chapter.exercises)}, {relative(chapter.solutions)}")
