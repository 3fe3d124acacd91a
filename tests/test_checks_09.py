"""Tests of the 09_deploy checks: other correct answers pass, planted wrong answers, stubs and crashing answers fail
(naming what is wrong), and no check ever raises or prints more than its line.

The correct answers here are written other ways than the obvious ones: predict with no_grad and log_softmax, a
checkpoint hashed from its bytes in memory (and the course's own `course_utils.deploy` helpers), traced and
scripted outputs worked out by hand, torch.export with a named Dim and with Dim.AUTO, ONNX through dynamic_axes and
through an ExportedProgram, a service on a raw Request with NumPy validation (and `course_utils.deploy.create_app`),
a micro-batcher that polls its queue (and `course_utils.deploy.Batcher`), sizes measured on disk, `Module.compile`
in place, and a config stored flat.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import io
import logging
import queue
import statistics
import tempfile
import threading
import time
import warnings
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from torch import nn

from check_helpers import Planted, crash, fails, passes, planted_test, returns_none
from course_utils.checks import check
from course_utils.models import tiny_resnet

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def only_the_line(capfd, exercise_id, *answers):
    """Run check(...) for real and assert that stdout holds its ✅ line alone and stderr nothing (C level included)."""
    capfd.readouterr()
    assert check(exercise_id, *answers)
    out, err = capfd.readouterr()
    assert out.startswith(f"✅ {exercise_id} ") and out.count("\n") == 1, out
    assert err == "", err


# 09.1 -------------------------------------------------------------------------------------------


def test_09_1():
    passes("09.1", True, False, True)
    passes("09.1", np.True_, torch.tensor(False), np.bool_(True))
    fails("09.1", 1, False, True, mentions="True or False")
    fails("09.1", ..., False, True, mentions="not answered")
    fails("09.1", True, False, None, mentions="not answered")


# 09.2 -------------------------------------------------------------------------------------------


def predict_no_grad(model, images_01, meta, *, eval_mode=True, normalise=True, softmax=True, no_grad=True, dim=1,
                    stats=None, in_place=False):
    """no_grad, a channel axis by indexing, softmax by torch.softmax; flags plant mistakes (defaults are right)."""
    if eval_mode:
        model.train(False)
    mean, std = stats or (meta["mean"], meta["std"])
    x = images_01[:, None]
    if in_place:
        x.sub_(mean).div_(std)
    elif normalise:
        x = (x - mean) / std
    with torch.no_grad() if no_grad else contextlib.nullcontext():
        logits = model(x)
    return torch.softmax(logits, dim) if softmax else logits


def predict_as_numpy(model, images_01, meta):
    """inference_mode, log_softmax then exp, returned as a NumPy array."""
    model.eval()
    x = images_01.unsqueeze(1).sub(meta["mean"]).div(meta["std"])
    with torch.inference_mode():
        return F.log_softmax(model(x), dim=-1).exp().numpy()


def test_09_2():
    passes("09.2", predict_no_grad)
    passes("09.2", predict_as_numpy)
    fails("09.2", lambda m, x, meta: predict_no_grad(m, x, meta)[:, :9], mentions="(200, 10)")
    fails("09.2", crash, mentions="raised")
    fails("09.2", returns_none, mentions="None")
    fails("09.2", ..., mentions="not answered")


# 09.3 -------------------------------------------------------------------------------------------


def _digest_path(path):
    return Path(f"{path}.sha256")


def save_hashed(path, model, opt, epoch, meta, *, whole=False):
    """torch.save into memory, hash those bytes, write both; `whole` plants a pickled module."""
    buffer = io.BytesIO()
    payload = {"weights": model.state_dict(), "optim": opt.state_dict(), "epoch": epoch, "meta": meta}
    torch.save({"model": model, **payload} if whole else payload, buffer)
    Path(path).write_bytes(buffer.getvalue())
    _digest_path(path).write_text(hashlib.sha256(buffer.getvalue()).hexdigest())


def load_hashed(path, model, *, verify=True, strip=True, weights_only=True, verify_after=False):
    """Hash the bytes, compare, load them from memory; flags plant mistakes (defaults are right)."""
    blob = Path(path).read_bytes()
    same = hashlib.sha256(blob).hexdigest() == _digest_path(path).read_text().strip()
    if verify and not verify_after and not same:
        return False, {"reason": "sha256 mismatch"}
    ckpt = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=weights_only)
    weights = ckpt["weights"]
    if strip:
        weights = {k.removeprefix("module."): v for k, v in weights.items()}
    model.load_state_dict(weights)
    if verify_after and not same:
        return False, {}
    return True, {"epoch": ckpt["epoch"], "meta": ckpt["meta"]}


def save_with_deploy(path, model, opt, epoch, meta):
    from course_utils.deploy import save_checkpoint

    save_checkpoint(path, model, opt, epoch=epoch, meta=meta)


def load_with_deploy(path, model):
    from course_utils.deploy import ChecksumError, load_checkpoint

    try:
        return True, load_checkpoint(path, model)
    except ChecksumError as err:
        return False, {"error": str(err)}


def test_09_3():
    passes("09.3", save_hashed, load_hashed)
    passes("09.3", save_with_deploy, load_with_deploy)
    fails("09.3", save_hashed, lambda p, m: load_hashed(p, m)[0], mentions="pair")
    fails("09.3", lambda *a: None, load_hashed, mentions="no file")
    fails("09.3", crash, load_hashed, mentions="raised")
    fails("09.3", save_hashed, returns_none, mentions="None")
    fails("09.3", ..., load_hashed, mentions="not answered")


# 09.4 -------------------------------------------------------------------------------------------

# Worked out by hand for x = arange(-10, 10).reshape(5, 4): the trace on ones(3, 4) adds rows 0..2 and doubles
# (the example's sum was positive); the script adds all five rows, whose sum (-10) is negative, and negates.
TRACED_BY_HAND = [2 * (-10 - 6 - 2), 2 * (-9 - 5 - 1), 2 * (-8 - 4 + 0), 2 * (-7 - 3 + 1)]
SCRIPTED_BY_HAND = np.array([10.0, 5.0, 0.0, -5.0])
ROWS_0_TO_2 = [-18.0, -15.0, -12.0, -9.0]


def test_09_4(capfd):
    only_the_line(capfd, "09.4", TRACED_BY_HAND, SCRIPTED_BY_HAND)
    passes("09.4", torch.tensor(TRACED_BY_HAND, dtype=torch.float32), torch.from_numpy(SCRIPTED_BY_HAND).reshape(1, 4))
    fails("09.4", TRACED_BY_HAND[:3], SCRIPTED_BY_HAND, mentions="4")
    fails("09.4", "traced", SCRIPTED_BY_HAND, mentions="tensor or an array")
    fails("09.4", ..., SCRIPTED_BY_HAND, mentions="not answered")
    fails("09.4", TRACED_BY_HAND, None, mentions="not answered")


# 09.5 -------------------------------------------------------------------------------------------


def export_named_dim(model, *, dynamic=True, train=False, module=False):
    """A named Dim with a maximum, dynamic_shapes keyed by the argument's name; flags plant mistakes."""
    if not train:
        model.eval()
    shapes = {"input": {0: torch.export.Dim("n", max=4096)}} if dynamic else None
    program = torch.export.export(model, (torch.zeros(4, 1, 28, 28),), dynamic_shapes=shapes)
    return program.module() if module else program


def export_auto(model):
    model.train(False)
    return torch.export.export(model, (torch.rand(3, 1, 28, 28),), dynamic_shapes=({0: torch.export.Dim.AUTO},))


def test_09_5():
    passes("09.5", export_named_dim)
    passes("09.5", export_auto)
    fails("09.5", crash, mentions="raised")
    fails("09.5", returns_none, mentions="None")
    fails("09.5", ..., mentions="not answered")


# 09.6 -------------------------------------------------------------------------------------------


def onnx_by_axes(model, path, *, external=False, dynamic=True, name="input"):
    """The dynamo exporter with old-style dynamic_axes; flags plant mistakes (defaults are right)."""
    torch.onnx.export(model.eval(), (torch.randn(2, 1, 28, 28),), path, dynamo=True, input_names=[name],
                      output_names=["logits"], dynamic_axes={name: {0: "batch"}} if dynamic else None,
                      external_data=external, verbose=False)


def onnx_from_program(model, path):
    """Export an ExportedProgram, then save the ONNXProgram in one file."""
    program = torch.export.export(model.eval(), (torch.ones(5, 1, 28, 28),),
                                  dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.onnx.export(program, dynamo=True, verbose=False).save(path, external_data=False)


def ort_run(path, x, *, as_list=False):
    import onnxruntime as ort

    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    out = session.run(["logits"], {"input": x})
    return out if as_list else out[0]


def ort_by_first_input(path, x):
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(None, {session.get_inputs()[0].name: x})[0])


def test_09_6(capfd):
    only_the_line(capfd, "09.6", onnx_by_axes, ort_run)
    passes("09.6", onnx_from_program, ort_by_first_input)
    fails("09.6", lambda m, p: None, ort_run, mentions="no file")
    fails("09.6", crash, ort_run, mentions="raised")
    fails("09.6", onnx_by_axes, returns_none, mentions="None")
    fails("09.6", onnx_by_axes, ..., mentions="not answered")


# 09.7 -------------------------------------------------------------------------------------------


class Pixels(BaseModel):
    pixels: list[list[list[float]]]


def app_with_schema(model, meta, *, finite=True, limit=64, normalise=True, in_range=True):
    """A pydantic body and HTTPException; flags plant mistakes (defaults are right)."""
    app = FastAPI()
    model.eval()

    @app.get("/health")
    def health():
        return {"alive": True, "arch": meta.get("arch")}

    @app.post("/predict")
    def predict(body: Pixels):
        if limit is not None and len(body.pixels) > limit:
            raise HTTPException(413, f"at most {limit} images per request")
        try:
            x = torch.tensor(body.pixels, dtype=torch.float32)
        except (ValueError, TypeError) as err:
            raise HTTPException(400, f"ragged pixels: {err}") from err
        if x.dim() != 3 or x.shape[1:] != (28, 28):
            raise HTTPException(400, f"expected (N, 28, 28), got {tuple(x.shape)}")
        if finite and not torch.isfinite(x).all():
            raise HTTPException(400, "pixels must be finite")
        if in_range and ((x < 0) | (x > 1)).any():
            raise HTTPException(400, "pixels must lie in [0, 1]")
        if normalise:
            x = (x - meta["mean"]) / meta["std"]
        with torch.inference_mode():
            p = model(x[:, None]).softmax(1)
        best, idx = p.max(1)
        return {"predictions": [{"class": int(c), "label": meta["classes"][int(c)], "probability": round(float(v), 4)}
                                for v, c in zip(best, idx)]}

    return app


def app_on_request(model, meta):
    """A raw Request, NumPy validation, JSONResponse errors (an "error" key, not FastAPI's "detail")."""
    app = FastAPI()
    net = model.eval()

    @app.get("/health")
    async def health():
        return JSONResponse({"status": "up"})

    @app.post("/predict")
    async def predict(request: Request):
        try:
            data = await request.json()
            arr = np.asarray(data["pixels"], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as err:
            return JSONResponse({"error": f"bad body: {err}"}, status_code=422)
        if arr.ndim != 3 or arr.shape[1:] != (28, 28):
            return JSONResponse({"error": f"shape {arr.shape}"}, status_code=400)
        if len(arr) > 64:
            return JSONResponse({"error": "too many"}, status_code=413)
        if not np.isfinite(arr).all() or arr.min() < 0 or arr.max() > 1:
            return JSONResponse({"error": "values must be finite and within 0..1"}, status_code=400)
        x = torch.from_numpy((arr - meta["mean"]) / meta["std"]).unsqueeze(1)
        with torch.no_grad():
            probs = F.softmax(net(x), dim=1).numpy()
        return {"predictions": [{"class": int(row.argmax()), "label": meta["classes"][int(row.argmax())],
                                 "probability": float(row.max())} for row in probs]}

    return app


def deploy_app(model, meta):
    from course_utils.deploy import create_app

    return create_app(model, meta)


def test_09_7():
    passes("09.7", app_with_schema)
    passes("09.7", app_on_request)
    passes("09.7", deploy_app)
    fails("09.7", lambda m, meta: FastAPI(), mentions="/health")
    fails("09.7", crash, mentions="raised")
    fails("09.7", returns_none, mentions="None")
    fails("09.7", ..., mentions="not answered")


# 09.8 -------------------------------------------------------------------------------------------


class PollingBatcher:
    """A worker that polls its queue until a deadline; flags plant mistakes (defaults are right)."""

    def __init__(self, model, max_batch=16, max_wait=0.005, max_queue=100, *, batching=True, cap=True, bounded=True,
                 block=False):
        self.model, self.max_batch, self.max_wait = model, max_batch, max_wait
        self.batching, self.cap, self.block = batching, cap, block
        self.jobs = queue.Queue(max_queue if bounded else 0)
        self.calls, self.batch_sizes = 0, []
        self.running = True
        self.worker = threading.Thread(target=self.loop, daemon=True)
        self.worker.start()

    def submit(self, x):
        done = Future()
        if self.block:
            self.jobs.put((x, done))
        else:
            self.jobs.put((x, done), block=False)
        return done

    def take(self):
        try:
            return [self.jobs.get(timeout=0.05)]
        except queue.Empty:
            return []

    def loop(self):
        while self.running or not self.jobs.empty():
            batch = self.take()
            if not batch:
                continue
            until = time.monotonic() + self.max_wait
            while self.batching and (len(batch) < self.max_batch or not self.cap) and time.monotonic() < until:
                try:
                    batch.append(self.jobs.get_nowait())
                except queue.Empty:
                    time.sleep(0.0005)
            with torch.inference_mode():
                out = self.model(torch.stack([x for x, _ in batch]))
            self.calls += 1
            self.batch_sizes.append(len(batch))
            for (_, done), row in zip(batch, out.clone()):
                done.set_result(row)

    def close(self):
        self.running = False
        self.worker.join()


class BatcherJoinOnly(PollingBatcher):
    """close() waits for the worker without telling it to stop (here a timer stops it after 6 s, past the check's
    patience, so the test leaves no thread behind)."""

    def close(self):
        threading.Timer(6.0, setattr, (self, "running", False)).start()
        self.worker.join()


def deploy_batcher(*args, **kwargs):
    from course_utils.deploy import Batcher

    return Batcher(*args, **kwargs)


def test_09_8():
    passes("09.8", PollingBatcher)
    passes("09.8", deploy_batcher)
    fails("09.8", lambda *a, **k: object(), mentions="submit")
    fails("09.8", crash, mentions="raised")
    fails("09.8", returns_none, mentions="None")
    fails("09.8", ..., mentions="not answered")


# 09.9 -------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _quantised():
    from course_utils.pretrained.ch09 import fashion_mlp

    mlp, meta = fashion_mlp()
    with warnings.catch_warnings():  # torch.ao.quantization's deprecation notices
        warnings.simplefilter("ignore")
        return mlp, torch.ao.quantization.quantize_dynamic(mlp, {nn.Linear}, dtype=torch.qint8), meta


def _bytes_on_disk(model):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "weights.pt"
        torch.save(model.state_dict(), path)
        return path.stat().st_size


def _accuracy_in_batches(model, meta, first=2000):
    from course_utils.pretrained.ch09 import fashion_test

    x, y = fashion_test(first)
    hits = 0
    with torch.no_grad():
        for i in range(0, len(x), 1000):
            xb = (x[i:i + 1000].float() / 255 - meta["mean"]) / meta["std"]
            hits += (model(xb.unsqueeze(1)).argmax(1) == y[i:i + 1000]).sum().item()
    return hits / len(x)


def _ms(model, reps=5):
    xb = torch.randn(256, 1, 28, 28)
    times = []
    with torch.no_grad():
        for _ in range(reps):
            t0 = time.perf_counter()
            model(xb)
            times.append(1000 * (time.perf_counter() - t0))
    return statistics.median(times)


def quant_by_hand(**changes):
    mlp, q, meta = _quantised()
    result = {"size_fp32": _bytes_on_disk(mlp), "size_int8": _bytes_on_disk(q), "acc_fp32": _accuracy_in_batches(mlp, meta),
              "acc_int8": _accuracy_in_batches(q, meta), "ms_fp32": _ms(mlp), "ms_int8": _ms(q)}
    return {**result, **changes}, q


def quant_with_deploy():
    from course_utils.deploy import median_ms, state_dict_bytes
    from course_utils.models import preprocess
    from course_utils.pretrained.ch09 import fashion_test

    mlp, q, meta = _quantised()
    x, y = fashion_test(2000)
    xb = preprocess(x.float() / 255, meta)
    with torch.inference_mode():
        accs = [(m(xb).argmax(1) == y).float().mean().item() for m in (mlp, q)]
        ms = [median_ms(m, xb[:256], repeats=5, warmup=1) for m in (mlp, q)]
    return {"size_fp32": state_dict_bytes(mlp), "size_int8": state_dict_bytes(q), "acc_fp32": accs[0],
            "acc_int8": accs[1], "ms_fp32": ms[0], "ms_int8": ms[1]}, q


def test_09_9():
    passes("09.9", *quant_by_hand())
    passes("09.9", *quant_with_deploy())
    result, q = quant_by_hand()
    fails("09.9", {k: v for k, v in result.items() if k != "ms_int8"}, q, mentions="ms_int8")
    fails("09.9", {**result, "ms_int8": 0.0}, q, mentions="positive")
    fails("09.9", result, q.state_dict(), mentions="nn.Module")
    fails("09.9", ..., q, mentions="not answered")
    fails("09.9", result, None, mentions="not answered")


# 09.10 ------------------------------------------------------------------------------------------


def _zoo_cnn():
    from course_utils.pretrained.ch09 import fashion_cnn

    return fashion_cnn()[0]


def _median_ms(fn, x, reps=3):
    times = []
    with torch.inference_mode():
        fn(x)
        for _ in range(reps):
            t0 = time.perf_counter()
            fn(x)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


@functools.lru_cache(maxsize=1)
def compiled_with_inductor():
    """torch.compile with the default backend, compilations counted by course_utils.deploy.count_compiles."""
    from course_utils.deploy import count_compiles

    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
    cnn = _zoo_cnn()
    fast = torch.compile(cnn)
    sizes = (1, 64)
    with count_compiles() as counted:
        compiled_ms = {n: _median_ms(fast, torch.randn(n, 1, 28, 28)) for n in sizes}
    eager_ms = {n: _median_ms(cnn, torch.randn(n, 1, 28, 28)) for n in sizes}
    return fast, {"eager_ms": eager_ms, "compiled_ms": compiled_ms, "compiles": counted.graphs}


def compiled_in_place():
    """Module.compile() in place (the eager backend, fast), string keys, a NumPy int count."""
    from torch._dynamo.utils import counters

    cnn = _zoo_cnn()
    eager = {str(n): _median_ms(cnn, torch.randn(n, 1, 28, 28)) for n in (1, 64)}
    before = counters["stats"]["unique_graphs"]
    cnn.compile(backend="eager")
    fast = {str(n): _median_ms(cnn, torch.randn(n, 1, 28, 28)) for n in (1, 64)}
    return cnn, {"eager_ms": eager, "compiled_ms": fast, "compiles": np.int64(counters["stats"]["unique_graphs"] - before)}


def test_09_10(capfd):
    only_the_line(capfd, "09.10", *compiled_with_inductor())
    passes("09.10", *compiled_in_place())
    fast, report = compiled_with_inductor()
    fails("09.10", fast, {**report, "compiles": 1.0}, mentions="int")
    fails("09.10", fast, {k: v for k, v in report.items() if k != "eager_ms"}, mentions="eager_ms")
    fails("09.10", crash, report, mentions="compiled")
    fails("09.10", ..., report, mentions="not answered")
    fails("09.10", fast, None, mentions="not answered")


# 09.11 ------------------------------------------------------------------------------------------


def save_nested(path, model, config):
    torch.save({"config": dict(config), "state_dict": model.state_dict()}, path)


def load_nested(path, *, weights_only=True, train=False, fixed_config=None):
    """Rebuild from the stored config; flags plant mistakes (defaults are right)."""
    stored = torch.load(path, weights_only=weights_only)
    model = tiny_resnet(**(fixed_config or stored["config"]))
    model.load_state_dict(stored["state_dict"])
    return model.train(train)


def save_flat(path, model, config):
    """The config's items at the top level beside an "arch" name, the weights under their own key."""
    torch.save({"arch": "tiny_resnet", **config, "weights": {k: v.clone() for k, v in model.state_dict().items()}},
               path)


def load_flat(path):
    from course_utils.pretrained.ch09 import build_model

    blob = torch.load(path, map_location="cpu")
    net = build_model(blob.pop("arch"), {k: v for k, v in blob.items() if k != "weights"})
    net.load_state_dict(blob["weights"], strict=True)
    net.eval()
    return net


@dataclasses.dataclass
class ModelConfig:
    w: int
    n_in: int
    n_out: int


def save_dataclass(path, model, config):
    torch.save({"config": ModelConfig(**config), "state_dict": model.state_dict()}, path)


def load_dataclass(path):
    stored = torch.load(path, weights_only=False)
    return tiny_resnet(**dataclasses.asdict(stored["config"])).eval()


def test_09_11():
    passes("09.11", save_nested, load_nested)
    passes("09.11", save_flat, load_flat)
    fails("09.11", lambda p, m, c: torch.save(m.state_dict(), p), load_nested, mentions="config's items")
    fails("09.11", lambda *a: None, load_nested, mentions="no file")
    fails("09.11", save_nested, lambda p: load_nested(p).state_dict(), mentions="nn.Module")
    fails("09.11", crash, load_nested, mentions="raised")
    fails("09.11", save_nested, returns_none, mentions="None")
    fails("09.11", save_nested, ..., mentions="not answered")


# Planted learner mistakes -----------------------------------------------------------------------------


def _quant(**changes):
    return lambda: quant_by_hand(**changes)


PLANTED = [
    # 09.1
    Planted("09.1", "BatchNorm thought random in train mode", lambda: (False, False, True), mentions="own mean"),
    Planted("09.1", "no_grad thought to switch Dropout off", lambda: (True, True, True), mentions="Dropout"),
    Planted("09.1", "no_grad thought to freeze the running stats", lambda: (True, False, False), mentions="eval()"),
    # 09.2
    Planted("09.2", "eval() missing", lambda: (lambda *a: predict_no_grad(*a, eval_mode=False),),
            mentions="evaluation mode"),
    Planted("09.2", "normalisation missing", lambda: (lambda *a: predict_no_grad(*a, normalise=False),),
            mentions="not normalised"),
    Planted("09.2", "logits returned", lambda: (lambda *a: predict_no_grad(*a, softmax=False),), mentions="logits"),
    Planted("09.2", "no inference_mode (graph attached)", lambda: (lambda *a: predict_no_grad(*a, no_grad=False),),
            mentions="inference_mode"),
    Planted("09.2", "softmax over the batch", lambda: (lambda *a: predict_no_grad(*a, dim=0),), mentions="batch dimension"),
    Planted("09.2", "Fashion-MNIST statistics hard-coded", lambda: (lambda *a: predict_no_grad(*a, stats=(0.286, 0.353)),),
            mentions="from meta"),
    Planted("09.2", "images normalised in place", lambda: (lambda *a: predict_no_grad(*a, in_place=True),),
            mentions="changed the images"),
    # 09.3
    Planted("09.3", "module. prefix not stripped", lambda: (save_hashed, lambda p, m: load_hashed(p, m, strip=False)),
            mentions="'module.'"),
    Planted("09.3", "hash never checked", lambda: (save_hashed, lambda p, m: load_hashed(p, m, verify=False)),
            mentions="sha256"),
    Planted("09.3", "whole module pickled", lambda: (lambda *a: save_hashed(*a, whole=True), load_hashed),
            mentions="pickled module"),
    Planted("09.3", "weights_only=False", lambda: (save_hashed, lambda p, m: load_hashed(p, m, weights_only=False)),
            mentions="weights_only=False"),
    Planted("09.3", "weights loaded before the hash check",
            lambda: (save_hashed, lambda p, m: load_hashed(p, m, verify_after=True)), mentions="before anything"),
    # 09.4
    Planted("09.4", "traced and scripted swapped", lambda: (SCRIPTED_BY_HAND, TRACED_BY_HAND), mentions="swapped"),
    Planted("09.4", "traced assumed equal to eager", lambda: (SCRIPTED_BY_HAND, SCRIPTED_BY_HAND),
            mentions="example input"),
    Planted("09.4", "branch re-evaluated in the trace", lambda: ([-v for v in ROWS_0_TO_2], SCRIPTED_BY_HAND),
            mentions="branch taken"),
    Planted("09.4", "scripting thought to unroll too", lambda: (TRACED_BY_HAND, TRACED_BY_HAND), mentions="source"),
    # 09.5
    Planted("09.5", "no dynamic_shapes (static batch)", lambda: (lambda m: export_named_dim(m, dynamic=False),),
            mentions="dynamic"),
    Planted("09.5", "exported in train mode", lambda: (lambda m: export_named_dim(m, train=True),),
            mentions="training mode"),
    Planted("09.5", ".module() returned", lambda: (lambda m: export_named_dim(m, module=True),),
            mentions="ExportedProgram itself"),
    # 09.6
    Planted("09.6", "default external data sidecar", lambda: (lambda m, p: onnx_by_axes(m, p, external=True), ort_run),
            mentions="single file"),
    Planted("09.6", "no dynamic batch dimension", lambda: (lambda m, p: onnx_by_axes(m, p, dynamic=False), ort_run),
            mentions="fixed"),
    Planted("09.6", "input named differently", lambda: (lambda m, p: onnx_by_axes(m, p, name="images"), ort_by_first_input),
            mentions="input names"),
    Planted("09.6", "session.run's list returned", lambda: (onnx_by_axes, lambda p, x: ort_run(p, x, as_list=True)),
            mentions="list"),
    # 09.7
    Planted("09.7", "NaN not rejected", lambda: (lambda m, meta: app_with_schema(m, meta, finite=False),),
            mentions="not finite"),
    Planted("09.7", "no size limit", lambda: (lambda m, meta: app_with_schema(m, meta, limit=None),), mentions="413"),
    Planted("09.7", "size limit off by one", lambda: (lambda m, meta: app_with_schema(m, meta, limit=63),),
            mentions="up to 64"),
    Planted("09.7", "no normalisation on the server", lambda: (lambda m, meta: app_with_schema(m, meta, normalise=False),),
            mentions="did not normalise"),
    Planted("09.7", "value range not checked", lambda: (lambda m, meta: app_with_schema(m, meta, in_range=False),),
            mentions="0..1"),
    # 09.8
    Planted("09.8", "no batching (one call per item)", lambda: (lambda *a, **k: PollingBatcher(*a, **k, batching=False),),
            mentions="once per request"),
    Planted("09.8", "batches above max_batch", lambda: (lambda *a, **k: PollingBatcher(*a, **k, cap=False),),
            mentions="above max_batch"),
    Planted("09.8", "never raises when full", lambda: (lambda *a, **k: PollingBatcher(*a, **k, bounded=False),),
            mentions="never reports"),
    Planted("09.8", "close() never stops the worker", lambda: (BatcherJoinOnly,), mentions="did not return"),
    Planted("09.8", "submit blocks when full", lambda: (lambda *a, **k: PollingBatcher(*a, **k, block=True),),
            mentions="waited for room"),
    # 09.9
    Planted("09.9", "sizes made up", _quant(size_fp32=2_000_000, size_int8=500_000), mentions="torch.save writes"),
    Planted("09.9", "int8 size measured on the fp32 model", lambda: quant_by_hand(size_int8=_bytes_on_disk(_quantised()[0])),
            mentions="fp32 model's size"),
    Planted("09.9", "quantised model is the fp32 model", lambda: (quant_by_hand()[0], _quantised()[0]),
            mentions="still a float32"),
    Planted("09.9", "accuracy on the whole test set",
            lambda: quant_by_hand(acc_fp32=_accuracy_in_batches(_quantised()[0], _quantised()[2], first=None)),
            mentions="first 2,000"),
    Planted("09.9", "accuracy on the first 1,000 images",
            lambda: quant_by_hand(acc_int8=_accuracy_in_batches(_quantised()[1], _quantised()[2], first=1000)),
            mentions="first 2,000"),
    Planted("09.9", "accuracy as a percentage", lambda: quant_by_hand(acc_int8=100 * quant_by_hand()[0]["acc_int8"]),
            mentions="percentage"),
    # 09.10
    Planted("09.10", "compile count 0", lambda: (compiled_with_inductor()[0], {**compiled_with_inductor()[1], "compiles": 0}),
            mentions="compiles"),
    Planted("09.10", "the eager model handed in", lambda: (_zoo_cnn(), compiled_with_inductor()[1]),
            mentions="not compiled"),
    Planted("09.10", "an untrained model compiled",
            lambda: (torch.compile(tiny_resnet(16).eval(), backend="eager"),
                     compiled_with_inductor()[1]), mentions="fashion_cnn()"),
    Planted("09.10", "batch 64 not measured",
            lambda: (compiled_with_inductor()[0], {**compiled_with_inductor()[1], "compiled_ms": {1: 2.0}}),
            mentions="[1, 64]"),
    # 09.11
    Planted("09.11", "config as a dataclass", lambda: (save_dataclass, load_dataclass), mentions="plain Python types"),
    Planted("09.11", "whole module pickled", lambda: (lambda p, m, c: torch.save(m, p), lambda p: torch.load(p, weights_only=False)),
            mentions="pickled module"),
    Planted("09.11", "weights_only=False when loading", lambda: (save_nested, lambda p: load_nested(p, weights_only=False)),
            mentions="weights_only=False"),
    Planted("09.11", "config ignored when loading",
            lambda: (save_nested, lambda p: load_nested(p, fixed_config={"w": 16, "n_in": 1, "n_out": 10})),
            mentions="config stored"),
    Planted("09.11", "rebuilt model left in train mode", lambda: (save_nested, lambda p: load_nested(p, train=True)),
            mentions="training mode"),
]


test_planted_mistake_is_rejected_with_a_hint = planted_test(PLANTED)  # tests/test_planted.py checks it is here
