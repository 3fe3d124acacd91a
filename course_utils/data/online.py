"""The online switch and checked downloads. Used only when a learner asks for them, or on Colab.

Offline sources always come first. The online source of a dataset (its original URL) is tried only
when `COURSE_ONLINE=1` is set, a loader is called with `online=True`, or the code runs on Google Colab
(where nothing is prepared and the data must arrive by themselves; `COURSE_ONLINE=0` turns it off
there). Tests never switch it on; in the Colab simulation (tests/test_colab.py) the offline sources
come first and suffice.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

from course_utils.config import on_colab
from course_utils.data.errors import SourceFailed

__all__ = ["download", "online_enabled", "TIMEOUT_S"]

TIMEOUT_S = 60


def online_enabled(online: bool | None = None) -> bool:
    """True when online sources may be used (every loader in every chapter asks, through `ensure`).

    `online=True` switches them on. Otherwise (False or None, the loaders' default) COURSE_ONLINE
    decides when it is set (1/true/yes on, anything else off), and when it is not set they are on
    only on Google Colab.
    """
    if online:
        return True
    setting = os.environ.get("COURSE_ONLINE", "").strip().lower()
    if setting:
        return setting in {"1", "true", "yes"}
    return on_colab()


def download(url: str | tuple[str, ...], target: Path, checksum: str | None) -> Path:
    """Download `url` to `target` (atomically) and check it against `checksum`.

    `checksum` is "sha256:<hex>" or "md5:<hex>" (the form a publisher gives), or None where the
    publisher gives none; the file's sha256 is then recorded in the manifest when it is prepared,
    so a later change of the file is still detected. A tuple of URLs names mirrors of one file, tried
    in order until one gives the file with the right checksum.
    """
    if isinstance(url, tuple):
        failures = []
        for mirror in url:
            try:
                return download(mirror, target, checksum)
            except SourceFailed as err:
                failures.append(str(err))
        raise SourceFailed("; ".join(failures) or "no URL given")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(partial, "wb") as out:
            shutil.copyfileobj(response, out)
    except OSError as err:  # URLError, HTTPError and timeouts are OSErrors
        partial.unlink(missing_ok=True)
        raise SourceFailed(f"download of {url} failed: {err}") from err
    if checksum:
        algorithm, expected = checksum.split(":", 1)
        with open(partial, "rb") as handle:
            actual = hashlib.file_digest(handle, algorithm).hexdigest()
        if actual != expected:
            partial.unlink(missing_ok=True)
            raise SourceFailed(f"{url} has {algorithm} {actual}, expected {expected}")
    os.replace(partial, target)
    return target
