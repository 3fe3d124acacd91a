"""gpu_kit's logic, fast and offline: requirement closures, the data plan, the split, manifests, summaries.

Nothing here downloads a wheel, starts a kernel or reads the wheel cache; `make gpu-bundle` and
`bash gpu_kit/run.sh .gpu/<bundle> --dry-run` exercise the real thing.
"""

from __future__ import annotations

import hashlib
import json
import tarfile
import zipfile
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import pytest

from course_utils.data.registry import DATASETS
from gpu_kit import archive, bundle, checkout, config, datasets, deps, imports, manifest, standin, summary

# ------------------------------------------------------------------------------------------------
# deps: requirement closures
# ------------------------------------------------------------------------------------------------

INDEX = {  # a small fake package index: name -> (version, Requires-Dist)
    "app": ("1.0", ["lib>=2", "tool; python_version < '3.10'", "web[fast]", "numpy>=2", "nlp; extra == 'text'"]),
    "lib": ("2.1", ["helper", "numpy<3"]),
    "helper": ("0.5", []),
    "web": ("3.0", ["core", "speedups; extra == 'fast'", "docs-theme; extra == 'docs'"]),
    "core": ("1.0", []),
    "speedups": ("1.0", ["winonly; sys_platform == 'win32'"]),
    "nlp": ("3.8", ["pydantic"]),
    "pydantic": ("2.0", []),
    "needs-old-numpy": ("1.0", ["numpy<2"]),
}
GPU = deps.Provided.from_lines(["numpy==2.5.2", "nvidia-*", "# a comment", "Jinja2"])


def from_index(name, _specifier):
    return INDEX.get(name)


def test_provided_reads_names_patterns_and_versions():
    assert GPU.has("numpy") and GPU.has("nvidia-cublas") and GPU.has("jinja2") and GPU.has("JINJA2")
    assert not GPU.has("nvidia") and not GPU.has("torch")
    assert GPU.version("numpy") == "2.5.2" and GPU.version("jinja2") is None


def test_the_gpu_machine_list_parses_and_knows_its_torch():
    gpu = deps.Provided.from_file(config.GPU_MACHINE_LIST)
    assert gpu.has("torch") and gpu.has("nvidia-cudnn-cu13") and gpu.has("cuda-bindings") and gpu.has("pytest-xdist")
    assert gpu.version("torch") == "2.11.0" and gpu.version("numpy") == "2.5.2"
    assert not gpu.has("fastai") and not gpu.has("nbval") and not gpu.has("ipykernel") and not gpu.has("spacy")


def test_markers_are_evaluated_for_python_3_12_on_linux_with_the_extras_asked_for():
    requires = ["a; python_version >= '3.12'", "b; python_version < '3.12'", "c; sys_platform == 'darwin'",
                "d; extra == 'x'", "e"]
    assert [r.name for r in deps.applicable(requires)] == ["a", "e"]
    assert [r.name for r in deps.applicable(requires, extras=["x"])] == ["a", "d", "e"]


def test_resolve_bundles_the_closure_and_stops_at_the_gpu_machine():
    closure = deps.resolve(["app"], from_index, GPU)
    assert set(closure.bundled) == {"app", "lib", "helper", "web", "core", "speedups"}
    assert closure.provided == {"numpy"}
    assert closure.extras["web"] == {"fast"}  # web[fast] pulled in speedups, not the docs extra
    assert closure.needed_by["helper"] == {"lib"} and closure.needed_by["app"] == {deps.ROOT}
    assert not closure.missing and not closure.conflicts and not closure.deferred


def test_resolve_leaves_deferred_dependencies_out_unless_asked_for_directly():
    index = {**INDEX, "app": ("1.0", ["nlp"])}
    closure = deps.resolve(["app"], lambda n, s: index.get(n), GPU, deferred=["nlp"])
    assert "nlp" not in closure.bundled and closure.deferred == {"nlp"}
    closure = deps.resolve(["app", "nlp"], lambda n, s: index.get(n), GPU, deferred=["nlp"])
    assert {"nlp", "pydantic"} <= set(closure.bundled) and not closure.deferred


def test_resolve_reports_missing_distributions_and_version_conflicts():
    index = {**INDEX, "app": ("1.0", ["lib>=3", "ghost", "needs-old-numpy"])}
    closure = deps.resolve(["app"], lambda n, s: index.get(n), GPU)
    assert closure.missing == {"ghost"}
    assert any("lib>=3" in c and "2.1" in c for c in closure.conflicts)
    assert any("numpy<2" in c and "2.5.2" in c for c in closure.conflicts)


def test_an_installed_folder_is_complete_only_when_every_requirement_is_met_somewhere():
    installed = {n: INDEX[n] for n in ("app", "lib", "helper", "web", "core", "speedups")}
    assert not deps.check_installed(installed, GPU).missing
    del installed["helper"]
    incomplete = deps.check_installed(installed, GPU)
    assert incomplete.missing == {"helper"}
    ok, lines = deps.report(incomplete, {})
    assert not ok and any(line.startswith("MISSING: helper, needed by lib") for line in lines)


def test_installed_metadata_reads_dist_info_folders(tmp_path):
    info = tmp_path / "web-3.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: Web\nVersion: 3.0\nRequires-Dist: core\n"
                                   "Requires-Dist: speedups; extra == 'fast'\n\nlong description\n")
    assert deps.installed_metadata(tmp_path) == {"web": ("3.0", ["core", "speedups; extra == 'fast'"])}


# ------------------------------------------------------------------------------------------------
# imports: what a chapter imports
# ------------------------------------------------------------------------------------------------


def test_imported_modules_follow_the_course_package_and_string_imports():
    code = (
        "import numpy as np\nfrom torch import nn\nfrom course_utils import data, setup\n"
        "def f():\n    import fastai.learner\n    __import__('course_utils.pretrained')\n"
    )
    found = imports.imported_modules(code)
    assert {"numpy", "torch", "course_utils", "course_utils.data", "fastai.learner", "course_utils.pretrained"} <= found
    assert "course_utils.setup" not in found  # a function, not a module
    assert imports.third_party(found) == {"numpy", "torch", "fastai"}
    # the data registry names builders and loaders as "module:function": loading one imports its module
    spec = imports.imported_modules('Dataset(load="course_utils.pretrained.ch05:review_lm", title="a: b")')
    assert spec == {"course_utils.pretrained.ch05"}


def test_an_import_guarded_by_except_importerror_is_optional_and_not_counted():
    code = (
        "def download():\n    try:\n        from kaggle.api import KaggleApi\n    except ImportError:\n        return None\n"
        "def other():\n    try:\n        import spacy\n    except ValueError:\n        pass\n"
        "try:\n    import onnx\nexcept (OSError, ModuleNotFoundError):\n    onnx = None\n"
    )
    found = imports.imported_modules(code)
    assert "kaggle.api" not in found and "onnx" not in found  # optional: the code runs without them
    assert "spacy" in found  # a try that does not catch ImportError guards nothing
    # the tabular chapter reaches the Kaggle loader, whose kaggle import is optional
    modules = imports.chapter_modules(config.REPO_ROOT / "chapters" / "06_tabular.py")
    assert "course_utils.data.kaggle" in modules and not any(m.split(".")[0] == "kaggle" for m in modules)


def test_a_chapter_reaches_its_checks_and_the_data_layer():
    modules = imports.chapter_modules(config.REPO_ROOT / "chapters" / "02_autograd.py")
    assert {"course_utils.checks.ch02", "course_utils.data", "course_utils.env", "torch"} <= modules


def test_only_the_nlp_chapter_roots_spacy_and_every_bundle_roots_the_runner():
    for slugs, wants_spacy in ((["01_tensors", "02_autograd", "03_nn"], False), (["04_cnns"], False), (["05_nlp"], True)):
        roots, _ = bundle.bundle_roots(slugs)
        assert ("spacy" in roots) == wants_spacy, slugs
        assert {"nbval", "ipykernel", "fastai", "torch"} <= set(roots)
    assert set(config.DEFERRED) == {"spacy"}


def test_distributions_map_modules_and_name_what_is_not_installed():
    owners = {"sklearn": ["scikit-learn"], "PIL": ["pillow"]}
    assert imports.distributions({"sklearn.linear_model", "PIL.Image", "json"}, owners) == {
        "scikit-learn": {"sklearn"}, "pillow": {"PIL"}}
    with pytest.raises(LookupError, match="nowhere_pkg"):
        imports.distributions({"nowhere_pkg"}, owners)


# ------------------------------------------------------------------------------------------------
# datasets: carried or rebuilt
# ------------------------------------------------------------------------------------------------


def fake_dataset(chapters, *kinds_and_requires, trained=False):
    sources = [SimpleNamespace(kind=kind, requires=tuple(requires)) for kind, requires in kinds_and_requires]
    return SimpleNamespace(chapters=tuple(chapters), sources=tuple(sources), trained=trained)


def test_derived_datasets_are_rebuilt_after_their_inputs_and_models_are_carried():
    registry = {
        "raw": fake_dataset(["99_other"], ("debian-system", ()), ("online", ())),
        "photos": fake_dataset(["01_a"], ("pypi", ())),
        "export": fake_dataset(["01_a"], ("course", ["raw"])),
        "generated": fake_dataset(["02_b"], ("generator", ())),
        "model": fake_dataset(["01_a"], ("course", ["raw"]), trained=True),
    }
    plan = datasets.plan(["01_a"], registry)
    assert plan == datasets.DataPlan(carried=("model", "photos", "raw"), rebuilt=("export",))
    assert datasets.plan(["02_b"], registry) == datasets.DataPlan(carried=(), rebuilt=("generated",))


def test_the_registry_plan_rebuilds_the_png_export_the_dicom_series_and_the_generated_numbers():
    plan = datasets.plan(["01_tensors", "02_autograd", "03_nn"], DATASETS)
    assert plan.rebuilt == ("ct_dicom",)
    assert {"ct_volume", "ct_slice", "chelsea", "diamonds", "ewr_hourly", "austen", "mnist5k"} <= set(plan.carried)
    plan = datasets.plan(["04_cnns"], DATASETS)
    assert plan.rebuilt == ("fmnist_png",) and {"fashion_mnist", "fmnist8_body", "mnist5k"} <= set(plan.carried)
    plan = datasets.plan(["05_nlp"], DATASETS)
    assert plan.rebuilt == ("human_numbers",) and {"austen_lm", "review_lm", "reviews", "austen"} <= set(plan.carried)


# ------------------------------------------------------------------------------------------------
# bundle: the split and the sizes
# ------------------------------------------------------------------------------------------------


def test_every_chapter_is_in_exactly_one_bundle():
    split = bundle.assign(bundle.chapter_slugs(), config.BUNDLES)
    assigned = [slug for slugs in split.values() for slug in slugs]
    assert sorted(assigned) == bundle.chapter_slugs() and len(assigned) == len(set(assigned))


def test_the_split_rejects_unassigned_doubled_and_empty_bundles():
    slugs = ["01_a", "02_b", "03_c"]
    assert bundle.assign(slugs, {"x": ("01", "02"), "y": ("03", "07")}) == {"x": ["01_a", "02_b"], "y": ["03_c"]}
    with pytest.raises(ValueError, match="03_c in no bundle"):
        bundle.assign(slugs, {"x": ("01", "02")})
    with pytest.raises(ValueError, match="both bundles"):
        bundle.assign(slugs, {"x": ("01", "02"), "y": ("02", "03")})
    with pytest.raises(ValueError, match="none of its chapters"):
        bundle.assign(slugs, {"x": ("01", "02", "03"), "y": ("08",)})


def test_the_size_report_fails_a_bundle_that_does_not_fit_with_the_working_tree():
    mib = 2**20
    ok, lines = bundle.size_report({"a": 50 * mib, "b": 59 * mib}, tree=6 * mib, limit=64 * mib)
    assert not ok
    assert "ok" in lines[1] and "OVER THE LIMIT" in lines[2] and ".gpu/b" in lines[2]
    assert bundle.size_report({"a": 50 * mib}, tree=6 * mib, limit=64 * mib)[0]


# ------------------------------------------------------------------------------------------------
# archive, manifest, checkout: what travels and how it is checked there
# ------------------------------------------------------------------------------------------------


def make_wheel(path: Path) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
        wheel.writestr("demo/__init__.py", "VALUE = 1\n" * 100)
        wheel.writestr("demo-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: demo\nVersion: 1.0\n")
    return path


def test_a_stored_wheel_keeps_every_member_uncompressed(tmp_path):
    wheel = make_wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    stored = tmp_path / "stored.whl"
    stored.write_bytes(archive.stored_wheel(wheel))
    with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(stored) as b:
        assert a.namelist() == b.namelist()
        assert all(a.read(n) == b.read(n) for n in a.namelist())
        assert {i.compress_type for i in b.infolist()} == {zipfile.ZIP_STORED}


def test_archives_are_reproducible(tmp_path):
    entries = [("b/one.txt", b"1" * 1000), ("a/two.bin", bytes(range(256)))]
    archive.write_tar_xz(entries, tmp_path / "x.tar.xz")
    archive.write_tar_xz(entries, tmp_path / "y.tar.xz")
    assert (tmp_path / "x.tar.xz").read_bytes() == (tmp_path / "y.tar.xz").read_bytes()
    with tarfile.open(tmp_path / "x.tar.xz") as tar:
        assert tar.getnames() == ["b/one.txt", "a/two.bin"]


@pytest.fixture
def small_bundle(tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    wheel = make_wheel(tmp_path / "demo-1.0-py3-none-any.whl")
    stored = archive.stored_wheel(wheel)
    archive.write_tar_xz([(wheel.name, stored)], folder / config.WHEELS_ARCHIVE)
    archive.write_tar_xz([("tables/t.csv", b"a,b\n1,2\n"), ("manifests/t.json", b"{}")], folder / config.DATA_ARCHIVE)
    manifest.write(folder, {"chapters": ["01_a"],
                            "wheels": [{"file": wheel.name, "stored_sha256": hashlib.sha256(stored).hexdigest()}]})
    return folder


def test_the_manifest_catches_changed_missing_and_extra_files(small_bundle):
    assert manifest.verify(small_bundle) == []
    assert manifest.read(small_bundle)["total_bytes"] == sum(f["bytes"] for f in manifest.read(small_bundle)["files"])
    (small_bundle / "stray.txt").write_text("x")
    data = small_bundle / config.DATA_ARCHIVE
    data.write_bytes(data.read_bytes()[:-1] + b"\0")
    problems = manifest.verify(small_bundle)
    assert "not in the manifest: stray.txt" in problems and f"sha256 differs: {config.DATA_ARCHIVE}" in problems
    (small_bundle / config.WHEELS_ARCHIVE).unlink()
    assert f"missing: {config.WHEELS_ARCHIVE}" in manifest.verify(small_bundle)


def test_unpacking_restores_the_data_and_checks_each_wheel(small_bundle, tmp_path):
    assert manifest.unpack(small_bundle, "data", tmp_path / "data") == ["tables/t.csv", "manifests/t.json"]
    assert (tmp_path / "data" / "tables" / "t.csv").read_text() == "a,b\n1,2\n"
    assert manifest.unpack(small_bundle, "wheels", tmp_path / "w") == ["demo-1.0-py3-none-any.whl"]
    info = manifest.read(small_bundle)
    info["wheels"][0]["stored_sha256"] = "0" * 64
    (small_bundle / config.MANIFEST).write_text(json.dumps(info))
    with pytest.raises(ValueError, match="demo-1.0"):
        manifest.unpack(small_bundle, "wheels", tmp_path / "w2")


def test_stand_ins_link_only_the_distributions_the_gpu_machine_lists(tmp_path):
    dists = standin.stand_ins(deps.Provided.from_lines(["pytest", "iniconfig"]))
    assert sorted(deps.normalise(d.metadata["Name"]) for d in dists) == ["iniconfig", "pytest"]
    standin.link(dists, tmp_path)
    assert (tmp_path / "_pytest").is_symlink() and (tmp_path / "iniconfig").is_symlink()
    assert not (tmp_path / "nbval").exists()


def test_the_checkout_gets_course_utils_metadata_without_a_build(tmp_path):
    folder = checkout.write_dist_info(tmp_path)
    assert folder.name == "course_utils-0.1.0.dist-info"
    (dist,) = metadata.distributions(path=[str(tmp_path)])
    assert dist.metadata["Name"] == "course-utils" and dist.version == "0.1.0"


# ------------------------------------------------------------------------------------------------
# summary
# ------------------------------------------------------------------------------------------------

JUNIT = """<?xml version="1.0" encoding="utf-8"?><testsuites><testsuite name="pytest" tests="4">
<testcase classname="chapters.01_tensors.ipynb" name="Cell 0" time="1.5"/>
<testcase classname="chapters.01_tensors.ipynb" name="Cell 1" time="2.0"><failure message="Cell outputs differ">diff</failure></testcase>
<testcase classname="chapters.02_autograd.ipynb" name="Cell 0" time="0.5"><skipped message="skip"/></testcase>
<testcase classname="chapters.02_autograd.ipynb" name="Cell 1" time="0.25"/>
</testsuite></testsuites>"""


def test_the_summary_counts_cells_per_notebook_and_fails_on_a_failed_cell(tmp_path):
    (tmp_path / "junit-gpu.xml").write_text(JUNIT)
    (tmp_path / "steps.tsv").write_text("verify\tok\t1\t\nnbval-gpu\tFAILED\t30\t (exit 1)\n")
    counts, failures = summary.read_junit(tmp_path / "junit-gpu.xml")
    assert counts["01_tensors"] == {"passed": 1, "failed": 1, "error": 0, "skipped": 0, "seconds": 3.5}
    assert counts["02_autograd"]["skipped"] == 1 and counts["02_autograd"]["passed"] == 1
    assert failures == ["01_tensors Cell 1: failed: Cell outputs differ"]
    text, result = summary.summarise(tmp_path, "ch01-03")
    assert result["result"] == "FAIL" and "failed steps: nbval-gpu" in text and "1 failing cell(s)" in text


def test_the_summary_of_a_dry_run_and_of_a_run_that_stopped_early(tmp_path):
    (tmp_path / "steps.tsv").write_text("verify\tok\t1\t\nnbval-gpu\tdry-run\t0\tnot run\n")
    assert summary.summarise(tmp_path)[1]["result"] == "DRY-RUN OK"
    (tmp_path / "steps.tsv").write_text("verify\tFAILED\t1\t (exit 1)\n")
    text, result = summary.summarise(tmp_path)
    assert result["result"] == "FAIL" and "failed steps: verify" in text
    (tmp_path / "junit-cpu.xml").write_text("<testsuites><broken")
    assert summary.read_junit(tmp_path / "junit-cpu.xml")[0]["(run)"]["error"] == 1
