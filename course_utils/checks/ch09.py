"""Checks for 09_deploy: train, eval and inference modes, a predict function to repair, a safe checkpoint, traced
versus scripted outputs, torch.export with a dynamic batch, a single-file ONNX model and onnxruntime, a FastAPI
service, a micro-batcher, dynamic int8 quantisation, torch.compile, and a config that loads under weights_only.

Every check builds its own hidden models from seeded generators (small `nn.Sequential`s and `tiny_resnet(4)` from
`course_utils.models`), except 09.9 (the zoo MLP, `course_utils.pretrained.ch09.fashion_mlp`, on the first 2,000
Fashion-MNIST test images, `fashion_test(2000)`) and 09.10 (the zoo CNN, `fashion_cnn`, on seeded test images).
References: the checker's own re-runs of the three mode experiments (09.1) and of each model in eval mode without
autograd (09.2, 09.5, 09.6, 09.7, 09.8, 09.10); `torch.jit.trace`/`torch.jit.script` of the chapter's `loop_and_branch` (09.4);
`torch.load(weights_only=True)` in a freshly started `sys.executable` (09.3, 09.11: one subprocess each, about 2 s);
`course_utils.deploy.state_dict_bytes` for sizes (09.9). 09.10 runs the learner's compiled model on two batch
sizes, which may compile once more (a few seconds). What every check promises is in framework.py's docstring.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import io
import json
import logging
import math
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.checks.framework import (
    as_array,
    as_bool,
    as_float,
    as_int,
    as_tensor,
    call,
    exercise,
    generator,
    one_line,
    require,
    require_callable,
    short,
    Wrong,
)

__all__ = [
    "check_batcher", "check_checkpoint", "check_compile", "check_config_checkpoint", "check_export", "check_modes",
    "check_onnx", "check_predict", "check_quantize", "check_service", "check_trace_script", "loop_and_branch",
]

_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
_SUBPROCESS_SECONDS = 120


def _with_random_bn(model: nn.Module, seed: int) -> nn.Module:
    """Give every BatchNorm running statistics and affine weights that differ from their defaults, as after training
    (so eval mode and train mode give visibly different outputs)."""
    g = generator(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.copy_(0.3 * torch.randn(m.num_features, generator=g))
                m.running_var.copy_(0.5 + torch.rand(m.num_features, generator=g))
                m.weight.copy_(1 + 0.3 * torch.randn(m.num_features, generator=g))
                m.bias.copy_(0.2 * torch.randn(m.num_features, generator=g))
    return model


def _seeded(build, seed: int) -> nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _states_equal(a: Mapping[str, torch.Tensor], b: Mapping[str, torch.Tensor]) -> bool:
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


@contextlib.contextmanager
def _watch_torch_load():
    """Record the `weights_only` argument of every `torch.load` call made inside the block (None: the default)."""
    calls: list[Any] = []
    original = torch.load

    @functools.wraps(original)
    def watched(*args, **kwargs):
        calls.append(kwargs.get("weights_only"))
        return original(*args, **kwargs)

    torch.load = watched
    try:
        yield calls
    finally:
        torch.load = original


def _unsafe_load_hint(calls: list[Any], name: str) -> None:
    if any(c is False for c in calls):
        raise Wrong(f"`{name}` calls torch.load(..., weights_only=False), which runs whatever the file's pickle says. "
                    "Hint: a file that holds only tensors and plain Python types loads with weights_only=True (the "
                    "default); never switch it off for a file you did not make yourself.")


def _run_python(script: str, *args: str) -> dict:
    """Run `script` in a fresh `sys.executable` (one thread, warnings off, course_utils importable); return the JSON
    object it prints last."""
    import course_utils

    root = str(Path(course_utils.__file__).resolve().parents[1])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore",
               PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, env=env,
                          timeout=_SUBPROCESS_SECONDS)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"the checker's fresh Python process failed: {one_line(proc.stderr[-400:])}")
    return json.loads(lines[-1])


_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")


def _unpickling_hint(message: str, file: str) -> str:
    """Why a file fails `torch.load(weights_only=True)`, in the learner's terms."""
    found = _GLOBAL.search(message)
    name = found.group(1) if found else "a Python object"
    if name.startswith(("torch.nn.", "course_utils.models", "course_utils.checks")) or ".modules." in name:
        return (f"{file} holds a pickled module ({name}): the whole model object went into the file. Hint: save the "
                "model's state_dict() (tensors), and rebuild the architecture in code when loading.")
    return (f"{file} holds an object torch.load(weights_only=True) refuses ({name}). Hint: store only tensors and "
            "plain Python types (dict, list, str, int, float, bool, None), so nobody needs to allow-list a class.")


# ----------------------------------------------------------------------------------------------
# 09.1 train mode, eval mode, inference mode
# ----------------------------------------------------------------------------------------------


def _mode_behaviour() -> tuple[bool, bool, bool]:
    """Re-run the three experiments: BatchNorm in train mode called twice, Dropout in train mode under no_grad called
    twice, and whether a train-mode BatchNorm's running_mean moves under no_grad."""
    g = generator(901)
    x = torch.randn(16, 4, generator=g)
    bn = _seeded(lambda: nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8)), 902).train()
    bn_equal = torch.equal(bn(x), bn(x))
    dropout = _seeded(lambda: nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5)), 903).train()
    with torch.no_grad():
        dropout_equal = torch.equal(dropout(x), dropout(x))
    norm = nn.BatchNorm1d(8).train()
    before = norm.running_mean.clone()
    with torch.no_grad():
        norm(torch.randn(16, 8, generator=g) + 1.0)
    return bn_equal, dropout_equal, not torch.equal(before, norm.running_mean)


@exercise("09.1", "what each mode changes")
def check_modes(bn_train_calls_equal: Any, dropout_no_grad_calls_equal: Any, no_grad_updates_running_mean: Any) -> None:
    """Three predictions, each True or False: `bn_train_calls_equal` (Linear(4, 8) + BatchNorm1d(8), no dropout, in
    train mode, called twice on the same batch of 16: equal outputs?), `dropout_no_grad_calls_equal` (a model with
    Dropout(0.5) in train mode called twice on the same batch inside torch.no_grad(): equal?),
    `no_grad_updates_running_mean` (does a BatchNorm1d in train mode update its running_mean when called inside
    torch.no_grad()?).

    The checker re-runs the three experiments on models of its own and compares.
    """
    answers = (as_bool(bn_train_calls_equal, "bn_train_calls_equal"),
               as_bool(dropout_no_grad_calls_equal, "dropout_no_grad_calls_equal"),
               as_bool(no_grad_updates_running_mean, "no_grad_updates_running_mean"))
    truth = _mode_behaviour()
    if answers[0] != truth[0]:
        raise Wrong("`bn_train_calls_equal` does not match what the model does. Hint: in train mode BatchNorm normalises "
                    "a batch with that batch's own mean and variance: is anything random in that?")
    if answers[1] != truth[1]:
        raise Wrong("`dropout_no_grad_calls_equal` does not match what the model does. Hint: no_grad switches off "
                    "graph recording; which switch decides whether Dropout drops?")
    if answers[2] != truth[2]:
        raise Wrong("`no_grad_updates_running_mean` does not match what the layer does. Hint: the running averages are "
                    "updated by the forward pass itself, not by backward; which of no_grad and eval() stops that?")


# ----------------------------------------------------------------------------------------------
# 09.2 a predict function to repair
# ----------------------------------------------------------------------------------------------

_PREDICT_META = {"arch": "check-cnn", "mean": 0.25, "std": 0.4, "classes": list(_CLASSES)}
_FASHION_STATS = (0.286, 0.353)  # what a learner might hard-code instead of reading meta


def _hygiene_net() -> nn.Module:
    """A small CNN with BatchNorm and Dropout, left in train mode as after training."""
    model = _seeded(lambda: nn.Sequential(nn.Conv2d(1, 6, 5, stride=2), nn.BatchNorm2d(6), nn.ReLU(), nn.Dropout(0.3),
                                          nn.Flatten(), nn.Linear(6 * 12 * 12, 10)), 921)
    return _with_random_bn(model, 922).train()


def _hidden_images(n: int, seed: int) -> torch.Tensor:
    """n images (n, 28, 28) in 0..1, dark-heavy like Fashion-MNIST, from a seeded generator."""
    return torch.rand(n, 28, 28, generator=generator(seed)) ** 2


def _probs(model: nn.Module, images: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    model = copy.deepcopy(model).eval()
    with torch.inference_mode():
        return F.softmax(model(((images - mean) / std).unsqueeze(1)), dim=1).double()


@exercise("09.2", "a predict function that serves")
def check_predict(predict: Any) -> None:
    """`predict(model, images_01, meta)`: model a trained classifier of (N, 1, 28, 28) normalised images (handed over
    in train mode, as training leaves it), images_01 a float32 tensor (N, 28, 28) of pixels in 0..1, meta a dict
    with 'mean', 'std' and 'classes'. Returns the class probabilities (N, 10) as a tensor or array.

    200 hidden images through the checker's own Conv-BatchNorm-ReLU-Dropout-Linear model and a meta whose mean and
    std are not Fashion-MNIST's: probabilities within 1e-5 of eval mode + normalisation + softmax, the returned
    tensor carries no autograd graph, the model is in eval mode afterwards, and the images are not changed.
    """
    fn = require_callable(predict, "predict")
    model = _hygiene_net()
    images = _hidden_images(200, 923)
    given, reference = images.clone(), copy.deepcopy(model)
    out = call(fn, model, given, dict(_PREDICT_META), name="predict")
    if not torch.equal(given, images):
        raise Wrong("predict changed the images it was given (in place). Hint: normalise into a new tensor.")
    if any(m.training for m in model.modules()):
        raise Wrong("after predict the model is still in training mode, so Dropout drops activations at random and "
                    "BatchNorm uses each batch's statistics. Hint: switch the model to evaluation mode before the "
                    "forward pass.")
    if isinstance(out, torch.Tensor) and out.requires_grad:
        raise Wrong("the probabilities carry an autograd graph (requires_grad=True): the forward pass recorded "
                    "operations for a backward pass that never comes. Hint: run it under torch.inference_mode().")
    got = as_tensor(out, "predict(...)")
    if got.shape != (200, 10):
        raise Wrong(f"predict returned shape {tuple(got.shape)} for 200 images, expected (200, 10): one row of class "
                    "probabilities per image.")
    mean, std = _PREDICT_META["mean"], _PREDICT_META["std"]
    expected = _probs(reference, images, mean, std)
    if torch.allclose(got, expected, rtol=0, atol=1e-5):
        return
    gap = (got - expected).abs().max().item()
    if not torch.allclose(got.sum(1), torch.ones(200, dtype=torch.float64), atol=1e-4):
        hint = ("each row sums to 1 only down the columns: the softmax ran over the batch dimension, not the classes."
                if torch.allclose(got.sum(0), torch.ones(10, dtype=torch.float64), atol=1e-4) else
                "the rows do not sum to 1: these look like logits. Turn them into probabilities over the classes.")
    elif torch.allclose(got, _probs(reference, images, 0.0, 1.0), atol=1e-5):
        hint = "the images were not normalised: the model was trained on (x - mean) / std, with meta's mean and std."
    elif torch.allclose(got, _probs(reference, images, *_FASHION_STATS), atol=1e-4):
        hint = "normalised with fixed numbers: read the mean and std from meta, the statistics shipped with the model."
    elif torch.allclose(got, _probs(reference, images, std, mean), atol=1e-5):
        hint = "mean and std are swapped."
    else:
        hint = "eval mode, then (x - meta['mean']) / meta['std'] with a channel dimension, then a softmax over classes."
    raise Wrong(f"predict's probabilities differ from the reference by up to {gap:.3g}. Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 09.3 a checkpoint that loads safely
# ----------------------------------------------------------------------------------------------

_CKPT_META = {"mean": 0.25, "std": 0.4, "classes": ["a", "b", "c"], "note": "check 09.3"}


class _Wrapped(nn.Module):
    """What DistributedDataParallel does to the state_dict keys: the model sits in `.module`."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.module(x)


def _ckpt_net(seed: int) -> nn.Module:
    model = _seeded(lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                                          nn.Linear(4 * 6 * 6, 3)), seed)
    return _with_random_bn(model, seed + 1)


def _trained_optimizer(model: nn.Module) -> torch.optim.Optimizer:
    """An Adam optimizer that has taken one step, so its state is not empty."""
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 1, 8, 8, generator=generator(931))).pow(2).mean().backward()
    opt.step()
    opt.zero_grad()
    return opt


_LOAD_FILES = r"""
import json, sys, torch
found = []
for path in sys.argv[1:]:
    try:
        torch.load(path, map_location="cpu", weights_only=True)
        found.append({"ok": True})
    except Exception as err:
        found.append({"ok": False, "error": type(err).__name__, "message": str(err)[:3000]})
print(json.dumps({"files": found}))
"""


def _tamper(path: Path) -> None:
    """Rewrite a checkpoint as an attacker (or a bad disk) would: the same structure, every float tensor changed."""
    obj = torch.load(path, map_location="cpu", weights_only=True)

    def shift(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value + 0.5
        if isinstance(value, dict):
            return type(value)((k, shift(v)) for k, v in value.items())
        if isinstance(value, (list, tuple)):
            return type(value)(shift(v) for v in value)
        return value

    torch.save(shift(obj), path)


def _load_result(result: Any, what: str) -> tuple[bool, Any]:
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Wrong(f"load_checkpoint returned {type(result).__name__} for {what}, expected a pair (ok, info).")
    return as_bool(result[0], "ok"), result[1]


def _meta_in(info: Any) -> bool:
    if not isinstance(info, Mapping):
        return False
    inner = info.get("meta")
    if isinstance(inner, Mapping) and dict(inner) == _CKPT_META:
        return True
    return all(k in info and info[k] == v for k, v in _CKPT_META.items())


@exercise("09.3", "a checkpoint that loads safely")
def check_checkpoint(save_checkpoint: Any, load_checkpoint: Any) -> None:
    """`save_checkpoint(path, model, opt, epoch, meta)` writes one checkpoint file at path (a str) holding the
    model's weights, the optimizer's state, the epoch and meta (plain types), plus whatever it needs to verify the
    file's sha256 later (a sidecar file beside it, for instance). `load_checkpoint(path, model) -> (ok, info)`:
    verifies the hash, loads with weights only, strips a `module.` prefix, loads the weights into model strictly and
    returns True with info, a dict holding 'epoch' and 'meta'; a file that fails verification returns (False, ...)
    and leaves the model alone.

    Hidden: a Conv-BatchNorm-Linear model with an Adam state saved plainly (epoch 3) and wrapped in a module whose
    state_dict keys start with `module.` (epoch 5); both files load with torch.load(weights_only=True) in a freshly
    started Python; both load into fresh models with equal weights (the wrapped one into a plain model) and give
    back epoch and meta; then the plain file is rewritten with every float tensor changed (the sidecar kept): load
    must return ok False without touching the model, and torch.load must never be asked for weights_only=False.
    """
    save = require_callable(save_checkpoint, "save_checkpoint")
    load = require_callable(load_checkpoint, "load_checkpoint")
    with tempfile.TemporaryDirectory() as folder:
        plain_path, wrapped_path = Path(folder) / "plain.pt", Path(folder) / "wrapped.pt"
        model, inner = _ckpt_net(932), _ckpt_net(934)
        wrapped = _Wrapped(inner)
        call(save, str(plain_path), model, _trained_optimizer(model), 3, dict(_CKPT_META), name="save_checkpoint",
             allow_none=True)
        call(save, str(wrapped_path), wrapped, _trained_optimizer(wrapped), 5, dict(_CKPT_META),
             name="save_checkpoint", allow_none=True)
        for path in (plain_path, wrapped_path):
            if not path.is_file():
                raise Wrong(f"save_checkpoint(path, ...) wrote no file at path ({path.name}). Hint: torch.save to the "
                            "path you are given.")
        fresh = _run_python(_LOAD_FILES, str(plain_path), str(wrapped_path))["files"]
        for path, result in zip((plain_path, wrapped_path), fresh):
            if not result["ok"]:
                raise Wrong(_unpickling_hint(result["message"], f"the checkpoint ({path.name})"))

        target = _ckpt_net(936)
        with _watch_torch_load() as loads:
            ok, info = _load_result(call(load, str(plain_path), target, name="load_checkpoint"), "an untouched file")
        _unsafe_load_hint(loads, "load_checkpoint")
        if not ok:
            raise Wrong("load_checkpoint returned ok=False for a file that save_checkpoint had just written. Hint: "
                        "hash the same bytes when saving and when loading (the whole file, after it is written).")
        if not _states_equal(target.state_dict(), model.state_dict()):
            raise Wrong("after load_checkpoint the model's weights differ from the saved ones. Hint: load the stored "
                        "state_dict into the model you are given (load_state_dict, strict).")
        if not isinstance(info, Mapping) or info.get("epoch") != 3 or not _meta_in(info):
            raise Wrong("load_checkpoint's info should be a dict holding the saved 'epoch' (3 here) and 'meta' (the dict "
                        "given to save_checkpoint).")

        target = _ckpt_net(937)
        try:
            with _watch_torch_load() as loads:
                result = load(str(wrapped_path), target)
        except Exception as err:
            raise Wrong(f"load_checkpoint raised {type(err).__name__} on the checkpoint of a wrapped model "
                        f"({one_line(str(err), 70)}). Hint: a model trained under DistributedDataParallel saves keys "
                        "that start with 'module.'; strip that prefix before the strict load.") from err
        _unsafe_load_hint(loads, "load_checkpoint")
        ok, info = _load_result(result, "the checkpoint of a wrapped model")
        if not ok or not _states_equal(target.state_dict(), inner.state_dict()):
            raise Wrong("the checkpoint of a wrapped model (keys 'module.0.weight', ...) did not load into a plain model. "
                        "Hint: strip the 'module.' prefix from the keys before the strict load.")
        if not isinstance(info, Mapping) or info.get("epoch") != 5:
            raise Wrong("for the wrapped model's checkpoint, info['epoch'] is not the saved epoch (5).")

        _tamper(plain_path)
        target = _ckpt_net(938)
        before = copy.deepcopy(target.state_dict())
        try:
            result = load(str(plain_path), target)
        except Exception as err:
            raise Wrong(f"load_checkpoint raised {type(err).__name__} on a tampered file: report it by returning "
                        "(False, info) instead, so the caller can decide.") from err
        ok, _ = _load_result(result, "a tampered file")
        if ok:
            raise Wrong("load_checkpoint accepted a file whose tensors were changed after saving (ok=True). Hint: "
                        "compare the sha256 of the file with the one stored when it was saved.")
        if not _states_equal(target.state_dict(), before):
            raise Wrong("load_checkpoint returned ok=False for the tampered file but had already loaded its weights "
                        "into the model. Hint: verify the hash before anything is loaded.")


# ----------------------------------------------------------------------------------------------
# 09.4 traced versus scripted
# ----------------------------------------------------------------------------------------------


def loop_and_branch(x: torch.Tensor) -> torch.Tensor:
    """The chapter's function with a loop and a branch: sum the rows, double the sum if positive, else negate it."""
    s = torch.zeros(x.shape[1])
    for i in range(x.shape[0]):
        s = s + x[i]
    return s * 2 if s.sum() > 0 else -s


_TRACE_EXAMPLE = (3, 4)  # torch.ones(3, 4): the input the chapter traces with


def _trace_input() -> torch.Tensor:
    return torch.arange(-10.0, 10.0).reshape(5, 4)


@functools.lru_cache(maxsize=1)
def _trace_script_outputs() -> tuple[torch.Tensor, torch.Tensor]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(loop_and_branch, torch.ones(*_TRACE_EXAMPLE))
        scripted = torch.jit.script(loop_and_branch)
    x = _trace_input()
    return traced(x).double(), scripted(x).double()


@exercise("09.4", "traced versus scripted")
def check_trace_script(traced_out: Any, scripted_out: Any) -> None:
    """`traced_out`, `scripted_out`: the outputs (tensors, arrays or lists of 4 numbers) of
    torch.jit.trace(loop_and_branch, torch.ones(3, 4)) and torch.jit.script(loop_and_branch), called on
    torch.arange(-10., 10.).reshape(5, 4). The checker traces and scripts its copy of `loop_and_branch` and compares
    (atol 1e-6).
    """
    traced, scripted = _trace_script_outputs()
    eager = loop_and_branch(_trace_input()).double()
    got_t = as_tensor(traced_out, "traced_out")
    got_s = as_tensor(scripted_out, "scripted_out")
    for got, name in ((got_t, "traced_out"), (got_s, "scripted_out")):
        if got.numel() != 4:
            raise Wrong(f"`{name}` has {got.numel()} values, expected 4: the function returns one number per column.")
    got_t, got_s = got_t.reshape(4), got_s.reshape(4)

    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        return torch.allclose(a, b, rtol=0, atol=1e-6)

    if same(got_t, scripted) and same(got_s, traced):
        raise Wrong("traced_out and scripted_out are swapped. Hint: which of the two only records the operations that "
                    "ran on the example input?")
    if not same(got_t, traced):
        x = _trace_input()
        unrolled = x[:_TRACE_EXAMPLE[0]].sum(0).double()
        if same(got_t, eager):
            hint = ("that is what the Python function returns. A trace records the operations that ran on the example "
                    "input only: how many times did the loop run then, and which branch was taken?")
        elif same(got_t, -unrolled):
            hint = ("the loop is unrolled right, but the branch was chosen again on the new input: the trace holds only "
                    "the branch taken on the example input.")
        elif same(got_t, 2 * x.sum(0).double()) or same(got_t, -x.sum(0).double()):
            hint = "a trace does not keep the loop: it repeats exactly as many additions as the example input needed."
        else:
            hint = "replay the trace by hand: the loop unrolled for the example's rows, the example's branch fixed."
        raise Wrong(f"traced_out is {short(got_t)}, which is not what the traced function returns. Hint: {hint}")
    if not same(got_s, scripted):
        hint = ("scripting compiles the Python source, so the loop and the if stay in the graph: it is not tied to the "
                "example input." if same(got_s, traced) else
                "the scripted function keeps the loop and the branch: it computes what the Python function computes.")
        raise Wrong(f"scripted_out is {short(got_s)}, which is not what the scripted function returns. Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 09.5 torch.export with a dynamic batch
# ----------------------------------------------------------------------------------------------


def _small_resnet(seed: int) -> nn.Module:
    from course_utils.models import tiny_resnet

    return _with_random_bn(tiny_resnet(4, seed=seed), seed + 1)


def _eval_out(model: nn.Module, x: torch.Tensor, train: bool = False) -> torch.Tensor:
    model = copy.deepcopy(model).train(train)
    with torch.no_grad():
        return model(x)


@exercise("09.5", "torch.export with a dynamic batch")
def check_export(export_fashion: Any) -> None:
    """`export_fashion(model) -> torch.export.ExportedProgram`: model a trained image classifier of (N, 1, 28, 28)
    (handed over in train mode); the program takes one such batch of any size.

    Hidden: the checker's tiny_resnet(4) with trained-looking BatchNorm statistics. `.module()` of the program must
    match the model in eval mode on batches of 1, 5 and 64 (atol 1e-5); the batch dimension must be symbolic
    (`range_constraints` not empty); torch.export.save and torch.export.load must round-trip it (batch of 5 again).
    """
    fn = require_callable(export_fashion, "export_fashion")
    model = _small_resnet(951).train()
    program = call(fn, copy.deepcopy(model), name="export_fashion")
    if not isinstance(program, torch.export.ExportedProgram):
        hint = (" That is a module: return the ExportedProgram itself (the checker calls .module() on it)."
                if isinstance(program, nn.Module) else "")
        raise Wrong(f"export_fashion returned a {type(program).__name__}, expected a torch.export.ExportedProgram."
                    f"{hint}")
    runnable = program.module()
    g = generator(952)
    for n in (1, 5, 64):
        x = torch.randn(n, 1, 28, 28, generator=g)
        try:
            with torch.no_grad():
                out = runnable(x)
        except Exception as err:
            if not program.range_constraints:
                raise Wrong(f"the exported program fails on a batch of {n}: its batch size was fixed when it was "
                            "exported (range_constraints is empty). Hint: declare the first dimension dynamic when "
                            "exporting.") from err
            raise Wrong(f"the exported program fails on a batch of {n} ({type(err).__name__}: "
                        f"{one_line(str(err), 120)}). Hint: does the dynamic batch dimension's range include "
                        f"{n}?") from err
        expected = _eval_out(model, x)
        if tuple(out.shape) != tuple(expected.shape) or not torch.allclose(out, expected, rtol=0, atol=1e-5):
            if tuple(out.shape) == tuple(expected.shape) and torch.allclose(out, _eval_out(model, x, train=True),
                                                                             atol=1e-4):
                raise Wrong(f"on a batch of {n} the exported program behaves like the model in training mode "
                            "(BatchNorm normalises with the batch's own statistics). Hint: switch the model to "
                            "evaluation mode before exporting.")
            raise Wrong(f"on a batch of {n} the exported program's output differs from the model's in eval mode. "
                        "Hint: export the model you are given, in eval mode, with an example batch of its input shape.")
    if not program.range_constraints:
        raise Wrong("the exported program has no symbolic dimension (range_constraints is empty). Hint: mark the batch "
                    "dimension dynamic with dynamic_shapes.")
    buffer = io.BytesIO()
    try:
        torch.export.save(program, buffer)
        buffer.seek(0)
        reloaded = torch.export.load(buffer).module()
    except Exception as err:
        raise Wrong(f"the program does not survive torch.export.save / torch.export.load ({type(err).__name__}: "
                    f"{one_line(str(err), 120)}).") from err
    x = torch.randn(5, 1, 28, 28, generator=g)
    with torch.no_grad():
        again = reloaded(x)
    if not torch.allclose(again, _eval_out(model, x), rtol=0, atol=1e-5):
        raise Wrong("after torch.export.save and torch.export.load the program's output changed.")


# ----------------------------------------------------------------------------------------------
# 09.6 ONNX in one file, run by onnxruntime
# ----------------------------------------------------------------------------------------------


def _ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: nothing on the C-level stderr
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@exercise("09.6", "ONNX in one file, run by onnxruntime")
def check_onnx(export_onnx: Any, ort_predict: Any) -> None:
    """`export_onnx(model, path)`: write model (an eval-mode classifier of (N, 1, 28, 28) batches) as one
    self-contained ONNX file at path (a str), input named "input" with a dynamic first dimension.
    `ort_predict(path, x) -> logits`: x a float32 NumPy array (N, 1, 28, 28); returns the NumPy array (N, 10) that
    onnxruntime computes from the file.

    Hidden: the checker's tiny_resnet(4). Nothing but the .onnx file appears in its folder (no .onnx.data sidecar);
    the graph's one input is named 'input' and its first dimension is symbolic; ort_predict matches the model on
    batches of 1 and 33 (atol 1e-4), and so does the checker's own onnxruntime session on the file.
    """
    import onnx

    export = require_callable(export_onnx, "export_onnx")
    predict = require_callable(ort_predict, "ort_predict")
    model = _small_resnet(961).eval()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fashion.onnx"
        call(export, copy.deepcopy(model), str(path), name="export_onnx", allow_none=True)
        if not path.is_file():
            raise Wrong("export_onnx(model, path) wrote no file at path.")
        others = sorted(p.name for p in Path(folder).iterdir() if p != path)
        if others:
            raise Wrong(f"export_onnx wrote {others} beside the model: the weights went to an external data file, so "
                        "the .onnx file alone is useless. Hint: ask the exporter for a single file.")
        graph = onnx.load(str(path), load_external_data=False).graph
        weights = {init.name for init in graph.initializer}
        inputs = [i for i in graph.input if i.name not in weights]
        if len(inputs) != 1:
            raise Wrong(f"the ONNX graph has {len(inputs)} inputs, expected 1 (the image batch).")
        if inputs[0].name != "input":
            raise Wrong(f"the graph's input is named {inputs[0].name!r}, expected 'input'. Hint: the exporter takes the "
                        "input names as an argument.")
        first = inputs[0].type.tensor_type.shape.dim[0]
        if not first.dim_param:
            raise Wrong(f"the graph's first input dimension is fixed at {first.dim_value}: a batch of another size "
                        "fails. Hint: declare the batch dimension dynamic when exporting.")
        g = generator(962)
        session = None
        for n in (1, 33):
            x = torch.randn(n, 1, 28, 28, generator=g)
            with torch.no_grad():
                expected = model(x).double().numpy()
            out = call(predict, str(path), x.numpy().copy(), name="ort_predict")
            if isinstance(out, (list, tuple)) and len(out) == 1:
                raise Wrong("ort_predict returned a list holding one array: session.run returns one array per "
                            "requested output. Hint: return the logits array itself.")
            got = as_array(out, "ort_predict(...)", shape=expected.shape)
            if not np.allclose(got, expected, rtol=0, atol=1e-4):
                gap = float(np.abs(got - expected).max())
                raise Wrong(f"ort_predict differs from the PyTorch model by up to {gap:.3g} on a batch of {n} (allowed "
                            "1e-4). Hint: export the model in eval mode and feed x unchanged as 'input'.")
            if session is None:
                session = _ort_session(path)
            mine = session.run(None, {"input": x.numpy()})[0]
            if not np.allclose(mine, expected, rtol=0, atol=1e-4):
                raise Wrong(f"onnxruntime on the file gives other logits than the model (batch of {n}), although "
                            "ort_predict matched: ort_predict should run the file, not the model.")


# ----------------------------------------------------------------------------------------------
# 09.7 a FastAPI service
# ----------------------------------------------------------------------------------------------

_SERVICE_META = {"arch": "check-cnn", "mean": 0.25, "std": 0.4, "classes": list(_CLASSES)}
_MAX_IMAGES = 64


def _service_net() -> nn.Module:
    model = _seeded(lambda: nn.Sequential(nn.Conv2d(1, 4, 3, stride=2), nn.ReLU(), nn.Flatten(),
                                          nn.Linear(4 * 13 * 13, 10)), 971)
    with torch.no_grad():
        model[3].weight.mul_(4)  # spread the logits, so the classes differ from image to image
    return model.eval()


def _payload(images: torch.Tensor) -> list:
    return np.round(images.numpy().astype(np.float64), 3).tolist()


def _detail(response: Any) -> str:
    text = response.text.strip()
    return text if text not in ("", "{}", "null", '""') else ""


def _service_reference(images: torch.Tensor, mean: float, std: float) -> tuple[list[int], torch.Tensor]:
    rounded = torch.tensor(_payload(images), dtype=torch.float32)
    probs = _probs(_service_net(), rounded, mean, std)
    return probs.argmax(1).tolist(), probs


@exercise("09.7", "a FastAPI service")
def check_service(create_app: Any) -> None:
    """`create_app(model, meta) -> FastAPI`: model an eval-mode classifier of normalised (N, 1, 28, 28) batches, meta
    a dict with 'mean', 'std', 'classes' (and 'arch'). Routes: GET /health answers 200 with JSON; POST /predict takes
    JSON {"pixels": [...]} holding a list of images (N, 28, 28) with values in 0..1 and answers
    {"predictions": [{"class": int, "label": str, "probability": float}, ...]}, one per image, after normalising with
    meta's mean and std on the server. Invalid input gets a 4xx with a message; more than 64 images get 413.

    Through FastAPI's TestClient: /health; 5 hidden images give the reference classes, labels and probabilities
    (within 1e-3); 64 images are served; 65 images get 413; a NaN, a wrong image shape, pixels on a 0..255 scale and a
    body without "pixels" each get a 4xx whose body says something.
    """
    from fastapi.testclient import TestClient

    make = require_callable(create_app, "create_app")
    app = call(make, _service_net(), dict(_SERVICE_META), name="create_app")
    if not callable(app):
        raise Wrong(f"create_app returned a {type(app).__name__}, expected the FastAPI app.")
    images = _hidden_images(65, 972)
    with TestClient(app, raise_server_exceptions=False) as client:
        health = client.get("/health")
        if health.status_code != 200:
            raise Wrong(f"GET /health answered {health.status_code}, expected 200.")
        try:
            health.json()
        except ValueError as err:
            raise Wrong("GET /health did not answer JSON. Hint: return a dict from the route.") from err

        response = client.post("/predict", json={"pixels": _payload(images[:5])})
        if response.status_code != 200:
            raise Wrong(f"POST /predict with 5 valid images answered {response.status_code}: "
                        f"{one_line(response.text, 160)}")
        try:
            predictions = response.json()["predictions"]
            classes = [as_int(p["class"], "class") for p in predictions]
            labels = [p["label"] for p in predictions]
            probabilities = [as_float(p["probability"], "probability") for p in predictions]
        except (ValueError, KeyError, TypeError) as err:
            raise Wrong('POST /predict should answer {"predictions": [{"class": ..., "label": ..., "probability": ...}, '
                        f"...]}}, got {one_line(response.text, 160)}") from err
        if len(classes) != 5:
            raise Wrong(f"POST /predict with 5 images answered {len(classes)} predictions, expected 5.")
        want, probs = _service_reference(images[:5], _SERVICE_META["mean"], _SERVICE_META["std"])
        if classes != want:
            raw, _ = _service_reference(images[:5], 0.0, 1.0)
            hint = ("the server did not normalise: apply meta's (x - mean) / std before the model, as in training."
                    if classes == raw else "normalise with meta's mean and std, add the channel dimension, take the "
                    "argmax over the classes.")
            raise Wrong(f"POST /predict gave the classes {classes}, expected {want}. Hint: {hint}")
        if labels != [_SERVICE_META["classes"][c] for c in classes]:
            raise Wrong(f"the labels {labels} are not meta['classes'][class] for the predicted classes.")
        expected = [probs[i, c].item() for i, c in enumerate(classes)]
        if not np.allclose(probabilities, expected, rtol=0, atol=1e-3):
            raise Wrong(f"the probabilities {probabilities} differ from the softmax of the logits, {np.round(expected, 4)}"
                        ". Hint: the probability of the predicted class, after a softmax over the classes.")

        full = client.post("/predict", json={"pixels": _payload(images[:_MAX_IMAGES])})
        if full.status_code != 200 or len(full.json().get("predictions", [])) != _MAX_IMAGES:
            raise Wrong(f"POST /predict with {_MAX_IMAGES} images answered {full.status_code}: up to {_MAX_IMAGES} "
                        "images should be served.")
        too_many = client.post("/predict", json={"pixels": _payload(images)})
        if too_many.status_code != 413:
            raise Wrong(f"POST /predict with {_MAX_IMAGES + 1} images answered {too_many.status_code}, expected 413 "
                        "(Payload Too Large). Hint: count the images before the model runs, and refuse too many.")

        nan = _payload(images[:2])
        nan[1][14][14] = float("nan")
        wrong_shape = _payload(images[:2, :, :27])
        bad = [
            ("a pixel that is NaN", json.dumps({"pixels": nan}),
             "reject values that are not finite (NaN passes a float field)"),
            ("images of 28 x 27 pixels", json.dumps({"pixels": wrong_shape}),
             "check that every image is 28 x 28 before building the tensor"),
            ("pixels on a 0..255 scale", json.dumps({"pixels": _payload(images[:2] * 255)}),
             "check that the values lie in 0..1"),
            ('a body without "pixels"', json.dumps({"image": _payload(images[:1])}),
             "declare the body's fields (a pydantic model) so a wrong body is refused"),
        ]
        for what, body, hint in bad:
            answer = client.post("/predict", content=body, headers={"content-type": "application/json"})
            if not 400 <= answer.status_code < 500:
                crashed = " (the server crashed)" if answer.status_code >= 500 else ""
                raise Wrong(f"POST /predict with {what} answered {answer.status_code}{crashed}, expected a 4xx with a "
                            f"message. Hint: {hint}.")
            if not _detail(answer):
                raise Wrong(f"POST /predict with {what} answered {answer.status_code} with an empty body: say what was "
                            "wrong (e.g. raise HTTPException(400, detail=...)).")


# ----------------------------------------------------------------------------------------------
# 09.8 a micro-batcher
# ----------------------------------------------------------------------------------------------


class _Recorder(nn.Module):
    """A linear classifier that records each batch it sees (its size and whether autograd was on) and takes a few
    milliseconds per call, so that requests pile up while it works."""

    def __init__(self, seconds: float = 0.003, gate: threading.Event | None = None) -> None:
        super().__init__()
        self.linear = _seeded(lambda: nn.Linear(784, 10), 981)
        self.seconds, self.gate = seconds, gate
        self.sizes: list[int] = []
        self.grad: list[bool] = []
        self.lock = threading.Lock()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock:
            self.sizes.append(int(x.shape[0]))
            self.grad.append(torch.is_grad_enabled())
        if self.gate is not None:
            self.gate.wait(10)
        time.sleep(self.seconds)
        return self.linear(x.reshape(x.shape[0], -1))


def _new_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before and t is not threading.current_thread()]


def _within(seconds: float, fn: Any, *args: Any) -> tuple[bool, dict[str, Any]]:
    """Run fn(*args) in a daemon thread for at most `seconds`: (whether it returned, {"value": ...} or {"error": ...})."""
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["value"] = fn(*args)
        except BaseException as err:  # reported by the caller
            box["error"] = err

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    return not thread.is_alive(), box


def _close_quietly(batcher: Any) -> None:
    """Stop a learner's batcher after a failure, without waiting long for it."""
    close = getattr(batcher, "close", None)
    if callable(close):
        _within(5.0, close)


def _close(batcher: Any, before: set[threading.Thread]) -> None:
    close = getattr(batcher, "close", None)
    if not callable(close):
        raise Wrong("the Batcher has no close() method to stop its worker thread.")
    returned, box = _within(5.0, close)
    if not returned:
        raise Wrong("close() did not return within 5 s. Hint: wake the worker first (a sentinel in the queue, or a stop "
                    "flag it checks between timed waits), then join it.")
    if "error" in box:
        err = box["error"]
        raise Wrong(f"close() raised {type(err).__name__}: {one_line(str(err), 120)}")
    left = _new_threads(before)
    for thread in left:
        thread.join(2.0)
    if any(t.is_alive() for t in left):
        raise Wrong("after close() the worker thread is still running. Hint: put a sentinel in the queue (or set a "
                    "stop flag the worker sees) and join the thread.")


def _submit_concurrently(batcher: Any, items: torch.Tensor, n_threads: int) -> tuple[dict[int, Any], list[str]]:
    futures: dict[int, Any] = {}
    errors: list[str] = []
    start = threading.Barrier(n_threads)

    def client(indices: range) -> None:
        start.wait(5)
        for i in indices:
            try:
                futures[i] = batcher.submit(items[i])
            except Exception as err:  # reported below
                errors.append(f"{type(err).__name__}: {err}")

    per = len(items) // n_threads
    threads = [threading.Thread(target=client, args=(range(k * per, (k + 1) * per),), daemon=True)
               for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    if any(t.is_alive() for t in threads):
        errors.append("submit did not return within 10 s (it should queue the item and return a Future at once)")
    return futures, errors


@exercise("09.8", "a micro-batcher")
def check_batcher(Batcher: Any) -> None:  # noqa: N803 (the learner's class)
    """`Batcher(model, max_batch, max_wait, max_queue=...)`: a class. `submit(x)` takes one item (a (1, 28, 28)
    tensor here) and returns a concurrent.futures.Future whose result is the model's output row for it (10 values);
    a worker thread gathers up to max_batch waiting items (or what arrived within max_wait seconds), runs one forward
    pass without autograd, and resolves the futures. `.calls` counts model calls, `.batch_sizes` lists their sizes,
    `.close()` stops the worker; `submit` raises queue.Full (or a subclass) at once when max_queue items wait.

    Hidden: a linear model taking 3 ms per call and recording what reaches it. Batcher(model, 8, 0.01,
    max_queue=256): 50 submits from 10 threads; every result equals a direct forward (atol 1e-5); fewer than 50 model
    calls, none above 8 items, autograd off; `.calls` and `.batch_sizes` match what the model saw; close() ends the
    worker. Then Batcher(blocked model, 1, 0.001, max_queue=2): one of the first six submits must raise queue.Full
    without waiting.
    """
    cls = require_callable(Batcher, "Batcher")
    items = torch.rand(50, 1, 28, 28, generator=generator(982))
    model = _Recorder()
    with torch.no_grad():
        expected = model.linear(items.reshape(50, -1)).double()
    before = set(threading.enumerate())
    batcher = call(cls, model, 8, 0.01, max_queue=256, name="Batcher")
    finished = False
    try:
        futures, errors = _submit_concurrently(batcher, items, 10)
        if errors:
            raise Wrong(f"submit failed while 10 threads sent 50 requests: {one_line(errors[0], 160)}")
        if len(futures) != 50 or any(f is None or not hasattr(f, "result") for f in futures.values()):
            raise Wrong("submit should return a concurrent.futures.Future (something with .result()).")
        rows = []
        for i in range(50):
            try:
                value = futures[i].result(timeout=5)
            except Exception as err:
                raise Wrong(f"the future of request {i} gave no result ({type(err).__name__}: "
                            f"{one_line(str(err), 120)}). Hint: the worker must resolve every future with "
                            "set_result (or set_exception).") from err
            row = as_tensor(value, f"result of request {i}")
            if row.numel() != 10:
                raise Wrong(f"the result of request {i} has shape {tuple(row.shape)}: one output row (10 logits) "
                            "per request.")
            rows.append(row.reshape(10))
        got = torch.stack(rows)
        finished = True
    finally:
        if not finished:  # a failure above: stop the worker quietly; otherwise _close checks close() below
            _close_quietly(batcher)
    sizes = list(model.sizes)
    if sum(sizes) != 50:
        raise Wrong(f"the model saw {sum(sizes)} items for 50 requests. Hint: every request goes to the model once.")
    if len(sizes) >= 50:
        raise Wrong("the model ran once per request (50 calls for 50 requests): nothing was batched. Hint: after the "
                    "first item, keep taking waiting items until max_batch, or until max_wait has passed.")
    if max(sizes) > 8:
        raise Wrong(f"a batch of {max(sizes)} items reached the model, above max_batch=8. Hint: stop gathering at "
                    "max_batch.")
    if any(model.grad):
        raise Wrong("the model ran with autograd recording. Hint: run the batched forward under "
                    "torch.inference_mode().")
    if not torch.allclose(got, expected, rtol=0, atol=1e-5):
        if all(any(torch.allclose(r, e, atol=1e-5) for e in expected) for r in got):
            raise Wrong("each result is some request's output, but not its own: results went back to the wrong "
                        "futures. Hint: keep each item's future beside it, in batch order.")
        raise Wrong("the results differ from the model's outputs for the submitted items. Hint: stack the items along "
                    "a new first dimension, and hand row k of the output to the k-th item's future.")
    try:
        calls, batch_sizes = as_int(batcher.calls, "calls"), [int(s) for s in batcher.batch_sizes]
    except (AttributeError, TypeError, ValueError) as err:
        raise Wrong("the Batcher should count its model calls in `.calls` (an int) and record their sizes in "
                    "`.batch_sizes` (a list of ints).") from err
    if calls != len(sizes) or sorted(batch_sizes) != sorted(sizes):
        raise Wrong(f"`.calls` = {calls} and `.batch_sizes` (sum {sum(batch_sizes)}) do not match the {len(sizes)} "
                    f"calls the model received (sizes {sizes[:8]}...).")
    _close(batcher, before)
    _check_busy(cls)


def _check_busy(cls: Any) -> None:
    gate = threading.Event()
    model = _Recorder(seconds=0.0, gate=gate)
    before = set(threading.enumerate())
    batcher = call(cls, model, 1, 0.001, max_queue=2, name="Batcher")
    outcome: dict[str, Any] = {}

    def overload() -> None:
        for k in range(1, 7):
            try:
                batcher.submit(torch.zeros(1, 28, 28))
            except Exception as err:
                outcome["error"], outcome["at"] = err, k
                return
            time.sleep(0.01)
        outcome["at"] = None

    sender = threading.Thread(target=overload, daemon=True)
    sender.start()
    sender.join(3.0)
    blocked = sender.is_alive()
    gate.set()
    sender.join(5.0)
    if blocked or outcome.get("at") is None or not isinstance(outcome["error"], queue.Full):
        _close_quietly(batcher)
    if blocked:
        raise Wrong("with its queue full, submit waited for room instead of refusing the request. Hint: a busy "
                    "service must answer at once (503): don't block when the queue is full.")
    if outcome.get("at") is None:
        raise Wrong("six submits to a Batcher with max_queue=2 and a stalled model all succeeded: submit never reports "
                    "that it is busy. Hint: bound the queue with max_queue.")
    if not isinstance(outcome["error"], queue.Full):
        raise Wrong(f"with its queue full, submit raised {type(outcome['error']).__name__}; expected queue.Full (or a "
                    "subclass of it), the error a service maps to 503 'busy'.")
    _close(batcher, before)


# ----------------------------------------------------------------------------------------------
# 09.9 dynamic int8 quantisation
# ----------------------------------------------------------------------------------------------

_QUANT_KEYS = ("size_fp32", "size_int8", "acc_fp32", "acc_int8", "ms_fp32", "ms_int8")


_QUANT_IMAGES = 2000  # accuracies are on the first 2,000 test images, as the chapter's exercise says


@functools.lru_cache(maxsize=1)
def _zoo_mlp_reference() -> tuple[dict, int, float, float]:
    """(meta, state_dict bytes, accuracy, accuracy without normalisation) of the zoo MLP on the first 2,000 test
    images."""
    from course_utils.deploy import state_dict_bytes
    from course_utils.pretrained.ch09 import fashion_mlp

    model, meta = fashion_mlp()
    return meta, state_dict_bytes(model), _accuracy(model, meta), _accuracy(model, {"mean": 0.0, "std": 1.0})


def _accuracy(model: nn.Module, meta: Mapping[str, Any], n: int | None = _QUANT_IMAGES) -> float:
    from course_utils.models import preprocess
    from course_utils.pretrained import accuracy_on, fashion_test

    x, y = fashion_test(n)
    with torch.inference_mode():
        return accuracy_on(model, preprocess(x.float().div(255), meta), y, batch_size=2500)


@exercise("09.9", "dynamic int8 quantisation")
def check_quantize(quant_result: Any, quantized_mlp: Any) -> None:
    """`quant_result`: a dict with size_fp32 and size_int8 (bytes of the saved state_dicts of the zoo MLP and of its
    int8 version), acc_fp32 and acc_int8 (accuracy, a fraction, on the first 2,000 Fashion-MNIST test images,
    fashion_test(2000), preprocessed with the MLP's meta), ms_fp32 and ms_int8 (latencies, milliseconds).
    `quantized_mlp`: the int8 model.

    Recomputed: sizes with `course_utils.deploy.state_dict_bytes` (the bytes torch.save writes for the state_dict;
    within 2%, so a file measured on disk counts too) of `fashion_mlp()` and of quantized_mlp; accuracies of both on
    those 2,000 images (fp32 within one image, int8 within three: dynamic quantisation depends a little on how the
    batches are cut); the int8 model is over 3 times smaller and within 0.01 of the fp32 accuracy; the latencies
    are positive and finite.
    """
    from course_utils.deploy import state_dict_bytes

    result = require(quant_result, "quant_result")
    if not isinstance(result, Mapping):
        raise Wrong(f"`quant_result` should be a dict with the keys {list(_QUANT_KEYS)}, got a {type(result).__name__}.")
    missing = [k for k in _QUANT_KEYS if k not in result]
    if missing:
        raise Wrong(f"`quant_result` lacks the keys {missing}.")
    got = {k: as_float(result[k], f"quant_result[{k!r}]") for k in _QUANT_KEYS}
    for k in ("ms_fp32", "ms_int8"):
        if not (math.isfinite(got[k]) and got[k] > 0):
            raise Wrong(f"quant_result[{k!r}] is {got[k]}: a latency is a positive number of milliseconds.")
    q_model = require(quantized_mlp, "quantized_mlp")
    if not isinstance(q_model, nn.Module):
        raise Wrong(f"`quantized_mlp` should be the quantised model (an nn.Module), got a {type(q_model).__name__}.")
    meta, size_fp32, acc_fp32, acc_raw = _zoo_mlp_reference()
    size_int8 = state_dict_bytes(q_model)
    if size_fp32 / size_int8 < 1.5:
        raise Wrong(f"`quantized_mlp` is still a float32 model ({size_int8:,} bytes, like the original's "
                    f"{size_fp32:,}). Hint: quantize_dynamic leaves the model it is given unchanged and returns the "
                    "quantised copy.")
    if size_fp32 / size_int8 < 3:
        raise Wrong(f"the quantised model takes {size_int8:,} bytes, only {size_fp32 / size_int8:.2f} times fewer than "
                    f"the fp32 model's {size_fp32:,}. Hint: quantise every nn.Linear layer.")
    for key, truth in (("size_fp32", size_fp32), ("size_int8", size_int8)):
        if abs(got[key] - truth) > 0.02 * truth:
            if key == "size_int8" and abs(got[key] - size_fp32) <= 0.02 * size_fp32:
                hint = "that is the fp32 model's size: measure the quantised model."
            elif got[key] == 0 or key == "size_int8" and got[key] < 0.05 * truth:
                hint = ("a quantised model has no float parameters(): its int8 weights are packed in the state_dict. "
                        "Measure what torch.save writes.")
            else:
                hint = "measure the bytes torch.save writes for the model's state_dict (a BytesIO, or a file's size)."
            raise Wrong(f"quant_result[{key!r}] = {got[key]:,.0f}, but that model's state_dict takes {truth:,} bytes. "
                        f"Hint: {hint}")
    acc_int8 = _accuracy(q_model, meta)
    if abs(acc_int8 - acc_fp32) >= 0.01:
        raise Wrong(f"the quantised model's accuracy ({acc_int8:.4f}) is {abs(acc_int8 - acc_fp32):.3f} away from the fp32 "
                    f"model's ({acc_fp32:.4f}), expected under 0.01. Hint: quantise the zoo MLP's Linear layers to "
                    "qint8, dynamically.")
    one_image = 1 / _QUANT_IMAGES
    for key, truth, tol in (("acc_fp32", acc_fp32, 1.01 * one_image), ("acc_int8", acc_int8, 3.01 * one_image)):
        if abs(got[key] - truth) > tol:
            if 1 < got[key] <= 100 and abs(got[key] / 100 - truth) <= tol:
                hint = "that is a percentage: give the accuracy as a fraction between 0 and 1."
            elif key == "acc_fp32" and abs(got[key] - acc_raw) <= tol:
                hint = "the images were not normalised with meta's mean and std."
            else:
                hint = ("measure it on the first 2,000 test images (fashion_test(2000)), preprocessed with the MLP's "
                        "mean and std.")
            raise Wrong(f"quant_result[{key!r}] = {got[key]:.4f}, but the model's accuracy on the first 2,000 test "
                        f"images is {truth:.4f}. Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 09.10 torch.compile
# ----------------------------------------------------------------------------------------------

_COMPILE_SIZES = (32, 7)  # a hidden batch, then a size the learner's report did not use


def _is_compiled(model: Any) -> bool:
    from torch._dynamo.eval_frame import OptimizedModule

    return (isinstance(model, OptimizedModule) or getattr(model, "_compiled_call_impl", None) is not None
            or hasattr(model, "_torchdynamo_orig_callable"))


def _latencies(report: Mapping[str, Any], key: str) -> dict[int, float]:
    table = report.get(key)
    if not isinstance(table, Mapping):
        raise Wrong(f"report[{key!r}] should be a dict {{1: ms, 64: ms}}, got {type(table).__name__}.")
    try:
        by_size = {int(k): v for k, v in table.items()}
    except (TypeError, ValueError) as err:
        raise Wrong(f"report[{key!r}] should be keyed by the batch sizes 1 and 64.") from err
    if set(by_size) != {1, 64}:
        raise Wrong(f"report[{key!r}] has the batch sizes {sorted(by_size)}, expected [1, 64].")
    out = {n: as_float(v, f"report[{key!r}][{n}]") for n, v in by_size.items()}
    for n, ms in out.items():
        if not (math.isfinite(ms) and ms > 0):
            raise Wrong(f"report[{key!r}][{n}] is {ms}: a latency is a positive number of milliseconds.")
    return out


@exercise("09.10", "torch.compile, measured")
def check_compile(compiled_model: Any, report: Any) -> None:
    """`compiled_model`: torch.compile of the zoo CNN (`fashion_cnn()`, eval mode), or the model after
    `model.compile()`. `report`: dict(eager_ms={1: ms, 64: ms}, compiled_ms={1: ms, 64: ms}, compiles=int), the
    median latencies at batch sizes 1 and 64 and how many compilations were observed.

    Checked: the latencies are positive and finite, compiles is an int of at least 1, compiled_model is compiled;
    under torch.inference_mode() it matches a fresh fashion_cnn() (atol 1e-5) on 32 hidden test images and on a
    batch of 7 (a size that may need one more compilation, a few seconds).
    """
    require(compiled_model, "compiled_model")
    table = require(report, "report")
    if not isinstance(table, Mapping):
        raise Wrong(f"`report` should be a dict with eager_ms, compiled_ms and compiles, got {type(table).__name__}.")
    for key in ("eager_ms", "compiled_ms", "compiles"):
        if key not in table:
            raise Wrong(f"`report` lacks the key {key!r}.")
    _latencies(table, "eager_ms")
    _latencies(table, "compiled_ms")
    compiles = as_int(table["compiles"], "report['compiles']")
    if compiles < 1:
        raise Wrong(f"report['compiles'] is {compiles}, but the first call of a compiled model compiles it. Hint: count "
                    "with torch._dynamo's counters (or course_utils.deploy.count_compiles) around your calls, the "
                    "first one included.")
    if not callable(compiled_model):
        raise Wrong(f"`compiled_model` should be the compiled model, got a {type(compiled_model).__name__}.")
    if not _is_compiled(compiled_model):
        raise Wrong("`compiled_model` is not compiled: it runs eagerly. Hint: torch.compile returns a new, compiled "
                    "module and leaves the model it was given as it was.")
    from course_utils.models import preprocess
    from course_utils.pretrained.ch09 import fashion_cnn, fashion_test

    reference, meta = fashion_cnn()
    x, _ = fashion_test()
    picks = torch.randperm(len(x), generator=generator(9101))[:sum(_COMPILE_SIZES)]
    batch = preprocess(x[picks].float().div(255), meta)
    quiet = logging.getLogger("torch.utils.cpp_extension")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        start = 0
        for n in _COMPILE_SIZES:
            xb = batch[start:start + n]
            start += n
            with torch.inference_mode():
                expected = reference(xb)
                try:
                    out = compiled_model(xb)
                except Exception as err:
                    raise Wrong(f"the compiled model fails on a batch of {n} ({type(err).__name__}: "
                                f"{one_line(str(err), 120)}). Hint: a model compiled with torch.compile accepts any "
                                "batch size (it compiles again for a new shape); compile the eager model.") from err
            got = as_tensor(out, f"compiled_model(batch of {n})")
            if tuple(got.shape) != tuple(expected.shape) or not torch.allclose(got, expected.double(), rtol=1e-5,
                                                                                  atol=1e-5):
                raise Wrong(f"on a batch of {n} test images the compiled model's outputs differ from the zoo CNN's. "
                            "Hint: compile the model fashion_cnn() returns, in eval mode.")
    finally:
        quiet.setLevel(level)


# ----------------------------------------------------------------------------------------------
# 09.11 a config that loads under weights_only
# ----------------------------------------------------------------------------------------------

_CONFIG = {"w": 4, "n_in": 1, "n_out": 7}

_REBUILD = r"""
import json, sys, torch
from course_utils.models import tiny_resnet
path, config, x_path, out_path = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3], sys.argv[4]
try:
    obj = torch.load(path, map_location="cpu", weights_only=True)
except Exception as err:
    print(json.dumps({"ok": False, "stage": "load", "message": f"{type(err).__name__}: {err}"[:3000]}))
    sys.exit(0)
def walk(o):
    yield o
    if isinstance(o, dict):
        for v in o.values():
            yield from walk(v)
    elif isinstance(o, (list, tuple)):
        for v in o:
            yield from walk(v)
if not any(isinstance(o, dict) and all(k in o and o[k] == v for k, v in config.items()) for o in walk(obj)):
    print(json.dumps({"ok": False, "stage": "config"}))
    sys.exit(0)
states = [o for o in walk(obj) if isinstance(o, dict) and o and all(isinstance(v, torch.Tensor) for v in o.values())]
model, err = None, "no dict of tensors in the file"
for state in states:
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    candidate = tiny_resnet(**config)
    try:
        candidate.load_state_dict(state)
        model = candidate
        break
    except Exception as e:
        err = f"{type(e).__name__}: {e}"
if model is None:
    print(json.dumps({"ok": False, "stage": "state", "message": err[:600]}))
    sys.exit(0)
with torch.no_grad():
    torch.save(model.eval()(torch.load(x_path, weights_only=True)), out_path)
print(json.dumps({"ok": True}))
"""


@exercise("09.11", "a config that loads under weights_only")
def check_config_checkpoint(save_with_config: Any, load_with_config: Any) -> None:
    """`save_with_config(path, model, config)`: write model (a tiny_resnet) and config (the dict of its tiny_resnet
    arguments) to one file at path, in plain types only. `load_with_config(path) -> model`: rebuild tiny_resnet from
    the stored config, load the weights, return the model ready for inference (eval mode).

    Hidden: tiny_resnet(w=4, n_in=1, n_out=7) with trained-looking BatchNorm statistics. A freshly started Python
    loads the file with torch.load(weights_only=True), finds a dict holding the config's items and the state_dict,
    rebuilds tiny_resnet(**config), and its outputs on 3 hidden images equal the model's (atol 1e-5); so must the
    model load_with_config returns, without torch.load(weights_only=False).
    """
    save = require_callable(save_with_config, "save_with_config")
    load = require_callable(load_with_config, "load_with_config")
    from course_utils.models import tiny_resnet

    model = _with_random_bn(tiny_resnet(**_CONFIG, seed=9111), 9112).eval()
    x = torch.randn(3, 1, 28, 28, generator=generator(9113))
    with torch.no_grad():
        expected = model(x)
    with tempfile.TemporaryDirectory() as folder:
        path, x_path, out_path = (Path(folder) / name for name in ("model.pt", "x.pt", "out.pt"))
        call(save, str(path), copy.deepcopy(model), dict(_CONFIG), name="save_with_config", allow_none=True)
        if not path.is_file():
            raise Wrong("save_with_config(path, ...) wrote no file at path.")
        torch.save(x, x_path)
        fresh = _run_python(_REBUILD, str(path), json.dumps(_CONFIG), str(x_path), str(out_path))
        if not fresh["ok"]:
            if fresh["stage"] == "load":
                raise Wrong(_unpickling_hint(fresh["message"], "the file"))
            if fresh["stage"] == "config":
                raise Wrong(f"the file holds no dict with the config's items {_CONFIG}. Hint: store the config itself, "
                            "as a dict of plain values, beside the weights.")
            raise Wrong(f"the file's weights do not load into tiny_resnet(**config) ({one_line(fresh['message'], 140)}). "
                        "Hint: store model.state_dict().")
        if not torch.allclose(torch.load(out_path, weights_only=True), expected, rtol=0, atol=1e-5):
            raise Wrong("the model rebuilt from the file in a fresh Python gives other outputs than the saved model. "
                        "Hint: store the state_dict of the model you are given, buffers included.")
        try:
            with _watch_torch_load() as loads:
                rebuilt = load(str(path))
        except Exception as err:
            hint = ("the architecture built when loading differs from the saved one: build it from the config stored in "
                    "the file." if "size mismatch" in str(err) or "Missing key" in str(err) else
                    "rebuild tiny_resnet from the stored config, then load_state_dict.")
            raise Wrong(f"load_with_config raised {type(err).__name__}: {one_line(str(err), 120)}. Hint: {hint}") from err
        _unsafe_load_hint(loads, "load_with_config")
    if rebuilt is None:
        raise Wrong("load_with_config returned None: return the rebuilt model.")
    if not isinstance(rebuilt, nn.Module):
        raise Wrong(f"load_with_config should return the model (an nn.Module), got a {type(rebuilt).__name__}.")
    if rebuilt.training:
        raise Wrong("load_with_config returns the model in training mode, so BatchNorm normalises with each batch's "
                    "statistics. Hint: hand it back ready for inference.")
    with torch.no_grad():
        got = rebuilt(x)
    if tuple(got.shape) != tuple(expected.shape) or not torch.allclose(got, expected, rtol=0, atol=1e-5):
        raise Wrong("the model load_with_config returns gives other outputs than the saved one. Hint: rebuild it from "
                    "the stored config and load the stored state_dict strictly.")
