"""Preparing datasets: cache first, then each source in order; and the status of the cache.

`ensure(name)` is what every loader calls: it returns at once when the cache holds the dataset,
its files match their manifest and its inputs are still the ones it was made from, and otherwise
builds it from the first source that works. `prepare()` does that for many datasets, inputs first,
with a progress bar (it is `course data`).

A dataset is "ready" when its files match its manifest, and every input (another dataset it is made
from, declared in the registry) is ready and has the fingerprint the manifest recorded when it was
built (see cache.fingerprint). So bumping an input's version, or rebuilding it into other bytes,
makes everything made from it "outdated", and `ensure` builds it again, input first.

A trained dataset (a model the course trains itself) that a loader has to build announces itself with
one line, what is trained and about how long it takes, and its builder shows a progress bar
(`training_bar`): on Colab, or anywhere before `course data` ran, the first use trains it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from course_utils.data import cache
from course_utils.data.errors import DataUnavailable, SourceFailed
from course_utils.data.online import online_enabled
from course_utils.data.registry import DATASETS, Dataset, build_order, get, resolve
from course_utils.data.sources import Workspace

__all__ = ["Result", "dataset_table", "ensure", "prepare", "readiness", "status", "training_bar", "training_note"]


@dataclass
class Result:
    """What `prepare` did for one dataset."""

    name: str
    status: str  # "ready" (was valid already), "prepared" (built now) or "failed"
    source: str = ""
    seconds: float = 0.0
    error: str = ""


def ensure(name: str, online: bool | None = None, force: bool = False) -> Path:
    """Make sure a dataset is prepared and valid; return the cache folder. Used in 01_tensors.

    Every loader calls it. A dataset that is missing, outdated, or whose files fail their sha256
    check is prepared (again) from its sources; `force=True` prepares it even when it is valid.
    Raises DataUnavailable, naming every source tried, when none can provide it. A dataset whose
    input is outdated is prepared after that input (the builder asks for its inputs through `ensure`).
    """
    dataset = get(name)
    root = cache.cache_dir()
    if not force and _status(dataset, root)[0] == "ready":
        return root
    root.mkdir(parents=True, exist_ok=True)
    with cache.lock(name, root):
        status, detail = _status(dataset, root)
        if status == "ready" and not force:  # another process prepared it while we waited
            return root
        cache_state = detail if status != "ready" else "valid, but asked to prepare it again (--force)"
        _build(dataset, root, online_enabled(online), cache_state)
    return root


def _build(dataset: Dataset, root: Path, online: bool, cache_state: str) -> str:
    """Build a dataset from the first source that works; return that source's label."""
    attempts = [(f"prepared cache {root}", cache_state)]
    with cache.work_folder(root) as work:
        workspace = Workspace(work, online, require=lambda other: ensure(other, online) / get(other).files[0])
        for number, source in enumerate(dataset.sources):
            staged = work / f"stage-{number}"
            staged.mkdir()
            try:
                material = source.fetch(workspace)
                if dataset.trained:
                    _announce(training_note(dataset))
                resolve(dataset.build)(material, staged, **dataset.build_args)
            except (SourceFailed, ImportError) as err:
                attempts.append((source.description, str(err)))
                continue
            except DataUnavailable as err:  # a dataset this one is made from is missing
                reasons = "; ".join(f"{where}: {why}" for where, why in err.attempts)
                attempts.append((source.description, f"{err.name} is not available ({reasons})"))
                continue
            manifest = {
                "dataset": dataset.name,
                "version": dataset.version,
                "source": source.label,
                "source_detail": source.description,
                "files": cache.describe_files(staged, dataset.files),
                # what each input was when this was built from it (fetch prepared them just now)
                "inputs": {other: cache.fingerprint(cache.read_manifest(other, root)) for other in source.requires},
            }
            cache.remove_manifest(dataset.name, root)  # the old files are about to be replaced
            cache.install(staged, dataset.files, root, trash=work)
            cache.write_manifest(dataset.name, root, manifest)  # last: only complete files are recorded
            return source.label
    hint = ""
    if not online and any(source.kind == "online" for source in dataset.sources):
        hint = "Or set COURSE_ONLINE=1 (or pass online=True) to download the original."
    raise DataUnavailable(dataset.name, attempts, hint)


def training_note(dataset: Dataset) -> str:
    """The one line printed before a trained dataset is trained: what, and about how long it takes."""
    minutes = f"{dataset.train_minutes:g} minute{'' if dataset.train_minutes == 1 else 's'}"
    return (
        f"Training {dataset.train_what} once: about {minutes} on one CPU thread (the CPU even beside a GPU: "
        "the same weights for every learner); later runs load it."
    )


def _announce(line: str) -> None:
    from tqdm.auto import tqdm

    tqdm.write(line)  # between the lines of any progress bar on the terminal (`course data`)


def training_bar(desc: str, total: int | None = None):
    """A progress bar (tqdm.auto: a widget in a notebook) for a trained dataset's builder, in batches.

    It disappears when done. A builder that learns its number of batches only later calls
    `bar.reset(total=n)`. Use as a context manager.
    """
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="batch", leave=False, mininterval=0.5)


def prepare(
    names: list[str] | None = None, progress: bool = True, force: bool = False, online: bool | None = None
) -> list[Result]:
    """Prepare datasets (default: all) into the cache; return one Result per dataset. Used in 01_tensors.

    This is `course data` (`make data`). It is idempotent: a dataset whose files match its manifest is left
    alone, so a second run only re-checks sha256s. A dataset that fails does not stop the others.
    The datasets are prepared in `build_order`: each after the datasets it is made from.
    """
    from tqdm.auto import tqdm

    for name in names or ():
        get(name)  # an unknown name fails before any work starts
    names = build_order(names or None)
    results = []
    bar = tqdm(names, desc="course data", unit="dataset", disable=not progress, leave=True)
    for name in bar:
        bar.set_postfix_str(name)
        results.append(_prepare_one(name, force, online))
    bar.close()
    return results


def _prepare_one(name: str, force: bool, online: bool | None) -> Result:
    dataset = get(name)
    root = cache.cache_dir()
    started = time.perf_counter()
    was_ready = _status(dataset, root)[0] == "ready"
    try:
        ensure(name, online=online, force=force)
    except DataUnavailable as err:
        return Result(name, "failed", seconds=time.perf_counter() - started, error=str(err))
    manifest = cache.read_manifest(name, root) or {}
    status = "ready" if was_ready and not force else "prepared"
    return Result(name, status, manifest.get("source", ""), time.perf_counter() - started)


def status(name: str) -> tuple[str, str]:
    """("ready" | "missing" | "outdated" | "corrupt", detail) of a dataset in the cache. Used by `course doctor`.

    "outdated" also when an input, however far up, was bumped or rebuilt since the dataset was made from it.
    """
    return _status(get(name), cache.cache_dir())


def _status(dataset: Dataset, root: Path) -> tuple[str, str]:
    """The dataset's own state; when that is "ready", whether its inputs are still those it was made from."""
    state, detail = cache.check(dataset.name, dataset.version, dataset.files, root)
    if state != "ready" or not dataset.inputs:
        return state, detail
    now = {}
    for other in dataset.inputs:
        ready = _status(get(other), root)[0] == "ready"
        now[other] = cache.fingerprint(cache.read_manifest(other, root)) if ready else None
    return cache.check(dataset.name, dataset.version, dataset.files, root, inputs=now)


def dataset_table() -> list[dict]:
    """One row per dataset: name, source, size, licence, status. Used in 01_tensors.

    This is `course data --list`. `source` is where the prepared files came from (or, before
    preparation, the first source that will be tried); `size` is the prepared files' total.
    """
    root = cache.cache_dir()
    rows = []
    for name, dataset in DATASETS.items():
        state, _ = status(name)
        manifest = cache.read_manifest(name, root) if state == "ready" else None
        size = sum(f["bytes"] for f in manifest["files"].values()) if manifest else 0
        rows.append(
            {
                "name": name,
                "source": manifest["source"] if manifest else dataset.sources[0].label,
                "size": cache.human_size(size) if manifest else "",
                "bytes": size,
                "licence": dataset.licence,
                "status": state,
            }
        )
    return rows


def readiness() -> tuple[int, int, list[str]]:
    """(number of datasets ready, number of datasets, names not ready). Used in `course doctor`."""
    missing = [name for name in DATASETS if status(name)[0] != "ready"]
    return len(DATASETS) - len(missing), len(DATASETS), missing
