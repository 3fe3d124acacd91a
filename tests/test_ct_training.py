"""course_utils.ct.training: the metrics, one tiny in-process run (TensorBoard files, checkpoint), the CLI,
and the same app as two DistributedDataParallel processes under torchrun (gloo, CPU)."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from course_utils.ct import LunaDataset, make_mini_luna
from course_utils.ct.training import SUMMARY_PREFIX, LunaTrainingApp, classification_metrics, metric_sums

pytest.importorskip("SimpleITK")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("luna") / "tiny"
    make_mini_luna(folder, tiny=True, seed=2)
    return str(folder)


def test_metrics_count_the_quadrants_and_never_divide_by_zero():
    metrics = torch.tensor([[1, 1, 0, 0, 1], [0.9, 0.2, 0.7, 0.1, 0.6], [0.1, 1.6, 1.2, 0.1, 0.5]])
    got = classification_metrics(metrics)
    assert (got["pr/precision"], got["pr/recall"]) == (2 / 3, 2 / 3)
    assert got["loss/pos"] == pytest.approx((0.1 + 1.6 + 0.5) / 3) and got["correct/all"] == pytest.approx(60.0)
    nothing = classification_metrics(torch.tensor([[0.0, 0.0], [0.1, 0.2], [0.3, 0.3]]))
    assert nothing["pr/precision"] == nothing["pr/recall"] == nothing["pr/f1_score"] == 0.0
    assert metric_sums(metrics).dtype == torch.float64  # sums, so processes can add them up


def test_a_tiny_run_logs_tensorboard_scalars_and_saves_a_checkpoint(root, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    summary = LunaTrainingApp(["--data-root", root, "--runs-dir", str(tmp_path), "--epochs", "2", "--epoch-len", "64",
                               "--val-stride", "2", "--device", "cpu", "--quiet", "--balanced", "1", "tiny"]).main()
    assert summary["samples_seen"] == 128 and summary["world_size"] == 1 and summary["replicas_identical"]
    runs = sorted((tmp_path / "luna").glob("*_cls-tiny"))
    assert [r.name.split("-", 3)[-1] for r in runs] == ["trn_cls-tiny", "val_cls-tiny"]
    for run in runs:
        events = EventAccumulator(str(run))
        events.Reload()
        tags = set(events.Tags()["scalars"])
        assert {"loss/all", "loss/pos", "loss/neg", "pr/precision", "pr/recall", "pr/f1_score"} <= tags
        assert [e.step for e in events.Scalars("loss/all")] == [64, 128]
    state = torch.load(summary["checkpoint"], weights_only=False)
    assert state["epoch"] == 2 and state["argv"][-1] == "tiny" and "tail_batchnorm.weight" in state["model_state"]


def test_the_command_line_lists_its_flags_and_refuses_a_missing_root():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    env.pop("LUNA_ROOT", None)
    shown = subprocess.run([sys.executable, "-m", "course_utils.ct.training", "--help"], capture_output=True, text=True,
                           env=env, timeout=120)
    assert shown.returncode == 0
    for flag in ("--epochs", "--batch-size", "--balanced", "--split", "--ddp", "--backend", "--data-root"):
        assert flag in shown.stdout
    missing = subprocess.run([sys.executable, "-m", "course_utils.ct.training"], capture_output=True, text=True,
                             env=env, timeout=120)
    assert missing.returncode == 2 and "--data-root" in missing.stderr


@pytest.mark.slow
def test_two_ddp_processes_see_every_sample_once_and_end_identical(root, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
         "course_utils.ct.training", "--ddp", "--backend=gloo", "--device=cpu", "--epochs=1", "--epoch-len=64",
         "--val-stride=2", "--quiet", "--data-root", root, "--runs-dir", str(tmp_path)],
        capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    lines = [line for line in run.stdout.splitlines() if line.startswith(SUMMARY_PREFIX)]
    assert len(lines) == 1, "rank 0 alone prints the summary"
    summary = json.loads(lines[0][len(SUMMARY_PREFIX):])
    assert summary["world_size"] == 2 and summary["samples_seen"] == 64 and summary["replicas_identical"]
    assert all(math.isfinite(v) for v in summary["val"].values())
    validation = LunaDataset(root, val_stride=2, isValSet_bool=True)
    assert summary["val"]["count/pos"] + summary["val"]["count/neg"] == len(validation), "each row on one rank, once"
