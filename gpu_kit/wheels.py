"""Wheels for the GPU machine's Python: which version of a distribution, fetched once into a cache.

A distribution gets the version pinned in requirements.txt, else the version installed in the course
environment (.venv: the versions the stored outputs were made with), else the newest that meets the
requirement that reached it. Wheels are fetched with `pip download --no-deps --only-binary=:all:`
for CPython 3.12 on manylinux x86-64 (config.TARGET_*) into .gpu/wheel-cache/, and reused from there.
"""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from email.parser import HeaderParser
from importlib import metadata
from pathlib import Path

from packaging.specifiers import SpecifierSet
from packaging.utils import parse_wheel_filename
from packaging.version import Version

from gpu_kit import config
from gpu_kit.deps import normalise

_PIN = re.compile(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)")


def requirement_pins(path: Path = config.REPO_ROOT / "requirements.txt") -> dict[str, str]:
    """Normalised name -> pinned version, from the exact pins of requirements.txt."""
    pins = {}
    for line in path.read_text().splitlines():
        match = _PIN.fullmatch(line.split("#", 1)[0].strip())
        if match:
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def course_version(name: str, pins: dict[str, str]) -> str | None:
    """The course's version of a distribution: its pin, else what the course environment has installed."""
    if name in pins:
        return pins[name]
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def wheel_metadata(wheel: Path) -> tuple[str, str, list[str]]:
    """(normalised name, version, Requires-Dist lines) read from a wheel's .dist-info/METADATA."""
    with zipfile.ZipFile(wheel) as archive:
        member = next(n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n))
        headers = HeaderParser().parsestr(archive.read(member).decode("utf-8", errors="replace"))
    return normalise(headers["Name"]), headers["Version"], headers.get_all("Requires-Dist") or []


class WheelCache:
    """A folder of downloaded wheels, one per (name, version), filled with pip on demand."""

    def __init__(self, folder: Path = config.WHEEL_CACHE, python: str = sys.executable):
        self.folder = folder
        self.python = python
        folder.mkdir(parents=True, exist_ok=True)

    def find(self, name: str, version: str | None = None) -> Path | None:
        """The cached wheel of a distribution (of that version, when given; else the newest)."""
        matches = []
        for wheel in self.folder.glob("*.whl"):
            wheel_name, wheel_version, _, _ = parse_wheel_filename(wheel.name)
            if wheel_name == normalise(name) and (version is None or wheel_version == Version(version)):
                matches.append((wheel_version, wheel))
        return max(matches)[1] if matches else None

    def fetch(self, name: str, version: str | None, specifier: SpecifierSet | None = None) -> Path:
        """The wheel of name==version (or, without a version, the newest meeting `specifier`)."""
        cached = self.find(name, version)
        if cached is not None:
            return cached
        spec = f"{name}=={version}" if version else f"{name}{specifier or ''}"
        self.download([spec])
        found = self.find(name, version)
        if found is None:
            raise RuntimeError(f"pip downloaded no wheel of {spec} into {self.folder}")
        return found

    def download(self, specs: list[str]) -> None:
        """pip download the given requirement strings for the GPU machine's Python and platform."""
        command = [self.python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
                   "--only-binary=:all:", "--python-version", config.TARGET_PYTHON, "--implementation", "cp",
                   "-d", str(self.folder)]
        for platform in config.TARGET_PLATFORMS:
            command += ["--platform", platform]
        print(f"  pip download {' '.join(specs)}", flush=True)
        done = subprocess.run(command + specs, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"pip download {' '.join(specs)} failed:\n{done.stderr.strip()}")

