"""movielens(source="grouplens-100k"): the online-only MovieLens 100k of 07_collab, with a fake download.

No test reaches the network: `download` is replaced by one that writes a small archive in the layout of
ml-100k.zip, and the cache is a temporary folder in COURSE_DATA.
"""

from __future__ import annotations

import zipfile

import pandas as pd
import pytest

import course_utils.data.grouplens as grouplens
from course_utils.data import DataUnavailable, movielens
from course_utils.data.errors import SourceFailed

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t242\t1\t878887116\n22\t267\t2\t878887117\n"


def item_line(movie_id, title, genres):
    flags = [("1" if g in genres else "0") for g in grouplens.ML100K_GENRES]
    return "|".join([str(movie_id), title, "01-Jan-1997", "", "http://us.imdb.com/x", *flags])


U_ITEM = "\n".join([
    item_line(242, "Kolya (1996)", {"Comedy"}),
    item_line(302, "L.A. Confidential (1997)", {"Crime", "Film-Noir", "Mystery", "Thriller"}),
    item_line(267, "unknown", set()),
]) + "\n"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("COURSE_DATA", str(root))
    monkeypatch.delenv("COURSE_ONLINE", raising=False)
    return root


def fake_download(monkeypatch, item_text=U_ITEM, fail=None):
    calls = []

    def download(url, target, checksum):
        calls.append(url)
        if fail:
            raise SourceFailed(fail)
        target.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(target, "w") as archive:
            archive.writestr("ml-100k/u.data", U_DATA)
            archive.writestr("ml-100k/u.item", item_text.encode("latin-1"))
        return target

    monkeypatch.setattr(grouplens, "download_file", download)
    return calls


def test_offline_it_names_the_url_and_the_switch(cache, monkeypatch):
    calls = fake_download(monkeypatch)
    with pytest.raises(DataUnavailable) as err:
        movielens(source="grouplens-100k")
    assert grouplens.ML100K_URL in str(err.value) and "COURSE_ONLINE=1" in str(err.value)
    assert calls == [] and not (cache / "movielens_100k").exists()


def test_online_it_reads_the_archive_into_the_dslabs_columns_once(cache, monkeypatch):
    calls = fake_download(monkeypatch)
    frame = movielens(online=True, source="grouplens-100k")
    assert list(frame.columns) == ["movieId", "title", "year", "genres", "userId", "rating", "timestamp"]
    assert len(frame) == 4 and frame["rating"].dtype == float
    kolya = frame[frame["movieId"] == 242].iloc[0]
    assert (kolya["title"], kolya["year"], kolya["genres"]) == ("Kolya", 1996.0, "Comedy")
    noir = frame[frame["movieId"] == 302].iloc[0]
    assert noir["genres"] == "Crime|Film-Noir|Mystery|Thriller"
    again = movielens(source="grouplens-100k")  # cached: no switch, no second download
    pd.testing.assert_frame_equal(frame, again)
    assert len(calls) == 1


def test_a_title_without_a_year_keeps_its_text_and_a_movie_without_genres_says_so(cache, monkeypatch):
    fake_download(monkeypatch)
    row = movielens(online=True, source="grouplens-100k").set_index("movieId").loc[267]
    assert row["title"] == "unknown" and pd.isna(row["year"]) and row["genres"] == "(no genres listed)"


def test_a_failed_download_or_a_bad_archive_leaves_nothing_in_the_cache(cache, monkeypatch):
    fake_download(monkeypatch, fail="download of https://files.grouplens.org failed: timed out")
    with pytest.raises(DataUnavailable, match="timed out"):
        movielens(online=True, source="grouplens-100k")
    fake_download(monkeypatch, item_text="242|Kolya (1996)|01-Jan-1997\n")  # too few columns
    with pytest.raises(DataUnavailable, match="columns"):
        movielens(online=True, source="grouplens-100k")
    assert not (cache / "movielens_100k").exists()
    assert not list((cache / ".tmp").glob("*"))  # the work folders are gone


def test_an_unknown_source_is_refused():
    with pytest.raises(ValueError, match="grouplens-100k"):
        movielens(source="ml-1m")
