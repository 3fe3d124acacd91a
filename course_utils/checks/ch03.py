"""Checks for 03_nn: neurons, torch.nn, the NumPy framework, MNIST, softmax and cross-entropy.

The optimizer checks (03.4, 03.7) compare the learner's steps with reference steps written here;
where the thermometer is needed (03.9), the check fits what it needs from the data. What every check
promises is in framework.py's docstring.
"""

from __future__ import annotations

import math
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from course_utils.checks.framework import (
    as_array,
    as_bool,
    as_float,
    call,
    exercise,
    F64,
    generator,
    one_line,
    require,
    require_callable,
    Wrong,
)

__all__ = [
    "check_basic_optim", "check_cross_entropy", "check_diamonds", "check_dropout_experiment",
    "check_learner", "check_mlp", "check_momentum", "check_param_count", "check_predictions",
    "check_softmax", "check_tanh_dropout", "check_wiggle", "DIAMOND_MARGIN", "MIN_WIGGLE",
]



def _tensor_result(value: Any, name: str, shape: tuple[int, ...]) -> torch.Tensor:
    if not isinstance(value, torch.Tensor):
        raise Wrong(f"`{name}` should return a tensor, got a {type(value).__name__}.")
    if tuple(value.shape) != tuple(shape):
        raise Wrong(f"`{name}` should return shape {tuple(shape)}, got {tuple(value.shape)}.")
    return value


def _require_class(cls: Any, name: str) -> Any:
    """Fail for a stripped class (its body only `...`): a class that defines no method of its own."""
    require_callable(cls, name)
    if isinstance(cls, type):
        own = [key for key, value in vars(cls).items()
               if (callable(value) or isinstance(value, (staticmethod, classmethod, property)))
               and (not key.startswith("__") or key in ("__init__", "__call__"))]
        if not own:
            raise Wrong(f"`{name}` defines no methods yet: replace the `...` with your code.")
    return cls


def _instantiate(cls: Any, name: str, *args: Any, **kwargs: Any) -> Any:
    _require_class(cls, name)
    return call(cls, *args, name=name, **kwargs)


def _method(obj: Any, method: str, owner: str) -> Any:
    fn = getattr(obj, method, None)
    if fn is None or not callable(fn):
        raise Wrong(f"`{owner}` has no method `{method}`: replace the `...` with your code.")
    return fn


# ----------------------------------------------------------------------------------------------
# 03.1 stable softmax
# ----------------------------------------------------------------------------------------------


@exercise("03.1", "a stable softmax")
def check_softmax(softmax: Any) -> None:
    require_callable(softmax, "softmax")
    gen = generator(301)
    cases = [
        (torch.randn(4, 7, generator=gen, dtype=F64) * 3, 1),
        (torch.randn(4, 7, generator=gen, dtype=F64) * 3, -1),
        (torch.randn(5, 3, generator=gen, dtype=F64), 0),
        (torch.randn(2, 3, 5, generator=gen, dtype=F64) * 2, 1),
        (torch.tensor([[1000.0, 0.0, -1000.0], [-1000.0, -1000.0, -999.0], [999.0, 1000.0, 1000.0]], dtype=F64), 1),
        (torch.tensor([[1000.0, -1000.0], [-1000.0, 1000.0], [0.0, 1000.0]], dtype=F64), 0),
    ]
    for x, dim in cases:
        kept = x.clone()
        got = _tensor_result(call(softmax, x, dim, name="softmax"), "softmax", tuple(x.shape))
        if not torch.equal(x, kept):
            raise Wrong("softmax changed its input in place. Hint: compute new tensors instead of using `-=`.")
        got = got.detach().to(F64)
        if not torch.isfinite(got).all():
            raise Wrong(
                f"softmax returned inf or nan for logits as large as {x.abs().max().item():g}. "
                "Hint: subtract the maximum along `dim` (with keepdim=True) before exponentiating."
            )
        expected = torch.softmax(x, dim=dim)
        if not torch.allclose(got, expected, rtol=0, atol=1e-6):
            sums = got.sum(dim=dim)
            if not torch.allclose(sums, torch.ones_like(sums), atol=1e-6):
                raise Wrong(
                    f"for shape {tuple(x.shape)} and dim={dim}, your values do not sum to 1 along dim {dim}. "
                    "Hint: sum along `dim` with keepdim=True, so the sums broadcast back."
                )
            raise Wrong(
                f"for shape {tuple(x.shape)} and dim={dim}, softmax differs from torch.softmax by up to "
                f"{(got - expected).abs().max().item():.3g}. Hint: softmax is exp(x) / sum(exp(x)) along dim."
            )


# ----------------------------------------------------------------------------------------------
# 03.2 cross-entropy from logsumexp
# ----------------------------------------------------------------------------------------------


@exercise("03.2", "cross-entropy from log-sum-exp")
def check_cross_entropy(cross_entropy: Any) -> None:
    require_callable(cross_entropy, "cross_entropy")
    gen = generator(302)
    batches = [
        (torch.randn(8, 5, generator=gen, dtype=F64) * 4, torch.randint(0, 5, (8,), generator=gen)),
        (torch.randn(3, 10, generator=gen, dtype=F64), torch.tensor([9, 0, 4])),
        (torch.tensor([[1000.0, 0.0, -1000.0, 5.0], [-1000.0, 999.0, 1000.0, 0.0], [0.0, 0.0, 0.0, 1000.0]], dtype=F64),
         torch.tensor([2, 2, 0])),
        (torch.randn(1, 3, generator=gen, dtype=F64), torch.tensor([1])),
    ]
    for logits, targ in batches:
        n = len(targ)
        none = call(cross_entropy, logits.clone(), targ.clone(), reduction="none", name="cross_entropy")
        none = _tensor_result(none, "cross_entropy(..., reduction='none')", (n,)).detach().to(F64)
        expected = F.cross_entropy(logits, targ, reduction="none")
        if not torch.isfinite(none).all():
            raise Wrong(
                "cross_entropy returned inf or nan for logits of ±1000. Hint: logsumexp(logits) - "
                "logits[range(n), targ] never exponentiates a large number; torch.logsumexp is stable."
            )
        if not torch.allclose(none, expected, rtol=0, atol=1e-5):
            raise Wrong(
                f"with reduction='none', your per-item losses {none[:3].tolist()} differ from F.cross_entropy's "
                f"{expected[:3].tolist()}. Hint: per item, logsumexp of the row minus the logit of the target class."
            )
        leaf = logits.clone().requires_grad_(True)
        mean = call(cross_entropy, leaf, targ.clone(), name="cross_entropy")
        mean = _tensor_result(mean, "cross_entropy(...) with the default reduction", ())
        if not torch.allclose(mean.detach().to(F64), expected.mean(), rtol=0, atol=1e-5):
            raise Wrong(
                f"with the default reduction='mean' you returned {mean.item():.6g}, expected "
                f"{expected.mean().item():.6g}. Hint: 'mean' averages the per-item losses."
            )
        if not mean.requires_grad:
            raise Wrong("the loss does not depend on the logits through autograd (did you call .item() or detach?).")
        try:
            mean.backward()
        except Exception as err:
            raise Wrong(f"backward through your loss raised {type(err).__name__}: {one_line(str(err), 120)}") from err
        ref_leaf = logits.clone().requires_grad_(True)
        F.cross_entropy(ref_leaf, targ).backward()
        if leaf.grad is None or not torch.allclose(leaf.grad, ref_leaf.grad, rtol=0, atol=1e-5):
            raise Wrong("the gradient of your mean loss with respect to the logits differs from F.cross_entropy's.")


# ----------------------------------------------------------------------------------------------
# 03.3 predict the output
# ----------------------------------------------------------------------------------------------


@exercise("03.3", "predict the output")
def check_predictions(softmax_532: Any, mean_ce_6x2: Any, larger_grad: Any, above_half_at_4px: Any) -> None:
    for name, value in [("softmax_532", softmax_532), ("mean_ce_6x2", mean_ce_6x2), ("larger_grad", larger_grad),
                        ("above_half_at_4px", above_half_at_4px)]:
        require(value, name)
    # Every wrong item is named with a hint toward the reasoning; no ❌ line states a right value.
    problems = [p for p in (_predict_softmax(softmax_532), _predict_ce(mean_ce_6x2), _predict_grad(larger_grad),
                            _predict_shift(above_half_at_4px)) if p]
    if problems:
        message = "; ".join(problems)
        raise Wrong(message if message.endswith(("?", ".")) else message + ".")


def _predict_softmax(value: Any) -> str | None:
    try:
        got = as_array(value, "softmax_532")
    except Wrong as wrong:
        return f"(a) {wrong}".rstrip(".")
    if got.shape != (3,):
        return f"(a) `softmax_532` should be 3 numbers (one per logit), got shape {got.shape}"
    if np.allclose(got, [0.84, 0.11, 0.04], atol=0.0101):
        return None
    if (got < 0).any():
        return "(a) has negative numbers, like log-probabilities: softmax returns probabilities"
    if abs(got.sum() - 1) > 0.03:
        return f"(a) should be probabilities that sum to 1; yours sum to {got.sum():.3g}"
    if np.allclose(got, [0.5, 0.3, 0.2], atol=0.0101):
        return "(a) divides the logits by their sum: softmax exponentiates first"
    if not (got[0] >= got[1] >= got[2]):
        return "(a) breaks the order: the largest logit must get the largest probability"
    return "(a) is off: exponentiate each logit, divide by the sum of the exponentials, round to 2 decimals"


# Plausible wrong values of 03.3(b) for section 5's acts and targ, each with what it points at.
_CE_MISTAKES = [
    (10.827, "is the sum over the 6 rows, not the mean"),
    (0.3345, "averages the target probabilities themselves: cross-entropy takes minus their log"),
    (0.8925, "applies softmax twice: cross-entropy starts from the raw activations"),
    (0.7837, "uses log base 10: cross-entropy uses the natural log"),
    (0.1305, "averages the raw activations of the targets: cross-entropy takes minus the log of their softmax"),
]


def _predict_ce(value: Any) -> str | None:
    try:
        ce = as_float(value, "mean_ce_6x2")
    except Wrong as wrong:
        return f"(b) {wrong}".rstrip(".")
    if abs(ce - 1.804) <= 0.002:
        return None
    for wrong_value, why in _CE_MISTAKES:
        if abs(abs(ce) - wrong_value) <= 0.002:
            return f"(b) {why}"
    if ce < 0:
        return "(b) is negative: cross-entropy is minus the log of a probability"
    return "(b) is off: per row, minus the log of the softmax probability of the target class; then the mean"


def _predict_grad(value: Any) -> str | None:
    if not isinstance(value, str):
        return f"(c) `larger_grad` should be the string 'CE' or 'MSE', got a {type(value).__name__}"
    answer = value.strip().lower().replace("-", "").replace(" ", "").replace("_", "")
    if answer not in {"ce", "crossentropy", "mse"}:
        return f"(c) `larger_grad` should be 'CE' or 'MSE', got {value!r}"
    if answer == "mse":
        return "(c) is wrong: compare both gradients w.r.t. the logit (section 5) at p = 0.01"
    return None


def _predict_shift(value: Any) -> str | None:
    try:
        above = as_bool(value, "above_half_at_4px")
    except Wrong as wrong:
        return f"(d) {wrong}".rstrip(".")
    if above:
        return "(d) is wrong: read 4 px off section 7's accuracy-vs-shift plot"
    return None


# ----------------------------------------------------------------------------------------------
# 03.4 BasicOptim and train_epoch
# ----------------------------------------------------------------------------------------------


def _mnist_loss(predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    predictions = predictions.sigmoid()
    return torch.where(targets == 1, 1 - predictions, predictions).mean()


def _batch_accuracy(xb: torch.Tensor, yb: torch.Tensor) -> torch.Tensor:
    return ((xb.sigmoid() > 0.5) == yb).float().mean()


def _binary_data(seed: int, n: int, d: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = generator(seed)
    x = torch.randn(n, d, generator=gen, dtype=F64)
    true_w = torch.randn(d, 1, generator=gen, dtype=F64)
    y = ((x @ true_w + 0.3 * torch.randn(n, 1, generator=gen, dtype=F64)) > 0).to(F64)
    return x, y


def _seeded_linear(seed: int, d: int) -> nn.Linear:
    gen = generator(seed)
    model = nn.Linear(d, 1).to(F64)
    with torch.no_grad():
        model.weight.copy_(torch.randn(1, d, generator=gen, dtype=F64) * 0.5)
        model.bias.copy_(torch.randn(1, generator=gen, dtype=F64) * 0.5)
    return model


def _reference_sgd(model: nn.Module, batches: list, lr: float, epochs: int) -> list[torch.Tensor]:
    params = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    w, b = params
    for _ in range(epochs):
        for xb, yb in batches:
            _mnist_loss(xb @ w.T + b, yb).backward()
            with torch.no_grad():
                for p in params:
                    p -= lr * p.grad
                    p.grad = None
    return [p.detach() for p in params]


@exercise("03.4", "BasicOptim and train_epoch")
def check_basic_optim(BasicOptim: Any, train_epoch: Any) -> None:
    _require_class(BasicOptim, "BasicOptim")
    require_callable(train_epoch, "train_epoch")
    lr = 0.5

    # step and zero_grad on their own
    p = torch.tensor([1.0, -2.0, 3.0], dtype=F64, requires_grad=True)
    (p ** 2).sum().backward()
    opt = _instantiate(BasicOptim, "BasicOptim", iter([p]), 0.1)
    call(_method(opt, "step", "BasicOptim"), name="BasicOptim.step", allow_none=True)
    if not torch.allclose(p.detach(), torch.tensor([1.0, -2.0, 3.0], dtype=F64) * 0.8):
        raise Wrong(
            f"after one step with lr=0.1 and grad = 2p from p = [1, -2, 3], the parameter is {p.detach().tolist()}. "
            "Hint: p -= lr * p.grad, inside torch.no_grad()."
        )
    call(_method(opt, "zero_grad", "BasicOptim"), name="BasicOptim.zero_grad", allow_none=True)
    if p.grad is not None and bool(p.grad.abs().sum() > 0):
        raise Wrong("after zero_grad() the gradient is still there. Hint: set p.grad = None (or zero it).")

    # two epochs on a hidden linear model, no shuffling
    x, y = _binary_data(304, 48, 5)
    dl = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=False)
    model = _seeded_linear(3040, 5)
    expected = _reference_sgd(model, list(dl), lr, epochs=2)
    opt = _instantiate(BasicOptim, "BasicOptim", model.parameters(), lr)   # a one-shot generator, on purpose
    start = [q.detach().clone() for q in model.parameters()]
    for _ in range(2):
        call(train_epoch, model, dl, opt, name="train_epoch", allow_none=True)
    got = [q.detach() for q in model.parameters()]
    if all(torch.equal(a, b) for a, b in zip(got, start)):
        raise Wrong(
            "the parameters did not change after 2 epochs of train_epoch. Hint: train_epoch should call "
            "loss.backward(), opt.step() and opt.zero_grad() for every batch; and BasicOptim should keep "
            "list(params), because model.parameters() is a generator that can be read only once."
        )
    for a, b in zip(got, expected):
        if not torch.allclose(a, b, rtol=0, atol=1e-6):
            raise Wrong(
                f"after 2 epochs the parameters differ from the reference loop by up to {(a - b).abs().max().item():.3g}. "
                "Hint: compute mnist_loss on model(xb), backward, step, then zero the gradients, once per batch."
            )


# ----------------------------------------------------------------------------------------------
# 03.5 a minimal Learner
# ----------------------------------------------------------------------------------------------


class _RefOptim:
    def __init__(self, params, lr):
        self.params, self.lr = list(params), lr

    def step(self):
        with torch.no_grad():
            for p in self.params:
                p -= self.lr * p.grad

    def zero_grad(self):
        for p in self.params:
            p.grad = None


class _GradModeLogger(nn.Module):
    """A linear model that records, for every forward call, whether autograd was recording and the batch."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.linear = linear
        self.log: list[tuple[bool, float]] = []

    def forward(self, x):
        self.log.append((torch.is_grad_enabled(), round(float(x.detach().sum()), 9)))
        return self.linear(x)


@exercise("03.5", "a minimal Learner")
def check_learner(Learner: Any) -> None:
    _require_class(Learner, "Learner")
    lr, epochs, bs = 0.5, 2, 16
    x_tr, y_tr = _binary_data(305, 96, 4)
    x_va, y_va = _binary_data(3050, 48, 4)
    train_batches = [(x_tr[i:i + bs], y_tr[i:i + bs]) for i in range(0, 96, bs)]
    valid_batches = [(x_va[i:i + bs], y_va[i:i + bs]) for i in range(0, 48, bs)]
    dls = SimpleNamespace(train=DataLoader(TensorDataset(x_tr, y_tr), batch_size=bs, shuffle=False),
                          valid=DataLoader(TensorDataset(x_va, y_va), batch_size=bs, shuffle=False))

    # reference: the same loop, recording what the learner should record
    ref = _seeded_linear(3051, 4)
    w, b = (p.detach().clone().requires_grad_(True) for p in ref.parameters())
    ref_rows = []
    for _ in range(epochs):
        losses = []
        for xb, yb in train_batches:
            loss = _mnist_loss(xb @ w.T + b, yb)
            loss.backward()
            with torch.no_grad():
                for p in (w, b):
                    p -= lr * p.grad
                    p.grad = None
            losses.append(loss.item())
        with torch.no_grad():
            v_losses = [_mnist_loss(xb @ w.T + b, yb).item() for xb, yb in valid_batches]
            v_accs = [_batch_accuracy(xb @ w.T + b, yb).item() for xb, yb in valid_batches]
        ref_rows.append((np.mean(losses), np.mean(v_losses), np.mean(v_accs)))

    model = _GradModeLogger(_seeded_linear(3051, 4))
    learn = _instantiate(Learner, "Learner", model=model, dls=dls, loss_func=_mnist_loss, opt_func=_RefOptim,
                         metrics=_batch_accuracy)
    call(_method(learn, "fit", "Learner"), epochs, lr, name="Learner.fit", allow_none=True)

    train_sums = {round(float(xb.sum()), 9) for xb, _ in train_batches}
    valid_sums = {round(float(xb.sum()), 9) for xb, _ in valid_batches}
    if not any(s in train_sums for _, s in model.log):
        raise Wrong("fit never called the model on a training batch. Hint: loop over dls.train.")
    if not any(s in valid_sums for _, s in model.log):
        raise Wrong("fit never called the model on a validation batch. Hint: loop over dls.valid after training.")
    if any(grad_on and s in valid_sums for grad_on, s in model.log):
        raise Wrong("the validation pass records a graph. Hint: evaluate inside `with torch.no_grad():`.")

    got = [q.detach() for q in model.linear.parameters()]
    for a, b_ in zip(got, (w.detach(), b.detach())):
        if not torch.allclose(a, b_, rtol=0, atol=1e-6):
            raise Wrong(
                f"after fit(2, {lr}) the parameters differ from the reference loop by up to "
                f"{(a - b_).abs().max().item():.3g}. Hint: one opt.step() and opt.zero_grad() per training batch, "
                "with the optimizer built once from opt_func(model.parameters(), lr)."
            )

    recorder = getattr(learn, "recorder", None)
    if recorder is None:
        raise Wrong("your Learner has no `recorder` attribute (a list with one row per epoch).")
    try:
        rows = list(recorder)
    except TypeError as err:
        raise Wrong(f"`recorder` should be a list of rows, got a {type(recorder).__name__}.") from err
    if len(rows) != epochs:
        raise Wrong(f"after fit(2, ...) the recorder has {len(rows)} rows, expected 2 (one per epoch).")
    for epoch, (row, expected) in enumerate(zip(rows, ref_rows), start=1):
        try:
            values = list(row)
        except TypeError as err:
            raise Wrong(f"each recorder row should be (train_loss, valid_loss, metric), got {row!r}.") from err
        if len(values) != 3:
            raise Wrong(f"each recorder row should hold 3 values (train_loss, valid_loss, metric), got {len(values)}.")
        for v in values:
            if isinstance(v, torch.Tensor):
                raise Wrong("the recorder holds tensors; store Python floats (use .item() or float(...)).")
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.floating)) or not math.isfinite(v):
                raise Wrong(f"the recorder should hold finite floats, got {v!r}.")
        for label, v, e in zip(("train_loss", "valid_loss", "metric"), values, expected):
            if not abs(float(v) - e) <= 1e-6:
                raise Wrong(
                    f"epoch {epoch}: {label} is {float(v):.6g}, expected {e:.6g}. Hint: train_loss is the mean of "
                    "the epoch's batch losses; valid_loss and metric are means over the validation batches "
                    "after the epoch's training."
                )


# ----------------------------------------------------------------------------------------------
# 03.6 framework: Tanh and inverted Dropout
# ----------------------------------------------------------------------------------------------


def _op_forward(op: Any, x: np.ndarray, name: str, *extra: Any) -> np.ndarray:
    out = call(_method(op, "forward", name), x, *extra, name=f"{name}.forward")
    return as_array(out, f"{name}.forward(...)", x.shape)


def _op_backward(op: Any, grad: np.ndarray, name: str, shape: tuple[int, ...]) -> np.ndarray:
    out = call(_method(op, "backward", name), grad, name=f"{name}.backward")
    return as_array(out, f"{name}.backward(...)", shape)


@exercise("03.6", "framework: Tanh and inverted Dropout")
def check_tanh_dropout(MyTanh: Any, MyDropout: Any) -> None:
    _require_class(MyTanh, "MyTanh")
    _require_class(MyDropout, "MyDropout")
    rng = np.random.default_rng(306)
    for shape in [(3, 4), (7, 2), (1, 5)]:
        op = _instantiate(MyTanh, "MyTanh")
        x = rng.standard_normal(shape) * 1.5
        out = _op_forward(op, x.copy(), "MyTanh")
        if not np.allclose(out, np.tanh(x), atol=1e-12):
            raise Wrong("MyTanh's forward is not tanh of its input.")
        G = rng.standard_normal(shape)
        analytic = _op_backward(op, G, "MyTanh", shape)
        numeric = np.zeros(shape)
        eps = 1e-6
        for idx in np.ndindex(shape):
            up, down = x.copy(), x.copy()
            up[idx] += eps
            down[idx] -= eps
            numeric[idx] = (np.sum(_op_forward(op, up, "MyTanh") * G) - np.sum(_op_forward(op, down, "MyTanh") * G)) / (2 * eps)
        rel = np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-300)
        if not rel < 1e-6:
            raise Wrong(
                f"MyTanh's backward fails the finite-difference check (relative error {rel:.2g} on shape {shape}). "
                "Hint: tanh'(x) = 1 - tanh(x)², times output_grad."
            )

    x = rng.uniform(1.0, 2.0, size=(100, 1000))
    for keep in (0.8, 0.5):
        drop = _instantiate(MyDropout, "MyDropout", keep, np.random.default_rng(3060))
        out = _op_forward(drop, x.copy(), "MyDropout")
        kept = out != 0
        frac = kept.mean()
        if not abs(frac - keep) < 0.01:
            raise Wrong(f"with keep_prob={keep}, your dropout keeps {frac:.3f} of the elements; expected about {keep}.")
        if not abs(out.mean() / x.mean() - 1) < 0.02:
            raise Wrong(
                f"with keep_prob={keep}, the mean output is {out.mean() / x.mean():.3f} × the mean input; inverted "
                "dropout keeps it unchanged. Hint: divide the kept values by keep_prob during training."
            )
        if not np.allclose(out[kept], x[kept] / keep):
            raise Wrong("kept elements should be the input divided by keep_prob.")
        G = rng.standard_normal(x.shape)
        back = _op_backward(drop, G, "MyDropout", x.shape)
        if not np.allclose(back, G * out / x):
            raise Wrong(
                "backward does not use the forward pass's mask. Hint: store the mask in forward (self.mask) and "
                "return output_grad * self.mask; do not draw a new one."
            )
        ident = _op_forward(drop, x.copy(), "MyDropout", True)
        if not np.array_equal(ident, x):
            raise Wrong("with inference=True, dropout should return its input unchanged (inverted dropout needs no correction).")
    masks = []
    for seed in (11, 11, 12):
        drop = _instantiate(MyDropout, "MyDropout", 0.8, np.random.default_rng(seed))
        masks.append(_op_forward(drop, np.ones((20, 30)), "MyDropout") != 0)
    if not np.array_equal(masks[0], masks[1]) or np.array_equal(masks[0], masks[2]):
        raise Wrong("the mask should be drawn from the generator `rng` passed to MyDropout(keep_prob, rng).")


# ----------------------------------------------------------------------------------------------
# 03.7 framework: SGD with momentum
# ----------------------------------------------------------------------------------------------


class _QuadraticNet:
    """Two parameter arrays on a diagonal quadratic bowl: grad = c * (p - target)."""

    def __init__(self, seed: int):
        rng = np.random.default_rng(seed)
        self._params = [rng.standard_normal((3, 2)), rng.standard_normal((1, 2))]
        self._targets = [rng.standard_normal((3, 2)), rng.standard_normal((1, 2))]
        self._curvature = [rng.uniform(0.5, 3.0, size=(3, 2)), rng.uniform(0.5, 3.0, size=(1, 2))]

    def params(self):
        return self._params

    def param_grads(self):
        return [c * (p - t) for p, t, c in zip(self._params, self._targets, self._curvature)]


@exercise("03.7", "framework: SGD with momentum")
def check_momentum(MySGDMomentum: Any, matches_torch_under_decay: Any) -> None:
    _require_class(MySGDMomentum, "MySGDMomentum")
    momentum = 0.9
    schedule = [0.05 * 0.93 ** k for k in range(50)]

    ref_net = _QuadraticNet(307)
    velocities = [np.zeros_like(p) for p in ref_net.params()]
    expected = []
    for lr in schedule:
        for p, g, v in zip(ref_net.params(), ref_net.param_grads(), velocities):
            v *= momentum
            v += lr * g
            p -= v
        expected.append([p.copy() for p in ref_net.params()])

    net = _QuadraticNet(307)
    start = [p.copy() for p in net.params()]
    opt = _instantiate(MySGDMomentum, "MySGDMomentum", lr=schedule[0], momentum=momentum)
    try:
        opt.net = net
    except Exception as err:
        raise Wrong(f"could not set `opt.net` on your optimizer ({type(err).__name__}).") from err
    step = _method(opt, "step", "MySGDMomentum")
    for k, lr in enumerate(schedule):
        opt.lr = lr
        call(step, name="MySGDMomentum.step", allow_none=True)
        got = net.params()
        if k == 0 and all(np.array_equal(a, b) for a, b in zip(got, start)):
            raise Wrong(
                "step() did not change the network's parameter arrays. Hint: update them in place "
                "(param -= velocity), so the arrays the network holds change."
            )
        for a, b in zip(got, expected[k]):
            if not np.allclose(a, b, rtol=0, atol=1e-10):
                raise Wrong(
                    f"the trajectory departs from Weidman's momentum update at step {k + 1} (gap "
                    f"{np.abs(a - b).max():.3g}). Hint: v = momentum * v + lr * grad, then param -= v, with one "
                    "velocity per parameter kept between steps (torch's v = momentum * v + grad, p -= lr * v "
                    "differs when lr changes)."
                )
    if as_bool(matches_torch_under_decay, "matches_torch_under_decay"):
        raise Wrong(
            "`matches_torch_under_decay`: torch scales the velocity by the *current* lr at each step, Weidman "
            "bakes each step's lr into the velocity, so the trajectories differ once lr changes."
        )


# ----------------------------------------------------------------------------------------------
# 03.8 debug this module
# ----------------------------------------------------------------------------------------------


@exercise("03.8", "debug this module")
def check_mlp(MLP: Any) -> None:
    _require_class(MLP, "MLP")
    sizes = [6, 16, 8, 3]
    torch.manual_seed(308)   # the framework restores the notebook's generator afterwards
    model = _instantiate(MLP, "MLP", sizes)
    if not isinstance(model, nn.Module):
        raise Wrong(f"MLP(sizes) should build an nn.Module, got a {type(model).__name__}.")
    expected_count = sum((a + 1) * b for a, b in zip(sizes[:-1], sizes[1:]))
    count = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if count != expected_count:
        raise Wrong(
            f"MLP({sizes}) has {count} trainable parameters, expected {expected_count}. Hint: a plain Python list "
            "hides its layers from nn.Module; use nn.ModuleList."
        )
    names = [name for name, _ in model.named_parameters()]
    if len(names) != 2 * (len(sizes) - 1):
        raise Wrong(f"named_parameters() lists {len(names)} tensors, expected a weight and a bias per layer.")
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if [(m.in_features, m.out_features) for m in linears] != list(zip(sizes[:-1], sizes[1:])):
        raise Wrong(f"the layers should be nn.Linear{list(zip(sizes[:-1], sizes[1:]))}, in order.")
    fired = []
    handles = [m.register_forward_hook(lambda mod, inp, out, i=i: fired.append(i)) for i, m in enumerate(linears)]
    gen = generator(3080)
    x = torch.randn(32, sizes[0], generator=gen)
    try:
        out = call(model, x, name="MLP(...)(x)")
    finally:
        for h in handles:
            h.remove()
    out = _tensor_result(out, "model(x)", (32, sizes[-1]))
    if sorted(fired) != list(range(len(linears))):
        raise Wrong(
            "forward hooks on the layers did not fire. Hint: call each layer as layer(x), not layer.forward(x)."
        )
    with torch.no_grad():
        h = x
        for i, layer in enumerate(linears):
            h = layer(h)
            if i < len(linears) - 1:
                h = torch.tanh(h)
    if not torch.allclose(out.detach(), h, atol=1e-5):
        raise Wrong("the output differs from linear layers with tanh between them (and none after the last).")
    y = torch.sin(x[:, :3] * 2) + 0.1 * torch.randn(32, 3, generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with torch.no_grad():
        before = F.mse_loss(model(x), y).item()
    for _ in range(50):
        loss = F.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        after = F.mse_loss(model(x), y).item()
    if not after < before:
        raise Wrong(f"50 SGD steps did not lower the loss ({before:.4g} -> {after:.4g}).")


# ----------------------------------------------------------------------------------------------
# 03.9 near-linear or wiggly
# ----------------------------------------------------------------------------------------------

MIN_WIGGLE = 0.03   # mean |second difference| per 1 °F step, in °C: clearly visible on the plot


def _thermo_train():
    from course_utils.data import thermometer

    t_c, t_u = thermometer()
    shuffled = torch.randperm(11, generator=generator(42))
    train = shuffled[:-2]
    return (0.1 * t_u[train]).unsqueeze(1), t_c[train].unsqueeze(1)


def _predict(model: Any, x: torch.Tensor, name: str) -> torch.Tensor:
    require_callable(model, name)
    if isinstance(model, nn.Module):
        model.eval()
        first = next(model.parameters(), None)
        if first is not None:
            x = x.to(device=first.device, dtype=first.dtype)
    with torch.no_grad():
        out = call(model, x, name=name)
    if not isinstance(out, torch.Tensor):
        raise Wrong(f"`{name}` should return a tensor, got a {type(out).__name__}.")
    if out.numel() != len(x):
        raise Wrong(f"`{name}` should return one prediction per input (shape (N, 1)), got shape {tuple(out.shape)}.")
    out = out.detach().cpu().to(F64).reshape(-1)
    if not torch.isfinite(out).all():
        raise Wrong(f"`{name}` predicts inf or nan.")
    return out


@exercise("03.9", "near-linear or wiggly")
def check_wiggle(smooth_model: Any, wiggly_model: Any) -> None:
    grid = 0.1 * torch.arange(20.0, 90.0).unsqueeze(1)
    x_tr, y_tr = _thermo_train()
    curvature, train_loss = {}, {}
    for name, model in (("smooth_model", smooth_model), ("wiggly_model", wiggly_model)):
        pred = _predict(model, grid, name)
        curvature[name] = (pred[2:] - 2 * pred[1:-1] + pred[:-2]).abs().mean().item()
        train_loss[name] = ((_predict(model, x_tr, name) - y_tr.reshape(-1).to(F64)) ** 2).mean().item()
    c_s, c_w = curvature["smooth_model"], curvature["wiggly_model"]
    if not c_w > 3 * c_s:
        raise Wrong(
            f"the wiggly model's curvature ({c_w:.3g}) is not more than 3 × the smooth one's ({c_s:.3g}). "
            "Hint: more hidden units and a larger learning rate (or Adam) for longer bend the curve; very few "
            "units and a small learning rate keep it straight."
        )
    if not c_w >= MIN_WIGGLE:
        raise Wrong(
            f"the wiggly model's curvature ({c_w:.3g} °C per step²) is too small to see; it should bend visibly "
            f"(at least {MIN_WIGGLE}). Hint: train a wider network longer, e.g. with Adam."
        )
    if not train_loss["wiggly_model"] <= train_loss["smooth_model"]:
        raise Wrong(
            f"the wiggly model's training loss ({train_loss['wiggly_model']:.3g}) is higher than the smooth model's "
            f"({train_loss['smooth_model']:.3g}): a model that bends to chase the points should fit them better."
        )


# ----------------------------------------------------------------------------------------------
# 03.10 does dropout help
# ----------------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _ladder_data() -> tuple[np.ndarray, ...]:
    """Section 6's MNIST arrays: standardized with the training mean and std, float32, one-hot targets."""
    from course_utils.train import mnist_split

    tx, ty, vx, vy = mnist_split()
    mean_px, std_px = tx.mean().item(), tx.std().item()
    X_tr = ((tx.numpy() - mean_px) / std_px).astype(np.float32)
    X_va = ((vx.numpy() - mean_px) / std_px).astype(np.float32)
    return X_tr, np.eye(10, dtype=np.float32)[ty.numpy()], ty.numpy(), X_va, vy.numpy()


@lru_cache(maxsize=16)
def _ladder_rung(seed: int, keep_prob: float) -> tuple[float, float]:
    """Ladder rung 5 (keep_prob 1) or 6 (keep_prob 0.8) retrained here: (validation, training accuracy).

    The same arithmetic, in the same order and float32, as the chapter's NumPy framework: a Glorot
    784-89(tanh)-10 net, softmax cross-entropy, SGD with momentum 0.9 and the learning rate decaying
    exponentially from 0.2 to 0.05 over 20 epochs, batches of 60. The network's generator draws
    W1, B1, the first dropout mask, W2, B2, then one mask per batch; the trainer's generator (the same
    seed) draws one permutation per epoch. On the same machine it reproduces the chapter's accuracies
    exactly.
    """
    X_tr, Y_tr, labels_tr, X_va, labels_va = _ladder_data()
    rng, order_rng = np.random.default_rng(seed), np.random.default_rng(seed)

    def glorot(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
        scale = np.sqrt(2.0 / (n_in + n_out))
        return ((rng.standard_normal((n_in, n_out)) * scale).astype(np.float32),
                (rng.standard_normal((1, n_out)) * scale).astype(np.float32))

    epochs, lr, momentum = 20, 0.2, 0.9
    decay = (0.05 / lr) ** (1.0 / (epochs - 1))
    params: list[np.ndarray] = []
    velocities: list[np.ndarray] = []
    for _ in range(epochs):
        order = order_rng.permutation(len(X_tr))
        X, Y = X_tr[order], Y_tr[order]
        for start in range(0, len(X), 60):
            x, y = X[start:start + 60], Y[start:start + 60]
            if not params:
                W1, B1 = glorot(x.shape[1], 89)
            h = np.tanh(x @ W1 + B1)
            mask = ((rng.random(h.shape) < keep_prob) / keep_prob).astype(h.dtype) if keep_prob < 1.0 else None
            hd = h * mask if mask is not None else h
            if not params:
                W2, B2 = glorot(89, 10)
                params = [W1, B1, W2, B2]
                velocities = [np.zeros_like(p) for p in params]
            out = hd @ W2 + B2
            shifted = out - out.max(axis=1, keepdims=True)
            log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            g_out = (np.exp(log_probs) - y) / out.shape[0]
            g_h = g_out @ W2.T
            if mask is not None:
                g_h = g_h * mask
            g_pre = (1.0 - h * h) * g_h
            grads = (x.T @ g_pre, g_pre.sum(axis=0, keepdims=True), hd.T @ g_out, g_out.sum(axis=0, keepdims=True))
            for p, g, v in zip(params, grads, velocities):
                v *= momentum
                v += lr * g
                p -= v
        lr *= decay

    def accuracy(X: np.ndarray, labels: np.ndarray) -> float:
        return float(np.mean((np.tanh(X @ W1 + B1) @ W2 + B2).argmax(axis=1) == labels))

    return accuracy(X_va, labels_va), accuracy(X_tr, labels_tr)


def _accuracy_runs(value: Any, name: str) -> tuple[list[int], np.ndarray]:
    """(seeds, accuracies) of one arm: a list means seeds 1, 2, 3, …; a dict maps seed -> accuracy."""
    require(value, name)
    if isinstance(value, dict):
        seeds = list(value)
        if any(isinstance(s, (bool, np.bool_)) or not isinstance(s, (int, np.integer)) for s in seeds):
            raise Wrong(f"the keys of `{name}` should be the integer seeds of your runs, got {one_line(repr(seeds), 60)}.")
        seeds, value = [int(s) for s in seeds], list(value.values())
    else:
        seeds = None
    arr = as_array(value, name)
    if arr.ndim != 1:
        raise Wrong(f"`{name}` should be a flat list of accuracies, got shape {arr.shape}.")
    if len(arr) < 3:
        raise Wrong(f"`{name}` holds {len(arr)} runs; use at least 3 seeds per arm.")
    if not ((arr >= 0.85) & (arr <= 1.0)).all():
        raise Wrong(
            f"`{name}` has accuracies outside [0.85, 1]: {arr.round(3).tolist()}. Hint: accuracies are fractions "
            "of the 1,000 validation digits, from rung 5/6 of the ladder."
        )
    if np.ptp(arr) == 0:
        raise Wrong(f"all runs in `{name}` are identical: did each run use a different seed?")
    return (seeds if seeds is not None else list(range(1, len(arr) + 1))), arr


def _rerun_one(seeds: list[int], arr: np.ndarray, name: str, rung: int, keep_prob: float) -> None:
    """Retrain one of the arm's runs (which one depends on the numbers) and require its accuracy exactly."""
    pick = int(np.round(arr * 1000).sum()) % len(arr)
    seed, reported = seeds[pick], float(arr[pick])
    val_acc, train_acc = _ladder_rung(seed, keep_prob)
    if abs(reported - val_acc) < 1e-9:
        return
    what = f"`{name}` gives seed {seed} {reported:.4g}, but rung {rung} retrained here with seed {seed} scores differently."
    if abs(reported - train_acc) < 1e-9:
        raise Wrong(f"{what} Hint: that is the run's training accuracy; compare validation accuracies (the first of "
                    "the two numbers a rung returns).")
    raise Wrong(f"{what} Hint: report each run's validation accuracy unrounded, from rung {rung} "
                f"({'Glorot' if rung == 5 else 'Glorot + dropout'}); a list means seeds 1, 2, 3, …, other seeds go in "
                "a dict {seed: accuracy}.")


@exercise("03.10", "does dropout help")
def check_dropout_experiment(acc_glorot: Any, acc_dropout: Any, means: Any, stds: Any, dropout_helps: Any) -> None:
    seeds5, a5 = _accuracy_runs(acc_glorot, "acc_glorot")
    seeds6, a6 = _accuracy_runs(acc_dropout, "acc_dropout")
    m = as_array(means, "means", (2,))
    s = as_array(stds, "stds", (2,))
    if not np.allclose(m, [a5.mean(), a6.mean()], rtol=0, atol=1e-6):
        raise Wrong(f"`means` {m.round(4).tolist()} are not the means of your two lists "
                    f"({a5.mean():.4f}, {a6.mean():.4f}).")
    sample = [a5.std(ddof=1), a6.std(ddof=1)]
    population = [a5.std(ddof=0), a6.std(ddof=0)]
    if not (np.allclose(s, sample, rtol=0, atol=1e-6) or np.allclose(s, population, rtol=0, atol=1e-6)):
        raise Wrong(f"`stds` {s.round(4).tolist()} are not the standard deviations of your lists "
                    f"({sample[0]:.4f}, {sample[1]:.4f} with ddof=1).")
    pooled = math.sqrt((s[0] ** 2 + s[1] ** 2) / 2)
    helps = m[1] - m[0] > pooled
    if as_bool(dropout_helps, "dropout_helps") != helps:
        raise Wrong(
            f"`dropout_helps` should say whether mean(rung 6) - mean(rung 5) = {m[1] - m[0]:+.4f} exceeds the "
            f"pooled std {pooled:.4f}: that is {helps}."
        )
    # The numbers must come from real runs: retrain one run per arm (about 3 s each) and compare.
    _rerun_one(seeds5, a5, "acc_glorot", 5, 1.0)
    _rerun_one(seeds6, a6, "acc_dropout", 6, 0.8)


# ----------------------------------------------------------------------------------------------
# 03.11 counting parameters
# ----------------------------------------------------------------------------------------------


def _count_result(value: Any, label: str) -> int:
    number = as_float(value, label)
    if not float(number).is_integer():
        raise Wrong(f"{label} should be a whole number, got {number}.")
    return int(number)


@exercise("03.11", "counting parameters")
def check_param_count(mlp_param_count: Any) -> None:
    require_callable(mlp_param_count, "mlp_param_count")
    rng = np.random.default_rng(311)
    architectures = [list(map(int, rng.integers(1, 40, size=rng.integers(2, 6)))) for _ in range(10)]
    for sizes in architectures:
        for bias in (True, False):
            layers = [nn.Linear(a, b, bias=bias) for a, b in zip(sizes[:-1], sizes[1:])]
            expected = sum(p.numel() for layer in layers for p in layer.parameters())
            got = (call(mlp_param_count, list(sizes), name="mlp_param_count") if bias
                   else call(mlp_param_count, list(sizes), bias=False, name="mlp_param_count"))
            got = _count_result(got, f"mlp_param_count({sizes}{'' if bias else ', bias=False'})")
            if got != expected:
                raise Wrong(
                    f"mlp_param_count({sizes}{'' if bias else ', bias=False'}) returned {got}, expected {expected}. "
                    "Hint: each layer has n_in × n_out weights and, with biases, n_out biases."
                )
    for sizes, expected in (([3072, 512, 2], 1_574_402), ([3072, 1024, 512, 128, 2], 3_737_474)):
        got = _count_result(call(mlp_param_count, list(sizes), name="mlp_param_count"), f"mlp_param_count({sizes})")
        if got != expected:
            raise Wrong(f"mlp_param_count({sizes}) returned {got:,d}, expected {expected:,d}.")


# ----------------------------------------------------------------------------------------------
# 03.12 beat the line on diamonds
# ----------------------------------------------------------------------------------------------

DIAMOND_MARGIN = 0.05   # k$
DIAMONDS_N_HIDDEN = 5000   # diamonds the notebook never loads: rows 6,000-10,999 of diamonds_split's permutation
# A model that has seen the test rows fits them better, relative to the line, than the training rows: the ratio
# (model/line RMSE on test) / (model/line RMSE on train) is 0.985-1.02 for nets trained on the training rows
# (seeds 0-3, 16-64 units, 10-60 epochs) and 0.92-0.97 for the same nets trained on the test rows for 20+ epochs.
DIAMOND_LEAK_RATIO = 0.975


@lru_cache(maxsize=1)
def _diamonds_hidden() -> tuple[np.ndarray, np.ndarray]:
    """DIAMONDS_N_HIDDEN more rows of diamonds_split's permutation, standardized with its training statistics."""
    from course_utils.data import table
    from course_utils.train import (DIAMOND_FEATURES, DIAMONDS_N_TEST, DIAMONDS_N_TRAIN, DIAMONDS_SUBSET_SEED,
                                    diamonds_split)

    frame = table("diamonds")
    start = DIAMONDS_N_TRAIN + DIAMONDS_N_TEST
    rows = np.random.RandomState(DIAMONDS_SUBSET_SEED).permutation(len(frame))[start:start + DIAMONDS_N_HIDDEN]
    raw_train = diamonds_split(standardize=False)[0]
    features = frame.loc[:, list(DIAMOND_FEATURES)].to_numpy(dtype=np.float64)[rows]
    X = (features - raw_train.mean(axis=0)) / raw_train.std(axis=0)
    return X, frame["price"].to_numpy(dtype=np.float64)[rows] / 1000.0


def _diamond_prices(model: Any, X: np.ndarray) -> np.ndarray:
    x = torch.tensor(X, dtype=torch.float32)
    if isinstance(model, nn.Module):
        first = next(model.parameters(), None)
        if first is not None:
            x = x.to(device=first.device)
        model.eval()
    with torch.no_grad():
        out = call(model, x, name="diamond_model")
    if not isinstance(out, torch.Tensor):
        raise Wrong(f"`diamond_model` should return a tensor, got a {type(out).__name__}.")
    if out.numel() != len(X):
        raise Wrong(f"`diamond_model` should return one price per diamond, shape (N, 1) or (N,); got {tuple(out.shape)}.")
    pred = out.detach().cpu().to(F64).reshape(-1).numpy()
    if not np.isfinite(pred).all():
        raise Wrong("`diamond_model` predicts inf or nan.")
    return pred


@exercise("03.12", "beat the line on diamonds")
def check_diamonds(diamond_model: Any) -> None:
    require_callable(diamond_model, "diamond_model")
    from course_utils.train import diamonds_split

    X_train, y_train, X_test, y_test = diamonds_split()
    X_hidden, y_hidden = _diamonds_hidden()
    coef = np.linalg.lstsq(np.hstack([X_train, np.ones((len(X_train), 1))]), y_train[:, 0], rcond=None)[0]
    rmse = {}
    for split, X, y in (("test", X_test, y_test[:, 0]), ("train", X_train, y_train[:, 0]), ("hidden", X_hidden, y_hidden)):
        line = np.hstack([X, np.ones((len(X), 1))]) @ coef
        model = _diamond_prices(diamond_model, X)
        rmse[split] = (float(np.sqrt(np.mean((model - y) ** 2))), float(np.sqrt(np.mean((line - y) ** 2))))
    (model_rmse, line_rmse), (train_model, train_line), (hidden_model, hidden_line) = rmse["test"], rmse["train"], rmse["hidden"]
    if not model_rmse <= line_rmse - DIAMOND_MARGIN:
        raise Wrong(
            f"test RMSE {model_rmse:.3f} k$ is not {DIAMOND_MARGIN} k$ below the least-squares line's {line_rmse:.3f} k$. "
            "Hint: standardized inputs, a hidden layer or two with a nonlinearity, and enough training (Adam helps)."
        )
    leak = (model_rmse / line_rmse) / max(train_model / train_line, 1e-12)
    if leak < DIAMOND_LEAK_RATIO:
        raise Wrong(
            f"relative to the line, your model fits the 1,000 test diamonds much better than the 5,000 training ones "
            f"(RMSE ratio to the line {model_rmse / line_rmse:.3f} on test vs {train_model / train_line:.3f} on train): "
            "it looks like it has seen the test set. Hint: train only on X_train, y_train; the test rows must stay unseen."
        )
    if not hidden_model < hidden_line:
        raise Wrong(
            f"on {DIAMONDS_N_HIDDEN:,} diamonds the notebook never loads, your model's RMSE is {hidden_model:.3f} k$, "
            f"not below the line's {hidden_line:.3f} k$: its test score does not carry over to new diamonds. Hint: "
            "train and tune on the training rows only; a choice made by looking at the test score overfits the test set."
        )
