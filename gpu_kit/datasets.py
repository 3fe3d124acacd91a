"""The prepared data of a bundle: what it carries from data/cache, and what the GPU machine rebuilds.

A chapter reads the datasets whose registry record lists it (`Dataset.chapters`). A dataset is
*derived* when every source of it is another prepared dataset or a generator (no network, no Debian
package): `course data NAME` rebuilds it in seconds from the carried ones (fmnist_png, ct_dicom,
human_numbers). A trained model (`Dataset.trained`) is derived too, but carried: training takes minutes
and its weights depend on the torch build. The rest, and whatever a rebuilt dataset is made from, is
carried in a tar.xz of the cache layout (files plus manifests/NAME.json: `archive_members`), so the
loaders find it ready after unpacking. The inputs of a carried dataset travel too (or are rebuilt): a
dataset is ready only beside the inputs it was made from (course_utils.data.prepare.status).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

DERIVED_KINDS = ("course", "generator")


@dataclass(frozen=True)
class DataPlan:
    """The datasets of some chapters: carried in the archive, or rebuilt on the GPU machine."""

    carried: tuple[str, ...]
    rebuilt: tuple[str, ...]  # in an order `course data` can build them (inputs first)


def rebuildable(dataset) -> bool:
    """True for a dataset `course data` makes from other prepared data or a generator, and is no model."""
    return not dataset.trained and all(source.kind in DERIVED_KINDS for source in dataset.sources)


def plan(chapters: Iterable[str], registry: Mapping[str, object]) -> DataPlan:
    """Which datasets the chapters (slugs such as "01_tensors") need, split into carried and rebuilt."""
    chapters = set(chapters)
    wanted = [name for name, d in registry.items() if chapters & set(d.chapters)]
    carried: list[str] = []
    rebuilt: list[str] = []

    def need(name: str) -> None:
        if name in carried or name in rebuilt:
            return
        dataset = registry[name]
        for source in dataset.sources:  # its inputs first: a dataset is ready only beside them
            for other in source.requires:
                need(other)
        (rebuilt if rebuildable(dataset) else carried).append(name)

    for name in wanted:
        need(name)
    return DataPlan(tuple(sorted(carried)), tuple(rebuilt))


def archive_members(names: Iterable[str], cache_root: Path) -> list[str]:
    """The cache-relative files of prepared datasets: each manifest's files, then the manifest itself."""
    members = []
    for name in names:
        manifest = json.loads((cache_root / "manifests" / f"{name}.json").read_text())
        members += sorted(manifest["files"])
        members.append(f"manifests/{name}.json")
    return members


def input_key(names: Iterable[str], cache_root: Path) -> str:
    """A sha256 over the carried datasets' manifests: the archive is rebuilt only when it changes."""
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0" + (cache_root / "manifests" / f"{name}.json").read_bytes())
    return digest.hexdigest()
