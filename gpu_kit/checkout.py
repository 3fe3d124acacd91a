"""Make the checkout's course_utils look installed in a private folder, with no build backend.

The notebooks import course_utils from the checkout (run.sh puts the repository root on PYTHONPATH),
but `setup()` prints `importlib.metadata.version("course-utils")`, and the sanitizer of the stored
outputs expects one word there. This writes the distribution's metadata (name and version from
pyproject.toml) as a .dist-info folder next to the bundle's wheels, as an editable install would,
without downloading setuptools. Standard library only (tomllib: Python >= 3.11).

    python3 -m gpu_kit.checkout SITE
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

from gpu_kit.config import REPO_ROOT


def write_dist_info(site: Path, pyproject: Path = REPO_ROOT / "pyproject.toml") -> Path:
    """Write SITE/<name>-<version>.dist-info (METADATA with its requirements, INSTALLER); return the folder.

    The requirements let run.sh's dependency check cover course_utils too."""
    project = tomllib.loads(pyproject.read_text())["project"]
    name, version = project["name"], project["version"]
    folder = site / f"{name.replace('-', '_')}-{version}.dist-info"
    folder.mkdir(parents=True, exist_ok=True)
    requires = "".join(f"Requires-Dist: {r}\n" for r in project.get("dependencies", []))
    (folder / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{requires}")
    (folder / "INSTALLER").write_text("gpu_kit\n")
    return folder


if __name__ == "__main__":
    print("wrote", write_dist_info(Path(sys.argv[1])))
