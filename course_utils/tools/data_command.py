"""`course data [NAME ...] [--list] [--force]`: prepare the offline datasets, or list them.

`course_utils.tools.cli` calls `run`; `python -m course_utils.tools.data_command` does the same without the CLI.
"""

from __future__ import annotations

import argparse
import sys
import time

from course_utils.data import cache
from course_utils.data.prepare import dataset_table, prepare
from course_utils.data.registry import DATASETS

__all__ = ["COLUMNS", "format_table", "main", "run", "summary"]

COLUMNS = ("name", "source", "size", "licence", "status")


def run(names: list[str], list_only: bool = False, force: bool = False) -> int:
    """Prepare the named datasets (all when `names` is empty) or, with `list_only`, list them.

    Prints a progress bar, then a summary; returns the exit code: 0 when every dataset is ready,
    1 when some could not be prepared (each with the reasons), 2 for an unknown name.
    """
    unknown = [name for name in names if name not in DATASETS]
    if unknown:
        print(f"course data: unknown dataset(s) {', '.join(unknown)}; known: {', '.join(DATASETS)}", file=sys.stderr)
        return 2
    if list_only:
        print(format_table(dataset_table()))
        return 0
    started = time.perf_counter()
    results = prepare(names or None, progress=True, force=force)
    seconds = time.perf_counter() - started
    for failed in (r for r in results if r.status == "failed"):
        print(f"\n{failed.error}", file=sys.stderr)
    print(summary(results, seconds))
    return 1 if any(r.status == "failed" for r in results) else 0


def summary(results: list, seconds: float) -> str:
    """One line: how many datasets were prepared now, were valid already, or failed, and the cache size."""
    count = {s: sum(r.status == s for r in results) for s in ("prepared", "ready", "failed")}
    rows = [row for row in dataset_table() if row["name"] in {r.name for r in results}]
    size = cache.human_size(sum(row["bytes"] for row in rows))
    return (
        f"course data: {len(results) - count['failed']}/{len(results)} datasets ready "
        f"({count['prepared']} prepared now, {count['ready']} already valid, {count['failed']} failed) "
        f"in {seconds:.1f} s; {size} in {cache.cache_dir()}"
    )


def format_table(rows: list[dict]) -> str:
    """The rows of dataset_table() as an aligned plain-text table."""
    widths = {c: max(len(c), *(len(str(row[c])) for row in rows)) for c in COLUMNS}
    lines = ["  ".join(c.ljust(widths[c]) for c in COLUMNS).rstrip()]
    lines.append("  ".join("-" * widths[c] for c in COLUMNS))
    lines += ["  ".join(str(row[c]).ljust(widths[c]) for c in COLUMNS).rstrip() for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="course data", description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="datasets to prepare (default: all)")
    parser.add_argument("--list", action="store_true", help="list each dataset, its source, size, licence and status")
    parser.add_argument("--force", action="store_true", help="prepare again even when the cache is valid")
    args = parser.parse_args(argv)
    return run(args.names, list_only=args.list, force=args.force)


if __name__ == "__main__":
    sys.exit(main())
