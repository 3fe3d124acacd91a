"""A micro-batcher: requests that arrive within a few milliseconds share one forward pass.

After *Deep Learning with PyTorch* ch. 15 (request batching), with threads instead of asyncio: callers
`submit` one item each and get a `concurrent.futures.Future`; one worker thread takes the first waiting
item, gathers more until it has `max_batch` or `max_wait` seconds have passed on the monotonic clock,
stacks them, runs one forward under `torch.inference_mode()`, and resolves every future with its row.
A full queue refuses new work at once (`Busy`, a `queue.Full`), which a service answers with 503.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

import torch

__all__ = ["Batcher", "Busy"]

_STOP = object()  # the sentinel close() queues behind every accepted item


class Busy(queue.Full):
    """Raised by `Batcher.submit` when its queue is full: try again later (a service answers 503). Used in 09_deploy."""


class Batcher:
    """Collect single items from many threads into batches for one model call each. Taught in 09_deploy.

    `Batcher(model_or_fn, max_batch=16, max_wait=0.005, max_queue=256)`; `submit(x)` (one item, e.g. a
    (1, 28, 28) image) returns a Future whose result is the model's output row for it. `calls` counts the
    forward passes and `batch_sizes` lists their sizes. An exception inside the model is set on every
    future of that batch (items of different shapes cannot be stacked, and fail together too); the worker
    goes on with the next batch. Calling the batcher with a batch, `batcher(xs)`, submits each row and
    stacks the results, so it can stand in for a model (`create_app(..., predict_batch=batcher)`).
    `close()` (or leaving a `with` block) lets the worker finish every accepted item, then stops it;
    closing twice is harmless, and `submit` after `close` raises RuntimeError.
    """

    def __init__(self, model_or_fn: Callable[[torch.Tensor], torch.Tensor], max_batch: int = 16,
                 max_wait: float = 0.005, max_queue: int = 256):
        if max_batch < 1 or max_queue < 1 or max_wait < 0:
            raise ValueError(f"need max_batch >= 1, max_queue >= 1 and max_wait >= 0, got {max_batch}, {max_queue}, "
                             f"{max_wait}")
        self.fn = model_or_fn
        self.max_batch, self.max_wait, self.max_queue = int(max_batch), float(max_wait), int(max_queue)
        self.calls = 0
        self.batch_sizes: list[int] = []
        self._queue: queue.Queue = queue.Queue(maxsize=self.max_queue)
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._work, name="Batcher", daemon=True)
        self._thread.start()

    @property
    def closed(self) -> bool:
        return self._closed

    def submit(self, x: torch.Tensor) -> Future:
        """Queue one item; the Future resolves to its output row. Busy when the queue is full."""
        future: Future = Future()
        with self._lock:  # an accepted item is always queued before close()'s sentinel
            if self._closed:
                raise RuntimeError("this Batcher is closed")
            try:
                self._queue.put_nowait((x, future))
            except queue.Full:
                raise Busy(f"busy: {self.max_queue} requests are already waiting; try again later") from None
        return future

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        """Submit each row of `batch`, wait for all, and stack the results (a batched model's interface)."""
        futures: list[Future] = []
        try:
            for row in batch:
                futures.append(self.submit(row))
        except BaseException:
            for future in futures:  # the ones the worker has not started are dropped
                future.cancel()
            raise
        return torch.stack([future.result() for future in futures])

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish the accepted items, stop the worker and wait for it (idempotent)."""
        with self._lock:
            first = not self._closed
            self._closed = True
        if first:
            self._queue.put(_STOP)  # blocks only while the queue is full, and the worker is draining it
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the Batcher's worker did not stop within {timeout} s (a model call still running?)")

    def __enter__(self) -> Batcher:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (f"Batcher(max_batch={self.max_batch}, max_wait={self.max_wait}, max_queue={self.max_queue}, "
                f"calls={self.calls}, {state})")

    # ---- the worker thread

    def _gather(self, first) -> tuple[list, bool]:
        """The first item plus whatever arrives until max_batch or the deadline; and whether the stop sentinel came."""
        batch = [first]
        deadline = time.monotonic() + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:  # past the deadline, still take what is already waiting
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                return batch, True
            batch.append(item)
        return batch, False

    def _run(self, batch: list) -> None:
        live = [(x, future) for x, future in batch if future.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            with torch.inference_mode():
                out = self.fn(torch.stack([x for x, _ in live]))
            if not isinstance(out, torch.Tensor) or out.ndim == 0 or len(out) != len(live):
                got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
                raise ValueError(f"the model returned {got} for a batch of {len(live)}; expected one row per item")
            rows = out.clone().unbind(0)  # a clone outside inference_mode is an ordinary tensor
        except BaseException as exc:  # the worker survives; every waiting caller sees the error
            self.calls += 1
            self.batch_sizes.append(len(live))
            for _, future in live:
                future.set_exception(exc)
            return
        self.calls += 1  # counted before the futures resolve, so a caller that saw its result sees the count
        self.batch_sizes.append(len(live))
        for (_, future), row in zip(live, rows):
            future.set_result(row)

    def _work(self) -> None:
        stop = False
        while not stop:
            first = self._queue.get()
            if first is _STOP:
                break
            batch, stop = self._gather(first)
            self._run(batch)
