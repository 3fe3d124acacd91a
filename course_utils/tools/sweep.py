"""Seed sweeps: where the thresholds of a chapter's training-dependent claims come from.

A claim such as `fine-tune >= scratch + 0.02: True` is printed in a compared cell, so it must hold on
every machine and every kernel. Its threshold is set from a sweep: the whole chapter runs once per
seed offset, every seed literal in its source shifted (`manual_seed(0)`, `seed=1`,
`default_rng(0)`, `LADDER_SEED = 1`, `setup()`'s seed...), and the quantities behind its claims are
recorded. The spec of a chapter lives in `sweeps/NN_slug.toml`:

    [[quantity]]
    name = "fine-tune - scratch, 50 labels"       # what the claim compares
    after = "transfer = {n: run_arms("             # record it after the first cell containing this
    value = "transfer[50]['fine-tune'] - transfer[50]['scratch']"

`course sweep 04 --seeds 5` runs the chapter once per seed offset, plus once more at offset 0 under
the second numerics of `portability.py` (so a quantity with no randomness in it still shows its
floating-point spread), prints per quantity every value with min, max and spread, and writes that
table to `sweeps/NN_slug.results.md`. The claim's comment in the chapter then reads

    # sweep: fine-tune - scratch, 50 labels 0.031..0.058 over 6 runs; claim >= 0.0

and `tests/test_sweeps.py` checks that the threshold keeps a margin of at least 2 x the spread from
the nearest value seen. Cached training steps (the pretrained bodies in data/cache) are not retrained.
"""

from __future__ import annotations

import json
import re
import statistics
import tomllib
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell

from course_utils import config
from course_utils.tools import pipeline

__all__ = [
    "CLAIM_COMMENT", "claim_comments", "comment_problem", "DEFAULT_SEEDS", "format_results", "OFFSET_STEP",
    "Quantity", "read_results", "read_spec", "read_table", "run_offset", "shift_seeds", "spec_path", "sweep",
    "sweep_notebook", "SweepComment", "SWEEPS_DIR",
]

SWEEPS_DIR = config.REPO_ROOT / "sweeps"
DEFAULT_SEEDS = 5
# Each offset moves every seed by a multiple of this, so shifted seeds never collide with the
# chapter's other seeds (0, 1, 2, 3, 42, ...).
OFFSET_STEP = 1009

# (pattern, replacement) pairs; \g<n> is the literal seed, OFFSET the sweep's offset.
_SEED_SITES = [
    (re.compile(r"\b(manual_seed|default_rng|RandomState|random\.seed|np\.random\.seed)\((\d+)\)"), r"\1(\2 + OFFSET)"),
    (re.compile(r"\bseed=(\d+)\b"), r"seed=\1 + OFFSET"),
    (re.compile(r"^([A-Z_]*SEED) = (\d+)$", re.MULTILINE), r"\1 = \2 + OFFSET"),
    (re.compile(r"^([A-Z_]*SEEDS) = \(([\d, ]+)\)$", re.MULTILINE), None),  # a tuple of seeds: each one moves
    (re.compile(r"\bsetup\(\)"), r"setup(seed=42 + OFFSET)"),
]

# A claim comment in a chapter source: "# sweep: <name> <min>..<max> over <n> <what>; claim <op> <threshold>".
CLAIM_COMMENT = re.compile(
    r"#\s*sweep:\s*(?P<name>.+?)\s+(?P<lo>-?[\d.]+(?:e-?\d+)?)\.\.(?P<hi>-?[\d.]+(?:e-?\d+)?)\s+over\s+(?P<n>\d+)\s+"
    r"(?P<what>[^;]+);\s*claim\s*(?P<op>>=|<=|>|<)\s*(?P<threshold>-?[\d.]+(?:e-?\d+)?)"
)


@dataclass(frozen=True)
class Quantity:
    name: str
    after: str
    value: str


@dataclass(frozen=True)
class SweepComment:
    """One `# sweep:` comment of a chapter source, parsed."""

    name: str
    lo: float
    hi: float
    runs: int
    op: str
    threshold: float

    @property
    def spread(self) -> float:
        return self.hi - self.lo

    @property
    def margin(self) -> float:
        """Distance from the threshold to the nearest value the sweep saw (negative: a seed fails)."""
        return self.lo - self.threshold if self.op in (">=", ">") else self.threshold - self.hi


def claim_comments(text: str) -> list[SweepComment]:
    """Every `# sweep:` comment in a chapter source."""
    return [
        SweepComment(m["name"], float(m["lo"]), float(m["hi"]), int(m["n"]), m["op"], float(m["threshold"]))
        for m in CLAIM_COMMENT.finditer(text)
    ]


def spec_path(chapter: pipeline.Chapter) -> Path:
    return SWEEPS_DIR / f"{chapter.slug}.toml"


def read_spec(chapter: pipeline.Chapter) -> list[Quantity]:
    """The quantities a chapter's sweep records (sweeps/NN_slug.toml)."""
    path = spec_path(chapter)
    if not path.exists():
        raise FileNotFoundError(f"{chapter.slug} has no sweep spec: write {pipeline.relative(path)}")
    quantities = [Quantity(**q) for q in tomllib.loads(path.read_text(encoding="utf-8"))["quantity"]]
    for q in quantities:
        if "|" in q.name:
            raise ValueError(f"{pipeline.relative(path)}: {q.name!r}: a name cannot hold '|' (it is a table cell)")
    return quantities


def shift_seeds(source: str, offset: int) -> str:
    """The cell source with every seed literal moved by `offset` (offset 0 keeps the numbers)."""
    for pattern, replacement in _SEED_SITES:
        if replacement is None:
            def shift_tuple(m):
                seeds = ", ".join(f"{int(n) + offset}" for n in m.group(2).replace(" ", "").split(",") if n)
                return f"{m.group(1)} = ({seeds},)"
            source = pattern.sub(shift_tuple, source)
        else:
            source = pattern.sub(replacement.replace("OFFSET", str(offset)), source)
    return source


def sweep_notebook(chapter: pipeline.Chapter, quantities: list[Quantity], offset: int) -> nbformat.NotebookNode:
    """The chapter's cells (solutions in place) with seeds shifted and a recording cell after each marker.

    The notebook stops after the last recording cell: what comes later cannot change the quantities.
    """
    nb = pipeline.read_source(chapter)
    cells = []
    pending = list(quantities)
    cells.append(new_code_cell("__sweep__ = {}"))
    for cell in nb.cells:
        if not pending:
            break  # nothing left to record: the rest of the chapter need not run
        if cell.cell_type == "code":
            cell.source = shift_seeds(cell.source, offset)
        cells.append(cell)
        here = [q for q in pending if cell.cell_type == "code" and q.after in cell.source]
        for q in here:
            cells.append(new_code_cell(f"__sweep__[{q.name!r}] = float({q.value})"))
            pending.remove(q)
    if pending:
        raise ValueError(f"no code cell of {chapter.slug} contains: {', '.join(repr(q.after) for q in pending)}")
    cells.append(new_code_cell("import json\nprint('SWEEP ' + json.dumps(__sweep__))"))
    nb.cells = cells
    return nb


def run_offset(chapter: pipeline.Chapter, quantities: list[Quantity], offset: int, env: dict | None = None) -> dict[str, float]:
    nb = sweep_notebook(chapter, quantities, offset)
    executed = pipeline.execute(nb, cwd=config.CHAPTERS_DIR, timeout=1800, env=env)
    for out in executed.cells[-1].outputs:
        if out.get("name") == "stdout" and "SWEEP " in out.text:
            return json.loads(out.text.split("SWEEP ", 1)[1])
    raise RuntimeError(f"{chapter.slug}: the sweep run printed no results")


def format_results(chapter: pipeline.Chapter, labels: list[str], results: list[dict[str, float]]) -> str:
    """A markdown table: one row per quantity, one column per run, then min, max, spread and mean."""
    names = list(results[0])
    head = "| quantity | " + " | ".join(labels) + " | min | max | spread | mean |"
    rows = [f"# Seed sweep of {chapter.slug} ({len(labels)} runs, `course sweep {chapter.number}`)", "",
            "Columns: the seed offset of each run; the last run repeats offset 0 under second numerics.", "",
            head, "|" + "---|" * (len(labels) + 5)]
    for name in names:
        values = [r[name] for r in results]
        lo, hi = min(values), max(values)
        cells = " | ".join(f"{v:.4g}" for v in values)
        rows.append(f"| {name} | {cells} | {lo:.4g} | {hi:.4g} | {hi - lo:.4g} | {statistics.fmean(values):.4g} |")
    return "\n".join(rows) + "\n"


def sweep(chapter: pipeline.Chapter, seeds: int = DEFAULT_SEEDS, log=print) -> str:
    """Run the chapter `seeds` times with shifted seeds; return and save the results table."""
    from course_utils.tools import portability

    quantities = read_spec(chapter)
    runs = [(str(k * OFFSET_STEP), k * OFFSET_STEP, None) for k in range(seeds)]
    runs.append(("0, second numerics", 0, portability.kernel_env(portability.second_numerics_env())))
    results = []
    for label, offset, env in runs:
        log(f"{chapter.slug}: seed offset {label} ...")
        results.append(run_offset(chapter, quantities, offset, env))
        log("  " + ", ".join(f"{k} {v:.4g}" for k, v in results[-1].items()))
    table = format_results(chapter, [label for label, _, _ in runs], results)
    pipeline.write_atomic(SWEEPS_DIR / f"{chapter.slug}.results.md", table)
    return table


def read_results(chapter: pipeline.Chapter) -> dict[str, tuple[float, float, int]]:
    """name -> (min, max, runs) from the chapter's saved sweep table; empty if it has none."""
    return read_table(SWEEPS_DIR / f"{chapter.slug}.results.md")


def read_table(path: Path) -> dict[str, tuple[float, float, int]]:
    """name -> (min, max, runs) from a saved sweep table (columns: quantity, one per run, min, max, spread, mean)."""
    if not path.exists():
        return {}
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 6 or cells[0] in ("quantity", "") or set(cells[1]) <= {"-"}:
            continue
        rows[cells[0]] = (float(cells[-4]), float(cells[-3]), len(cells) - 5)
    return rows


def comment_problem(comment: SweepComment, results: dict[str, tuple[float, float, int]]) -> str | None:
    """What is wrong with a claim's sweep comment, or None: it must match the saved sweep and keep its margin."""
    if comment.name not in results:
        return f"no quantity {comment.name!r} in the saved sweep: run `course sweep` with it in the spec"
    lo, hi, runs = results[comment.name]
    if runs != comment.runs or not (_same(lo, comment.lo) and _same(hi, comment.hi)):
        return f"{comment.name!r}: the comment says {comment.lo}..{comment.hi} over {comment.runs}, the sweep {lo:.4g}..{hi:.4g} over {runs}"
    if comment.runs < 5:
        return f"{comment.name!r}: {comment.runs} runs; a threshold needs at least 5"
    if comment.margin < 2 * comment.spread or comment.margin <= 0:
        return (f"{comment.name!r}: threshold {comment.threshold} is {comment.margin:.4g} from the nearest value seen, "
                f"less than 2 x the spread {comment.spread:.4g}")
    return None


def _same(saved: float, written: float) -> bool:
    """The comment's number is the saved one, as `format_results` prints it (4 significant digits)."""
    return float(f"{saved:.4g}") == float(f"{written:.4g}")
