"""Tests of the 02_autograd checks: a correct answer passes, planted wrong answers, stubs and crashing
answers fail, and no check ever raises.

The full notebook under nbval already proves that the chapter's reference solutions pass, so the
correct answers here are written another way (closed forms, other algorithms, other library calls),
so that a check which only accepts one spelling of the answer shows up as a failing test.
tests/test_checks_independent.py keeps chapter code out, except fixtures marked
`# planted: copied from the chapter`.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from check_helpers import crash, fails, passes, returns_none
from course_utils.checks import run_check
from course_utils.data import thermometer


# ----------------------------------------------------------------------------------------------
# 02.1 central differences
# ----------------------------------------------------------------------------------------------


def central(f, x, delta=1e-3):
    """The mean of the forward and the backward difference: the central difference, written another way."""
    fx = f(x)
    return ((f(x + delta) - fx) / delta + (fx - f(x - delta)) / delta) / 2


def one_sided(f, x, delta=1e-3):
    """The slope of the secant from x to x + delta (the forward difference, as a slope)."""
    x1 = x + delta
    return (f(x1) - f(x)) / (x1 - x)


def test_02_1_correct():
    passes("02.1", central, one_sided)
    # a backward difference is also one-sided, hence also less accurate
    passes("02.1", central, lambda f, x, delta=1e-3: (f(x) - f(x - delta)) / delta)


def test_02_1_wrong():
    fails("02.1", one_sided, one_sided)                                                  # forward as central
    fails("02.1", lambda f, x, delta=1e-3: (f(x + delta) - f(x - delta)) / delta, one_sided)  # missing the 2
    fails("02.1", central, central, mentions="not less accurate")                        # "forward" is central
    fails("02.1", central, lambda f, x, delta=1e-3: np.zeros_like(x))                    # garbage forward
    fails("02.1", lambda f, x, delta=1e-3: float(np.mean(central(f, x))), one_sided)      # not elementwise


def test_02_1_stubs_and_crashes():
    fails("02.1", ..., ..., mentions="not answered")
    fails("02.1", None, None)
    fails("02.1", returns_none, returns_none, mentions="returned None")
    fails("02.1", crash, one_sided, mentions="RuntimeError")
    fails("02.1", 3.0, one_sided, mentions="should be a function")


# ----------------------------------------------------------------------------------------------
# 02.2 chain of three
# ----------------------------------------------------------------------------------------------


def whole_chain_numeric(f1, f2, f3, x):
    h = 1e-5
    return (f3(f2(f1(x + h))) - f3(f2(f1(x - h)))) / (2 * h)


def test_02_2_correct():
    passes("02.2", whole_chain_numeric)

    def link_by_link(f1, f2, f3, x):  # forward accumulation: each link's derivative at the value flowing in
        grad, value = 1.0, x
        for f in (f1, f2, f3):
            grad, value = grad * central(f, value), f(value)
        return grad

    passes("02.2", link_by_link)


def test_02_2_wrong():
    # every link's derivative taken at x instead of at the value flowing into it
    fails("02.2", lambda f1, f2, f3, x: central(f3, x) * central(f2, x) * central(f1, x), mentions="values that flow")
    # the inner factor forgotten
    fails("02.2", lambda f1, f2, f3, x: central(f3, f2(f1(x))) * central(f2, f1(x)))
    # the chain composed in the wrong order
    fails("02.2", lambda f1, f2, f3, x: whole_chain_numeric(f3, f2, f1, x))


def test_02_2_stubs_and_crashes():
    fails("02.2", ..., mentions="not answered")
    fails("02.2", returns_none, mentions="returned None")
    fails("02.2", crash, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 02.3 gradient of the linear model
# ----------------------------------------------------------------------------------------------


def grad_closed_form(t_u, t_c, t_p, w, b):
    residual = t_p - t_c
    return torch.tensor([2 * (residual * t_u).mean().item(), 2 * residual.mean().item()], dtype=torch.float64)


def test_02_3_correct():
    passes("02.3", grad_closed_form)
    passes("02.3", lambda t_u, t_c, t_p, w, b: grad_closed_form(t_u, t_c, t_p, w, b).tolist())


def test_02_3_wrong():
    fails("02.3", lambda *a: grad_closed_form(*a) * len(a[0]))         # sum instead of mean
    fails("02.3", lambda *a: grad_closed_form(*a) / 2)                  # the factor 2 forgotten
    fails("02.3", lambda *a: grad_closed_form(*a).flip(0))              # [b, w] instead of [w, b]
    fails("02.3", lambda *a: -grad_closed_form(*a))                     # sign flipped
    fails("02.3", lambda t_u, t_c, t_p, w, b: torch.stack([2 * (t_p - t_c) * t_u, 2 * (t_p - t_c)]), mentions="shape (2,)")


def test_02_3_stubs_and_crashes():
    fails("02.3", ..., mentions="not answered")
    fails("02.3", returns_none, mentions="returned None")
    fails("02.3", crash, mentions="RuntimeError")
    fails("02.3", lambda *a: "gradient")


# ----------------------------------------------------------------------------------------------
# 02.4 predict the output
# ----------------------------------------------------------------------------------------------


def test_02_4_correct():
    passes("02.4", 12, None, False, False)
    passes("02.4", 12.0, None, torch.tensor(False), np.bool_(False))
    passes("02.4", torch.tensor(12.0), None, False, False)


def test_02_4_wrong_items_are_named():
    fails("02.4", 6.0, None, False, False, mentions="(a)")
    fails("02.4", 36.0, None, False, False, mentions="(a)")
    fails("02.4", 12.0, torch.zeros(3), False, False, mentions="(b)")
    fails("02.4", 12.0, 0, False, False, mentions="(b)")
    fails("02.4", 12.0, None, True, False, mentions="(c)")
    fails("02.4", 12.0, None, False, True, mentions="(d)")
    line = fails("02.4", 6.0, torch.zeros(3), True, True)
    assert all(item in line for item in ("(a)", "(b)", "(c)", "(d)")), line
    fails("02.4", "12", None, "False", "False", mentions="should be")


# Plausible slips; the ❌ line names the item and must not state its value (12, None, False).
@pytest.mark.parametrize("answers, item", [
    ((6.0, None, False, False), "(a)"),                  # forgot that backward() accumulates
    ((9.0, None, False, False), "(a)"),                  # took y = x ** 2 itself, not its derivative
    ((0.0, None, False, False), "(a)"),                  # thought the second backward() resets .grad
    ((12.0, torch.zeros(3), False, False), "(b)"),       # zeros, as before PyTorch 2.0
    ((12.0, 0.0, False, False), "(b)"),
    ((12.0, torch.full((3,), 2.0), False, False), "(b)"),  # the gradient left untouched
    ((12.0, None, True, False), "(c)"),                  # detach() taken to keep tracking
    ((12.0, None, False, True), "(d)"),                  # x requires grad, so everything derived from it does
])
def test_02_4_hint_does_not_give_the_answer(answers, item):
    line = fails("02.4", *answers, mentions=item)
    message = line.split(":", 1)[1]
    assert "12" not in message and "None" not in message and "False" not in message, line
    assert "section" in message, line  # points at where to reread


def test_02_4_stubs():
    fails("02.4", ..., ..., ..., ..., mentions="not answered")
    fails("02.4", 12.0, ..., False, False, mentions="(b) grad_after_zero_grad")


# ----------------------------------------------------------------------------------------------
# 02.5 debug the training loop
# ----------------------------------------------------------------------------------------------


def linear(t, w, b):
    return w * t + b


def mse(pred, target):
    return ((pred - target) ** 2).mean()


def train_with_optim(n_epochs, learning_rate, params, train_u, train_c, val_u, val_c):
    params = params.detach().clone().requires_grad_(True)
    opt = torch.optim.SGD([params], lr=learning_rate)
    for _ in range(n_epochs):
        opt.zero_grad()
        mse(linear(train_u, *params), train_c).backward()
        opt.step()
        with torch.no_grad():
            val_loss = mse(linear(val_u, *params), val_c)
    return params, val_loss


def train_variant(zero=True, val_in_backward=False, val_no_grad=True, copy=True, item=False):
    """The planted mistakes: the chapter's fixed loop with one bug switched back on by a flag."""

    def train(n_epochs, learning_rate, params, train_u, train_c, val_u, val_c):
        params = params.detach().clone().requires_grad_(True) if copy else params.requires_grad_(True)
        for _ in range(n_epochs):
            train_loss = mse(linear(train_u, *params), train_c)
            if val_no_grad:
                with torch.no_grad():
                    val_loss = mse(linear(val_u, *params), val_c)
            else:
                val_loss = mse(linear(val_u, *params), val_c)
            if zero and params.grad is not None:
                params.grad.zero_()
            (train_loss + val_loss if val_in_backward else train_loss).backward()
            with torch.no_grad():
                params -= learning_rate * params.grad
        return params, (val_loss.item() if item else val_loss)

    return train


def train_functional(n_epochs, learning_rate, params, train_u, train_c, val_u, val_c):
    """No .grad at all: torch.autograd.grad returns each epoch's gradient, so there is nothing to zero."""
    p = params.detach().clone()
    for _ in range(n_epochs):
        p.requires_grad_(True)
        (grad,) = torch.autograd.grad(mse(linear(train_u, *p), train_c), p)
        p = (p - learning_rate * grad).detach()
        val_loss = mse(linear(val_u, *p), val_c)
    return p, val_loss


def test_02_5_correct():
    passes("02.5", train_with_optim)
    passes("02.5", train_functional)


def test_02_5_wrong():
    fails("02.5", train_variant(zero=False), mentions="trained params")
    fails("02.5", train_variant(val_in_backward=True, val_no_grad=False), mentions="trained params")
    fails("02.5", train_variant(val_no_grad=False), mentions="requires_grad=True")
    fails("02.5", train_variant(copy=False), mentions="changed a tensor")
    fails("02.5", train_variant(item=True), mentions="not .item()")
    fails("02.5", lambda *a: train_variant()(*a)[0], mentions="two things")


def test_02_5_stubs_and_crashes():
    fails("02.5", ..., mentions="not answered")
    fails("02.5", returns_none, mentions="returned None")
    fails("02.5", crash, mentions="RuntimeError")

    def buggy_train(n_epochs, learning_rate, params, train_u, train_c, val_u, val_c):  # planted: copied from the chapter
        params = params.detach().clone().requires_grad_(True)
        for _ in range(n_epochs):
            train_loss = mse(linear(train_u, *params), train_c)
            val_loss = mse(linear(val_u, *params), val_c)
            (train_loss + val_loss).backward()
            params -= learning_rate * params.grad
        return params, val_loss

    fails("02.5", buggy_train, mentions="leaf Variable")


# ----------------------------------------------------------------------------------------------
# 02.6 critical learning rate
# ----------------------------------------------------------------------------------------------


def crit_closed_form(x):
    x = torch.as_tensor(x, dtype=torch.float64)
    a, c, d = 2 * (x * x).mean().item(), 2 * x.mean().item(), 2.0
    lam_max = (a + d) / 2 + math.sqrt(((a - d) / 2) ** 2 + c * c)
    return 2 / lam_max


def predict(x, lr):
    return lr > crit_closed_form(x)


_, T_U = thermometer()


def test_02_6_correct():
    passes("02.6", crit_closed_form, predict, crit_closed_form(T_U), crit_closed_form(0.1 * T_U))
    passes("02.6", lambda x: torch.tensor(crit_closed_form(x)), lambda x, lr: torch.tensor(predict(x, lr)),
           torch.tensor(crit_closed_form(T_U)), crit_closed_form(0.1 * T_U))


def test_02_6_wrong():
    only_weight = lambda x: 2 / (2 * (torch.as_tensor(x, dtype=torch.float64) ** 2).mean().item())  # noqa: E731
    fails("02.6", only_weight, predict, crit_closed_form(T_U), crit_closed_form(0.1 * T_U), mentions="whole matrix")
    fails("02.6", lambda x: crit_closed_form(x) * len(x) / 2, predict, 1.0, 1.0)           # no 2/N factor
    fails("02.6", crit_closed_form, lambda x, lr: lr > crit_closed_form(x) / 2,            # threshold 1/λ
          crit_closed_form(T_U), crit_closed_form(0.1 * T_U), mentions="300 real steps")
    fails("02.6", crit_closed_form, lambda x, lr: True, crit_closed_form(T_U), crit_closed_form(0.1 * T_U))
    fails("02.6", crit_closed_form, lambda x, lr: "yes", crit_closed_form(T_U), crit_closed_form(0.1 * T_U))
    fails("02.6", crit_closed_form, predict, crit_closed_form(0.1 * T_U), crit_closed_form(T_U), mentions="other input")


def test_02_6_stubs_and_crashes():
    fails("02.6", ..., ..., ..., ..., mentions="not answered")
    fails("02.6", returns_none, predict, 1.0, 1.0, mentions="returned None")
    fails("02.6", crit_closed_form, predict, ..., ..., mentions="not answered")
    fails("02.6", crit_closed_form, crash, 1.0, 1.0, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 02.7 one more parameter
# ----------------------------------------------------------------------------------------------


def _quadratic_answer(val_idx=(5, 4)):
    t_c, t_u = thermometer()
    t, y = (0.1 * t_u).double(), t_c.double()
    val = list(val_idx)
    train = [i for i in range(11) if i not in val]
    tr, va = torch.tensor(train), torch.tensor(val)
    lin_design = torch.stack([t, torch.ones_like(t)], 1)
    quad_design = torch.stack([t ** 2, t, torch.ones_like(t)], 1)
    lin = torch.linalg.lstsq(lin_design[tr], y[tr, None]).solution[:, 0]
    quad = torch.linalg.lstsq(quad_design[tr], y[tr, None]).solution[:, 0]

    def loss(design, p, idx):
        return ((design[idx] @ p - y[idx]) ** 2).mean().item()

    quad_losses = (loss(quad_design, quad, tr), loss(quad_design, quad, va))
    lin_losses = (loss(lin_design, lin, tr), loss(lin_design, lin, va))
    better = "quadratic" if quad_losses[1] < lin_losses[1] else "linear"
    return [quad.float(), lin.float(), tr, va, quad_losses, lin_losses, better]


def test_02_7_correct():
    passes("02.7", *_quadratic_answer())
    answer = _quadratic_answer(val_idx=(0, 3, 7))
    answer[2], answer[3] = answer[2].tolist(), answer[3].tolist()
    answer[6] = answer[6].upper()
    passes("02.7", *answer)


def test_02_7_wrong():
    answer = _quadratic_answer()
    flipped = "linear" if answer[6] == "quadratic" else "quadratic"
    fails("02.7", *answer[:6], flipped, mentions="validation losses say")
    fails("02.7", *answer[:6], "the curve")
    fails("02.7", answer[0], *answer[1:4], (answer[4][0] * 1.1, answer[4][1]), *answer[5:], mentions="quad_losses[0]")
    fails("02.7", answer[0], *answer[1:4], answer[4], (answer[5][1], answer[5][0]), answer[6], mentions="lin_losses")
    untrained = torch.zeros(3)
    t_c, t_u = thermometer()
    t, y = 0.1 * t_u, t_c
    tr, va = answer[2], answer[3]
    bad_losses = (((0 * t[tr] - y[tr]) ** 2).mean().item(), ((0 * t[va] - y[va]) ** 2).mean().item())
    fails("02.7", untrained, answer[1], tr, va, bad_losses, answer[5],
          "quadratic" if bad_losses[1] < answer[5][1] else "linear", mentions="above the best the line can do")
    fails("02.7", answer[0], answer[1], tr, tr, *answer[4:], mentions="disjoint")
    fails("02.7", answer[0][:2], *answer[1:], mentions="shape (3,)")
    fails("02.7", answer[0], torch.tensor([1.0, 0.0]), *answer[2:], mentions="lin_losses")


def test_02_7_stubs():
    answer = _quadratic_answer()
    fails("02.7", ..., answer[1], answer[2], answer[3], ..., ..., ..., mentions="not answered")
    fails("02.7", *answer[:6], ..., mentions="not answered")


# ----------------------------------------------------------------------------------------------
# 02.8 scalar autodiff
# ----------------------------------------------------------------------------------------------


class Scalar:
    """micrograd-style: each node keeps a closure that pushes its gradient to its parents."""

    def __init__(self, data, children=()):
        self.data = float(data)
        self.grad = 0.0
        self._children = tuple(children)
        self._push = lambda: None

    def of(self, v):
        return v if isinstance(v, Scalar) else type(self)(v)

    def __add__(self, other):
        other = self.of(other)
        out = type(self)(self.data + other.data, (self, other))

        def push():
            self.grad += out.grad
            other.grad += out.grad

        out._push = push
        return out

    def __mul__(self, other):
        other = self.of(other)
        out = type(self)(self.data * other.data, (self, other))

        def push():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._push = push
        return out

    def __pow__(self, k):
        out = type(self)(self.data ** k, (self,))

        def push():
            self.grad += k * self.data ** (k - 1) * out.grad

        out._push = push
        return out

    def _unary(self, value, local):
        out = type(self)(value, (self,))

        def push():
            self.grad += local * out.grad

        out._push = push
        return out

    def tanh(self):
        t = math.tanh(self.data)
        return self._unary(t, 1 - t * t)

    def exp(self):
        e = math.exp(self.data)
        return self._unary(e, e)

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + -self.of(other)

    def __rsub__(self, other):
        return self.of(other) + -self

    def __truediv__(self, other):
        return self * self.of(other) ** -1

    def __rtruediv__(self, other):
        return self.of(other) * self ** -1

    __radd__ = __add__
    __rmul__ = __mul__

    def _nodes(self):
        # iterative post-order DFS
        order, seen, stack = [], set(), [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((child, False) for child in node._children)
        return order

    def backward(self):
        self.grad = 1.0
        for node in reversed(self._nodes()):
            node._push()

    def zero_grad(self):
        for node in self._nodes():
            node.grad = 0.0


def test_02_8_correct():
    passes("02.8", Scalar)


def test_02_8_wrong():
    class Overwrites(Scalar):                 # `=` instead of `+=` for the leaves' grads
        def __add__(self, other):
            other = self.of(other)
            out = Overwrites(self.data + other.data, (self, other))

            def push():
                self.grad = out.grad
                other.grad = out.grad

            out._push = push
            return out

        __radd__ = __add__

    class NoDedupe(Scalar):                   # visits shared nodes once per path
        def _nodes(self):
            order = []

            def visit(node):
                for child in node._children:
                    visit(child)
                order.append(node)

            visit(self)
            return order

    class LazyZero(Scalar):                   # zero_grad forgets everything but the output
        def zero_grad(self):
            self.grad = 0.0

    class NoRtruediv(Scalar):
        __rtruediv__ = None

    fails("02.8", Overwrites, mentions="expected")
    fails("02.8", NoDedupe, mentions="topological")
    fails("02.8", LazyZero, mentions="zero_grad()")
    fails("02.8", NoRtruediv, mentions="building")


def test_02_8_stubs_and_crashes():
    class Empty:
        ...

    class Broken:
        def __init__(self, data):
            raise RuntimeError("boom")

    fails("02.8", Empty, mentions="still empty")
    fails("02.8", ..., mentions="not answered")
    fails("02.8", None, mentions="not answered")
    fails("02.8", Broken, mentions="RuntimeError")
    fails("02.8", 42, mentions="should be a function")


# ----------------------------------------------------------------------------------------------
# 02.9 backpropagation by hand
# ----------------------------------------------------------------------------------------------


def manual_backprop(x, y, w1, b1, w2, b2, mse_scale=2.0, relu_mask=True, bias_dim=0):
    pre = x @ w1 + b1
    hidden = pre.clamp_min(0)
    out = hidden @ w2 + b2
    n = y.shape[0]
    d_out = mse_scale * (out[:, 0] - y)[:, None] / n
    b2.g = d_out.sum(bias_dim)
    w2.g = torch.einsum("ni,nj->ij", hidden, d_out)
    d_hidden = d_out @ w2.T
    d_pre = d_hidden * (pre > 0) if relu_mask else d_hidden
    b1.g = d_pre.sum(0)
    w1.g = torch.einsum("ni,nj->ij", x, d_pre)
    x.g = d_pre @ w1.T
    return ((out[:, 0] - y) ** 2).mean()


def test_02_9_correct():
    passes("02.9", manual_backprop)

    def no_return(*args):
        manual_backprop(*args)

    passes("02.9", no_return)   # fastai's version returns nothing; the .g attributes are the answer


def test_02_9_wrong():
    fails("02.9", lambda *a: manual_backprop(*a, mse_scale=1.0), mentions=".g")
    fails("02.9", lambda *a: manual_backprop(*a, relu_mask=False), mentions=".g")
    fails("02.9", lambda *a: manual_backprop(*a, bias_dim=1))

    def forgets_x(x, *rest):
        manual_backprop(x, *rest)
        del x.g

    fails("02.9", forgets_x, mentions="`x` has no `.g`")


def test_02_9_stubs_and_crashes():
    fails("02.9", ..., mentions="not answered")
    fails("02.9", returns_none, mentions="no tensor has a `.g`")
    fails("02.9", crash, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 02.10 stable softplus
# ----------------------------------------------------------------------------------------------


class WhereSoftplus(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        positive = x + torch.log1p(torch.exp(-x))
        negative = torch.log1p(torch.exp(x))
        return torch.where(x > 0, positive, negative)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output / (1 + torch.exp(-x))


def test_02_10_correct():
    passes("02.10", WhereSoftplus)


def test_02_10_wrong():
    class Naive(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return torch.log(1 + torch.exp(x))

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * x.sigmoid()

    class IgnoresGradOutput(WhereSoftplus):
        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return torch.sigmoid(x)

    class NaiveBackward(WhereSoftplus):
        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * torch.exp(x) / (1 + torch.exp(x))

    class WrongDerivative(WhereSoftplus):
        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * torch.tanh(x)

    fails("02.10", Naive, mentions="inf or nan")
    fails("02.10", IgnoresGradOutput, mentions="gradcheck")
    fails("02.10", NaiveBackward, mentions="gradient")
    fails("02.10", WrongDerivative, mentions="gradient")
    fails("02.10", torch.nn.functional.softplus, mentions="subclasses")


def test_02_10_stubs_and_crashes():
    class Stub(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ...

        @staticmethod
        def backward(ctx, grad_output):
            ...

    class Crashes(WhereSoftplus):
        @staticmethod
        def forward(ctx, x):
            raise RuntimeError("boom")

    fails("02.10", ..., mentions="not answered")
    fails("02.10", Stub, mentions="returned None")
    fails("02.10", Crashes, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 02.11 reproducible split
# ----------------------------------------------------------------------------------------------


def split_by_sorting_random_keys(n, val_frac, generator):
    keys = torch.rand(n, generator=generator)
    order = keys.argsort()
    n_val = int(val_frac * n)
    return order[n_val:].tolist(), order[:n_val].tolist()


def test_02_11_correct():
    passes("02.11", split_by_sorting_random_keys)
    passes("02.11", lambda n, f, g: (lambda p: (p[: n - int(f * n)], p[n - int(f * n):]))(torch.randperm(n, generator=g)))


def test_02_11_wrong():
    def rounds(n, val_frac, generator):
        p = torch.randperm(n, generator=generator)
        k = round(val_frac * n)
        return p[k:], p[:k]

    def global_rng(n, val_frac, generator):
        p = torch.randperm(n)
        k = int(val_frac * n)
        return p[k:], p[:k]

    def with_replacement(n, val_frac, generator):
        k = int(val_frac * n)
        val = torch.randint(0, n, (k,), generator=generator)
        return torch.arange(n), val

    def not_shuffled(n, val_frac, generator):
        k = int(val_frac * n)
        return torch.arange(k, n), torch.arange(k)

    fails("02.11", rounds, mentions="validation indices")
    fails("02.11", global_rng, mentions="seeded alike")
    fails("02.11", with_replacement, mentions="both")
    fails("02.11", not_shuffled, mentions="random at all")
    fails("02.11", lambda n, f, g: torch.randperm(n, generator=g), mentions="two things")


def test_02_11_stubs_and_crashes():
    fails("02.11", ..., mentions="not answered")
    fails("02.11", returns_none, mentions="returned None")
    fails("02.11", crash, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# every check: never raises, never moves the caller's random state
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exercise_id", [f"02.{k}" for k in range(1, 12)])
def test_never_raises_and_keeps_rng(exercise_id):
    torch.manual_seed(123)
    np.random.seed(123)
    expected_torch = torch.rand(3)
    expected_np = np.random.rand(3)
    torch.manual_seed(123)
    np.random.seed(123)
    for answers in [(), (None,), (crash,) * 7, (object(),) * 7, ("text",) * 7]:
        ok, line = run_check(exercise_id, *answers)
        assert not ok and line.startswith(f"❌ {exercise_id} ")
    assert torch.equal(torch.rand(3), expected_torch)
    assert np.array_equal(np.random.rand(3), expected_np)
