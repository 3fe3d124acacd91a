"""A bundle's manifest.json: written by `make gpu-bundle`, checked and unpacked by run.sh on the GPU machine.

The manifest names the bundle's chapters, the datasets it carries and the ones to rebuild, each wheel,
and every file of the bundle with its size and sha256. Standard library only (it runs on the GPU
machine's bare Python):

    python3 -m gpu_kit.manifest verify BUNDLE          every file present with its size and sha256, no extras
    python3 -m gpu_kit.manifest get BUNDLE KEY         a field, lists space-separated (chapters, rebuilt, ...)
    python3 -m gpu_kit.manifest unpack BUNDLE wheels|data FOLDER
                                                       extract an archive into FOLDER (wheels: and check
                                                       each wheel's sha256)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import tarfile
from pathlib import Path

from gpu_kit.config import ARCHIVES, MANIFEST


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def describe(folder: Path) -> list[dict]:
    """Every file of a bundle folder but the manifest: path (relative), bytes and sha256, sorted."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST)
    return [{"path": p.relative_to(folder).as_posix(), "bytes": p.stat().st_size, "sha256": sha256_of(p)} for p in files]


def write(folder: Path, info: dict) -> dict:
    """Write manifest.json: `info` plus the description of every file and their total size."""
    files = describe(folder)
    info = {**info, "files": files, "total_bytes": sum(f["bytes"] for f in files)}
    (folder / MANIFEST).write_text(json.dumps(info, indent=1) + "\n")
    return info


def read(folder: Path) -> dict:
    return json.loads((folder / MANIFEST).read_text())


def verify(folder: Path) -> list[str]:
    """Problems with a bundle folder: files missing, of another size or sha256, or not in the manifest."""
    try:
        info = read(folder)
    except (OSError, ValueError) as err:
        return [f"no readable {MANIFEST} in {folder}: {err}"]
    problems = []
    listed = {f["path"] for f in info["files"]}
    for entry in info["files"]:
        path = folder / entry["path"]
        if not path.is_file():
            problems.append(f"missing: {entry['path']}")
        elif path.stat().st_size != entry["bytes"]:
            problems.append(f"size differs: {entry['path']} ({path.stat().st_size} bytes, manifest {entry['bytes']})")
        elif sha256_of(path) != entry["sha256"]:
            problems.append(f"sha256 differs: {entry['path']}")
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST):
        if path.relative_to(folder).as_posix() not in listed:
            problems.append(f"not in the manifest: {path.relative_to(folder).as_posix()}")
    return problems


def unpack(folder: Path, kind: str, destination: Path) -> list[str]:
    """Extract the bundle's `kind` archive ("wheels" or "data") into `destination`; return the file names.

    Extracted wheels are checked against the sha256 the manifest records for each; a mismatch raises.
    """
    destination.mkdir(parents=True, exist_ok=True)
    with tarfile.open(folder / ARCHIVES[kind], "r:xz") as archive:
        names = [m.name for m in archive.getmembers() if m.isfile()]
        if hasattr(tarfile, "data_filter"):  # Python >= 3.12: refuse links and paths outside the folder
            archive.extractall(destination, filter="data")
        else:
            archive.extractall(destination)
    if kind == "wheels":
        expected = {w["file"]: w["stored_sha256"] for w in read(folder)["wheels"]}
        wrong = [n for n in names if expected.get(n) != sha256_of(destination / n)]
        if wrong or set(expected) != set(names):
            raise ValueError(f"wheels differing from the manifest: {sorted(set(wrong) | (set(expected) ^ set(names)))}")
    return names


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m gpu_kit.manifest", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("verify").add_argument("bundle", type=Path)
    get = sub.add_parser("get")
    get.add_argument("bundle", type=Path)
    get.add_argument("key")
    unpack_cmd = sub.add_parser("unpack")
    unpack_cmd.add_argument("bundle", type=Path)
    unpack_cmd.add_argument("kind", choices=sorted(ARCHIVES))
    unpack_cmd.add_argument("destination", type=Path)
    args = parser.parse_args(argv)

    if args.command == "verify":
        problems = verify(args.bundle)
        for problem in problems:
            print(f"manifest: {problem}")
        if problems:
            return 1
        info = read(args.bundle)
        print(f"manifest: {len(info['files'])} files, {info['total_bytes'] / 2**20:.1f} MiB, every sha256 matches")
        return 0
    if args.command == "get":
        value = read(args.bundle)[args.key]
        print(" ".join(map(str, value)) if isinstance(value, list) else value)
        return 0
    names = unpack(args.bundle, args.kind, args.destination)
    print(f"unpacked {len(names)} files from {ARCHIVES[args.kind]} into {args.destination}"
          + (", every wheel's sha256 matches" if args.kind == "wheels" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
