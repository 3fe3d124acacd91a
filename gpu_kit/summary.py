"""The short report of a run.sh run: its steps, and per notebook and kernel the cells passed and the seconds.

run.sh appends one line per step to OUT/steps.tsv (step, status, seconds, note) and has pytest write
OUT/junit-<pass>.xml for each nbval pass; this reads them and writes OUT/summary.txt and
OUT/summary.json. It never fails on a missing or broken file (it says so instead), so a run that
stopped early still leaves a summary. Standard library only.

    python3 -m gpu_kit.summary OUT [--bundle NAME]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

PASSES = ("gpu", "cpu")  # junit-gpu.xml (course-gpu kernel) and junit-cpu.xml (course-cpu kernel)
_NOTEBOOK = re.compile(r"(\d\d_[A-Za-z0-9_]+)\.ipynb")
_COLOUR = re.compile(r"(\x1b|#x1B)\[[0-9;]*m")  # ANSI colours, as pytest writes them into junit xml


def read_steps(path: Path) -> list[dict]:
    """The rows of steps.tsv: step, status (ok, FAILED, skipped, ...), seconds, note."""
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        step, status, seconds, note = (line.split("\t") + ["", "", ""])[:4]
        rows.append({"step": step, "status": status, "seconds": seconds, "note": note})
    return rows


def read_junit(path: Path) -> tuple[dict[str, dict], list[str]]:
    """Per notebook: passed, failed, error, skipped cell counts and summed seconds; and the failures.

    An nbval item's classname holds the notebook ("chapters.01_tensors.ipynb"); a collection error
    or an unreadable file counts as an error of the notebook "(run)".
    """
    counts: dict[str, dict] = defaultdict(lambda: {"passed": 0, "failed": 0, "error": 0, "skipped": 0, "seconds": 0.0})
    failures: list[str] = []
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as err:
        counts["(run)"]["error"] += 1
        return dict(counts), [f"{path.name}: {err}"]
    for case in root.iter("testcase"):
        where = f"{case.get('classname', '')}::{case.get('name', '')}"
        match = _NOTEBOOK.search(where)
        notebook = match.group(1) if match else "(run)"
        row = counts[notebook]
        row["seconds"] += float(case.get("time") or 0)
        outcome = next((c for c in case if c.tag in ("failure", "error", "skipped")), None)
        if outcome is None:
            row["passed"] += 1
            continue
        kind = {"failure": "failed", "error": "error", "skipped": "skipped"}[outcome.tag]
        row[kind] += 1
        if kind != "skipped":
            failures.append(f"{notebook} {case.get('name', '')}: {kind}: {_first_lines(outcome.get('message') or outcome.text or '')}")
    return dict(counts), failures


def _first_lines(message: str, count: int = 2) -> str:
    """The first lines of a failure message without colour codes ("Notebook cell execution failed | Cell 5: ...")."""
    lines = [line.strip() for line in _COLOUR.sub("", message).splitlines() if line.strip()]
    return " | ".join(lines[:count])[:200]


def summarise(out: Path, bundle: str = "") -> tuple[str, dict]:
    """The text of the summary and the same as a dict (written to summary.json)."""
    steps = read_steps(out / "steps.tsv")
    header = (out / "header.txt").read_text().strip() if (out / "header.txt").is_file() else ""
    lines = [f"GPU kit summary{f' of bundle {bundle}' if bundle else ''} ({out})"]
    if header:
        lines += [header, ""]
    lines.append(f"{'step':<22}{'status':<10}{'seconds':>8}  note")
    lines += [f"{s['step']:<22}{s['status']:<10}{s['seconds']:>8}  {s['note']}" for s in steps]
    result = {"bundle": bundle, "steps": steps, "passes": {}}
    ran_any = False
    for name in PASSES:
        junit = out / f"junit-{name}.xml"
        if not junit.exists():
            continue
        ran_any = True
        counts, failures = read_junit(junit)
        result["passes"][name] = {"notebooks": counts, "failures": failures}
        lines += ["", f"nbval on course-{name} (cells)", f"{'notebook':<16}{'passed':>8}{'failed':>8}{'error':>7}{'skipped':>9}{'seconds':>9}"]
        for notebook in sorted(counts):
            c = counts[notebook]
            lines.append(f"{notebook:<16}{c['passed']:>8}{c['failed']:>8}{c['error']:>7}{c['skipped']:>9}{c['seconds']:>9.1f}")
        lines += [f"  {f}" for f in failures[:20]]
        if len(failures) > 20:
            lines.append(f"  ... and {len(failures) - 20} more (see the log)")
    bad_steps = [s["step"] for s in steps if s["status"] not in ("ok", "skipped", "dry-run")]
    bad_cells = sum(c["failed"] + c["error"] for p in result["passes"].values() for c in p["notebooks"].values())
    reasons = ([f"failed steps: {', '.join(bad_steps)}"] if bad_steps else []) + (
        [f"{bad_cells} failing cell(s)"] if bad_cells else []
    )
    dry_run = any(s["status"] == "dry-run" for s in steps)
    if not ran_any and not dry_run:
        reasons.append("no nbval pass ran")
    verdict = "FAIL" if reasons else "DRY-RUN OK" if dry_run and not ran_any else "PASS"
    lines += ["", f"RESULT: {verdict}" + (f" ({'; '.join(reasons)})" if reasons else "")]
    result["result"] = verdict
    return "\n".join(lines), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m gpu_kit.summary", description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--bundle", default="")
    args = parser.parse_args(argv)
    text, result = summarise(args.out, args.bundle)
    (args.out / "summary.txt").write_text(text + "\n")
    (args.out / "summary.json").write_text(json.dumps(result, indent=1) + "\n")
    print(text)
    return 0  # the verdict is in summary.json; a non-zero status means this script itself failed


if __name__ == "__main__":
    sys.exit(main())
