"""course_utils.checkpoints and course_utils.deploy.measure: round trips, the sha256 sidecar, tampering, the `module.` prefix,
plain-type metadata, the `.best` copy; latency, size and compile-count helpers. Small random models only."""

from __future__ import annotations

import datetime
import hashlib
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from course_utils.deploy import (
    ChecksumError,
    count_compiles,
    file_bytes,
    file_sha256,
    load_checkpoint,
    median_ms,
    save_checkpoint,
    sidecar_path,
    state_dict_bytes,
    strip_prefix,
)


def small_net(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3))


class Wrapped(nn.Module):
    """What DistributedDataParallel looks like to state_dict(): the real model under `.module`."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def trained(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    model = small_net(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    loss = model(torch.randn(8, 6, generator=torch.Generator().manual_seed(seed))).square().mean()
    loss.backward()
    optimizer.step()
    return model, optimizer


META = {"arch": "mlp", "config": {"sizes": [6, 5, 3]}, "mean": 0.286, "std": 0.353, "classes": ["a", "b", "c"],
        "test_accuracy": 0.9, "note": None, "flags": (True, False)}


def test_round_trip_restores_weights_optimizer_and_metadata(tmp_path):
    model, optimizer = trained()
    path = tmp_path / "run" / "model.pt"  # the folder is created
    digest = save_checkpoint(path, model, optimizer, epoch=7, meta=META)
    fresh = small_net(seed=1)
    assert not same_weights(fresh, model)
    checkpoint = load_checkpoint(path, fresh)
    assert same_weights(fresh, model)
    assert checkpoint["epoch"] == 7 and checkpoint["meta"] == META
    assert checkpoint["argv"] and all(type(a) is str for a in checkpoint["argv"])
    assert type(checkpoint["torch_version"]) is str and checkpoint["torch_version"] == str(torch.__version__)
    assert datetime.datetime.fromisoformat(checkpoint["time"]).tzinfo is not None
    new_optimizer = torch.optim.Adam(fresh.parameters(), lr=0.5)
    new_optimizer.load_state_dict(checkpoint["optimizer_state"])
    assert new_optimizer.param_groups[0]["lr"] == 0.01
    assert torch.equal(new_optimizer.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    # what is on disk loads with weights_only=True by itself, and nothing else (no temporary files) is left
    assert torch.load(path, weights_only=True)["epoch"] == 7
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.pt", "model.pt.sha256"]


def test_defaults_store_none_and_empty_meta(tmp_path):
    save_checkpoint(tmp_path / "m.pt", small_net(0))
    checkpoint = load_checkpoint(tmp_path / "m.pt")
    assert checkpoint["optimizer_state"] is None and checkpoint["meta"] == {} and checkpoint["epoch"] == 0


def test_sidecar_is_in_sha256sum_format_and_file_sha256_streams(tmp_path):
    path = tmp_path / "model.pt"
    digest = save_checkpoint(path, small_net(0))
    assert sidecar_path(path) == tmp_path / "model.pt.sha256"
    assert sidecar_path(path).read_text() == f"{digest}  model.pt\n"
    data = path.read_bytes()
    assert file_sha256(path) == digest == hashlib.sha256(data).hexdigest()
    assert file_sha256(path, chunk_bytes=7) == digest  # many chunks, same digest
    assert file_sha256(str(path)) == digest


def test_best_copy_has_its_own_sidecar(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, small_net(0))
    assert not (tmp_path / "model.best.pt").exists()
    digest = save_checkpoint(path, small_net(1), epoch=3, best=True)
    best = tmp_path / "model.best.pt"
    assert best.read_bytes() == path.read_bytes()
    assert sidecar_path(best).read_text() == f"{digest}  model.best.pt\n"
    fresh = small_net(2)
    assert load_checkpoint(best, fresh)["epoch"] == 3 and same_weights(fresh, small_net(1))


def test_a_changed_file_is_refused_with_both_digests(tmp_path):
    path = tmp_path / "model.pt"
    saved = save_checkpoint(path, small_net(0))
    torch.save({"model_state": small_net(1).state_dict()}, path)  # overwritten behind the sidecar's back
    actual = file_sha256(path)
    with pytest.raises(ChecksumError) as caught:
        load_checkpoint(path, small_net(2))
    assert isinstance(caught.value, ValueError)
    assert saved in str(caught.value) and actual in str(caught.value)
    fresh = small_net(2)
    load_checkpoint(path, fresh, verify=False)  # the caller may choose to trust it
    assert same_weights(fresh, small_net(1))


def test_a_flipped_byte_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, small_net(0))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(ChecksumError, match="changed after it was saved"):
        load_checkpoint(path)


def test_a_missing_or_broken_sidecar_is_a_clear_error(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, small_net(0))
    sidecar_path(path).write_text("not a digest\n")
    with pytest.raises(ChecksumError, match="64 hex digits"):
        load_checkpoint(path)
    sidecar_path(path).unlink()
    with pytest.raises(FileNotFoundError, match=r"model\.pt\.sha256.*verify=False"):
        load_checkpoint(path)
    assert "model_state" in load_checkpoint(path, verify=False)


def test_a_wrapped_models_module_prefix_is_stripped_for_a_strict_load(tmp_path):
    inner = small_net(0)
    path = tmp_path / "ddp.pt"
    save_checkpoint(path, Wrapped(inner))
    assert all(k.startswith("module.") for k in torch.load(path, weights_only=True)["model_state"])
    fresh = small_net(1)
    checkpoint = load_checkpoint(path, fresh)
    assert same_weights(fresh, inner)
    assert not any(k.startswith("module.") for k in checkpoint["model_state"])


def test_strict_loading_refuses_another_architecture(tmp_path):
    path = tmp_path / "model.pt"
    save_checkpoint(path, small_net(0))
    other = nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3), nn.Linear(3, 2))
    with pytest.raises(RuntimeError, match="Missing key"):
        load_checkpoint(path, other)
    load_checkpoint(path, other, strict=False)
    assert torch.equal(other[0].weight, small_net(0)[0].weight)


def test_strip_prefix_returns_a_new_dict_and_keeps_other_keys():
    state = {"module.a": torch.ones(1), "b": torch.zeros(1), "x.module.c": torch.ones(2)}
    stripped = strip_prefix(state)
    assert list(stripped) == ["a", "b", "x.module.c"] and stripped["a"] is state["module.a"]
    assert list(state) == ["module.a", "b", "x.module.c"]  # the argument is unchanged
    assert list(strip_prefix({"_orig_mod.w": 1}, prefix="_orig_mod.")) == ["w"]
    with pytest.raises(ValueError, match="collides"):
        strip_prefix({"a": 1, "module.a": 2})


@pytest.mark.parametrize("meta, where", [
    ({"mean": np.float32(0.3)}, "meta['mean']"),
    ({"config": {"sizes": [784, np.int64(10)]}}, "meta['config']['sizes'][1]"),
    ({"path": Path("x")}, "meta['path']"),
    ({"stats": torch.ones(2)}, "meta['stats']"),
    ({1: "a"}, "key 1"),
])
def test_metadata_must_be_plain_types(tmp_path, meta, where):
    with pytest.raises(TypeError) as caught:
        save_checkpoint(tmp_path / "m.pt", small_net(0), meta=meta)
    assert where in str(caught.value)
    assert not list(tmp_path.iterdir())  # nothing written


def test_load_refuses_a_file_that_is_not_a_checkpoint_dict(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(small_net(0).state_dict(), path)
    with pytest.raises(ValueError, match="model_state"):
        load_checkpoint(path, verify=False)


# ---- measure


def test_state_dict_bytes_is_the_saved_size_and_sees_quantisation(tmp_path):
    model = nn.Sequential(nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
    torch.save(model.state_dict(), tmp_path / "sd.pt")
    size, n_params = state_dict_bytes(model), sum(p.numel() for p in model.parameters())
    assert 4 * n_params < size < 4 * n_params + 4000  # float32 weights plus the archive's small overhead
    assert abs(size - file_bytes(tmp_path / "sd.pt")) < 500  # (the zip's entry names follow the file name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization's deprecation notice
        quantised = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    assert state_dict_bytes(quantised) < state_dict_bytes(model) / 3


def test_file_bytes_sums_files(tmp_path):
    (tmp_path / "a").write_bytes(b"x" * 10)
    (tmp_path / "b").write_bytes(b"y" * 32)
    assert file_bytes(tmp_path / "a", str(tmp_path / "b")) == 42 and file_bytes() == 0
    with pytest.raises(FileNotFoundError):
        file_bytes(tmp_path / "missing")


def test_median_ms_times_every_call_and_reports_milliseconds():
    calls = []

    def work(delay):
        calls.append(delay)
        time.sleep(delay)

    ms = median_ms(work, 0.002, repeats=5, warmup=2)
    assert len(calls) == 7 and ms >= 2.0  # sleep never returns early
    assert isinstance(median_ms(lambda: None, repeats=1, warmup=0), float)
    with pytest.raises(ValueError):
        median_ms(work, 0.0, repeats=0)


def test_count_compiles_counts_graphs_and_a_recompile():
    def f(x):
        return torch.sin(x) * 2 + 1

    compiled = torch.compile(f, backend="eager")  # the counters are Dynamo's, whatever the backend
    with count_compiles() as counts:
        assert counts.graphs == 0
        compiled(torch.ones(3))
        first = counts.graphs
        compiled(torch.ones(3))  # same shape: no new graph
        same = counts.graphs
        compiled(torch.ones(5))  # new shape: one recompile
    assert first == 1 and same == 1 and counts.graphs == 2 and counts.frames >= 2
    assert "graphs=2" in repr(counts)

