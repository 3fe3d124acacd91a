"""Requirement closures: which distributions a bundle must carry, and whether an installed set is complete.

Both questions are one walk over `Requires-Dist` metadata (`resolve`): start from some distributions,
follow each requirement whose marker holds on the GPU machine's Python (extras included, e.g.
`uvicorn[standard]`), and stop at what the GPU machine already provides (`Provided`). `make gpu-bundle`
walks from what the chapters import, fetching each wheel's metadata as it goes (bundle.py); run.sh walks
from every wheel installed into the private folder and fails when a requirement is met nowhere:

    python -m gpu_kit.deps check SITE --bundle BUNDLE [--provided FILE | --provided this-python]

needs `packaging` (the course environment and the GPU machine both have it).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from email.parser import HeaderParser
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import InvalidVersion, Version

from gpu_kit import config, manifest

ROOT = "(root)"  # the `needed_by` entry of a distribution asked for directly


def normalise(name: str) -> str:
    """PEP 503 name: 'Jinja2' -> 'jinja2', 'typing_extensions' -> 'typing-extensions'."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class Provided:
    """What the GPU machine already has: exact names, `family-*` patterns, and versions where known."""

    names: frozenset[str] = frozenset()
    patterns: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)

    def has(self, name: str) -> bool:
        name = normalise(name)
        return name in self.names or any(fnmatch.fnmatchcase(name, p) for p in self.patterns)

    def version(self, name: str) -> str | None:
        return self.versions.get(normalise(name))

    @classmethod
    def from_lines(cls, lines: Iterable[str]) -> Provided:
        """`name`, `name==version` or `family-*` per line; `#` starts a comment."""
        names, patterns, versions = set(), [], {}
        for line in lines:
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            name, _, version = line.partition("==")
            name = normalise(name.strip())
            if "*" in name:
                patterns.append(name)
                continue
            names.add(name)
            if version.strip():
                versions[name] = version.strip()
        return cls(frozenset(names), tuple(patterns), versions)

    @classmethod
    def from_file(cls, path: Path) -> Provided:
        return cls.from_lines(path.read_text().splitlines())

    @classmethod
    def from_distributions(cls, pairs: Iterable[tuple[str, str]]) -> Provided:
        """From (name, version) pairs, e.g. what importlib.metadata finds on the GPU machine."""
        versions = {normalise(name): version for name, version in pairs}
        return cls(frozenset(versions), (), versions)


def applicable(requires: Iterable[str], extras: Iterable[str] = (), env: Mapping[str, str] | None = None) -> list[Requirement]:
    """The requirements (Requires-Dist strings) that hold on `env` when `extras` are asked for."""
    env = dict(config.TARGET_MARKERS if env is None else env)
    wanted = ["", *sorted(extras)]
    kept = []
    for text in requires:
        requirement = Requirement(text)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({**env, "extra": extra}) for extra in wanted):
            kept.append(requirement)
    return kept


def satisfies(version: str, specifier: SpecifierSet) -> bool:
    """True when `version` meets the specifier (pre-releases allowed; an unparsable version passes)."""
    try:
        return specifier.contains(Version(version), prereleases=True)
    except InvalidVersion:
        return True


@dataclass
class Closure:
    """The result of `resolve`: every distribution reached, by how the GPU machine would get it."""

    bundled: dict[str, str] = field(default_factory=dict)  # name -> version, carried in the bundle
    extras: dict[str, set[str]] = field(default_factory=dict)  # name -> extras asked for
    needed_by: dict[str, set[str]] = field(default_factory=dict)  # name -> the distributions requiring it
    provided: set[str] = field(default_factory=set)  # reached, but on the GPU machine already
    deferred: set[str] = field(default_factory=set)  # reached, left out on purpose (config.DEFERRED)
    missing: set[str] = field(default_factory=set)  # reached, but found nowhere
    conflicts: list[str] = field(default_factory=list)  # "A requires B<2, but B is 2.1"


RequiresOf = Callable[[str, SpecifierSet], "tuple[str, list[str]] | None"]


def resolve(
    roots: Iterable[str],
    requires_of: RequiresOf,
    provided: Provided,
    deferred: Iterable[str] = (),
    env: Mapping[str, str] | None = None,
) -> Closure:
    """Walk the requirements from `roots` (requirement strings, e.g. "nbval" or "uvicorn[standard]").

    `requires_of(name, specifier)` returns (version, Requires-Dist lines) of the distribution that
    would be bundled, or None when there is none. A distribution the GPU machine provides is not
    walked into; one named in `deferred` is left out when it is only reached as a dependency.
    """
    closure = Closure()
    deferred = {normalise(d) for d in deferred}
    queue: list[tuple[str, Requirement]] = [(ROOT, Requirement(text)) for text in roots]
    requires: dict[str, list[str]] = {}  # Requires-Dist of each bundled distribution
    walked: dict[str, set[str]] = {}  # name -> extras whose requirements are queued ("" is the base)
    while queue:
        parent, requirement = queue.pop(0)
        name = normalise(requirement.name)
        closure.needed_by.setdefault(name, set()).add(parent)
        if provided.has(name):
            closure.provided.add(name)
            known = provided.version(name)
            if known and requirement.specifier and not satisfies(known, requirement.specifier):
                closure.conflicts.append(f"{parent} requires {requirement}, the GPU machine has {name} {known}")
            continue
        if name in deferred and parent != ROOT and name not in closure.bundled:  # roots are walked first
            closure.deferred.add(name)
            continue
        if name in closure.missing:
            continue
        if name not in closure.bundled:
            found = requires_of(name, requirement.specifier)
            if found is None:
                closure.missing.add(name)
                continue
            closure.bundled[name], requires[name] = found
            walked[name], closure.extras[name] = set(), set()
        version = closure.bundled[name]
        if requirement.specifier and not satisfies(version, requirement.specifier):
            closure.conflicts.append(f"{parent} requires {requirement}, the bundle has {name} {version}")
        closure.extras[name] |= set(requirement.extras)
        for extra in sorted({"", *requirement.extras} - walked[name]):
            walked[name].add(extra)
            queue.extend((name, r) for r in _requirements_for(requires[name], extra, env))
    return closure


def _requirements_for(requires: list[str], extra: str, env: Mapping[str, str] | None) -> list[Requirement]:
    """The requirements the base ("") needs, or those that only `extra` adds."""
    if not extra:
        return applicable(requires, (), env)
    base = {str(r) for r in applicable(requires, (), env)}
    return [r for r in applicable(requires, (extra,), env) if str(r) not in base]


# ------------------------------------------------------------------------------------------------
# Checking an installed folder (run.sh)
# ------------------------------------------------------------------------------------------------


def installed_metadata(site: Path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, Requires-Dist lines) of every distribution installed in `site`."""
    found = {}
    for meta in sorted(site.glob("*.dist-info/METADATA")):
        headers = HeaderParser().parsestr(meta.read_text(encoding="utf-8", errors="replace"))
        found[normalise(headers["Name"])] = (headers["Version"], headers.get_all("Requires-Dist") or [])
    return found


def check_installed(
    installed: Mapping[str, tuple[str, list[str]]], provided: Provided, deferred: Iterable[str] = ()
) -> Closure:
    """Every requirement of every installed distribution, met by the folder or by the GPU machine.

    The result's `missing` must be empty; `deferred` lists the left-out dependencies that were reached.
    """
    return resolve(
        installed.keys(),
        lambda name, _spec: installed.get(name),
        provided,
        deferred,
    )


def this_python(exclude: Iterable[Path]) -> Provided:
    """The distributions this interpreter sees outside the given folders (the GPU machine's own)."""
    from importlib import metadata

    excluded = {Path(p).resolve() for p in exclude}
    paths = [p for p in sys.path if p and Path(p).resolve() not in excluded]
    return Provided.from_distributions(
        (d.metadata["Name"], d.version) for d in metadata.distributions(path=paths) if d.metadata["Name"]
    )


def report(closure: Closure, deferred_reasons: Mapping[str, str]) -> tuple[bool, list[str]]:
    """(complete, lines to print) for a check: missing requirements fail, conflicts only warn."""
    lines = [
        f"{len(closure.bundled)} installed distributions; {len(closure.provided)} requirements met by the GPU "
        f"machine's own packages"
    ]
    for name in sorted(closure.deferred):
        lines.append(f"deferred: {name} (needed by {', '.join(sorted(closure.needed_by[name]))}): "
                     f"{deferred_reasons.get(name, 'left out on purpose')}")
    for text in closure.conflicts:
        lines.append(f"warning: {text}")
    for name in sorted(closure.missing):
        lines.append(f"MISSING: {name}, needed by {', '.join(sorted(closure.needed_by[name]))}")
    return not closure.missing, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpu_kit.deps", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="check that every requirement of the wheels installed in SITE is met")
    check.add_argument("site", type=Path)
    check.add_argument("--bundle", type=Path, required=True, help="the bundle folder (its manifest names the deferred ones)")
    check.add_argument("--provided", default=str(config.GPU_MACHINE_LIST),
                       help="a package list file, or 'this-python' for what this interpreter has outside SITE")
    args = parser.parse_args(argv)

    info = json.loads((args.bundle / config.MANIFEST).read_text())
    if args.provided == "this-python":
        provided = this_python(exclude=[args.site, config.REPO_ROOT])
        print(f"checking against this Python's own {len(provided.names)} distributions ({sys.executable})")
    else:
        provided = Provided.from_file(Path(args.provided))
        print(f"checking against the package list {args.provided}")
    deferred = info.get("deferred", {})
    ok, lines = report(check_installed(installed_metadata(args.site), provided, deferred), deferred)
    print("\n".join(lines))
    print("dependency check:", "complete" if ok else "INCOMPLETE")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
