"""Packing for the trip: reproducible tar.xz archives, and wheels re-zipped without compression.

A wheel is a zip of deflated files; xz compresses the raw bytes far better (spaCy's wheel: 35.5 MB
deflated, 22.7 MB as xz), so `stored_wheel` rewrites a wheel with every member stored as is (same
names, order, dates and modes; its RECORD stays true, since RECORD hashes the files, not the zip)
and the bundle carries all of them in one tar.xz. pip installs a stored wheel like the original.
"""

from __future__ import annotations

import io
import lzma
import tarfile
import zipfile
from collections.abc import Iterable
from pathlib import Path


def stored_wheel(wheel: Path) -> bytes:
    """The wheel's bytes with every member uncompressed (ZIP_STORED), members in their original order."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(wheel) as source, zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as target:
        for info in source.infolist():
            copy = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            copy.external_attr, copy.create_system = info.external_attr, info.create_system
            copy.compress_type = zipfile.ZIP_STORED
            target.writestr(copy, source.read(info))
    return buffer.getvalue()


def write_tar_xz(entries: Iterable[tuple[str, bytes]], path: Path, preset: int = 9) -> int:
    """Write (name, bytes) entries as a reproducible tar.xz (given order, time 0, owner root); return its size.

    Written under a temporary name and renamed, so an interrupted run leaves no half archive.
    """
    temporary = path.with_name(path.name + ".tmp")
    with lzma.open(temporary, "wb", preset=preset) as xz, tarfile.open(fileobj=xz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in entries:
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            tar.addfile(info, io.BytesIO(data))
    temporary.replace(path)
    return path.stat().st_size
