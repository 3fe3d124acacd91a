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
    TorchCalls,
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


def _forbidden_calls(fn: Any, args: tuple, kwargs: dict, forbidden: dict[str, str], name: str) -> Any:
    """Call fn under TorchCalls and fail if it used one of the `forbidden` functions (name -> label)."""
    with TorchCalls() as calls:
        out = call(fn, *args, name=name, **kwargs)
    used = [forbidden[n] for n in calls.names if n in forbidden]
    if used:
        raise Wrong(f"`{name}` calls {used[0]}, which the exercise asks you to rebuild. Hint: write it with "
                    "exp, amax/max, sum and logsumexp-style shifts on plain tensors.")
    return out


_SOFTMAX_SHORTCUTS = {"softmax": "torch.softmax (or F.softmax)", "log_softmax": "log_softmax",
                      "_softmax": "torch.softmax", "special_softmax": "torch.special.softmax",
                      "special_log_softmax": "torch.special.log_softmax"}


# ----------------------------------------------------------------------------------------------
# 03.1 masked softmax with a temperature
# ----------------------------------------------------------------------------------------------


def _reference_masked_softmax(x: torch.Tensor, mask: torch.Tensor, temperature: float, dim: int) -> torch.Tensor:
    z = torch.where(mask, x / temperature, torch.full_like(x, -math.inf))
    p = torch.softmax(z, dim=dim)
    return torch.nan_to_num(p, nan=0.0)      # an all-masked slice: 0/0 -> 0


@exercise("03.1", "a masked softmax with a temperature")
def check_softmax(masked_softmax: Any) -> None:
    require_callable(masked_softmax, "masked_softmax")
    gen = generator(301)

    def random_mask(shape, keep=0.7):
        return torch.rand(shape, generator=gen, dtype=F64) < keep

    big = torch.tensor([[1000.0, 0.0, -1000.0, 999.0], [-1000.0, -1000.0, -999.0, 5.0],
                        [999.0, 1000.0, 1000.0, -3.0]], dtype=F64)
    big_mask = torch.tensor([[True, True, True, False], [True, False, True, True], [False, True, True, True]])
    cases = [  # (x, mask, temperature, dim, what the case tests)
        (torch.randn(4, 7, generator=gen, dtype=F64) * 3, torch.ones(4, 7, dtype=torch.bool), 1.0, -1, "no mask"),
        (torch.randn(4, 7, generator=gen, dtype=F64) * 3, random_mask((4, 7)), 1.0, -1, "a mask"),
        (torch.randn(5, 6, generator=gen, dtype=F64), torch.ones(5, 6, dtype=torch.bool), 0.25, -1, "temperature 0.25"),
        (torch.randn(5, 6, generator=gen, dtype=F64), random_mask((5, 6)), 4.0, 1, "temperature 4 and a mask"),
        (torch.randn(5, 3, generator=gen, dtype=F64), random_mask((5, 3), 0.8), 2.0, 0, "dim=0"),
        (torch.randn(2, 3, 5, generator=gen, dtype=F64) * 2, random_mask((2, 3, 5)), 0.5, 1, "a 3-d input, dim=1"),
        (big, big_mask, 1.0, 1, "logits of ±1000"),
        (big, big_mask, 0.1, 1, "logits of ±1000 at temperature 0.1"),
        (torch.randn(3, 4, generator=gen, dtype=F64),
         torch.tensor([[True, False, True, True], [False, False, False, False], [True, True, False, True]]), 1.0, -1,
         "a row whose mask is all False"),
    ]
    for x, mask, temperature, dim, what in cases:
        kept = x.clone()
        out = _forbidden_calls(masked_softmax, (x, mask, temperature, dim), {}, _SOFTMAX_SHORTCUTS, "masked_softmax")
        got = _tensor_result(out, "masked_softmax", tuple(x.shape))
        if not torch.equal(x, kept):
            raise Wrong("masked_softmax changed its input in place. Hint: compute new tensors instead of using `-=`.")
        got = got.detach().to(F64)
        expected = _reference_masked_softmax(x, mask, temperature, dim)
        if not torch.isfinite(got).all():
            dead = ~mask.any(dim=dim, keepdim=True).expand_as(mask)
            if dead.any() and not (~torch.isfinite(got) & ~dead).any():
                raise Wrong(f"for {what}, the fully masked slice gives nan: 0/0. Hint: that slice should come out as "
                            "zeros; guard the max and the sum of a slice with nothing left in it.")
            raise Wrong(f"for {what}, masked_softmax returned inf or nan. Hint: subtract the maximum along `dim` "
                        "(with keepdim=True) of the scaled, masked logits before exponentiating.")
        dead = ~mask.any(dim=dim, keepdim=True).expand_as(mask)
        if dead.any() and (got[dead] != 0).any():
            raise Wrong(f"for {what}, the fully masked slice should be all zeros, got values up to "
                        f"{got[dead].abs().max().item():.3g}. Hint: a large negative fill such as -1e9 turns it into a "
                        "uniform distribution; fill with -inf and guard the max and the 0/0 of an empty slice.")
        if (got[~mask] != 0).any():
            raise Wrong(f"for {what}, masked positions get probability up to {got[~mask].abs().max().item():.3g}, not "
                        "exactly 0. Hint: remove them before the exponential (exp(-inf) is exactly 0), not after.")
        if torch.allclose(got, expected, rtol=0, atol=1e-6):
            continue
        sums = got.sum(dim=dim)
        live = mask.any(dim=dim)
        if not torch.allclose(sums[live], torch.ones_like(sums[live]), atol=1e-6):
            raise Wrong(f"for {what} (shape {tuple(x.shape)}, dim={dim}), the unmasked probabilities do not sum to 1 "
                        "along dim. Hint: the masked positions must leave the sum before you normalise "
                        "(renormalise over the kept ones), and sum along `dim` with keepdim=True.")
        if temperature != 1.0:
            for wrong in (x * temperature, x):
                if torch.allclose(got, _reference_masked_softmax(wrong, mask, 1.0, dim), rtol=0, atol=1e-6):
                    raise Wrong(f"for {what}, the temperature is not applied as the exercise says. Hint: it "
                                "divides the logits, so a temperature below 1 sharpens the distribution.")
        raise Wrong(f"for {what} (shape {tuple(x.shape)}, dim={dim}), masked_softmax differs from the reference by "
                    f"up to {(got - expected).abs().max().item():.3g}. Hint: softmax of x / temperature along dim, "
                    "over the unmasked positions only.")


# ----------------------------------------------------------------------------------------------
# 03.2 cross-entropy with label smoothing
# ----------------------------------------------------------------------------------------------

_CE_SHORTCUTS = {**_SOFTMAX_SHORTCUTS, "cross_entropy": "F.cross_entropy", "nll_loss": "F.nll_loss",
                 "cross_entropy_loss": "F.cross_entropy"}


@exercise("03.2", "cross-entropy with label smoothing")
def check_cross_entropy(smoothed_cross_entropy: Any) -> None:
    require_callable(smoothed_cross_entropy, "smoothed_cross_entropy")
    gen = generator(302)
    batches = [
        (torch.randn(8, 5, generator=gen, dtype=F64) * 4, torch.randint(0, 5, (8,), generator=gen), 0.1),
        (torch.randn(3, 10, generator=gen, dtype=F64), torch.tensor([9, 0, 4]), 0.3),
        (torch.randn(6, 4, generator=gen, dtype=F64) * 2, torch.randint(0, 4, (6,), generator=gen), 0.0),
        (torch.tensor([[1000.0, 0.0, -1000.0, 5.0], [-1000.0, 999.0, 1000.0, 0.0], [0.0, 0.0, 0.0, 1000.0]], dtype=F64),
         torch.tensor([2, 2, 0]), 0.2),
        (torch.randn(1, 3, generator=gen, dtype=F64), torch.tensor([1]), 0.5),
    ]
    for logits, targ, eps in batches:
        leaf = logits.clone().requires_grad_(True)
        out = _forbidden_calls(smoothed_cross_entropy, (leaf, targ.clone()), {"eps": eps}, _CE_SHORTCUTS,
                               "smoothed_cross_entropy")
        loss = _tensor_result(out, "smoothed_cross_entropy", ())
        ref_leaf = logits.clone().requires_grad_(True)
        expected = F.cross_entropy(ref_leaf, targ, label_smoothing=eps)
        got = loss.detach().to(F64)
        if not torch.isfinite(got):
            raise Wrong("the loss is inf or nan for logits of ±1000. Hint: log p = logits - logsumexp(logits) never "
                        "exponentiates a large number; torch.logsumexp is stable.")
        if not torch.allclose(got, expected.detach(), rtol=0, atol=1e-6):
            n, c = logits.shape
            log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
            nll = -log_p[torch.arange(n), targ]
            others = -(log_p.sum(dim=1) + nll) / max(c - 1, 1)          # what spreading eps over the C - 1 others gives
            if eps > 0 and torch.isclose(got, nll.mean(), atol=1e-6):
                raise Wrong(f"with eps={eps} you returned the plain cross-entropy: the smoothing is missing. Hint: the "
                            "target puts 1 - eps on the class and eps / C on every class.")
            if eps > 0 and torch.isclose(got, ((1 - eps) * nll + eps * others).mean(), atol=1e-6):
                raise Wrong(f"with eps={eps}, your loss spreads eps over the C - 1 other classes; the exercise (like "
                            "PyTorch) spreads it uniformly over all C classes, the target included.")
            if n > 1 and torch.isclose(got, n * expected.detach(), atol=1e-5):
                raise Wrong("your loss is the sum over the batch; return the mean over the N items.")
            raise Wrong(f"with eps={eps} your loss is {got.item():.6g}, the reference {expected.item():.6g}. Hint: per "
                        "item, -(1 - eps) · log p[target] - eps · mean over the classes of log p.")
        if not loss.requires_grad:
            raise Wrong("the loss does not depend on the logits through autograd (did you call .item() or detach?).")
        try:
            loss.backward()
        except Exception as err:
            raise Wrong(f"backward through your loss raised {type(err).__name__}: {one_line(str(err), 120)}") from err
        expected.backward()
        if leaf.grad is None or not torch.allclose(leaf.grad, ref_leaf.grad, rtol=0, atol=1e-6):
            raise Wrong("the gradient of your loss with respect to the logits differs from the reference's.")


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


@exercise("03.4", "BasicOptim with momentum")
def check_basic_optim(MomentumOptim: Any) -> None:
    _require_class(MomentumOptim, "MomentumOptim")
    momentum = 0.8
    schedule = [0.3] * 4 + [0.3 * 0.7 ** k for k in range(1, 9)]   # constant at first, then decaying

    # a hidden linear model on hidden data, trained by torch.optim.SGD(momentum=...) and by yours
    x, y = _binary_data(304, 48, 5)
    batches = [(x[i:i + 16], y[i:i + 16]) for i in range(0, 48, 16)]
    ref_model, model = _seeded_linear(3040, 5), _seeded_linear(3040, 5)
    ref_opt = torch.optim.SGD(ref_model.parameters(), lr=schedule[0], momentum=momentum)
    with _TorchOptimizers() as made:
        opt = _instantiate(MomentumOptim, "MomentumOptim", model.parameters(), schedule[0], momentum)  # a generator
    if made.count or any(isinstance(v, torch.optim.Optimizer) for v in vars(opt).values()):
        raise Wrong("MomentumOptim builds a torch.optim optimizer; the exercise asks you to write the update "
                    "yourself. Hint: one velocity tensor per parameter, updated inside torch.no_grad().")
    start = [q.detach().clone() for q in model.parameters()]
    step, zero_grad = _method(opt, "step", "MomentumOptim"), _method(opt, "zero_grad", "MomentumOptim")
    for k, lr in enumerate(schedule):
        xb, yb = batches[k % len(batches)]
        for group in ref_opt.param_groups:
            group["lr"] = lr
        ref_opt.zero_grad()
        _mnist_loss(ref_model(xb), yb).backward()
        ref_opt.step()
        try:
            opt.lr = lr
        except Exception as err:
            raise Wrong(f"could not set `opt.lr` on your optimizer ({type(err).__name__}).") from err
        call(zero_grad, name="MomentumOptim.zero_grad", allow_none=True)
        if any(q.grad is not None and bool(q.grad.abs().sum() > 0) for q in model.parameters()):
            raise Wrong("after zero_grad() a gradient is still there. Hint: set p.grad = None (or zero it) for every "
                        "parameter.")
        _mnist_loss(model(xb), yb).backward()
        call(step, name="MomentumOptim.step", allow_none=True)
        got = [q.detach().clone() for q in model.parameters()]
        if all(torch.equal(a, b) for a, b in zip(got, start)):
            raise Wrong(f"step {k + 1} did not change the parameters. Hint: keep list(params): model.parameters() is "
                        "a generator that can be read only once; then update each p in place under torch.no_grad().")
        start = got
        gap = max((a - b).abs().max().item() for a, b in zip(got, ref_model.parameters()))
        if gap > 1e-9:
            where = "while the learning rate is constant" if k < 4 else "once the learning rate starts to change"
            if k == 0:
                hint = ("the very first step should be p -= lr * grad (the velocity starts at zero); check the sign "
                        "and the learning rate.")
            elif k < 4:
                hint = ("keep one velocity per parameter from step to step (v = momentum * v + grad), created once, "
                        "not reset in step().")
            else:
                hint = ("the learning rate multiplies the velocity when the step is taken (p -= lr * v); it is not "
                        "baked into v, which is Weidman's form (exercise 03.7).")
            raise Wrong(f"step {k + 1} departs from SGD with momentum {where} (gap {gap:.3g}). Hint: {hint}")


class _TorchOptimizers:
    """Counts torch.optim optimizers created inside a `with` block."""

    def __enter__(self):
        self.count = 0
        self._init = torch.optim.Optimizer.__init__
        counter = self

        def counting_init(opt_self, *args, **kwargs):
            counter.count += 1
            return counter._init(opt_self, *args, **kwargs)

        torch.optim.Optimizer.__init__ = counting_init
        return self

    def __exit__(self, *exc):
        torch.optim.Optimizer.__init__ = self._init
        return False


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


def _finite_difference_error(op: Any, x: np.ndarray, G: np.ndarray, name: str) -> float:
    """Relative error of op's backward(G) against central differences of sum(op.forward(x) * G)."""
    _op_forward(op, x.copy(), name)
    analytic = _op_backward(op, G, name, x.shape)
    numeric = np.zeros(x.shape)
    eps = 1e-6
    for idx in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[idx] += eps
        down[idx] -= eps
        numeric[idx] = (np.sum(_op_forward(op, up, name) * G) - np.sum(_op_forward(op, down, name) * G)) / (2 * eps)
    return float(np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-300))


def _reference_softmax_rows(x: np.ndarray) -> np.ndarray:
    return torch.softmax(torch.tensor(x, dtype=F64), dim=1).numpy()


@exercise("03.6", "framework: LeakyReLU and Softmax operations")
def check_tanh_dropout(MyLeakyReLU: Any, MySoftmax: Any) -> None:
    _require_class(MyLeakyReLU, "MyLeakyReLU")
    _require_class(MySoftmax, "MySoftmax")
    rng = np.random.default_rng(306)
    for shape, slope in [((3, 4), 0.01), ((7, 2), 0.2), ((1, 5), 0.5)]:
        op = _instantiate(MyLeakyReLU, "MyLeakyReLU", slope)
        x = rng.standard_normal(shape) * 1.5
        x[np.abs(x) < 1e-3] = 0.5                      # keep the finite differences away from the kink
        out = _op_forward(op, x.copy(), "MyLeakyReLU")
        expected = np.where(x > 0, x, slope * x)
        if not np.allclose(out, expected, atol=1e-12):
            flipped = np.where(x > 0, slope * x, x)
            if np.allclose(out, flipped, atol=1e-12):
                raise Wrong("MyLeakyReLU scales the positive side: the slope applies to the negative inputs.")
            if np.allclose(out, np.maximum(x, 0), atol=1e-12):
                raise Wrong(f"with slope={slope}, MyLeakyReLU's forward is a plain ReLU. Hint: use self.slope for x <= 0.")
            raise Wrong(f"with slope={slope}, MyLeakyReLU's forward is not x for x > 0 and slope · x otherwise.")
        rel = _finite_difference_error(op, x, rng.standard_normal(shape), "MyLeakyReLU")
        if not rel < 1e-6:
            raise Wrong(f"MyLeakyReLU's backward fails the finite-difference check (relative error {rel:.2g}, slope "
                        f"{slope}, shape {shape}). Hint: the derivative is 1 for x > 0 and the slope otherwise, "
                        "times output_grad.")

    for shape, scale in [((3, 4), 1.0), ((5, 3), 3.0), ((1, 6), 0.5), ((4, 2), 2.0)]:
        op = _instantiate(MySoftmax, "MySoftmax")
        x = rng.standard_normal(shape) * scale
        out = _op_forward(op, x.copy(), "MySoftmax")
        if not np.allclose(out, _reference_softmax_rows(x), atol=1e-12):
            if np.allclose(out, torch.softmax(torch.tensor(x), dim=0).numpy(), atol=1e-12):
                raise Wrong("MySoftmax normalises each column (axis 0); the rows are the samples: use axis=1.")
            raise Wrong(f"MySoftmax's forward on shape {shape} is not the softmax of each row.")
        rel = _finite_difference_error(op, x, rng.standard_normal(shape), "MySoftmax")
        if not rel < 1e-6:
            raise Wrong(f"MySoftmax's backward fails the finite-difference check (relative error {rel:.2g} on shape "
                        f"{shape}). Hint: every output of a row depends on every input of that row, so the input "
                        "gradient is not just s · (1 - s) · output_grad; sum over j of g_j · s_j (δ_ij - s_i).")
    big = np.array([[1000.0, 0.0, -1000.0], [-1000.0, -999.0, -1000.0]])
    try:
        with np.errstate(over="ignore", invalid="ignore"):
            out = _op_forward(_instantiate(MySoftmax, "MySoftmax"), big.copy(), "MySoftmax")
    except Wrong:
        out = np.full(big.shape, np.nan)
    if not np.isfinite(out).all() or not np.allclose(out, _reference_softmax_rows(big), atol=1e-12):
        raise Wrong("MySoftmax returns inf, nan or wrong values for inputs of ±1000. Hint: subtract each row's "
                    "maximum before exponentiating.")


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
SMOOTH_LOSS_FACTOR = 2.0   # a trained near-linear net: section 2's 1-8-1 reaches about 0.75 × the line's loss


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
        require(model, name)
        linears = [m for m in model.modules() if isinstance(m, nn.Linear)] if isinstance(model, nn.Module) else []
        if len(linears) < 2:
            raise Wrong(f"`{name}` should be a tanh network with a hidden layer (an nn.Module with two nn.Linear "
                        f"layers or more), got {'a single linear layer' if len(linears) == 1 else type(model).__name__}. "
                        "Hint: the exercise varies the hidden units and the learning rate of section 2's network.")
        pred = _predict(model, grid, name)
        curvature[name] = (pred[2:] - 2 * pred[1:-1] + pred[:-2]).abs().mean().item()
        train_loss[name] = ((_predict(model, x_tr, name) - y_tr.reshape(-1).to(F64)) ** 2).mean().item()
    c_s, c_w = curvature["smooth_model"], curvature["wiggly_model"]
    design = torch.cat([x_tr.to(F64), torch.ones(len(x_tr), 1, dtype=F64)], dim=1)
    coef = torch.linalg.lstsq(design, y_tr.to(F64)).solution
    line_loss = ((design @ coef - y_tr.to(F64)) ** 2).mean().item()
    if not train_loss["smooth_model"] <= SMOOTH_LOSS_FACTOR * line_loss:
        raise Wrong(
            f"the smooth model's training loss ({train_loss['smooth_model']:.3g}) is far above the best straight "
            f"line's ({line_loss:.3g}): it is nearly straight because it has not learned yet. Hint: train it until "
            f"its loss comes within {SMOOTH_LOSS_FACTOR:g} × the line's (a small learning rate needs many epochs)."
        )
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


def _mlp_size(n_in: int, h: int, n_out: int) -> int:
    return (n_in + 1) * h + (h + 1) * n_out


@exercise("03.11", "the widest network within a budget")
def check_param_count(widest_hidden: Any) -> None:
    require_callable(widest_hidden, "widest_hidden")
    rng = np.random.default_rng(311)
    cases = [(784, 10, 100_000), (3072, 2, 1_574_402), (784, 10, _mlp_size(784, 89, 10)),
             (784, 10, _mlp_size(784, 89, 10) - 1), (5, 3, 4), (5, 3, _mlp_size(5, 1, 3)), (1, 1, 10)]
    for _ in range(20):
        n_in, n_out = int(rng.integers(1, 50)), int(rng.integers(1, 20))
        cases.append((n_in, n_out, int(rng.integers(1, 5000))))
        cases.append((n_in, n_out, _mlp_size(n_in, int(rng.integers(1, 60)), n_out)))   # a budget hit exactly
    for n_in, n_out, budget in cases:
        label = f"widest_hidden({n_in}, {n_out}, {budget})"
        value = call(widest_hidden, n_in, n_out, budget, name="widest_hidden")
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
            raise Wrong(f"{label} should return a Python int, got {value!r} ({type(value).__name__}). Hint: use // "
                        "(floor division) or int(...).")
        h = int(value)
        if h < 0:
            raise Wrong(f"{label} returned {h}; a width is never negative (return 0 when nothing fits).")
        if h > 0 and _mlp_size(n_in, h, n_out) > budget:
            raise Wrong(f"{label} returned {h}, but {n_in} → {h} → {n_out} has {_mlp_size(n_in, h, n_out):,d} "
                        f"parameters, over the budget of {budget:,d}. Hint: count both layers' weights and both "
                        "layers' biases, and round the width down.")
        if _mlp_size(n_in, h + 1, n_out) <= budget:
            raise Wrong(f"{label} returned {h}, but a width of {h + 1} still fits the budget. Hint: a budget can be "
                        "hit exactly (≤, not <), and the output layer has n_out biases, not h.")


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
