"""course_utils.deploy.batching: the micro-batcher under concurrency, its limits, a full queue, a failing model,
and closing. A gate (a model call that waits for an event) makes the batch boundaries deterministic."""

from __future__ import annotations

import queue
import threading
import time

import pytest
import torch
from torch import nn

from course_utils.deploy import Batcher, Busy


def small_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


def items(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, 8, generator=torch.Generator().manual_seed(seed))


class Gate:
    """A model call that signals it started and then waits to be released: the worker is pinned inside it."""

    def __init__(self, model):
        self.model, self.entered, self.released = model, threading.Event(), threading.Event()

    def __call__(self, x):
        self.entered.set()
        assert self.released.wait(10), "the test never released the gate"
        return self.model(x)


def test_concurrent_submits_are_batched_and_match_one_direct_forward():
    model, xs = small_model(), items(50)
    expected = model(xs).detach()
    results: dict[int, torch.Tensor] = {}
    start = threading.Barrier(10)

    def client(k: int, batcher: Batcher) -> None:
        start.wait()
        futures = {i: batcher.submit(xs[i]) for i in range(k * 5, k * 5 + 5)}
        results.update({i: f.result(timeout=10) for i, f in futures.items()})

    with Batcher(model, max_batch=8, max_wait=0.02) as batcher:
        threads = [threading.Thread(target=client, args=(k, batcher)) for k in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
    assert sorted(results) == list(range(50))
    assert torch.allclose(torch.stack([results[i] for i in range(50)]), expected, atol=1e-6)
    assert batcher.calls < 50 and batcher.calls == len(batcher.batch_sizes)
    assert sum(batcher.batch_sizes) == 50 and max(batcher.batch_sizes) <= 8
    assert not batcher._thread.is_alive()


def test_batches_fill_to_max_batch_then_take_the_rest():
    gate = Gate(small_model())
    with Batcher(gate, max_batch=16, max_wait=0.05) as batcher:
        first = batcher.submit(items(1)[0])
        assert gate.entered.wait(10)  # the worker holds a batch of one, inside the model
        futures = [batcher.submit(x) for x in items(20)]
        gate.released.set()
        outs = [f.result(timeout=10) for f in futures]
        first.result(timeout=10)
    assert batcher.batch_sizes == [1, 16, 4] and batcher.calls == 3
    assert torch.allclose(torch.stack(outs), gate.model(items(20)).detach(), atol=1e-6)


def test_a_lone_item_waits_max_wait_for_company():
    with Batcher(small_model(), max_batch=64, max_wait=0.05) as batcher:
        started = time.monotonic()
        batcher.submit(items(1)[0]).result(timeout=10)
        waited = time.monotonic() - started
    assert waited >= 0.045 and batcher.batch_sizes == [1]


def test_results_are_ordinary_tensors_without_grad():
    model = small_model()
    with Batcher(model) as batcher:
        row = batcher.submit(items(1)[0]).result(timeout=10)
    assert not row.is_inference() and not row.requires_grad and row.shape == (3,)
    assert torch.allclose(row, model(items(1))[0].detach(), atol=1e-6)
    row.add_(1)  # usable like any tensor


def test_a_full_queue_raises_busy_at_once():
    gate = Gate(small_model())
    with Batcher(gate, max_batch=4, max_queue=3) as batcher:
        held = batcher.submit(items(1)[0])
        assert gate.entered.wait(10)
        waiting = [batcher.submit(x) for x in items(3)]
        with pytest.raises(Busy, match="busy") as caught:
            batcher.submit(items(1)[0])
        assert isinstance(caught.value, queue.Full)
        gate.released.set()
        assert held.result(timeout=10).shape == (3,)
        assert all(f.result(timeout=10).shape == (3,) for f in waiting)
        batcher.submit(items(1)[0]).result(timeout=10)  # room again


def test_calling_the_batcher_batches_and_a_busy_call_leaves_nothing_behind():
    gate = Gate(small_model())
    with Batcher(gate, max_batch=4, max_queue=2) as batcher:
        xs = items(2)  # at most max_queue rows fit at once
        gate.released.set()
        assert torch.allclose(batcher(xs), gate.model(xs).detach(), atol=1e-6)
        gate.released.clear()
        gate.entered.clear()
        held = batcher.submit(items(1)[0])
        assert gate.entered.wait(10)
        before = list(batcher.batch_sizes)
        with pytest.raises(Busy):
            batcher(items(5))  # two rows queue, the third finds the queue full: all are withdrawn
        gate.released.set()
        held.result(timeout=10)
    assert batcher.batch_sizes == [*before, 1]  # the withdrawn rows never ran


def test_a_failing_model_fails_that_batch_only_and_the_worker_goes_on():
    model, calls = small_model(), []

    def flaky(x):
        calls.append(len(x))
        if len(calls) == 1:
            raise RuntimeError("boom in the model")
        return model(x)

    with Batcher(flaky, max_wait=0.0) as batcher:
        failed = batcher.submit(items(1)[0])
        with pytest.raises(RuntimeError, match="boom"):
            failed.result(timeout=10)
        assert batcher.submit(items(1)[0]).result(timeout=10).shape == (3,)
    assert batcher.calls == 2 and batcher.batch_sizes == [1, 1]


def test_a_model_that_returns_the_wrong_number_of_rows_fails_every_future():
    with Batcher(lambda x: x[:1], max_wait=0.05) as batcher:
        futures = [batcher.submit(x) for x in items(3)]
        errors = [f.exception(timeout=10) for f in futures]
    assert all(isinstance(e, ValueError) and "one row per item" in str(e) for e in errors)


def test_items_that_cannot_be_stacked_fail_together():
    with Batcher(small_model(), max_wait=0.05) as batcher:
        futures = [batcher.submit(torch.zeros(8)), batcher.submit(torch.zeros(7))]
        assert all(isinstance(f.exception(timeout=10), RuntimeError) for f in futures)
        assert batcher.submit(torch.zeros(8)).result(timeout=10).shape == (3,)


def test_close_finishes_accepted_work_is_idempotent_and_refuses_new_work():
    model = small_model()
    batcher = Batcher(model, max_batch=4, max_wait=0.01)
    futures = [batcher.submit(x) for x in items(30)]
    batcher.close()
    assert all(f.done() for f in futures)
    assert torch.allclose(torch.stack([f.result() for f in futures]), model(items(30)).detach(), atol=1e-6)
    batcher.close()
    assert batcher.closed and not batcher._thread.is_alive()
    with pytest.raises(RuntimeError, match="closed"):
        batcher.submit(items(1)[0])


def test_closing_while_clients_submit_resolves_every_accepted_future():
    batcher = Batcher(small_model(), max_batch=8, max_wait=0.001, max_queue=8)
    accepted = []

    def client():
        for x in items(200):
            try:
                accepted.append(batcher.submit(x))
            except Busy:
                time.sleep(0.001)
            except RuntimeError:  # closed
                return

    threads = [threading.Thread(target=client) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    batcher.close()
    for t in threads:
        t.join(10)
    assert accepted and all(f.done() and f.exception() is None for f in accepted)
    assert not batcher._thread.is_alive()


def test_bad_settings_are_refused():
    for kwargs in ({"max_batch": 0}, {"max_queue": 0}, {"max_wait": -1}):
        with pytest.raises(ValueError):
            Batcher(small_model(), **kwargs)
