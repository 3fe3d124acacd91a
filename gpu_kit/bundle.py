"""`make gpu-bundle`: pack what a bare GPU machine needs to run nbval on the chapters, one bundle per group.

For each bundle of config.BUNDLES this writes .gpu/<bundle>/ (git-ignored):

    wheels.tar.xz    the distributions the chapters and nbval need that the GPU machine lacks
                     (gpu_machine.txt), with their requirement closure, for CPython 3.12 manylinux
                     x86-64: wheels re-zipped without compression, then xz (archive.py)
    data.tar.xz      the prepared datasets the chapters read, minus those the GPU machine rebuilds
    manifest.json    chapters, wheels, datasets carried and rebuilt, every file's size and sha256

then prints each bundle's size alone and with the working tree, and fails when one is over the limit
of a call to the GPU machine (config.LIMIT_BYTES). Run with the course environment's Python
(it reads the registry, the installed versions and requirements.txt):

    .venv/bin/python -m gpu_kit.bundle [BUNDLE ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet

from gpu_kit import archive, config, datasets, deps, imports, manifest
from gpu_kit.wheels import WheelCache, course_version, requirement_pins, wheel_metadata

MIB = 2**20


# ------------------------------------------------------------------------------------------------
# Chapters and the split
# ------------------------------------------------------------------------------------------------


def chapter_slugs(chapters_dir: Path = config.REPO_ROOT / "chapters") -> list[str]:
    """The chapters with a stored notebook: ["01_tensors", "02_autograd", ...]."""
    return sorted(p.stem for p in chapters_dir.glob("[0-9][0-9]_*.ipynb"))


def assign(slugs: list[str], bundles: dict[str, tuple[str, ...]]) -> dict[str, list[str]]:
    """Bundle name -> its chapter slugs. Every chapter must be in exactly one bundle; no bundle may be empty."""
    by_number = {slug[:2]: slug for slug in slugs}
    result: dict[str, list[str]] = {}
    seen: dict[str, str] = {}
    for name, numbers in bundles.items():
        for number in numbers:
            if number in seen:
                raise ValueError(f"chapter {number} is in both bundles {seen[number]} and {name}")
            seen[number] = name
        result[name] = [by_number[n] for n in numbers if n in by_number]
        if not result[name]:
            raise ValueError(f"bundle {name} has none of its chapters {', '.join(numbers)} in chapters/")
    left = sorted(set(by_number) - set(seen))
    if left:
        raise ValueError(f"chapter(s) {', '.join(by_number[n] for n in left)} in no bundle: add them to gpu_kit/config.py BUNDLES")
    return result


# ------------------------------------------------------------------------------------------------
# Wheels
# ------------------------------------------------------------------------------------------------


def bundle_roots(slugs: list[str]) -> tuple[list[str], set[str]]:
    """(distributions to start the closure from, every module the chapters may import)."""
    modules: set[str] = set()
    for slug in slugs:
        modules |= imports.chapter_modules(config.REPO_ROOT / "chapters" / f"{slug}.py")
    dists = imports.distributions(modules, metadata.packages_distributions())
    roots = sorted({deps.normalise(d) for d in dists} | set(config.RUNNER_DISTRIBUTIONS))
    return roots, modules


def check_deferred_unused(modules: set[str], deferred: set[str]) -> None:
    """Import every module the chapters may import, in a fresh course interpreter, and fail when that
    loads a distribution the bundle leaves out (config.DEFERRED)."""
    if not deferred:
        return
    probe = (
        "import importlib, json, sys\n"
        "failed = {}\n"
        "for m in json.loads(sys.argv[1]):\n"
        "    try: importlib.import_module(m)\n"
        "    except Exception as err: failed[m] = repr(err)\n"
        "print(json.dumps({'loaded': sorted({k.split('.')[0] for k in sys.modules}), 'failed': failed}))\n"
    )
    env = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", probe, json.dumps(sorted(modules))], capture_output=True, text=True,
                          env=env, cwd=config.REPO_ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"importing the chapters' modules failed:\n{done.stderr[-2000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    owners = metadata.packages_distributions()
    loaded = {deps.normalise(d) for top in result["loaded"] for d in owners.get(top, [])}
    used = sorted(deferred & loaded)
    if used:
        raise RuntimeError(f"these chapters load {', '.join(used)}, which gpu_kit/config.py DEFERRED leaves out")
    if result["failed"]:
        print(f"  note: could not import {', '.join(sorted(result['failed']))} here (not needed for the check)")


def venv_requires(name: str, _specifier: SpecifierSet) -> tuple[str, list[str]] | None:
    """A distribution's version and requirements as installed in the course environment (a fast guess)."""
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    return dist.version, dist.requires or []


def resolve_wheels(roots: list[str], deferred: set[str], provided: deps.Provided, cache: WheelCache) -> tuple[deps.Closure, dict[str, Path]]:
    """The closure of the roots from the wheels' own metadata, downloading what the cache lacks."""
    pins = requirement_pins()
    guess = deps.resolve(roots, venv_requires, provided, deferred)
    versions = {n: course_version(n, pins) for n in sorted(guess.bundled)}
    wanted = [f"{n}=={v}" for n, v in versions.items() if v and cache.find(n, v) is None]
    if wanted:
        try:
            cache.download(wanted)  # one pip call for what the course environment predicts
        except RuntimeError as err:
            print(f"  note: the batch download failed, fetching one by one ({str(err).splitlines()[0]})")
    found: dict[str, Path] = {}

    def requires_of(name: str, specifier: SpecifierSet) -> tuple[str, list[str]]:
        wheel = cache.fetch(name, course_version(name, pins), specifier)
        _, version, requires = wheel_metadata(wheel)
        found[name] = wheel
        return version, requires

    return deps.resolve(roots, requires_of, provided, deferred), found


# ------------------------------------------------------------------------------------------------
# One bundle
# ------------------------------------------------------------------------------------------------


def build_bundle(name: str, slugs: list[str], provided: deps.Provided, cache: WheelCache) -> dict:
    """Write .gpu/<name>/ (wheels, data archive, manifest) and return the manifest."""
    print(f"== {name}: {', '.join(slugs)}", flush=True)
    folder = config.BUNDLES_DIR / name
    folder.mkdir(parents=True, exist_ok=True)
    previous = manifest.read(folder) if (folder / config.MANIFEST).is_file() else {}

    roots, modules = bundle_roots(slugs)
    deferred = {d for d in config.DEFERRED if d not in roots}
    check_deferred_unused(modules, deferred)
    closure, wheels = resolve_wheels(roots, deferred, provided, cache)
    if closure.missing:
        raise RuntimeError(f"no wheel found for {', '.join(sorted(closure.missing))}")
    for text in closure.conflicts:
        print(f"  warning: {text}")
    wheel_list, wheel_key = pack_wheels(folder, closure, wheels, previous)
    data, rebuilt = pack_data(folder, slugs, previous)
    for stale in {p.name for p in folder.iterdir()} - {config.MANIFEST, *config.ARCHIVES.values()}:
        path = folder / stale
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    info = manifest.write(folder, {
        "bundle": name,
        "chapters": slugs,
        "notebooks": [f"chapters/{s}.ipynb" for s in slugs],
        "target": {"python": config.TARGET_PYTHON, "platforms": list(config.TARGET_PLATFORMS)},
        "roots": roots,
        "modules": sorted(imports.third_party(modules)),  # run.sh imports these first
        "wheels": wheel_list,
        "wheels_key": wheel_key,
        "provided_by_gpu_machine": sorted(closure.provided),
        "deferred": {d: config.DEFERRED[d] for d in sorted(closure.deferred)},
        "data": data,
        "rebuilt": rebuilt,
    })
    print(f"  {len(wheel_list)} wheels, {len(data['carried'])} datasets carried, "
          f"rebuilt there: {', '.join(rebuilt) or 'none'}")
    return info


def pack_wheels(folder: Path, closure: deps.Closure, wheels: dict[str, Path], previous: dict) -> tuple[list[dict], str]:
    """Write wheels.tar.xz, unless this bundle's old archive or another bundle's holds the same wheels;
    return the wheel entries (with the sha256 of each wheel as stored in the archive) and their key."""
    wheel_list = [{"name": d, "version": closure.bundled[d], "file": wheels[d].name, "bytes": wheels[d].stat().st_size,
                   "sha256": manifest.sha256_of(wheels[d]), "extras": sorted(closure.extras[d]),
                   "needed_by": sorted(closure.needed_by[d])} for d in sorted(closure.bundled)]
    key = _key(f"{w['file']} {w['sha256']}" for w in wheel_list)
    path = folder / config.WHEELS_ARCHIVE
    if _fresh(path, previous.get("wheels_key"), key, previous):
        print(f"  wheels: {path.name} is up to date")
        source = previous
    elif (twin := _twin(folder, key)) is not None:
        print(f"  wheels: the same as in {twin.name}, copied")
        shutil.copy2(twin / config.WHEELS_ARCHIVE, path)
        source = manifest.read(twin)
    else:
        print(f"  wheels: packing {len(wheel_list)} wheels with xz (minutes) ...", flush=True)
        entries = []
        for w in wheel_list:
            data = archive.stored_wheel(wheels[w["name"]])
            w["stored_sha256"] = hashlib.sha256(data).hexdigest()
            entries.append((w["file"], data))
        archive.write_tar_xz(entries, path)
        return wheel_list, key
    stored = {w["file"]: w["stored_sha256"] for w in source["wheels"]}
    for w in wheel_list:
        w["stored_sha256"] = stored[w["file"]]
    return wheel_list, key


def pack_data(folder: Path, slugs: list[str], previous: dict) -> tuple[dict, list[str]]:
    """Write data.tar.xz (unless the old one holds the same datasets); return its entry and the rebuilt datasets."""
    from course_utils.data import cache as data_cache
    from course_utils.data.prepare import status
    from course_utils.data.registry import DATASETS

    plan = datasets.plan(slugs, DATASETS)
    root = data_cache.cache_dir()
    not_ready = [d for d in plan.carried if status(d)[0] != "ready"]  # outdated inputs count too
    if not_ready:
        raise RuntimeError(f"not prepared in {root}: {', '.join(not_ready)} (run `make data`)")
    key = datasets.input_key(plan.carried, root)
    members = datasets.archive_members(plan.carried, root)
    raw_bytes = sum((root / m).stat().st_size for m in members)
    path = folder / config.DATA_ARCHIVE
    if _fresh(path, previous.get("data", {}).get("input_key"), key, previous):
        print(f"  data: {path.name} is up to date")
    else:
        print(f"  data: packing {len(members)} files ({raw_bytes / MIB:.1f} MiB) with xz ...", flush=True)
        archive.write_tar_xz(((m, (root / m).read_bytes()) for m in members), path)
    files = [{"path": m, "bytes": (root / m).stat().st_size, "sha256": manifest.sha256_of(root / m)} for m in members]
    entry = {"file": path.name, "carried": list(plan.carried), "unpacked_bytes": raw_bytes, "input_key": key, "files": files}
    return entry, list(plan.rebuilt)


def _key(lines) -> str:
    """A sha256 over some lines: what an archive was made from."""
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def _fresh(path: Path, recorded_key: str | None, key: str, previous: dict) -> bool:
    """True when the archive exists, was made from `key`, and still has the sha256 the old manifest lists."""
    listed = {f["path"]: f["sha256"] for f in previous.get("files", [])}
    return path.is_file() and recorded_key == key and listed.get(path.name) == manifest.sha256_of(path)


def _twin(folder: Path, wheels_key: str) -> Path | None:
    """Another bundle folder whose intact wheel archive was made from the same wheels, if any."""
    for other in sorted(config.BUNDLES_DIR.glob(f"*/{config.MANIFEST}")):
        other = other.parent
        if other != folder:
            info = manifest.read(other)
            if _fresh(other / config.WHEELS_ARCHIVE, info.get("wheels_key"), wheels_key, info):
                return other
    return None


# ------------------------------------------------------------------------------------------------
# Sizes
# ------------------------------------------------------------------------------------------------


def working_tree_bytes(repo: Path = config.REPO_ROOT) -> int:
    """Bytes of what travels with every call: tracked files plus untracked files git does not ignore."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=repo,
                            capture_output=True, check=True).stdout.decode().split("\0")
    return sum((repo / p).stat().st_size for p in set(listed) if p and (repo / p).is_file())


def size_report(bundles: dict[str, int], tree: int, limit: int = config.LIMIT_BYTES) -> tuple[bool, list[str]]:
    """(all under the limit, lines): each bundle's size alone and with the working tree."""
    lines = [f"working tree (tracked + untracked, not ignored): {tree / MIB:.1f} MiB; limit per call {limit / MIB:.0f} MiB"]
    ok = True
    for name, size in bundles.items():
        total = size + tree
        over = total >= limit
        ok &= not over
        lines.append(f"{name:<10} bundle {size / MIB:6.1f} MiB   with the working tree {total / MIB:6.1f} MiB   "
                     f"{'OVER THE LIMIT' if over else 'ok'}   carry: .gpu/{name}")
    return ok, lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpu_kit.bundle", description=__doc__.splitlines()[0])
    parser.add_argument("bundles", nargs="*", help=f"bundles to build (default: all of {', '.join(config.BUNDLES)})")
    args = parser.parse_args(argv)
    split = assign(chapter_slugs(), config.BUNDLES)
    unknown = [b for b in args.bundles if b not in split]
    if unknown:
        print(f"unknown bundle(s) {', '.join(unknown)}; bundles: {', '.join(split)}", file=sys.stderr)
        return 2
    provided = deps.Provided.from_file(config.GPU_MACHINE_LIST)
    cache = WheelCache()
    sizes = {}
    for name in args.bundles or split:
        build_bundle(name, split[name], provided, cache)
        sizes[name] = sum(p.stat().st_size for p in (config.BUNDLES_DIR / name).rglob("*") if p.is_file())
    ok, lines = size_report(sizes, working_tree_bytes())
    print("\n".join(["", *lines]))
    if not ok:
        print("gpu-bundle: a bundle is over the limit: split its chapters in gpu_kit/config.py BUNDLES", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
