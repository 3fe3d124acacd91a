"""tabular_source: the online-only Kaggle tables (06_tabular's bulldozers), with a fake `kaggle` package.

No test reaches the network: the `kaggle` modules are stand-ins put into sys.modules, and the cache is a
temporary folder in COURSE_DATA.
"""

from __future__ import annotations

import sys
import types
import zipfile
from pathlib import Path

import pytest

import course_utils.data as data
from course_utils.data import DataUnavailable, tabular_source

CSV = "SalesID,SalePrice,saledate\n1139246,66000,11/16/2006 0:00\n1139248,57000,3/26/2004 0:00\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache in COURSE_DATA, no Kaggle credentials, online sources off, a home without ~/.kaggle."""
    root = tmp_path / "cache"
    monkeypatch.setenv("COURSE_DATA", str(root))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    for variable in ("COURSE_ONLINE", "KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_CONFIG_DIR"):
        monkeypatch.delenv(variable, raising=False)
    return root


def fake_kaggle(monkeypatch, download):
    """Put a `kaggle` package whose KaggleApi.competition_download_file runs `download` into sys.modules."""
    calls = []

    class KaggleApi:
        def authenticate(self):
            calls.append("authenticate")

        def competition_download_file(self, competition, file_name, path=None, force=False, quiet=False):
            calls.append((competition, file_name))
            download(Path(path), file_name)

    extended = types.ModuleType("kaggle.api.kaggle_api_extended")
    extended.KaggleApi = KaggleApi
    api = types.ModuleType("kaggle.api")
    api.kaggle_api_extended = extended
    package = types.ModuleType("kaggle")
    package.api = api
    monkeypatch.setitem(sys.modules, "kaggle", package)
    monkeypatch.setitem(sys.modules, "kaggle.api", api)
    monkeypatch.setitem(sys.modules, "kaggle.api.kaggle_api_extended", extended)
    return calls


def write_zipped(folder: Path, file_name: str) -> None:
    """What Kaggle sends for a large file: <file>.zip holding it."""
    with zipfile.ZipFile(folder / f"{file_name}.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(file_name, CSV)


def leftovers(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in (root / ".tmp").rglob("*"))


def test_it_is_exported_and_names_its_chapter():
    assert "tabular_source" in data.__all__ and "Used in 06_tabular" in tabular_source.__doc__


def test_offline_it_says_it_is_online_only_and_how_to_switch_it_on(cache):
    with pytest.raises(DataUnavailable) as caught:
        tabular_source("bulldozers")
    message = str(caught.value)
    assert "online-only" in message and "COURSE_ONLINE=1" in message and "online=True" in message
    assert "Kaggle" in message and "API token" in message
    assert "course data" not in message  # `course data` does not prepare it
    assert not cache.exists()


def test_online_without_credentials_it_names_both_ways(cache, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")  # half of the pair is not enough
    with pytest.raises(DataUnavailable) as caught:
        tabular_source("bulldozers", online=True)
    message = str(caught.value)
    assert "kaggle.json" in message and "KAGGLE_USERNAME" in message and "KAGGLE_KEY" in message
    assert "https://www.kaggle.com/settings" in message and "rules" in message
    assert "bluebook-for-bulldozers" in message


def test_an_unknown_name_lists_the_known_ones(cache):
    with pytest.raises(ValueError, match="bulldozers"):
        tabular_source("titanic", online=True)


def test_without_the_kaggle_package_it_says_pip_install_kaggle(cache, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "secret")
    monkeypatch.setitem(sys.modules, "kaggle", None)  # `import kaggle` raises ImportError
    with pytest.raises(DataUnavailable, match="pip install kaggle"):
        tabular_source("bulldozers", online=True)


def test_a_zipped_download_lands_in_the_cache_once(cache, monkeypatch, tmp_path):
    config = tmp_path / "kaggle-config"
    config.mkdir()
    (config / "kaggle.json").write_text('{"username": "someone", "key": "secret"}')
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(config))
    calls = fake_kaggle(monkeypatch, write_zipped)

    path = tabular_source("bulldozers", online=True)
    assert path == cache / "bulldozers" / "TrainAndValid.csv" and path.read_text() == CSV
    assert calls == ["authenticate", ("bluebook-for-bulldozers", "TrainAndValid.csv")]
    assert sorted(p.name for p in (cache / "bulldozers").iterdir()) == ["TrainAndValid.csv"]
    assert leftovers(cache) == []

    monkeypatch.delenv("KAGGLE_CONFIG_DIR")  # the cached file needs neither credentials nor online
    assert tabular_source() == path and len(calls) == 2


def test_a_plain_download_from_home_credentials(cache, monkeypatch):
    (Path.home() / ".kaggle").mkdir(parents=True)
    (Path.home() / ".kaggle" / "kaggle.json").write_text("{}")
    fake_kaggle(monkeypatch, lambda folder, name: (folder / name).write_text(CSV))
    monkeypatch.setenv("COURSE_ONLINE", "1")
    assert tabular_source().read_text() == CSV and leftovers(cache) == []


def test_a_download_that_fails_midway_leaves_no_file(cache, monkeypatch):
    monkeypatch.setenv("KAGGLE_USERNAME", "someone")
    monkeypatch.setenv("KAGGLE_KEY", "secret")

    def broken(folder, name):
        (folder / f"{name}.zip").write_bytes(b"PK\x03\x04 half an archive")
        raise ConnectionError("connection reset")

    calls = fake_kaggle(monkeypatch, broken)
    with pytest.raises(DataUnavailable, match="connection reset"):
        tabular_source("bulldozers", online=True)
    assert not (cache / "bulldozers" / "TrainAndValid.csv").exists() and leftovers(cache) == []

    fake_kaggle(monkeypatch, lambda folder, name: (folder / f"{name}.zip").write_bytes(b"not a zip"))
    with pytest.raises(DataUnavailable, match="download failed"):
        tabular_source("bulldozers", online=True)
    assert not (cache / "bulldozers" / "TrainAndValid.csv").exists() and leftovers(cache) == []
    assert len(calls) == 2
