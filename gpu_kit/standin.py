"""Dry run only: stand in for the GPU machine's own packages with the course environment's pure-Python ones.

The GPU machine's Python already has pytest, pytest-xdist, attrs, python-dateutil, pygments, ... (gpu_machine.txt),
so the bundles leave them out; the Python 3.12 of the dry run has none of them. This links into a folder
the files of every distribution of .venv that gpu_machine.txt lists, so the dry run can import the kit's
runner (nbval, ipykernel, pytest-xdist) and register the kernels as the GPU machine will. Their pure-Python
code and abi3 extensions load under 3.12; 3.11-only extensions do not (3.12 ignores their file suffix),
so numpy or torch stay unimportable, and coverage falls back to its Python tracer. Only listed
distributions are linked: a wheel the bundle lacks is still missing in the dry run.

    .venv/bin/python -m gpu_kit.standin FOLDER
"""

from __future__ import annotations

import sys
from importlib import metadata
from pathlib import Path

from gpu_kit import config
from gpu_kit.deps import Provided, normalise

def stand_ins(provided: Provided) -> list[metadata.Distribution]:
    """The installed distributions the GPU machine provides, by name."""
    chosen = {}
    for dist in metadata.distributions():
        name = normalise(dist.metadata["Name"] or "")
        if name and provided.has(name):
            chosen.setdefault(name, dist)
    return [chosen[n] for n in sorted(chosen)]


def link(dists: list[metadata.Distribution], folder: Path) -> int:
    """Symlink each distribution's top-level entries (packages, modules, .dist-info) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for dist in dists:
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in sorted(tops):
            source, target = Path(dist.locate_file(top)), folder / top
            if source.exists() and not target.exists():
                target.symlink_to(source)
                count += 1
    return count


if __name__ == "__main__":
    dists = stand_ins(Provided.from_file(config.GPU_MACHINE_LIST))
    entries = link(dists, Path(sys.argv[1]))
    print(f"stand-ins for the GPU machine's own packages: {len(dists)} distributions of "
          f"{sys.prefix} ({entries} links in {sys.argv[1]})")
