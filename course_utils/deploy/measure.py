"""Measuring a deployment choice: median latency, the bytes a model takes, and how often torch.compile compiled.

Timings vary from run to run and machine to machine: the chapter prints them only in ignored cells and
compares medians, never single runs.
"""

from __future__ import annotations

import io
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

__all__ = ["CompileCounts", "count_compiles", "file_bytes", "median_ms", "state_dict_bytes"]


def median_ms(fn: Callable[..., Any], *args: Any, repeats: int = 50, warmup: int = 3) -> float:
    """The median wall time of `fn(*args)` in milliseconds over `repeats` calls, after `warmup` untimed calls.

    `time.perf_counter` around each call; the median ignores the odd slow call (another process, a page
    fault). Work that a GPU runs asynchronously must be synchronised inside `fn`. Taught in 09_deploy."""
    if repeats < 1 or warmup < 0:
        raise ValueError(f"need repeats >= 1 and warmup >= 0, got {repeats} and {warmup}")
    for _ in range(warmup):
        fn(*args)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000.0


def state_dict_bytes(model: nn.Module) -> int:
    """How many bytes `torch.save(model.state_dict())` writes: the model's size on disk, without writing a file.

    Works for quantised models too (their packed int8 weights serialise with the state dict). Taught in 09_deploy."""
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getbuffer().nbytes


def file_bytes(*paths: str | os.PathLike) -> int:
    """The total size in bytes of the given files (an .onnx file and its .onnx.data sidecar). Taught in 09_deploy."""
    return sum(os.path.getsize(path) for path in paths)


class CompileCounts:
    """What torch.compile (TorchDynamo) compiled since this object was made: `.graphs` and `.frames`. Used in 09_deploy.

    Reads `torch._dynamo.utils.counters`, the counters Dynamo itself keeps in torch 2.14:
    `counters["stats"]["unique_graphs"]` (FX graphs captured and handed to the backend: one per compilation,
    a recompile for a new input shape adds one) and `counters["frames"]["ok"]` (Python frames converted).
    Both are process-wide and never reset here; the values are differences since construction, read live.
    """

    def __init__(self):
        self._graphs0, self._frames0 = self._now()

    @staticmethod
    def _now() -> tuple[int, int]:
        from torch._dynamo.utils import counters  # imported on use: Dynamo is heavy

        return counters["stats"]["unique_graphs"], counters["frames"]["ok"]

    @property
    def graphs(self) -> int:
        return self._now()[0] - self._graphs0

    @property
    def frames(self) -> int:
        return self._now()[1] - self._frames0

    def __enter__(self) -> CompileCounts:
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    def __repr__(self) -> str:
        return f"CompileCounts(graphs={self.graphs}, frames={self.frames})"


def count_compiles() -> CompileCounts:
    """Count torch.compile's compilations from now on: `with count_compiles() as c: ...; c.graphs`.

    `c.graphs` is the number of graphs Dynamo compiled meanwhile (the first call of a compiled model: 1; a
    batch of a new size: one more, until Dynamo marks the dimension dynamic). Taught in 09_deploy."""
    return CompileCounts()
