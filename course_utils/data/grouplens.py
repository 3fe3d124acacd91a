"""MovieLens 100k from GroupLens, the fastai book's ratings: online only.

GroupLens's terms do not allow redistributing MovieLens, so the course ships no copy and `course data`
does not prepare it: 07_collab runs on the dslabs sample (`movielens()`), and a learner who is online
gets the book's data with `movielens(source="grouplens-100k")`. The archive is downloaded once, when
online sources are on (COURSE_ONLINE=1, `online=True`, or Colab), and its ratings and titles are stored
as one parquet file in <cache>/movielens_100k/, in the columns of the dslabs frame.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import pandas as pd

from course_utils.data.cache import cache_dir, install_file_once
from course_utils.data.errors import DataUnavailable, SourceFailed
from course_utils.data.online import download as download_file
from course_utils.data.online import online_enabled

__all__ = ["ML100K_GENRES", "ML100K_URL", "movielens_100k", "read_ml100k"]

ML100K_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
NAME = "movielens_100k"
# The 19 genre flags of u.item, in their column order (the archive's u.genre).
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
                 "War", "Western")
COLUMNS = ["movieId", "title", "year", "genres", "userId", "rating", "timestamp"]


def movielens_100k(online: bool | None = None) -> pd.DataFrame:
    """The 100,000 ratings (1-5 whole stars) of 943 users on 1,682 movies, 1997-98. Used in 07_collab.

    The same columns as `movielens()`: movieId, title (without the year), year, genres ("|"-joined),
    userId, rating, timestamp. Online only; raises DataUnavailable, naming the URL and the fix, when
    online sources are off or the download fails. A copy already in the cache is read without the network.
    """
    target = cache_dir() / NAME / "ratings.parquet"
    if target.is_file():
        return pd.read_parquet(target)
    cached = (f"the cache ({target})", "not downloaded yet")
    source = f"GroupLens {ML100K_URL}"
    if not online_enabled(online):
        raise DataUnavailable(
            NAME, [cached, (source, "online sources are off, and this dataset is online-only")],
            fix="switch online sources on: set COURSE_ONLINE=1, or call "
                "data.movielens(source='grouplens-100k', online=True). GroupLens's terms do not allow the course "
                "to ship a copy; offline, use data.movielens().",
        )

    def download(work: Path) -> Path:
        try:
            frame = read_ml100k(download_file(ML100K_URL, work / "ml-100k.zip", None))
        except (SourceFailed, zipfile.BadZipFile, KeyError, ValueError) as err:
            raise DataUnavailable(
                NAME, [cached, (source, f"{type(err).__name__}: {err}")],
                fix="check the connection (files.grouplens.org must be reachable) and call again.",
            ) from err
        frame.to_parquet(work / "ratings.parquet", index=False)
        return work / "ratings.parquet"

    return pd.read_parquet(install_file_once(NAME, target, download))


def read_ml100k(archive: Path) -> pd.DataFrame:
    """The ratings (u.data) and titles (u.item) of the ml-100k.zip archive as one frame of `COLUMNS`."""
    with zipfile.ZipFile(archive) as zipped:
        with zipped.open("ml-100k/u.data") as handle:
            ratings = pd.read_csv(handle, sep="\t", names=["userId", "movieId", "rating", "timestamp"])
        with zipped.open("ml-100k/u.item") as handle:
            items = pd.read_csv(handle, sep="|", encoding="latin-1", header=None)
    if items.shape[1] != 5 + len(ML100K_GENRES):
        raise ValueError(f"u.item has {items.shape[1]} columns, expected {5 + len(ML100K_GENRES)}")
    parts = items[1].str.extract(r"^(?P<title>.*?)\s*\((?P<year>\d{4})\)\s*$")
    flags = items.iloc[:, 5:].to_numpy(dtype=bool)
    movies = pd.DataFrame({
        "movieId": items[0],
        "title": parts["title"].fillna(items[1]),
        "year": pd.to_numeric(parts["year"]).astype(float),
        "genres": ["|".join(g for g, on in zip(ML100K_GENRES, row) if on) or "(no genres listed)" for row in flags],
    })
    frame = ratings.merge(movies, on="movieId", how="left", validate="many_to_one")
    return frame.assign(rating=frame["rating"].astype(float))[COLUMNS]
