"""Files from Debian packages: an installed system path first, else `apt-get download` + unpack.

The course never runs `apt-get install`: downloading and unpacking a package into the cache needs
no root, works the same for everyone, and keeps r-cran-janeaustenr from pulling in all of R.
`apt-get download` only needs the package lists; on a fresh machine where they are missing, root
refreshes them once with `apt-get update`, and anyone else is told to.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

from course_utils.data.errors import SourceFailed

__all__ = ["APT_TIMEOUT_S", "download", "unpack"]

APT_TIMEOUT_S = 600


def download(package: str, folder: Path) -> Path:
    """Download a package's .deb into `folder` with `apt-get download`; return its path."""
    if shutil.which("apt-get") is None:
        raise SourceFailed("apt-get is not available (not a Debian or Ubuntu system)")
    folder.mkdir(parents=True, exist_ok=True)
    result = _apt_get_download(package, folder)
    if result.returncode != 0 and _lists_missing(result.stderr):
        if _is_root():
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, text=True, timeout=APT_TIMEOUT_S)
            result = _apt_get_download(package, folder)
        else:
            raise SourceFailed(
                f"apt-get does not know {package}: refresh the package lists with `sudo apt-get update`"
            )
    if result.returncode != 0:
        message = " ".join(result.stderr.split())[-300:]
        raise SourceFailed(f"`apt-get download {package}` failed: {message}")
    debs = sorted(folder.glob(f"{package}_*.deb"))
    if not debs:
        raise SourceFailed(f"`apt-get download {package}` produced no .deb file")
    return debs[-1]


def _apt_get_download(package: str, folder: Path) -> subprocess.CompletedProcess:
    command = ["apt-get", "download", "-q"]
    if _is_root():
        # root's apt drops privileges to the _apt user, who cannot write into our cache folder
        command += ["-o", "APT::Sandbox::User=root"]
    return subprocess.run(
        [*command, package], cwd=folder, capture_output=True, text=True, timeout=APT_TIMEOUT_S
    )


def _lists_missing(stderr: str) -> bool:
    return "Unable to locate package" in stderr or "has no installation candidate" in stderr


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def unpack(deb: Path, folder: Path) -> Path:
    """Unpack a .deb's files into `folder` (like `dpkg -x`) and return `folder`.

    Uses dpkg-deb where it exists; elsewhere reads the .deb (an `ar` archive holding
    data.tar.*) with the standard library, so a downloaded .deb unpacks on any system.
    """
    folder.mkdir(parents=True, exist_ok=True)
    if shutil.which("dpkg-deb"):
        result = subprocess.run(["dpkg-deb", "-x", str(deb), str(folder)], capture_output=True, text=True)
        if result.returncode != 0:
            raise SourceFailed(f"dpkg-deb -x {deb.name} failed: {result.stderr.strip()[-300:]}")
        return folder
    with open(deb, "rb") as handle:
        if handle.read(8) != b"!<arch>\n":
            raise SourceFailed(f"{deb.name} is not a Debian package")
        while header := handle.read(60):
            member = header[:16].decode().strip().rstrip("/")
            size = int(header[48:58])
            payload = handle.read(size)
            handle.read(size % 2)  # ar pads members to an even length
            if member.startswith("data.tar"):
                with tarfile.open(fileobj=io.BytesIO(payload)) as archive:
                    archive.extractall(folder, filter="data")
                return folder
    raise SourceFailed(f"{deb.name} holds no data.tar member")
