"""The `course` command: doctor, data, build, grade.

    course doctor                 what is installed, which device, which kernels, is the data ready
    course data [NAME ...]        prepare the offline datasets (what `make data` runs); --list to list them
    course build [CHAPTER ...]    regenerate the three notebook variants of each chapter (what `make build` runs)
    course grade NOTEBOOK         execute a learner's exercise notebook and print a score table
    course compare [CHAPTER ...]  rerun each chapter under other numerics and diff it with the stored outputs
    course sweep CHAPTER          rerun a chapter over shifted seeds: the spread behind its claims' thresholds

Errors a user can fix (an unknown chapter, an unreadable notebook) print one line and exit with 2.
"""

from __future__ import annotations

import argparse
import platform
import sys
from importlib import metadata
from pathlib import Path

from course_utils import config

__all__ = [
    "cmd_build", "cmd_compare", "cmd_data", "cmd_doctor", "cmd_grade", "cmd_sweep", "main", "make_parser",
]


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "missing"


def _fail(message: str) -> int:
    print(f"course: error: {message}", file=sys.stderr)
    return 2


def cmd_doctor(args: argparse.Namespace) -> int:
    """Report versions, device, kernels and data; exit 1 if something needs `make setup`."""
    import torch
    from jupyter_client.kernelspec import KernelSpecManager

    from course_utils.data import readiness
    from course_utils.env import get_device

    problems = []
    print(f"Python        {platform.python_version()} ({sys.executable})")
    for package in ("torch", "torchvision", "fastai", "course-utils"):
        print(f"{package:<13} {_version(package)}")
    try:
        device = get_device()
        print(f"device        {device.type} (COURSE_DEVICE picks it; CUDA available: {torch.cuda.is_available()})")
    except ValueError as err:
        problems.append(str(err))
        print(f"device        {err}")
    specs = KernelSpecManager().find_kernel_specs()
    for kernel in (config.CPU_KERNEL, config.GPU_KERNEL):
        state = "installed" if kernel in specs else "MISSING: run `make setup`"
        if kernel not in specs:
            problems.append(f"kernel {kernel} is missing")
        print(f"kernel        {kernel}: {state}")
    ready, total, missing = readiness()
    print(f"data          {ready}/{total} datasets ready" + (f"; run `make data` for: {', '.join(missing)}" if missing else ""))
    if missing:
        problems.append("some datasets are not prepared")
    print("doctor: all good" if not problems else f"doctor: {len(problems)} problem(s) found")
    return 0 if not problems else 1


def cmd_data(args: argparse.Namespace) -> int:
    from course_utils.tools import data_command as command

    return command.run(args.names, list_only=args.list, force=args.force)


def cmd_build(args: argparse.Namespace) -> int:
    from course_utils.tools import pipeline

    try:
        chapters = [pipeline.find_chapter(n) for n in args.chapters] if args.chapters else pipeline.all_chapters()
    except pipeline.ChapterNotFound as err:
        return _fail(str(err))
    from course_utils.tools import binder, readme

    try:
        for chapter in chapters:
            pipeline.build(chapter)
        for path in readme.sync_readmes():
            print(f"{pipeline.relative(path)}: refreshed its generated tables")
        for path in binder.sync():
            print(f"{pipeline.relative(path)}: regenerated (Binder)")
    except pipeline.BuildError as err:
        return _fail(str(err))
    return 0


def cmd_grade(args: argparse.Namespace) -> int:
    from course_utils.tools import grade, pipeline

    try:
        results = grade.grade(Path(args.notebook), kernel_name=args.kernel)
    except (grade.GradeError, pipeline.BuildError) as err:
        return _fail(str(err))
    print(grade.format_table(results, Path(args.notebook).name))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """What `make test` checks per chapter: other numerics, the same stored outputs (portability.py)."""
    from course_utils.tools import pipeline, portability

    try:
        chapters = [pipeline.find_chapter(n) for n in args.chapters] if args.chapters else pipeline.all_chapters()
    except pipeline.ChapterNotFound as err:
        return _fail(str(err))
    extra = {} if args.same_numerics else portability.second_numerics_env()
    print("second numerics:", " ".join(f"{k}={v}" for k, v in extra.items()) or "none (this machine's own)")
    differing = 0
    for chapter in chapters:
        run = portability.run_chapter(chapter, extra)
        differing += len(run.differences)
        print(f"{chapter.slug}: {len(run.differences)} differing cell(s) in {run.seconds:.0f} s")
        for difference in run.differences:
            print(difference, end="\n\n")
    return 1 if differing else 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from course_utils.tools import pipeline, sweep

    try:
        chapter = pipeline.find_chapter(args.chapter)
        print(sweep.sweep(chapter, seeds=args.seeds))
    except (pipeline.ChapterNotFound, FileNotFoundError, ValueError) as err:
        return _fail(str(err))
    return 0


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="course", description="Tools for the executable deep-learning course.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("doctor", help="check Python, torch, fastai, the device, the kernels and the data").set_defaults(run=cmd_doctor)

    data = sub.add_parser("data", help="prepare the offline datasets into the cache (data/cache or $COURSE_DATA)")
    data.add_argument("names", nargs="*", help="datasets to prepare (default: all)")
    data.add_argument("--list", action="store_true", help="list each dataset, its source, size, licence and status")
    data.add_argument("--force", action="store_true", help="prepare again even when the cache is valid")
    data.set_defaults(run=cmd_data)

    build = sub.add_parser("build", help="regenerate the full, exercise and answer-key notebooks from chapters/*.py")
    build.add_argument("chapters", nargs="*", help="chapter numbers or slugs (default: all)")
    build.set_defaults(run=cmd_build)

    grade = sub.add_parser("grade", help="execute an exercise notebook and print a score table")
    grade.add_argument("notebook", help="path to the notebook, e.g. chapters/exercises/02_autograd.ipynb")
    grade.add_argument("--kernel", default=config.CPU_KERNEL, help=f"Jupyter kernel to run it on (default {config.CPU_KERNEL})")
    grade.set_defaults(run=cmd_grade)

    compare = sub.add_parser("compare", help="rerun chapters under other numerics and diff with the stored outputs")
    compare.add_argument("chapters", nargs="*", help="chapter numbers or slugs (default: all)")
    compare.add_argument("--same-numerics", action="store_true", help="rerun with this machine's own numerics")
    compare.set_defaults(run=cmd_compare)

    sweep = sub.add_parser("sweep", help="rerun a chapter over shifted seeds and tabulate its claims' quantities")
    sweep.add_argument("chapter", help="chapter number or slug; its spec is sweeps/NN_slug.toml")
    sweep.add_argument("--seeds", type=int, default=5, help="how many seed offsets (default 5), plus one run under second numerics")
    sweep.set_defaults(run=cmd_sweep)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = make_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
