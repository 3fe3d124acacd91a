"""Checkpoints that load safely: metadata in plain types, an atomic write, a sha256 sidecar, a `.best` copy.

After *Deep Learning with PyTorch* ch. 13 (a checkpoint dict with the epoch, argv and a content hash), with
what deployment adds: `torch.load(..., weights_only=True)` (the default since torch 2.6) unpickles tensors and
plain Python types only, so everything in the file must be one of them; the file's sha256 lives beside it in
`sha256sum`'s format (`sha256sum -c model.pt.sha256` checks it from a shell), and loading refuses a file that
no longer matches. A model trained under DistributedDataParallel saves keys that start with `module.`;
`load_checkpoint` strips that prefix before a strict load.

It sits with the shared helpers (below `pretrained` and `deploy`) because both use it: the course's cached
training steps write their models with it (pretrained.ch09), and 09_deploy teaches it (re-exported by
`course_utils.deploy`).
"""

from __future__ import annotations

import datetime
import hashlib
import io
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

__all__ = ["ChecksumError", "file_sha256", "load_checkpoint", "save_checkpoint", "sidecar_path", "strip_prefix"]

_HEX64 = re.compile(r"[0-9a-f]{64}")
_PLAIN = (str, int, float, bool, type(None))


class ChecksumError(ValueError):
    """A checkpoint whose sha256 differs from the one written beside it when it was saved. Used in 09_deploy."""


def file_sha256(path: str | os.PathLike, chunk_bytes: int = 1 << 20) -> str:
    """The sha256 of a file as 64 hex digits, read in chunks (a large file never sits in memory whole).

    The same digest as `sha256sum FILE`. Taught in 09_deploy."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()


def sidecar_path(path: str | os.PathLike) -> Path:
    """Where a checkpoint's digest lives: `model.pt` -> `model.pt.sha256`. Used in 09_deploy."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def strip_prefix(state_dict: Mapping[str, Any], prefix: str = "module.") -> dict[str, Any]:
    """A new state dict with `prefix` removed from the keys that start with it; other keys are kept as they are.

    `module.` is what DistributedDataParallel (and DataParallel) put in front of every key, `_orig_mod.` is
    torch.compile's. Raises ValueError when stripping makes two keys equal. Taught in 09_deploy."""
    stripped: dict[str, Any] = {}
    for key, value in state_dict.items():
        new_key = key.removeprefix(prefix)
        if new_key in stripped:
            raise ValueError(f"stripping {prefix!r} from {key!r} collides with the key {new_key!r} already present")
        stripped[new_key] = value
    return stripped


def _require_plain(value: Any, where: str = "meta") -> None:
    """Raise TypeError unless `value` is built from str/int/float/bool/None, lists, tuples and str-keyed dicts."""
    if type(value) in _PLAIN:  # exact types: numpy.float64 is a float, but weights_only refuses it
        return
    if type(value) in (list, tuple):
        for i, item in enumerate(value):
            _require_plain(item, f"{where}[{i}]")
        return
    if type(value) is dict:
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"{where} has the key {key!r} of type {type(key).__name__}; use str keys")
            _require_plain(item, f"{where}[{key!r}]")
        return
    raise TypeError(f"{where} is a {type(value).__module__}.{type(value).__qualname__}: store plain Python types "
                    "(str, int, float, bool, None, list, dict), e.g. float(x) or x.tolist(), so that the file loads "
                    "with torch.load(..., weights_only=True)")


def _write_atomically(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, then rename it over `path` (readers never see half a file)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _write_with_digest(path: Path, data: bytes, digest: str) -> None:
    _write_atomically(path, data)
    _write_atomically(sidecar_path(path), f"{digest}  {path.name}\n".encode())


def save_checkpoint(path: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer | None = None, *,
                    epoch: int = 0, meta: dict | None = None, best: bool = False) -> str:
    """Save a checkpoint dict atomically, its sha256 beside it, and a `.best` copy when `best`; return the digest.

    The file holds {"model_state", "optimizer_state" (None without an optimizer), "epoch", "meta", "argv",
    "time" (UTC, ISO 8601), "torch_version"}; `meta` must be plain Python types (TypeError otherwise), so
    the whole file loads with `weights_only=True`. `model.pt` gets `model.pt.sha256` ("<hex>  model.pt"),
    and with `best=True` also `model.best.pt` and `model.best.pt.sha256`. The state dict is saved as the
    model gives it (a wrapped model's `module.` prefix included; loading strips it). Taught in 09_deploy."""
    meta = {} if meta is None else meta
    _require_plain(meta)
    checkpoint = {
        "model_state": model.state_dict(),
        "optimizer_state": None if optimizer is None else optimizer.state_dict(),
        "epoch": int(epoch),
        "meta": meta,
        "argv": [str(a) for a in sys.argv],
        "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch_version": str(torch.__version__),
    }
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    data = buffer.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_with_digest(path, data, digest)
    if best:
        _write_with_digest(path.with_name(f"{path.stem}.best{path.suffix}"), data, digest)
    return digest


def _expected_digest(path: Path) -> str:
    sidecar = sidecar_path(path)
    if not sidecar.is_file():
        raise FileNotFoundError(f"{sidecar} is missing, so {path.name} cannot be verified: save with save_checkpoint "
                                "(it writes the digest), or pass verify=False to load an unverified file")
    words = sidecar.read_text(encoding="utf-8").split()
    expected = words[0].lower() if words else ""
    if not _HEX64.fullmatch(expected):
        raise ChecksumError(f"{sidecar} does not start with a sha256 (64 hex digits): {expected[:80]!r}")
    return expected


def load_checkpoint(path: str | os.PathLike, model: nn.Module | None = None, *, verify: bool = True,
                    strict: bool = True) -> dict:
    """Verify a checkpoint's sha256, load it with `weights_only=True` on the CPU, strip `module.`, fill `model`.

    With `verify` (the default) the file's digest must equal its `.sha256` sidecar's: ChecksumError (a
    ValueError naming both digests) when the file changed, FileNotFoundError when the sidecar is missing.
    The bytes that were hashed are the bytes that are loaded. The returned dict's "model_state" has the
    `module.` prefix stripped; with a `model`, it is loaded with `load_state_dict(strict=strict)` (a
    missing or unexpected key raises). Taught in 09_deploy."""
    path = Path(path)
    data = path.read_bytes()
    if verify:
        expected = _expected_digest(path)
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected:
            raise ChecksumError(f"{path.name} has sha256 {actual}, but {sidecar_path(path).name} says {expected}: "
                                "the file changed after it was saved (tampered, truncated or overwritten)")
    checkpoint = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(checkpoint, dict) or "model_state" not in checkpoint:
        found = sorted(checkpoint)[:8] if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise ValueError(f"{path.name} is not a checkpoint dict with a 'model_state' (found {found})")
    checkpoint["model_state"] = strip_prefix(checkpoint["model_state"])
    if model is not None:
        model.load_state_dict(checkpoint["model_state"], strict=strict)
    return checkpoint
