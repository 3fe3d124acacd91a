"""requirements.txt, environment.yml and pyproject.toml describe one environment, and it is complete."""

import re
import sys
from importlib import metadata
from pathlib import Path

from course_utils import config

ROOT = config.REPO_ROOT


def requirement_pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([A-Za-z0-9_.+\-]+)", line)
            assert match, f"requirements.txt line is not an exact pin: {line!r}"
            pins[normalise(match.group(1))] = match.group(2)
    return pins


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_requirement_is_an_exact_pin_and_torch_is_the_course_version():
    pins = requirement_pins()
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"
    assert pins["fastai"] == "2.8.12" and pins["nbval"] == "0.11.0"


def test_environment_yml_installs_requirements_txt_on_the_same_python():
    text = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s*-\s*python=3\.11\s*$", text, re.MULTILINE)
    pip_lines = re.findall(r"^\s+-\s+(-r .*|-e .*)$", text, re.MULTILINE)
    assert pip_lines == ["-r requirements.txt", "-e ."], pip_lines
    assert not re.search(r"==", text), "pins belong in requirements.txt only"
    assert sys.version_info[:2] == (3, 11), "the stored outputs are produced on Python 3.11, as environment.yml says"


def test_package_metadata_has_no_pins():
    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"dependencies = \[(.*?)\]", text, re.DOTALL).group(1)
    assert "==" not in deps and "<" not in deps and ">" not in deps


def test_installed_versions_match_the_pins():
    for name, version in requirement_pins().items():
        installed = metadata.version(name).split("+")[0]
        assert installed == version, f"{name}: installed {installed}, pinned {version}: run `make setup`"


def python_sources() -> list[str]:
    """The code of the package, the GPU kit, the tests, and every chapter's code cells (magics made `pass`)."""
    import jupytext

    files = [*(ROOT / "course_utils").rglob("*.py"), *(ROOT / "gpu_kit").glob("*.py"), *(ROOT / "tests").glob("*.py")]
    sources = [path.read_text(encoding="utf-8") for path in files]
    for path in (ROOT / "chapters").glob("[0-9]*.py"):
        for cell in jupytext.read(path).cells:
            if cell.cell_type == "code":
                lines = cell.source.split("\n")
                sources.append("\n".join(re.sub(r"^(\s*)[%!].*$", r"\1pass", line) for line in lines))
    return sources


def imported_top_level_modules() -> set[str]:
    """Third-party top-level modules the sources import; an optional import (inside a try that catches
    ImportError, such as 06_tabular's kaggle) is left out, by gpu_kit.imports' rule."""
    from gpu_kit.imports import imported_modules

    modules = {name.split(".")[0] for source in python_sources() for name in imported_modules(source)}
    local = {"course_utils", "gpu_kit", "conftest", "helpers"} | {p.stem for p in (ROOT / "tests").glob("*.py")}
    return {m for m in modules if m not in sys.stdlib_module_names and m not in local}


def test_every_imported_package_is_pinned():
    pins = requirement_pins()
    owners = metadata.packages_distributions()
    missing = []
    for module in sorted(imported_top_level_modules()):
        dists = {normalise(d) for d in owners.get(module, [module])}
        if not dists & set(pins):
            missing.append(f"{module} (from {', '.join(sorted(dists))})")
    assert not missing, f"imported but not pinned in requirements.txt: {missing}"
