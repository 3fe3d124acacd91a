"""The Binder image (binder/, read by repo2docker) is the course's environment with torch's CPU build.

Nothing is built here: the files exist, the generated ones are what `course build` makes now (apt.txt
from the data registry, requirements.txt from requirements.txt), the pins agree with requirements.txt
but for the `+cpu` builds, and the scripts do what a learner's first cell relies on.
"""

import os
import re
import subprocess

from course_utils import config
from course_utils.data.registry import DATASETS
from course_utils.tools import binder

from test_environment import normalise, requirement_pins

BINDER = config.REPO_ROOT / "binder"


def pins_of(path) -> dict[str, str]:
    return pins_of_text(path.read_text())


def pins_of_text(text: str) -> dict[str, str]:
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line)
            assert match, f"binder/requirements.txt line is not an exact pin: {line!r}"
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def test_the_files_repo2docker_reads_exist():
    assert sorted(p.name for p in BINDER.iterdir()) == ["apt.txt", "postBuild", "requirements.txt", "runtime.txt", "start"]
    assert (BINDER / "runtime.txt").read_text() == "python-3.11\n"
    for script in ("postBuild", "start"):
        path = BINDER / script
        assert os.access(path, os.X_OK), f"binder/{script} must be executable (git update-index --chmod=+x)"
        assert path.read_text().startswith("#!/bin/bash\n")
        subprocess.run(["bash", "-n", str(path)], check=True)


def test_requirements_are_the_pins_with_torchs_cpu_build():
    pins, root = pins_of(BINDER / "requirements.txt"), requirement_pins()
    text = (config.REPO_ROOT / "requirements.txt").read_text()
    tests_only = set(pins_of_text(text.split(binder.TESTS_ONLY, 1)[1].split("\n", 1)[1]))
    assert {"pytest", "playwright", "import-linter"} <= tests_only  # the marker still cuts where it should
    assert set(pins) == set(root) - tests_only
    for name, version in pins.items():
        version = root[name]
        expected = f"{version}+cpu" if name in binder.CPU_BUILDS else version
        assert pins[name] == expected, f"{name}: binder pins {pins[name]}, requirements.txt {version}"
    assert f"--extra-index-url {binder.CPU_INDEX}" in (BINDER / "requirements.txt").read_text().splitlines()


def test_generated_files_are_fresh():
    for path, text in ((binder.APT_TXT, binder.apt_text()), (binder.REQUIREMENTS_TXT, binder.requirements_text())):
        assert path.read_text(encoding="utf-8") == text, (
            f"{path.relative_to(config.REPO_ROOT)} is stale: run `course build` or `python -m course_utils.tools.binder`"
        )


def test_apt_txt_lists_exactly_the_debian_packages_of_the_registry():
    listed = [line for line in binder.APT_TXT.read_text().splitlines() if line and not line.startswith("#")]
    used = {source.label.split()[1] for d in DATASETS.values() for source in d.sources if source.kind.startswith("debian")}
    assert listed == sorted(used) and listed, listed
    assert {"invesalius-examples", "dataset-fashion-mnist", "r-cran-janeaustenr"} <= set(listed)
    assert all(re.fullmatch(r"[a-z0-9][a-z0-9.+\-]+", name) for name in listed)  # what repo2docker accepts


def test_a_new_debian_source_changes_apt_txt(monkeypatch):
    from course_utils.data.sources import debian_system

    first = next(iter(DATASETS.values()))
    planted = type(first)(**{**first.__dict__, "name": "planted", "sources": (debian_system("some-data-package", "/x"),)})
    monkeypatch.setitem(DATASETS, "planted", planted)
    assert "some-data-package" in binder.debian_packages()
    assert binder.apt_text() != binder.APT_TXT.read_text()


def test_post_build_installs_the_package_and_prepares_the_data():
    lines = [line for line in (BINDER / "postBuild").read_text().splitlines() if line and not line.startswith("#")]
    assert lines[0] == "set -euo pipefail"
    assert any(re.search(r"pip install .*--no-deps .*-e \.$", line) for line in lines)
    assert any("ipykernel install" in line for line in lines) and "--name course-cpu" in "\n".join(lines)
    assert lines[-1].endswith("course data")
    start = (BINDER / "start").read_text()
    assert "PYTHONHASHSEED=0" in start and start.rstrip().endswith('exec "$@"')


def test_the_readme_binder_badges_open_the_repository():
    """repo2docker finds binder/ by itself: the badges only name the repository, branch and notebook."""
    readme = (config.REPO_ROOT / "README.md").read_text()
    badges = re.findall(r"https://mybinder\.org/v2/gh/([^?)]+)\?labpath=([^)]+)\)", readme)
    assert badges
    assert {target for target, _ in badges} == {f"{config.GITHUB_REPO}/{config.GITHUB_BRANCH}"}
    for _, labpath in badges:
        assert (config.REPO_ROOT / labpath.replace("%2F", "/")).exists(), labpath
