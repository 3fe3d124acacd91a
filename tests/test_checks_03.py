"""Tests of the 03_nn checks: a correct answer passes, planted wrong answers, stubs and crashing answers
fail, and no check ever raises.

The full notebook under nbval already proves that the chapter's reference solutions pass, so the
correct answers here are written another way (other library calls, other formulations), so that a
check which only accepts one spelling of the answer shows up as a failing test.
tests/test_checks_independent.py keeps chapter code out, except fixtures marked
`# planted: copied from the chapter`.
"""

from __future__ import annotations

import functools
import math
import statistics

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from check_helpers import Planted, crash, fails, passes, planted_test, returns_none


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


class Stub:
    """What a stripped class looks like: a body of `...`."""


# ----------------------------------------------------------------------------------------------
# 03.1 masked softmax with a temperature
# ----------------------------------------------------------------------------------------------


def masked_softmax_via_logsumexp(x, mask, temperature=1.0, dim=-1):
    """exp(z - logsumexp(z)) over the kept positions; an all-masked slice is set to zeros afterwards."""
    z = torch.where(mask, x / temperature, torch.tensor(float("-inf"), dtype=x.dtype))
    lse = torch.logsumexp(z, dim=dim, keepdim=True)
    alive = mask.any(dim=dim, keepdim=True)
    return torch.where(alive & mask, torch.exp(z - torch.where(alive, lse, torch.zeros_like(lse))), torch.zeros_like(x))


def _no_stability(x, mask, temperature=1.0, dim=-1):
    e = torch.exp(x / temperature) * mask
    return e / e.sum(dim=dim, keepdim=True).clamp_min(1e-300)


def _mask_after(x, mask, temperature=1.0, dim=-1):
    z = x / temperature
    e = torch.exp(z - z.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True) * mask                 # zeroed, never renormalised


def _fill_minus_1e9(x, mask, temperature=1.0, dim=-1):
    z = (x / temperature).masked_fill(~mask, -1e9)
    e = torch.exp(z - z.amax(dim=dim, keepdim=True))
    return e / e.sum(dim=dim, keepdim=True)                          # a fully masked row comes out uniform


def _times_temperature(x, mask, temperature=1.0, dim=-1):
    return masked_softmax_via_logsumexp(x * temperature, mask, 1.0, dim)


def _library_softmax(x, mask, temperature=1.0, dim=-1):
    return torch.softmax((x / temperature).masked_fill(~mask, float("-inf")), dim=dim).nan_to_num(0.0)


def _ignores_dim(x, mask, temperature=1.0, dim=-1):
    return masked_softmax_via_logsumexp(x, mask, temperature, -1)


def test_03_1():
    passes("03.1", masked_softmax_via_logsumexp)


def test_03_1_stubs_and_crashes():
    fails("03.1", ..., mentions="not answered")
    fails("03.1", None)
    fails("03.1", returns_none, mentions="returned None")
    fails("03.1", crash, mentions="RuntimeError")
    fails("03.1", lambda x, mask, temperature=1.0, dim=-1: masked_softmax_via_logsumexp(x, mask, temperature, dim).tolist(),
          mentions="tensor")


# ----------------------------------------------------------------------------------------------
# 03.2 cross-entropy with label smoothing
# ----------------------------------------------------------------------------------------------


def smoothed_ce_by_distribution(logits, targ, eps=0.1):
    """Builds the smoothed target distribution q explicitly and takes -sum(q log p)."""
    n, c = logits.shape
    q = torch.full((n, c), eps / c, dtype=logits.dtype)
    q[torch.arange(n), targ] += 1 - eps
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -(q * log_p).sum(dim=1).mean()


def _naive_smoothed(logits, targ, eps=0.1):
    p = torch.exp(logits) / torch.exp(logits).sum(dim=1, keepdim=True)
    n, c = logits.shape
    q = torch.full((n, c), eps / c, dtype=logits.dtype)
    q[torch.arange(n), targ] += 1 - eps
    return -(q * torch.log(p)).sum(dim=1).mean()


def _smoothing_over_others(logits, targ, eps=0.1):
    n, c = logits.shape
    q = torch.full((n, c), eps / (c - 1), dtype=logits.dtype)
    q[torch.arange(n), targ] = 1 - eps
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -(q * log_p).sum(dim=1).mean()


def _plain_ce(logits, targ, eps=0.1):
    log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    return -log_p[torch.arange(len(targ)), targ].mean()


def _summed_smoothed(logits, targ, eps=0.1):
    return smoothed_ce_by_distribution(logits, targ, eps) * len(targ)


def _library_smoothed(logits, targ, eps=0.1):
    return F.cross_entropy(logits, targ, label_smoothing=eps)


def test_03_2():
    passes("03.2", smoothed_ce_by_distribution)


def test_03_2_stubs_and_crashes():
    fails("03.2", ...)
    fails("03.2", returns_none, mentions="returned None")
    fails("03.2", crash, mentions="RuntimeError")
    fails("03.2", lambda l, t, eps=0.1: torch.tensor(smoothed_ce_by_distribution(l, t, eps).item()), mentions="autograd")


# ----------------------------------------------------------------------------------------------
# 03.3 predict the output
# ----------------------------------------------------------------------------------------------


def test_03_3():
    passes("03.3", [0.84, 0.11, 0.04], 1.804, "CE", False)
    passes("03.3", np.array([0.8438, 0.1142, 0.0420]), torch.tensor(1.8044), "cross-entropy", np.bool_(False))


def test_03_3_wrong():
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
# 03.4 BasicOptim with momentum
# ----------------------------------------------------------------------------------------------


def mnist_loss(predictions, targets):
    p = torch.sigmoid(predictions)
    return torch.where(targets == 1, 1 - p, p).mean()


class GoodMomentumOptim:
    """Velocities in a dict keyed by position, updated with .data arithmetic."""

    def __init__(self, params, lr, momentum=0.9):
        self.params = [p for p in params]
        self.lr, self.momentum, self.state = lr, momentum, {}

    def step(self):
        for i, p in enumerate(self.params):
            v = self.state.get(i)
            v = p.grad.detach().clone() if v is None else self.momentum * v + p.grad.detach()
            self.state[i] = v
            p.data.add_(v, alpha=-self.lr)

    def zero_grad(self):
        for p in self.params:
            if p.grad is not None:
                p.grad.zero_()


class _KeepsGenerator(GoodMomentumOptim):
    def __init__(self, params, lr, momentum=0.9):
        super().__init__([], lr, momentum)
        self.params = params                     # the one-shot generator: only the first pass over it sees anything


class _NoVelocity(GoodMomentumOptim):
    def step(self):
        self.state = {}                          # forgets the velocity: plain SGD
        super().step()


class _WeidmanStyle(GoodMomentumOptim):
    def step(self):
        for i, p in enumerate(self.params):
            v = self.state.get(i, torch.zeros_like(p))
            v = self.momentum * v + self.lr * p.grad.detach()
            self.state[i] = v
            p.data.sub_(v)


class _NoZeroGrad(GoodMomentumOptim):
    def zero_grad(self):
        pass


class _WrapsTorch:
    def __init__(self, params, lr, momentum=0.9):
        self.inner = torch.optim.SGD(params, lr=lr, momentum=momentum)

    @property
    def lr(self):
        return self.inner.param_groups[0]["lr"]

    @lr.setter
    def lr(self, value):
        self.inner.param_groups[0]["lr"] = value

    def step(self):
        self.inner.step()

    def zero_grad(self):
        self.inner.zero_grad()


def test_03_4():
    passes("03.4", GoodMomentumOptim)


def test_03_4_stubs_and_crashes():
    fails("03.4", ...)
    fails("03.4", Stub, mentions="defines no methods")
    fails("03.4", crash, mentions="RuntimeError")


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


class _NoNoGrad(GoodLearner):
    def _validate(self):
        losses = [(self.loss_func(self.model(xb), yb).item(), float(self.metrics(self.model(xb), yb)))
                  for xb, yb in self.dls.valid]
        return float(np.mean([l for l, _ in losses])), float(np.mean([m for _, m in losses]))


class _TensorRecorder(GoodLearner):
    def fit(self, n_epochs, lr):
        super().fit(n_epochs, lr)
        self.recorder = [tuple(torch.tensor(v) for v in row) for row in self.recorder]


class _LastBatchLoss(GoodLearner):
    def fit(self, n_epochs, lr):
        self.opt = self.opt_func(self.model.parameters(), lr)
        for _ in range(n_epochs):
            for xb, yb in self.dls.train:
                loss = self.loss_func(self.model(xb), yb)
                loss.backward()
                self.opt.step()
                self.opt.zero_grad()
            self.recorder.append((loss.item(), *self._validate()))


class _NewOptimizerPerEpoch(GoodLearner):
    def fit(self, n_epochs, lr):
        for _ in range(n_epochs):
            super().fit(1, lr * 2 if self.recorder else lr)


class _NoZeroGradLearner(GoodLearner):
    def fit(self, n_epochs, lr):
        opt = self.opt_func(self.model.parameters(), lr)
        opt.zero_grad = lambda: None
        self.opt_func = lambda params, lr: opt
        super().fit(n_epochs, lr)


def test_03_5_stubs_and_crashes():
    fails("03.5", ...)
    fails("03.5", Stub, mentions="defines no methods")
    fails("03.5", crash, mentions="RuntimeError")

    class CrashingFit(GoodLearner):
        def fit(self, n_epochs, lr):
            raise ValueError("nope")

    fails("03.5", CrashingFit, mentions="ValueError")


# ----------------------------------------------------------------------------------------------
# 03.6 framework LeakyReLU and Softmax (the learner's classes follow section 3's Operation API)
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


class GoodLeakyReLU(Op):
    def __init__(self, slope=0.01):
        self.slope = slope

    def _output(self, inference):
        return np.maximum(self.input_, 0) + self.slope * np.minimum(self.input_, 0)

    def _input_grad(self, output_grad):
        return output_grad * (self.slope + (1 - self.slope) * (self.input_ > 0))


class GoodSoftmax(Op):
    """Forward through log-sum-exp; backward with the full Jacobian diag(s) - s sᵀ, row by row."""

    def _output(self, inference):
        x = self.input_
        m = x.max(axis=1, keepdims=True)
        return np.exp(x - m - np.log(np.exp(x - m).sum(axis=1, keepdims=True)))

    def _input_grad(self, output_grad):
        rows = [(np.diag(s) - np.outer(s, s)) @ g for s, g in zip(self.output, output_grad)]
        return np.array(rows)


class _FlippedLeaky(GoodLeakyReLU):
    def _output(self, inference):
        return np.where(self.input_ > 0, self.slope * self.input_, self.input_)


class _ReluGradLeaky(GoodLeakyReLU):
    def _input_grad(self, output_grad):
        return output_grad * (self.input_ > 0)               # forgets the slope on the negative side


class _DiagonalSoftmax(GoodSoftmax):
    def _input_grad(self, output_grad):
        return self.output * (1 - self.output) * output_grad  # the diagonal of the Jacobian only


class _ColumnSoftmax(GoodSoftmax):
    def _output(self, inference):
        e = np.exp(self.input_ - self.input_.max(axis=0, keepdims=True))
        return e / e.sum(axis=0, keepdims=True)


class _UnstableSoftmax(GoodSoftmax):
    def _output(self, inference):
        with np.errstate(over="ignore", invalid="ignore"):
            e = np.exp(self.input_)
            return e / e.sum(axis=1, keepdims=True)


def test_03_6():
    passes("03.6", GoodLeakyReLU, GoodSoftmax)


def test_03_6_stubs_and_crashes():
    fails("03.6", ..., ...)
    fails("03.6", Stub, GoodSoftmax, mentions="defines no methods")
    fails("03.6", GoodLeakyReLU, Stub, mentions="`MySoftmax` defines no methods")
    fails("03.6", GoodLeakyReLU, crash, mentions="RuntimeError")


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


class _TorchStyleMomentum(GoodMomentum):
    def step(self):
        for i, (param, grad) in enumerate(zip(self.net.params(), self.net.param_grads())):
            v = self.v.setdefault(i, np.zeros_like(param))
            v[...] = self.momentum * v + grad
            param[...] = param - self.lr * v


class _NotInPlaceMomentum(GoodMomentum):
    def step(self):
        for i, (param, grad) in enumerate(zip(self.net.params(), self.net.param_grads())):
            param = param - self.lr * grad


class _ForgetfulMomentum(GoodMomentum):
    def step(self):
        self.v = {}
        super().step()


def test_03_7_wrong():
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


class _Buggy(nn.Module):  # planted: copied from the chapter (BuggyMLP: a plain list hides the layers)
    def __init__(self, sizes):
        super().__init__()
        self.layers = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]

    def forward(self, x):
        for i, layer in enumerate(self.layers):
            x = layer.forward(x)
            if i < len(self.layers) - 1:
                x = torch.tanh(x)
        return x


class _HalfFixed(nn.Module):  # the layers registered, but .forward() bypasses the hooks
    def __init__(self, sizes):
        super().__init__()
        self.layers = nn.ModuleList(map(nn.Linear, sizes[:-1], sizes[1:]))

    def forward(self, x):
        *hidden, last = self.layers
        for layer in hidden:
            x = torch.tanh(layer.forward(x))
        return last.forward(x)


class _ReluMLP(_HalfFixed):
    def forward(self, x):
        *hidden, last = self.layers
        for layer in hidden:
            x = torch.relu(layer(x))
        return last(x)


class _TanhAfterLast(_HalfFixed):
    def forward(self, x):
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


def test_03_8_wrong():
    fails("03.8", lambda sizes: "not a module", mentions="nn.Module")


def test_03_8_stubs_and_crashes():
    fails("03.8", ...)
    fails("03.8", Stub, mentions="defines no methods")
    fails("03.8", crash, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 03.9 near-linear or wiggly
# ----------------------------------------------------------------------------------------------


def _thermo_xy():
    from course_utils.data import thermometer

    t_c, t_u = thermometer()
    train = torch.randperm(11, generator=torch.Generator().manual_seed(42))[:-2]
    return (0.1 * t_u[train]).unsqueeze(1), t_c[train].unsqueeze(1)


@functools.lru_cache(maxsize=None)
def _tanh_net(width, optimiser, steps, lr, seed=0):
    """A 1-width-1 tanh net fitted to the 9 training readings, full batch, with L-BFGS or Adam."""
    x, y = _thermo_xy()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Linear(width, 1))
    if optimiser == "lbfgs":
        opt = torch.optim.LBFGS(net.parameters(), lr=lr, max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.mse_loss(net(x), y)
            loss.backward()
            return loss

        opt.step(closure)
    else:
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            F.mse_loss(net(x), y).backward()
            opt.step()
    return net.eval()


def _smooth_net():
    return _tanh_net(2, "lbfgs", 200, 0.5)


def _wiggly_net():
    return _tanh_net(32, "adam", 3000, 0.05)


def _least_squares_line():
    x, y = _thermo_xy()
    design = torch.cat([x.double(), torch.ones(len(x), 1, dtype=torch.float64)], dim=1)
    coef = torch.linalg.lstsq(design, y.double()).solution
    return lambda inp: torch.cat([inp.double().reshape(-1, 1), torch.ones(len(inp), 1, dtype=torch.float64)], 1) @ coef


def _seeded_line():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        return nn.Linear(1, 1)


def _untrained_tanh_net(width=8, scale=1.0):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        net = nn.Sequential(nn.Linear(1, width), nn.Tanh(), nn.Linear(width, 1))
        with torch.no_grad():
            net[0].weight.mul_(scale)
    return net


class _LineNet(nn.Module):
    """The exact least-squares line plus an optional ripple, dressed as a network with a (zero-weighted)
    hidden layer, so that only the curvature differs from a trained near-linear net."""

    def __init__(self, ripple=0.0):
        super().__init__()
        self.line, self.ripple = _least_squares_line(), ripple
        self.hidden = nn.Sequential(nn.Linear(1, 4), nn.Tanh(), nn.Linear(4, 1))

    def forward(self, x):
        x = x.double()
        return self.line(x) + self.ripple * torch.sin(20 * x) + 0 * self.hidden(x.float()).double()


def _shuffled_targets_net():
    """Inputs and targets indexed with different permutations: a sharp net fitted to pairs that do not belong."""
    x, y = _thermo_xy()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Linear(1, 32), nn.Tanh(), nn.Linear(32, 1))
    y_wrong = y[torch.tensor([3, 7, 1, 8, 0, 5, 2, 6, 4])]
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(3000):
        opt.zero_grad()
        F.mse_loss(net(x), y_wrong).backward()
        opt.step()
    return net.eval()


def test_03_9():
    passes("03.9", _smooth_net(), _wiggly_net())


def test_03_9_wrong():
    fails("03.9", _smooth_net(), _smooth_net())


def test_03_9_stubs_and_crashes():
    fails("03.9", ..., ...)
    fails("03.9", _smooth_net(), ..., mentions="not answered")
    fails("03.9", _smooth_net(), crash, mentions="tanh network")


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


@functools.lru_cache(maxsize=None)
def _ladder_vals(keep_prob, which=0):
    """Validation (which=0) or training (which=1) accuracies of seeds 1, 2, 3: the runs the check retrains."""
    from course_utils.checks.ch03 import _ladder_rung

    return [_ladder_rung(seed, keep_prob)[which] for seed in (1, 2, 3)]


def test_03_10():
    a5, a6 = _ladder_vals(1.0), _ladder_vals(0.8)
    passes("03.10", *_report(a5, a6))
    passes("03.10", *_report(np.array(a5), torch.tensor(a6, dtype=torch.float64), ddof=0))
    # other seeds (or another order) go in a dict {seed: accuracy}
    passes("03.10", *_report(dict(zip((3, 1, 2), [a5[2], a5[0], a5[1]])), dict(zip((2, 3, 1), [a6[1], a6[2], a6[0]]))))


def test_03_10_wrong():
    a5, a6, means, stds, helps = _report([0.925, 0.918, 0.931], [0.929, 0.931, 0.927])
    fails("03.10", [0.925] * 3, a6, (0.925, means[1]), (0.0, stds[1]), helps, mentions="identical")
    fails("03.10", *_report({"one": 0.925, "two": 0.918, "three": 0.931}, a6), mentions="integer seeds")


def _rounded_up_dropout():
    a5, a6 = _ladder_vals(1.0), _ladder_vals(0.8)
    return _report(a5, [math.floor(v * 100) / 100 + 0.01 for v in a6] if len({math.floor(v * 100) for v in a6}) == 3
                   else [math.floor(v * 100) / 100 + 0.01 + 0.001 * k for k, v in enumerate(a6)])


def _wrong_helps():
    a5, a6, means, stds, helps = _report(_ladder_vals(1.0), _ladder_vals(0.8))
    return a5, a6, means, stds, not helps


def test_03_10_stubs():
    fails("03.10", ..., ..., ..., ..., ..., mentions="not answered")
    a5, a6, means, stds, helps = _report([0.925, 0.918, 0.931], [0.929, 0.931, 0.927])
    fails("03.10", a5, a6, means, stds, ..., mentions="not answered")
    fails("03.10", a5, a6, means, stds, "yes")


# ----------------------------------------------------------------------------------------------
# 03.11 the widest network within a budget
# ----------------------------------------------------------------------------------------------


def widest_by_search(n_in, n_out, budget):
    """Counts upwards until the next width no longer fits (the chapter solves the inequality instead)."""
    size = lambda h: n_in * h + h + h * n_out + n_out
    h = 0
    while size(h + 1) <= budget:
        h += 1
    return h


def test_03_11():
    passes("03.11", widest_by_search)
    passes("03.11", lambda n_in, n_out, budget: np.int64(widest_by_search(n_in, n_out, budget)))


def test_03_11_wrong():
    fails("03.11", lambda n_in, n_out, budget: -1 if budget < n_in + 2 * n_out + 1 else widest_by_search(n_in, n_out, budget),
          mentions="negative")


def test_03_11_stubs_and_crashes():
    fails("03.11", ...)
    fails("03.11", returns_none, mentions="returned None")
    fails("03.11", crash, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 03.12 beat the line on diamonds
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _diamonds():
    from course_utils.train import diamonds_split

    return diamonds_split()


def test_03_12():
    X_train, y_train, X_test, y_test = _diamonds()
    # a correct answer that is not a net at all: a quadratic-feature least-squares model wrapped as a module
    def features(x):
        x = x.double()
        return torch.cat([x, x ** 2, torch.ones(len(x), 1, dtype=torch.float64)], dim=1)

    coef = torch.linalg.lstsq(features(torch.tensor(X_train)), torch.tensor(y_train)).solution

    class Quadratic(nn.Module):
        def forward(self, x):
            return (features(x) @ coef).float()

    passes("03.12", Quadratic())
    passes("03.12", _minibatch_net(X_train, y_train, seed=1, epochs=20, width=32))      # the honest run


def _line_module():
    X_train, y_train, X_test, y_test = _diamonds()
    design = np.hstack([X_train, np.ones((len(X_train), 1))])
    coef = torch.tensor(np.linalg.lstsq(design, y_train, rcond=None)[0], dtype=torch.float32)

    class Line(nn.Module):
        def forward(self, x):
            return x @ coef[:-1] + coef[-1]

    return Line()


def _untrained_net():
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 1))


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


def _on_test_rows(seed, epochs, width):
    X_train, y_train, X_test, y_test = _diamonds()
    return (_minibatch_net(X_test, y_test, seed=seed, epochs=epochs, width=width),)


def _lookup_test_prices():
    """A 'model' that looks the test prices up (and falls back to the mean elsewhere)."""
    X_train, y_train, X_test, y_test = _diamonds()
    known = {tuple(np.round(row, 6)): price for row, price in zip(X_test, y_test[:, 0])}

    def lookup(x):
        rows = np.round(x.double().numpy(), 6)
        return torch.tensor([known.get(tuple(r), float(y_train.mean())) for r in rows]).unsqueeze(1)

    return (lookup,)


def test_03_12_wrong():
    fails("03.12", lambda x: torch.zeros(3), mentions="one price")


def test_03_12_stubs_and_crashes():
    fails("03.12", ...)
    fails("03.12", crash, mentions="RuntimeError")
    fails("03.12", lambda x: x.numpy()[:, :1], mentions="tensor")


# ----------------------------------------------------------------------------------------------
# Planted learner mistakes: two or more per check, each rejected with a hint that names it
# (run at the end of this module; tests/test_planted.py counts them)
# ----------------------------------------------------------------------------------------------

PLANTED = [
    # 03.1 masked softmax
    Planted("03.1", "calls torch.softmax, which the exercise rebuilds", lambda: (_library_softmax,), "torch.softmax"),
    Planted("03.1", "exponentiates without subtracting the maximum", lambda: (_no_stability,), "inf or nan"),
    Planted("03.1", "zeroes the masked probabilities after the softmax, never renormalising",
            lambda: (_mask_after,), "renormalise"),
    Planted("03.1", "fills masked logits with -1e9: a fully masked row comes out uniform",
            lambda: (_fill_minus_1e9,), "fully masked"),
    Planted("03.1", "multiplies by the temperature instead of dividing", lambda: (_times_temperature,), "temperature"),
    Planted("03.1", "always normalises along the last axis, ignoring dim", lambda: (_ignores_dim,), "dim=0"),
    # 03.2 label-smoothed cross-entropy
    Planted("03.2", "calls F.cross_entropy(label_smoothing=...)", lambda: (_library_smoothed,), "F.cross_entropy"),
    Planted("03.2", "takes the log of a naive softmax: overflows at ±1000", lambda: (_naive_smoothed,), "inf or nan"),
    Planted("03.2", "spreads eps over the C - 1 other classes", lambda: (_smoothing_over_others,), "C - 1"),
    Planted("03.2", "forgets the smoothing term: plain cross-entropy", lambda: (_plain_ce,), "smoothing is missing"),
    Planted("03.2", "sums over the batch instead of averaging", lambda: (_summed_smoothed,), "mean"),
    # 03.3 predict the output (no hint states a right value: see test_03_3_hint_does_not_give_the_answer)
    Planted("03.3", "(a) divides the logits by their sum", lambda: ([0.5, 0.3, 0.2], 1.804, "CE", False), "exponentiates"),
    Planted("03.3", "(a) exponentials never normalised", lambda: ([148.41, 20.09, 7.39], 1.804, "CE", False), "sum to 1"),
    Planted("03.3", "(a) log_softmax instead of softmax", lambda: ([-0.17, -2.17, -3.17], 1.804, "CE", False),
            "log-probabilities"),
    Planted("03.3", "(b) sums the 6 losses instead of averaging", lambda: ([0.84, 0.11, 0.04], 10.827, "CE", False),
            "sum over the 6 rows"),
    Planted("03.3", "(b) applies softmax twice", lambda: ([0.84, 0.11, 0.04], 0.8925, "CE", False), "softmax twice"),
    Planted("03.3", "(c) thinks MSE has the larger gradient", lambda: ([0.84, 0.11, 0.04], 1.804, "MSE", False), "p = 0.01"),
    Planted("03.3", "(d) expects the FC net to cope with a 4 px shift",
            lambda: ([0.84, 0.11, 0.04], 1.804, "CE", True), "section 7"),
    # 03.4 BasicOptim with momentum
    Planted("03.4", "keeps the one-shot parameter generator", lambda: (_KeepsGenerator,), "generator"),
    Planted("03.4", "resets the velocity in every step (plain SGD)", lambda: (_NoVelocity,), "velocity"),
    Planted("03.4", "Weidman's form: lr baked into the velocity", lambda: (_WeidmanStyle,), "baked"),
    Planted("03.4", "zero_grad does nothing", lambda: (_NoZeroGrad,), "zero_grad"),
    Planted("03.4", "wraps torch.optim.SGD instead of writing the update", lambda: (_WrapsTorch,), "torch.optim"),
    # 03.5 a minimal Learner
    Planted("03.5", "validation pass records a graph", lambda: (_NoNoGrad,), "no_grad"),
    Planted("03.5", "recorder holds tensors", lambda: (_TensorRecorder,), "tensors"),
    Planted("03.5", "train_loss is the last batch's loss", lambda: (_LastBatchLoss,), "train_loss"),
    Planted("03.5", "a new optimizer (and learning rate) every epoch", lambda: (_NewOptimizerPerEpoch,), "optimizer"),
    Planted("03.5", "never resets the gradients", lambda: (_NoZeroGradLearner,), "zero_grad"),
    # 03.6 LeakyReLU and Softmax operations
    Planted("03.6", "LeakyReLU's slope on the positive side", lambda: (_FlippedLeaky, GoodSoftmax), "positive side"),
    Planted("03.6", "LeakyReLU's backward forgets the slope", lambda: (_ReluGradLeaky, GoodSoftmax), "finite-difference"),
    Planted("03.6", "Softmax backward uses only the Jacobian's diagonal", lambda: (GoodLeakyReLU, _DiagonalSoftmax),
            "every output"),
    Planted("03.6", "Softmax normalises the columns", lambda: (GoodLeakyReLU, _ColumnSoftmax), "axis=1"),
    Planted("03.6", "Softmax without the max shift", lambda: (GoodLeakyReLU, _UnstableSoftmax), "±1000"),
    # 03.7 framework momentum
    Planted("03.7", "torch's update (lr applied to the velocity)", lambda: (_TorchStyleMomentum, False), "step"),
    Planted("03.7", "rebinds the parameter instead of updating it in place", lambda: (_NotInPlaceMomentum, False),
            "in place"),
    Planted("03.7", "forgets the velocity between steps", lambda: (_ForgetfulMomentum, False), "velocity"),
    Planted("03.7", "says torch's momentum matches under decay", lambda: (GoodMomentum, True), "matches_torch_under_decay"),
    # 03.8 debug this module
    Planted("03.8", "keeps the plain Python list", lambda: (_Buggy,), "ModuleList"),
    Planted("03.8", "registers the layers but calls .forward()", lambda: (_HalfFixed,), "hooks"),
    Planted("03.8", "uses ReLU instead of tanh", lambda: (_ReluMLP,), "tanh"),
    Planted("03.8", "applies tanh after the last layer too", lambda: (_TanhAfterLast,), "none after the last"),
    # 03.9 near-linear or wiggly
    Planted("03.9", "an untrained nn.Linear(1, 1) as the smooth model",
            lambda: (_seeded_line(), _wiggly_net()), "hidden layer"),
    Planted("03.9", "an untrained tanh net as the smooth model (flat, not fitted)",
            lambda: (_untrained_tanh_net(), _wiggly_net()), "not learned"),
    Planted("03.9", "the two models swapped", lambda: (_wiggly_net(), _smooth_net()), "3 ×"),
    Planted("03.9", "a wiggle too faint to see", lambda: (_LineNet(), _LineNet(ripple=0.005)), "too small"),
    Planted("03.9", "a sharp net fitted to targets shuffled apart from their inputs",
            lambda: (_smooth_net(), _shuffled_targets_net()), "training loss"),
    Planted("03.9", "a least-squares line that is not a network", lambda: (_least_squares_line(), _wiggly_net()),
            "tanh network"),
    # 03.10 does dropout help
    Planted("03.10", "made-up numbers with consistent statistics",
            lambda: _report([0.90, 0.91, 0.92], [0.95, 0.96, 0.97]), "retrained here"),
    Planted("03.10", "the dropout runs rounded up to two decimals", _rounded_up_dropout, "unrounded"),
    Planted("03.10", "training accuracies instead of validation ones",
            lambda: _report(_ladder_vals(1.0, 1), _ladder_vals(0.8, 1)), "training accuracy"),
    Planted("03.10", "each rung-5 run nudged by 0.001",
            lambda: _report(dict(zip((1, 2, 3), [v + 0.001 for v in _ladder_vals(1.0)])), _ladder_vals(0.8)), "rung 5"),
    Planted("03.10", "dropout_helps contradicts the statistics", _wrong_helps, "dropout_helps"),
    Planted("03.10", "only two seeds per arm",
            lambda: ([0.925, 0.918], [0.929, 0.931], (0.9215, 0.93), (0.005, 0.001), False), "at least 3"),
    Planted("03.10", "percentages instead of fractions",
            lambda: ([92.5, 91.8, 93.1], [0.929, 0.931, 0.927], (92.47, 0.929), (0.65, 0.002), False), "fractions"),
    Planted("03.10", "the two means swapped",
            lambda: (lambda r: (r[0], r[1], r[2][::-1], r[3], r[4]))(_report([0.925, 0.918, 0.931], [0.929, 0.931, 0.927])),
            "means"),
    Planted("03.10", "variances reported as standard deviations",
            lambda: (lambda r: (r[0], r[1], r[2], (r[3][0] ** 2, r[3][1] ** 2), r[4]))(
                _report([0.925, 0.918, 0.931], [0.929, 0.931, 0.927])), "stds"),
    # 03.11 the widest network within a budget
    Planted("03.11", "forgets the output layer's biases",
            lambda: (lambda n_in, n_out, budget: max(0, budget // (n_in + 1 + n_out)),), "biases"),
    Planted("03.11", "forgets all biases", lambda: (lambda n_in, n_out, budget: budget // (n_in + n_out),), "over the budget"),
    Planted("03.11", "a strict < instead of <= (misses exact budgets)",
            lambda: (lambda n_in, n_out, budget: max(0, (budget - n_out - 1) // (n_in + 1 + n_out)),), "exactly"),
    Planted("03.11", "rounds to the nearest width instead of down",
            lambda: (lambda n_in, n_out, budget: max(0, round((budget - n_out) / (n_in + 1 + n_out))),), "round the width down"),
    Planted("03.11", "returns the float quotient", lambda: (lambda n_in, n_out, budget: (budget - n_out) / (n_in + 1 + n_out),),
            "int"),
    # 03.12 beat the line on diamonds
    Planted("03.12", "returns the least-squares line itself", lambda: (_line_module(),), "least-squares"),
    Planted("03.12", "an untrained network", lambda: (_untrained_net(),), "enough training"),
    Planted("03.12", "trained on the test rows, 20 epochs", lambda: _on_test_rows(1, 20, 32), "seen the test set"),
    Planted("03.12", "trained on the test rows, 60 epochs, wider", lambda: _on_test_rows(2, 60, 64), "seen the test set"),
    Planted("03.12", "looks the test prices up", _lookup_test_prices, "seen the test set"),
]

test_planted_mistake_is_rejected_with_a_hint = planted_test(PLANTED)  # tests/test_planted.py checks it is here
