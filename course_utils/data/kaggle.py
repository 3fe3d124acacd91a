"""Online-only tables from Kaggle competitions: the original data some fastai book chapters use.

Unlike the registry's datasets, these have no offline source: Kaggle's competition rules do not allow
redistributing them, so `course data` does not prepare them and no chapter's stored output depends on
them. `tabular_source` downloads one with the learner's own Kaggle account, only when online sources
are on (COURSE_ONLINE=1, `online=True`, or Colab), into <cache>/<name>/, and later calls find it there.

The `kaggle` package is an optional dependency (Colab ships it; elsewhere `pip install kaggle`): it is
imported inside the function, in a `try:` that catches ImportError, which gpu_kit.imports reads as
optional, so neither the `[colab]` extra nor a GPU bundle carries it. `import kaggle` authenticates at
once, which is why the credentials are checked before it.
"""

from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path

from course_utils.data.cache import cache_dir, install_file_once
from course_utils.data.errors import DataUnavailable
from course_utils.data.online import online_enabled

__all__ = ["KAGGLE_TABLES", "tabular_source"]

# name -> (Kaggle competition, file of that competition)
KAGGLE_TABLES = {
    "bulldozers": ("bluebook-for-bulldozers", "TrainAndValid.csv"),
}

TOKEN_PAGE = "https://www.kaggle.com/settings"


def tabular_source(name: str = "bulldozers", online: bool | None = None) -> Path:
    """Path of a Kaggle competition's table, downloaded once into the cache. Used in 06_tabular.

    "bulldozers" is the Blue Book for Bulldozers competition's TrainAndValid.csv (about 400,000 sales,
    the fastai book's original data): read it with
    `pd.read_csv(path, low_memory=False, parse_dates=["saledate"])`; the target is `SalePrice`.
    Online only: it needs online sources on (COURSE_ONLINE=1 or `online=True`; on by default on
    Colab), a Kaggle account whose API token is in ~/.kaggle/kaggle.json ($KAGGLE_CONFIG_DIR/kaggle.json)
    or in KAGGLE_USERNAME and KAGGLE_KEY, the competition's rules accepted on its Kaggle page, and the
    `kaggle` package. Raises DataUnavailable when one is missing, saying which; a file already in the
    cache is returned without any of them.
    """
    if name not in KAGGLE_TABLES:
        raise ValueError(f"unknown Kaggle table {name!r}; known: {', '.join(KAGGLE_TABLES)}")
    competition, file_name = KAGGLE_TABLES[name]
    target = cache_dir() / name / file_name
    if target.is_file():
        return target
    page = f"https://www.kaggle.com/competitions/{competition}"
    cached = (f"the cache ({target})", "not downloaded yet")
    source = f"Kaggle competition {competition} ({page})"
    if not online_enabled(online):
        raise DataUnavailable(
            name, [cached, (source, "online sources are off, and this dataset is online-only")],
            fix=f"switch online sources on: set COURSE_ONLINE=1, or call tabular_source({name!r}, online=True). "
                f"It downloads with your Kaggle account: it needs an API token ({TOKEN_PAGE}, 'API' section) "
                f"and the competition's rules accepted on {page}.",
        )
    if not _has_credentials():
        raise DataUnavailable(
            name, [cached, (source, "no Kaggle credentials found")],
            fix=f"create an API token at {TOKEN_PAGE} ('API' section, 'Create New Token') and either save "
                "the kaggle.json it gives as ~/.kaggle/kaggle.json (or $KAGGLE_CONFIG_DIR/kaggle.json), or set "
                f"KAGGLE_USERNAME and KAGGLE_KEY from it. Accept the competition's rules on {page} too.",
        )
    try:
        from kaggle.api.kaggle_api_extended import KaggleApi
    except ImportError as err:
        raise DataUnavailable(
            name, [cached, (source, f"the kaggle package is not installed ({err})")],
            fix="`pip install kaggle` (Colab ships it), then call again.",
        ) from err
    except Exception as err:  # `import kaggle` authenticates: a malformed kaggle.json fails here
        raise DataUnavailable(
            name, [cached, (source, f"the kaggle package could not start: {type(err).__name__}: {err}")],
            fix=f"check your Kaggle API token ({TOKEN_PAGE}) in kaggle.json or KAGGLE_USERNAME/KAGGLE_KEY.",
        ) from err

    def download(work: Path) -> Path:
        try:
            api = KaggleApi()
            api.authenticate()
            api.competition_download_file(competition, file_name, path=str(work), quiet=True)
            return _find_file(work, file_name)
        except Exception as err:  # HTTP errors, rules not accepted, a bad zip: say which
            raise DataUnavailable(
                name, [cached, (source, f"the download failed: {type(err).__name__}: {err}")],
                fix=f"check your Kaggle token ({TOKEN_PAGE}) and that you accepted the competition's rules "
                    f"on {page}, then call again.",
            ) from err

    return install_file_once(name, target, download)


def _has_credentials() -> bool:
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return True
    folder = os.environ.get("KAGGLE_CONFIG_DIR") or Path.home() / ".kaggle"
    return (Path(folder).expanduser() / "kaggle.json").is_file()


def _find_file(work: Path, file_name: str) -> Path:
    """The downloaded file in `work`: as it came, or unzipped from the archive Kaggle sent."""
    plain = [p for p in work.rglob(file_name) if p.is_file()]
    if plain and not zipfile.is_zipfile(plain[0]):
        return plain[0]
    for archive in [*plain, *sorted(work.rglob("*.zip"))]:
        with zipfile.ZipFile(archive) as zipped:
            members = [m for m in zipped.namelist() if Path(m).name == file_name]
            if members:
                out = work / "unzipped" / file_name
                out.parent.mkdir(parents=True, exist_ok=True)
                with zipped.open(members[0]) as source, open(out, "wb") as sink:
                    shutil.copyfileobj(source, sink)
                return out
    found = sorted(p.name for p in work.rglob("*") if p.is_file())
    raise FileNotFoundError(f"{file_name} is not among the downloaded files ({', '.join(found) or 'none'})")
