"""The online switch and checked downloads. Used only when a learner asks for them.

Offline sources always come first. The online source of a dataset (its original URL) is tried only
when `COURSE_ONLINE=1` is set or a loader is called with `online=True`; tests never do either.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

from course_utils.data.errors import SourceFailed

__all__ = ["download", "online_enabled", "TIMEOUT_S"]

TIMEOUT_S = 60


def online_enabled(online: bool | None = None) -> bool:
    """True when online sources may be used: `online=True`, or COURSE_ONLINE=1 in the environment."""
    if online:
        return True
    return os.environ.get("COURSE_ONLINE", "").strip().lower() in {"1", "true", "yes"}


def download(url: str, target: Path, checksum: str | None) -> Path:
    """Download `url` to `target` (atomically) and check it against `checksum`.

    `checksum` is "sha256:<hex>" or "md5:<hex>" (the form a publisher gives), or None where the
    publisher gives none; the file's sha256 is then recorded in the manifest when it is prepared,
    so a later change of the file is still detected.
    """
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
