"""Tests of the 03_nn checks: a correct answer passes, planted wrong answers, stubs and crashing answers
fail, and no check ever raises.

The full notebook under nbval already proves that the chapter's reference solutions pass, so the
correct answers here are written another way (other library calls, other formulations), so that a
check which only accepts one spelling of the answer shows up as a failing test.
tests/test_checks_independent.py keeps chapter code out, except fixtures marked
`# planted: copied from the chapter`.
"""

from __future__ import annotations

import math
import statistics

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from check_helpers import crash, fails, passes, returns_none


class Stub:
    """What a stripped class looks like: a body of `...`."""


# ----------------------------------------------------------------------------------------------
# 03.1 softmax
# ----------------------------------------------------------------------------------------------


def softmax_via_logsumexp(x, dim=-1):
    return torch.exp(x - torch.logsumexp(x, dim=dim, keepdim=True))


def test_03_1():
    passes("03.1", softmax_via_logsumexp)
    passes("03.1", lambda x, dim=-1: F.softmax(x, dim=dim))
    fails("03.1", lambda x, dim=-1: torch.exp(x) / torch.exp(x).sum(dim=dim, keepdim=True), mentions="inf or nan")
    fails("03.1", lambda x, dim=-1: x / x.sum(dim=dim, keepdim=True))                          # no exp
    fails("03.1", lambda x, dim=-1: torch.exp(x - x.max()) / torch.exp(x - x.max()).sum())     # sums over everything
    fails("03.1", lambda x, dim=-1: torch.log_softmax(x, dim=dim))
    fails("03.1", lambda x, dim=-1: softmax_via_logsumexp(x, dim=-1))                          # ignores dim


def test_03_1_stubs_and_crashes():
    fails("03.1", ..., mentions="not answered")
    fails("03.1", None)
    fails("03.1", returns_none, mentions="returned None")
    fails("03.1", crash, mentions="RuntimeError")
    fails("03.1", lambda x, dim=-1: softmax_via_logsumexp(x, dim).tolist(), mentions="tensor")


# ----------------------------------------------------------------------------------------------
# 03.2 cross-entropy
# ----------------------------------------------------------------------------------------------


def ce_via_log_softmax(logits, targ, reduction="mean"):
    per_item = -torch.gather(torch.log_softmax(logits, dim=1), 1, targ.unsqueeze(1)).squeeze(1)
    return per_item if reduction == "none" else per_item.mean()


def test_03_2():
    passes("03.2", ce_via_log_softmax)
    passes("03.2", lambda logits, targ, reduction="mean": F.cross_entropy(logits, targ, reduction=reduction))


def test_03_2_wrong():
    def naive(logits, targ, reduction="mean"):
        probs = torch.exp(logits) / torch.exp(logits).sum(1, keepdim=True)
        per_item = -torch.log(probs[torch.arange(len(targ)), targ])
        return per_item if reduction == "none" else per_item.mean()

    fails("03.2", naive, mentions="inf or nan")
    fails("03.2", lambda l, t, reduction="mean": ce_via_log_softmax(l, t, "none").sum() if reduction == "mean"
          else ce_via_log_softmax(l, t, "none"))                                                 # sum, not mean
    fails("03.2", lambda l, t, reduction="mean": ce_via_log_softmax(l, t, "mean"))            # ignores reduction
    fails("03.2", lambda l, t, reduction="mean": torch.tensor(ce_via_log_softmax(l, t, reduction).tolist()))  # detached
    fails("03.2", lambda l, t, reduction="mean": F.nll_loss(torch.softmax(l, 1), t, reduction=reduction))     # probs


def test_03_2_stubs_and_crashes():
    fails("03.2", ...)
    fails("03.2", returns_none, mentions="returned None")
    fails("03.2", crash, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 03.3 predict the output
# ----------------------------------------------------------------------------------------------


def test_03_3():
    passes("03.3", [0.84, 0.11, 0.04], 1.804, "CE", False)
    passes("03.3", np.array([0.8438, 0.1142, 0.0420]), torch.tensor(1.8044), "cross-entropy", np.bool_(False))


def test_03_3_wrong():
    fails("03.3", [0.5, 0.3, 0.2], 1.804, "CE", False, mentions="(a)")
    fails("03.3", [0.84, 0.11, 0.04], 1.8, "CE", False, mentions="(b)")
    fails("03.3", [0.84, 0.11, 0.04], 0.3345, "CE", False, mentions="(b)")
    fails("03.3", [0.84, 0.11, 0.04], 1.804, "MSE", False, mentions="(c)")
    fails("03.3", [0.84, 0.11, 0.04], 1.804, "CE", True, mentions="(d)")
    fails("03.3", [0.84, 0.11, 0.04], 1.804, "CE", 0)


# Plausible slips, each with the hint it must get; no ❌ line states a right value.
@pytest.mark.parametrize("answers, item, mentions", [
    (([0.5, 0.3, 0.2], 1.804, "CE", False), "(a)", "exponentiates"),          # logits over their sum
    (([148.41, 20.09, 7.39], 1.804, "CE", False), "(a)", "sum to 1"),         # exponentials, never normalised
    (([-0.17, -2.17, -3.17], 1.804, "CE", False), "(a)", "log-probabilities"),  # log_softmax
    (([0.04, 0.11, 0.84], 1.804, "CE", False), "(a)", "order"),                # reversed
    (([0.73, 0.18, 0.09], 1.804, "CE", False), "(a)", "exponentiate each"),     # 2 ** logit instead of e ** logit
    (([0.84, 0.11, 0.04], 10.827, "CE", False), "(b)", "sum over the 6 rows"),  # sum, not mean
    (([0.84, 0.11, 0.04], 0.8925, "CE", False), "(b)", "softmax twice"),        # cross_entropy on probabilities
    (([0.84, 0.11, 0.04], 0.3345, "CE", False), "(b)", "minus their log"),      # mean target probability
    (([0.84, 0.11, 0.04], -1.804, "CE", False), "(b)", "negative"),             # forgot the minus
    (([0.84, 0.11, 0.04], 1.8, "CE", False), "(b)", "is off"),
    (([0.84, 0.11, 0.04], 1.804, "MSE", False), "(c)", "p = 0.01"),
    (([0.84, 0.11, 0.04], 1.804, "CE", True), "(d)", "section 7"),
])
def test_03_3_hint_does_not_give_the_answer(answers, item, mentions):
    line = fails("03.3", *answers, mentions=mentions)
    message = line.split(":", 1)[1]
    assert item in message, line
    for value in ("0.84", "0.11", "1.80", "'CE'", "False", "far below"):
        assert value not in message, line


def test_03_3_every_wrong_item_is_named():
    line = fails("03.3", [0.5, 0.3, 0.2], 10.827, "MSE", True)
    assert all(item in line for item in ("(a)", "(b)", "(c)", "(d)")), line


def test_03_3_stubs():
    fails("03.3", ..., ..., ..., ..., mentions="not answered")
    fails("03.3", [0.84, 0.11, 0.04], 1.804, "CE", ..., mentions="not answered")
    fails("03.3", None, None, None, None)


# ----------------------------------------------------------------------------------------------
# 03.4 BasicOptim and train_epoch
# ----------------------------------------------------------------------------------------------


def mnist_loss(predictions, targets):
    p = torch.sigmoid(predictions)
    return torch.where(targets == 1, 1 - p, p).mean()


class GoodOptim:
    def __init__(self, params, lr):
        self.params = [p for p in params]
        self.lr = lr

    def step(self):
        for p in self.params:
            p.data.add_(p.grad, alpha=-self.lr)

    def zero_grad(self):
        for p in self.params:
            if p.grad is not None:
                p.grad.zero_()


def good_train_epoch(model, dl, opt):
    for xb, yb in dl:
        opt.zero_grad()
        mnist_loss(model(xb), yb).backward()
        opt.step()
    opt.zero_grad()


def test_03_4():
    passes("03.4", GoodOptim, good_train_epoch)


def test_03_4_wrong():
    class KeepsGenerator(GoodOptim):
        def __init__(self, params, lr):
            self.params, self.lr = params, lr

        def step(self):
            for p in self.params:
                p.data -= self.lr * p.grad

        def zero_grad(self):
            for p in self.params:
                p.grad = None

    class WrongSign(GoodOptim):
        def step(self):
            for p in self.params:
                p.data += self.lr * p.grad

    class NoZero(GoodOptim):
        def zero_grad(self):
            pass

    def no_zero_epoch(model, dl, opt):
        for xb, yb in dl:
            mnist_loss(model(xb), yb).backward()
            opt.step()

    def mse_epoch(model, dl, opt):
        for xb, yb in dl:
            F.mse_loss(model(xb), yb).backward()
            opt.step()
            opt.zero_grad()

    fails("03.4", KeepsGenerator, good_train_epoch)
    fails("03.4", WrongSign, good_train_epoch)
    fails("03.4", NoZero, good_train_epoch, mentions="zero_grad")
    fails("03.4", GoodOptim, no_zero_epoch)
    fails("03.4", GoodOptim, mse_epoch)
    fails("03.4", GoodOptim, lambda model, dl, opt: None, mentions="did not change")


def test_03_4_stubs_and_crashes():
    fails("03.4", ..., ...)
    fails("03.4", Stub, good_train_epoch, mentions="defines no methods")
    fails("03.4", GoodOptim, crash, mentions="RuntimeError")
    fails("03.4", crash, good_train_epoch, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 03.5 a minimal Learner
# ----------------------------------------------------------------------------------------------


def accuracy_metric(preds, targ):
    return ((torch.sigmoid(preds) > 0.5).float() == targ).float().mean()


class GoodLearner:
    """Written like fastai: size-weighted means, an explicit evaluation method."""

    def __init__(self, model, dls, loss_func, opt_func, metrics):
        self.model, self.dls, self.loss_func, self.opt_func, self.metrics = model, dls, loss_func, opt_func, metrics
        self.recorder = []

    def _validate(self):
        total_loss, total_metric, n = 0.0, 0.0, 0
        with torch.no_grad():
            for xb, yb in self.dls.valid:
                preds = self.model(xb)
                total_loss += self.loss_func(preds, yb).item() * len(xb)
                total_metric += float(self.metrics(preds, yb)) * len(xb)
                n += len(xb)
        return total_loss / n, total_metric / n

    def fit(self, n_epochs, lr):
        self.opt = self.opt_func(self.model.parameters(), lr)
        for _ in range(n_epochs):
            total, n = 0.0, 0
            for xb, yb in self.dls.train:
                loss = self.loss_func(self.model(xb), yb)
                loss.backward()
                self.opt.step()
                self.opt.zero_grad()
                total += loss.item() * len(xb)
                n += len(xb)
            self.recorder.append((total / n, *self._validate()))


def test_03_5():
    passes("03.5", GoodLearner)


def test_03_5_wrong():
    class NoNoGrad(GoodLearner):
        def _validate(self):
            losses = [(self.loss_func(self.model(xb), yb).item(), float(self.metrics(self.model(xb), yb)))
                      for xb, yb in self.dls.valid]
            return float(np.mean([l for l, _ in losses])), float(np.mean([m for _, m in losses]))

    class TensorRecorder(GoodLearner):
        def fit(self, n_epochs, lr):
            super().fit(n_epochs, lr)
            self.recorder = [tuple(torch.tensor(v) for v in row) for row in self.recorder]

    class LastBatchLoss(GoodLearner):
        def fit(self, n_epochs, lr):
            self.opt = self.opt_func(self.model.parameters(), lr)
            for _ in range(n_epochs):
                for xb, yb in self.dls.train:
                    loss = self.loss_func(self.model(xb), yb)
                    loss.backward()
                    self.opt.step()
                    self.opt.zero_grad()
                self.recorder.append((loss.item(), *self._validate()))

    class NewOptimizerPerEpoch(GoodLearner):
        def fit(self, n_epochs, lr):
            for _ in range(n_epochs):
                super().fit(1, lr * 2 if self.recorder else lr)

    class NoZeroGrad(GoodLearner):
        def fit(self, n_epochs, lr):
            opt = self.opt_func(self.model.parameters(), lr)
            opt.zero_grad = lambda: None
            self.opt_func = lambda params, lr: opt
            super().fit(n_epochs, lr)

    fails("03.5", NoNoGrad, mentions="no_grad")
    fails("03.5", TensorRecorder, mentions="tensors")
    fails("03.5", LastBatchLoss, mentions="train_loss")
    fails("03.5", NewOptimizerPerEpoch)
    fails("03.5", NoZeroGrad)


def test_03_5_stubs_and_crashes():
    fails("03.5", ...)
    fails("03.5", Stub, mentions="defines no methods")
    fails("03.5", crash, mentions="RuntimeError")

    class CrashingFit(GoodLearner):
        def fit(self, n_epochs, lr):
            raise ValueError("nope")

    fails("03.5", CrashingFit, mentions="ValueError")


# ----------------------------------------------------------------------------------------------
# 03.6 framework Tanh and Dropout (the learner's classes follow section 3's Operation API)
# ----------------------------------------------------------------------------------------------


class Op:
    """Section 3's Operation API (forward stores input_ and output, backward returns input_grad),
    without its shape asserts."""

    def forward(self, input_, inference=False):
        self.input_ = input_
        self.output = out = self._output(inference)
        return out

    def backward(self, output_grad):
        self.input_grad = grad = self._input_grad(output_grad)
        return grad


class GoodTanh(Op):
    def _output(self, inference):
        e = np.exp(-2 * np.abs(self.input_))
        return np.sign(self.input_) * (1 - e) / (1 + e)

    def _input_grad(self, output_grad):
        return output_grad / np.cosh(self.input_) ** 2


class GoodDropout(Op):
    def __init__(self, keep_prob, rng):
        self.keep_prob, self.rng = keep_prob, rng

    def _output(self, inference):
        if inference:
            return self.input_
        self.mask = self.rng.binomial(1, self.keep_prob, size=self.input_.shape) / self.keep_prob
        return self.input_ * self.mask

    def _input_grad(self, output_grad):
        return self.mask * output_grad


def test_03_6():
    passes("03.6", GoodTanh, GoodDropout)


def test_03_6_wrong():
    class InputTanhGrad(GoodTanh):
        def _input_grad(self, output_grad):
            return (1 - self.input_ ** 2) * output_grad

    class NonInverted(GoodDropout):
        def _output(self, inference):
            if inference:
                return self.input_ * self.keep_prob
            self.mask = self.rng.binomial(1, self.keep_prob, size=self.input_.shape).astype(float)
            return self.input_ * self.mask

    class FreshMask(GoodDropout):
        def _input_grad(self, output_grad):
            return output_grad * self.rng.binomial(1, self.keep_prob, size=output_grad.shape) / self.keep_prob

    class AlwaysOn(GoodDropout):
        def _output(self, inference):
            return super()._output(False)

    class OwnGenerator(GoodDropout):
        def __init__(self, keep_prob, rng):
            super().__init__(keep_prob, np.random.default_rng())

    class DropProbability(GoodDropout):
        def __init__(self, keep_prob, rng):
            super().__init__(1 - keep_prob, rng)

    fails("03.6", InputTanhGrad, GoodDropout, mentions="finite-difference")
    fails("03.6", GoodTanh, NonInverted)
    fails("03.6", GoodTanh, FreshMask, mentions="mask")
    fails("03.6", GoodTanh, AlwaysOn, mentions="inference")
    fails("03.6", GoodTanh, OwnGenerator, mentions="rng")
    fails("03.6", GoodTanh, DropProbability)


def test_03_6_stubs_and_crashes():
    fails("03.6", ..., ...)
    fails("03.6", Stub, GoodDropout, mentions="defines no methods")
    fails("03.6", GoodTanh, Stub, mentions="`MyDropout` defines no methods")
    fails("03.6", GoodTanh, crash, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 03.7 momentum
# ----------------------------------------------------------------------------------------------


class GoodMomentum:
    def __init__(self, lr=0.01, momentum=0.9):
        self.lr, self.momentum, self.v = lr, momentum, {}

    def step(self):
        for i, (param, grad) in enumerate(zip(self.net.params(), self.net.param_grads())):
            v = self.v.setdefault(i, np.zeros_like(param))
            v[...] = self.momentum * v + self.lr * grad
            param[...] = param - v


def test_03_7():
    passes("03.7", GoodMomentum, False)


def test_03_7_wrong():
    class TorchStyle(GoodMomentum):
        def step(self):
            for i, (param, grad) in enumerate(zip(self.net.params(), self.net.param_grads())):
                v = self.v.setdefault(i, np.zeros_like(param))
                v[...] = self.momentum * v + grad
                param[...] = param - self.lr * v

    class NotInPlace(GoodMomentum):
        def step(self):
            for i, (param, grad) in enumerate(zip(self.net.params(), self.net.param_grads())):
                param = param - self.lr * grad

    class Forgetful(GoodMomentum):
        def step(self):
            self.v = {}
            super().step()

    fails("03.7", TorchStyle, False, mentions="step")
    fails("03.7", NotInPlace, False, mentions="in place")
    fails("03.7", Forgetful, False)
    fails("03.7", GoodMomentum, True, mentions="matches_torch_under_decay")
    fails("03.7", GoodMomentum, "False")


def test_03_7_stubs_and_crashes():
    fails("03.7", ..., ...)
    fails("03.7", Stub, False, mentions="defines no methods")
    fails("03.7", GoodMomentum, ..., mentions="not answered")
    fails("03.7", crash, False, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 03.8 debug this module
# ----------------------------------------------------------------------------------------------


class GoodMLP(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            self.add_module(f"fc{i}", nn.Linear(a, b))
        self.n = len(sizes) - 1

    def forward(self, x):
        for i in range(self.n):
            x = getattr(self, f"fc{i}")(x)
            if i < self.n - 1:
                x = torch.tanh(x)
        return x


def test_03_8():
    passes("03.8", GoodMLP)

    class SequentialMLP(nn.Sequential):
        def __init__(self, sizes):
            layers = []
            for a, b in zip(sizes[:-1], sizes[1:]):
                layers += [nn.Linear(a, b), nn.Tanh()]
            super().__init__(*layers[:-1])

    passes("03.8", SequentialMLP)


def test_03_8_wrong():
    class Buggy(nn.Module):  # planted: copied from the chapter (BuggyMLP: a plain list hides the layers)
        def __init__(self, sizes):
            super().__init__()
            self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

        def forward(self, x):
            for i, layer in enumerate(self.layers):
                x = layer.forward(x)
                if i < len(self.layers) - 1:
                    x = torch.tanh(x)
            return x

    class HalfFixed(nn.Module):  # the layers registered, but .forward() bypasses the hooks
        def __init__(self, sizes):
            super().__init__()
            self.layers = nn.ModuleList(map(nn.Linear, sizes[:-1], sizes[1:]))

        def forward(self, x):
            *hidden, last = self.layers
            for layer in hidden:
                x = torch.tanh(layer.forward(x))
            return last.forward(x)

    class ReluMLP(HalfFixed):
        def forward(self, x):
            *hidden, last = self.layers
            for layer in hidden:
                x = torch.relu(layer(x))
            return last(x)

    fails("03.8", Buggy, mentions="ModuleList")
    fails("03.8", HalfFixed, mentions="hooks")
    fails("03.8", ReluMLP, mentions="tanh")
    fails("03.8", lambda sizes: "not a module", mentions="nn.Module")


def test_03_8_stubs_and_crashes():
    fails("03.8", ...)
    fails("03.8", Stub, mentions="defines no methods")
    fails("03.8", crash, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 03.9 near-linear or wiggly
# ----------------------------------------------------------------------------------------------


def _thermo_models():
    """An exact least-squares line, and a cubic through the training points: both fitted independently."""
    from course_utils.data import thermometer

    t_c, t_u = thermometer()
    train = torch.randperm(11, generator=torch.Generator().manual_seed(42))[:-2]
    x, y = (0.1 * t_u[train]).double(), t_c[train].double()

    def poly_model(degree):
        design = torch.stack([x ** k for k in range(degree + 1)], dim=1)
        coef = torch.linalg.lstsq(design, y.unsqueeze(1)).solution.squeeze(1)

        def model(inp):
            inp = inp.double().reshape(-1)
            return torch.stack([inp ** k for k in range(degree + 1)], dim=1) @ coef

        return model

    return poly_model(1), poly_model(6)


def test_03_9():
    line, wiggly = _thermo_models()
    passes("03.9", line, wiggly)


def test_03_9_wrong():
    line, wiggly = _thermo_models()
    fails("03.9", wiggly, line, mentions="3 ×")                       # swapped
    fails("03.9", line, line)
    bent = lambda x: line(x) + 0.005 * torch.sin(20 * x.reshape(-1).double())   # curved, but too faint to see
    fails("03.9", line, bent, mentions="too small")
    torch.manual_seed(0)
    untrained = nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 1))
    with torch.no_grad():
        untrained[0].weight.mul_(20)
    fails("03.9", line, untrained)                                      # curved, but fits worse


def test_03_9_stubs_and_crashes():
    line, wiggly = _thermo_models()
    fails("03.9", ..., ...)
    fails("03.9", line, ..., mentions="not answered")
    fails("03.9", line, crash, mentions="RuntimeError")
    fails("03.9", line, lambda x: [1.0] * len(x), mentions="tensor")
    fails("03.9", line, lambda x: torch.full((len(x), 1), float("nan")), mentions="nan")


# ----------------------------------------------------------------------------------------------
# 03.10 does dropout help
# ----------------------------------------------------------------------------------------------


def _report(a5, a6, ddof=1):
    """With the statistics module and math.hypot (the chapter uses NumPy and an explicit square root)."""
    runs = [[float(v) for v in (a.values() if isinstance(a, dict) else a)] for a in (a5, a6)]
    means = tuple(statistics.fmean(r) for r in runs)
    stds = tuple((statistics.stdev if ddof else statistics.pstdev)(r) for r in runs)
    helps = means[1] - means[0] > math.hypot(*stds) / math.sqrt(2)
    return a5, a6, means, stds, helps


@pytest.fixture(scope="module")
def ladder_runs():
    """{keep_prob: [(val acc, train acc) for seeds 1, 2, 3]}: the runs the check retrains (and caches)."""
    from course_utils.checks.ch03 import _ladder_rung

    return {kp: [_ladder_rung(seed, kp) for seed in (1, 2, 3)] for kp in (1.0, 0.8)}


def test_03_10(ladder_runs):
    a5 = [val for val, _ in ladder_runs[1.0]]
    a6 = [val for val, _ in ladder_runs[0.8]]
    passes("03.10", *_report(a5, a6))
    passes("03.10", *_report(np.array(a5), torch.tensor(a6, dtype=torch.float64), ddof=0))
    # other seeds (or another order) go in a dict {seed: accuracy}
    passes("03.10", *_report(dict(zip((3, 1, 2), [a5[2], a5[0], a5[1]])), dict(zip((2, 3, 1), [a6[1], a6[2], a6[0]]))))


def test_03_10_wrong(ladder_runs):
    a5 = [val for val, _ in ladder_runs[1.0]]
    a6 = [val for val, _ in ladder_runs[0.8]]
    # made-up numbers with consistent statistics (review 01-03's example)
    fails("03.10", *_report([0.90, 0.91, 0.92], [0.95, 0.96, 0.97]), mentions="retrained here")
    # the dropout runs "rounded up" to two decimals (which may also make them all equal)
    line = fails("03.10", *_report(a5, [math.floor(v * 100) / 100 + 0.01 for v in a6]))
    assert "unrounded" in line or "identical" in line, line
    # the training accuracies (the second number a rung returns)
    train5 = [tr for _, tr in ladder_runs[1.0]]
    train6 = [tr for _, tr in ladder_runs[0.8]]
    fails("03.10", *_report(train5, train6), mentions="training accuracy")
    # one digit more than each run really got, as a dict
    fails("03.10", *_report(dict(zip((1, 2, 3), [v + 0.001 for v in a5])), a6), mentions="rung 5")
    a5, a6, means, stds, helps = _report([0.925, 0.918, 0.931], [0.929, 0.931, 0.927])
    fails("03.10", a5, a6, means, stds, not helps, mentions="dropout_helps")
    fails("03.10", a5[:2], a6[:2], means, stds, helps, mentions="at least 3")
    fails("03.10", [92.5, 91.8, 93.1], a6, means, stds, helps, mentions="fractions")
    fails("03.10", [0.925] * 3, a6, (0.925, means[1]), (0.0, stds[1]), helps, mentions="identical")
    fails("03.10", a5, a6, (means[1], means[0]), stds, helps, mentions="means")
    fails("03.10", a5, a6, means, (stds[0] ** 2, stds[1] ** 2), helps, mentions="stds")
    fails("03.10", *_report({"one": 0.925, "two": 0.918, "three": 0.931}, a6), mentions="integer seeds")


def test_03_10_stubs():
    fails("03.10", ..., ..., ..., ..., ..., mentions="not answered")
    a5, a6, means, stds, helps = _report([0.925, 0.918, 0.931], [0.929, 0.931, 0.927])
    fails("03.10", a5, a6, means, stds, ..., mentions="not answered")
    fails("03.10", a5, a6, means, stds, "yes")


# ----------------------------------------------------------------------------------------------
# 03.11 counting parameters
# ----------------------------------------------------------------------------------------------


def count_by_loop(sizes, bias=True):
    total = 0
    for i in range(len(sizes) - 1):
        total += sizes[i] * sizes[i + 1]
        if bias:
            total += sizes[i + 1]
    return total


def test_03_11():
    passes("03.11", count_by_loop)
    passes("03.11", lambda sizes, bias=True: np.int64(count_by_loop(sizes, bias)))


def test_03_11_wrong():
    fails("03.11", lambda sizes, bias=True: count_by_loop(sizes, False))                  # forgets biases
    fails("03.11", lambda sizes, bias=True: count_by_loop(sizes, True))                   # ignores bias=False
    fails("03.11", lambda sizes, bias=True: sum((a + int(bias)) * b for a, b in zip(sizes[1:], sizes[:-1])))
    fails("03.11", lambda sizes, bias=True: count_by_loop(sizes, bias) + 0.5, mentions="whole number")


def test_03_11_stubs_and_crashes():
    fails("03.11", ...)
    fails("03.11", returns_none, mentions="returned None")
    fails("03.11", crash, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 03.12 beat the line on diamonds
# ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def diamonds():
    from course_utils.train import diamonds_split

    return diamonds_split()


def test_03_12(diamonds):
    X_train, y_train, X_test, y_test = diamonds
    # a correct answer that is not a net at all: a quadratic-feature least-squares model wrapped as a module
    def features(x):
        x = x.double()
        return torch.cat([x, x ** 2, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)

    coef = torch.linalg.lstsq(features(torch.tensor(X_train)), torch.tensor(y_train)).solution

    class Quadratic(nn.Module):
        def forward(self, x):
            return (features(x) @ coef).float()

    passes("03.12", Quadratic())


def test_03_12_wrong(diamonds):
    X_train, y_train, X_test, y_test = diamonds
    design = np.hstack([X_train, np.ones((len(X_train), 1))])
    coef = torch.tensor(np.linalg.lstsq(design, y_train, rcond=None)[0], dtype=torch.float32)

    class Line(nn.Module):
        def forward(self, x):
            return x @ coef[:-1] + coef[-1]

    fails("03.12", Line(), mentions="least-squares")
    torch.manual_seed(0)
    fails("03.12", nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1)))         # untrained
    fails("03.12", lambda x: torch.zeros(3), mentions="one price")


def _minibatch_net(X, y, seed, epochs, width):
    """A ReLU net trained with Adam (lr 1e-2) on minibatches of 64, written with a plain loop."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(6, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 1))
    x_all, y_all = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    for _ in range(epochs):
        for idx in torch.randperm(len(x_all), generator=gen).split(64):
            loss = F.mse_loss(net(x_all[idx]), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def test_03_12_test_set_leak(diamonds):
    X_train, y_train, X_test, y_test = diamonds
    passes("03.12", _minibatch_net(X_train, y_train, seed=1, epochs=20, width=32))      # the honest run
    # trained on the test rows, which are in scope: it beats the line on them, and the check notices
    fails("03.12", _minibatch_net(X_test, y_test, seed=1, epochs=20, width=32), mentions="seen the test set")
    fails("03.12", _minibatch_net(X_test, y_test, seed=2, epochs=60, width=64), mentions="seen the test set")

    # a "model" that looks the test prices up (and falls back to the mean elsewhere)
    known = {tuple(np.round(row, 6)): price for row, price in zip(X_test, y_test[:, 0])}

    def lookup(x):
        rows = np.round(x.double().numpy(), 6)
        return torch.tensor([known.get(tuple(r), float(y_train.mean())) for r in rows]).unsqueeze(1)

    fails("03.12", lookup, mentions="seen the test set")


def test_03_12_stubs_and_crashes():
    fails("03.12", ...)
    fails("03.12", crash, mentions="RuntimeError")
    fails("03.12", lambda x: x.numpy()[:, :1], mentions="tensor")
