"""The data cache: where prepared files live, how they are written, and how they are verified.

Layout of the cache folder ($COURSE_DATA, else data/cache in the repository)::

    tables/ames.parquet, diamonds.csv, ct/cranium.npy, ...   prepared files
    manifests/<dataset>.json                                 sha256 and size of each prepared file,
                                                             and the fingerprint of each input
    .tmp/<pid>-<random>/                                     work in progress of one process
    .locks/<dataset>.lock                                    one preparer per dataset at a time

Writes are atomic: a dataset is built in a private folder under .tmp/, then each file is moved into
place with os.replace (a rename, which is atomic on one file system), and its manifest is written
last. A run killed at any moment leaves complete files or none, and a dataset whose manifest does
not match its files is simply prepared again.

A dataset made from other datasets (its inputs) records in its manifest the `fingerprint` of each
input's manifest when it was built: a hash over the input's version, its files' sha256 and, in turn,
its own inputs' fingerprints. `check` compares those with the inputs' fingerprints now, so a dataset
whose input was bumped or rebuilt with other content, however far up, is "outdated".
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from filelock import FileLock

from course_utils.config import REPO_ROOT

__all__ = [
    "cache_dir",
    "check",
    "clean_stale_work",
    "describe_files",
    "file_matches",
    "fingerprint",
    "human_size",
    "install",
    "install_file_once",
    "lock",
    "manifest_path",
    "read_manifest",
    "remove_manifest",
    "sha256_of",
    "work_folder",
    "write_manifest",
]

MANIFESTS = "manifests"
TMP = ".tmp"
LOCKS = ".locks"

# Verified files of this process: path -> (size, mtime_ns, sha256). A file is hashed once per
# process unless it changes on disk, so loaders can verify on every call for free.
_verified: dict[str, tuple[int, int, str]] = {}


def cache_dir() -> Path:
    """The cache folder: $COURSE_DATA if set, else data/cache in the repository. Not created here.

    Installed outside a checkout (e.g. pip-installed on Colab), the default is ~/.cache/course-data.
    """
    configured = os.environ.get("COURSE_DATA")
    if configured:
        return Path(configured).expanduser().resolve()
    if (REPO_ROOT / "pyproject.toml").exists():
        return REPO_ROOT / "data" / "cache"
    return Path.home() / ".cache" / "course-data"


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_matches(path: Path, size: int, sha256: str) -> bool:
    """True when the file exists with this size and sha256 (hashed at most once per change)."""
    try:
        stat = path.stat()
    except OSError:
        return False
    if stat.st_size != size:
        return False
    key = str(path)
    seen = _verified.get(key)
    if seen == (stat.st_size, stat.st_mtime_ns, sha256):
        return True
    if sha256_of(path) != sha256:
        return False
    _verified[key] = (stat.st_size, stat.st_mtime_ns, sha256)
    return True


# ------------------------------------------------------------------------------------------------
# Manifests
# ------------------------------------------------------------------------------------------------


def manifest_path(name: str, root: Path) -> Path:
    return root / MANIFESTS / f"{name}.json"


def read_manifest(name: str, root: Path) -> dict | None:
    """The manifest of a dataset, or None when it has none (or an unreadable one)."""
    try:
        return json.loads(manifest_path(name, root).read_text())
    except (OSError, ValueError):
        return None


def write_manifest(name: str, root: Path, manifest: dict) -> None:
    """Write a manifest atomically (temporary name, then os.replace)."""
    target = manifest_path(name, root)
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    temporary.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    os.replace(temporary, target)


def remove_manifest(name: str, root: Path) -> None:
    manifest_path(name, root).unlink(missing_ok=True)


def describe_files(folder: Path, entries: tuple[str, ...]) -> dict[str, dict]:
    """sha256 and size of every file under the given entries (files or folders) of `folder`."""
    described = {}
    for entry in entries:
        top = folder / entry
        files = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        for file in files:
            rel = file.relative_to(folder).as_posix()
            described[rel] = {"sha256": sha256_of(file), "bytes": file.stat().st_size}
    return described


def fingerprint(manifest: Mapping) -> str:
    """What a prepared dataset is, in one sha256: its version, its files' sha256 and its inputs' fingerprints.

    Where it came from (the source) does not count: the same bytes from a Debian path or a download
    are the same dataset.
    """
    essence = {
        "version": manifest.get("version"),
        "files": {rel: info["sha256"] for rel, info in manifest.get("files", {}).items()},
        "inputs": manifest.get("inputs", {}),
    }
    return hashlib.sha256(json.dumps(essence, sort_keys=True).encode()).hexdigest()


def check(name: str, version: str, entries: tuple[str, ...], root: Path,
          inputs: Mapping[str, str | None] | None = None) -> tuple[str, str]:
    """Status of a prepared dataset: ("ready" | "missing" | "outdated" | "corrupt", detail).

    "outdated" means prepared by another `version`, or, when `inputs` is given, from inputs other than
    these: `inputs` maps each input's name to its fingerprint now (None when the input itself is not
    ready), and the manifest must have recorded the same. "corrupt" means a file named in the manifest
    is absent or fails its sha256; the detail names it.
    """
    manifest = read_manifest(name, root)
    if manifest is None:
        return "missing", "not prepared yet"
    if manifest.get("version") != version:
        return "outdated", f"prepared by an older version ({manifest.get('version')}, now {version})"
    recorded = manifest.get("inputs")
    for other, now in (inputs or {}).items():
        if now is None:
            return "outdated", f"its input {other} is not ready"
        if recorded is None or other not in recorded:
            return "outdated", f"prepared before the versions of its inputs were recorded ({other})"
        if recorded[other] != now:
            return "outdated", f"its input {other} was bumped or rebuilt since it was prepared"
    files = manifest.get("files", {})
    for entry in entries:
        if not any(rel == entry or rel.startswith(entry + "/") for rel in files):
            return "corrupt", f"{entry} is not in the manifest"
    for rel, info in files.items():
        if not file_matches(root / rel, info["bytes"], info["sha256"]):
            return "corrupt", f"{rel} is missing or fails its sha256 check"
    return "ready", ""


# ------------------------------------------------------------------------------------------------
# Atomic preparation
# ------------------------------------------------------------------------------------------------


def lock(name: str, root: Path) -> FileLock:
    """A lock held while one process prepares a dataset (others wait, then find it ready)."""
    (root / LOCKS).mkdir(parents=True, exist_ok=True)
    return FileLock(str(root / LOCKS / f"{name}.lock"))


def install_file_once(name: str, target: Path, make: Callable[[Path], Path]) -> Path:
    """`target`, made at most once: `make(work)` writes the file in a private work folder, and it is moved into place.

    Used by the online-only files outside the registry (data/kaggle.py, data/grouplens.py). Another process
    making the same file waits on the dataset's lock, then finds it; a failure in `make` leaves nothing, and
    the single rename leaves the file complete or absent.
    """
    if target.is_file():
        return target
    root = cache_dir()
    with lock(name, root):
        if target.is_file():  # another process made it while we waited
            return target
        with work_folder(root) as work:
            staged = make(work)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, target)
    return target


@contextlib.contextmanager
def work_folder(root: Path) -> Iterator[Path]:
    """A private folder under <cache>/.tmp for one process's work, removed afterwards."""
    clean_stale_work(root)
    folder = root / TMP / f"{os.getpid()}-{secrets.token_hex(4)}"
    folder.mkdir(parents=True)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def clean_stale_work(root: Path) -> None:
    """Remove the .tmp folders of processes that no longer run (a killed `course data`)."""
    for folder in (root / TMP).glob("*-*"):
        pid = folder.name.split("-", 1)[0]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid() or os.name == "nt":  # on Windows, os.kill(pid, 0) would send Ctrl-C
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, but belongs to someone else
        return True
    return True


def install(staged: Path, entries: tuple[str, ...], root: Path, trash: Path) -> None:
    """Move each built entry (file or folder) from the staging folder into the cache.

    A file replaces its old version in one atomic rename. A folder cannot be renamed over a
    non-empty one, so the old folder is first renamed into `trash`; a crash in between leaves the
    folder absent, which the (not yet written) manifest check then reports as not prepared.
    """
    for entry in entries:
        source, target = staged / entry, root / entry
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir() and target.exists():
            os.replace(target, trash / f"{secrets.token_hex(4)}-{target.name}")
        os.replace(source, target)
        _verified.pop(str(target), None)


def human_size(n_bytes: int) -> str:
    """1234567 -> '1.2 MB' (decimal units, as download sizes are usually given)."""
    size = float(n_bytes)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
