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

from check_helpers import Planted, crash, fails, passes, planted_test, returns_none
from course_utils.checks import run_check
from course_utils.data import thermometer


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# ----------------------------------------------------------------------------------------------
# 02.1 a numerical gradient
# ----------------------------------------------------------------------------------------------


def grad_by_unit_vectors(f, x, delta=1e-5):
    """Each partial derivative as the mean of a forward and a backward slope along a unit vector."""
    flat = x.reshape(-1)
    out = []
    for e in np.eye(flat.size):
        up, down = f((flat + delta * e).reshape(x.shape)), f((flat - delta * e).reshape(x.shape))
        centre = f(x)
        out.append(((up - centre) + (centre - down)) / (2 * delta))
    return np.array(out).reshape(x.shape)


def grad_in_place(f, x, delta=1e-5):
    """Bumps x in place and puts every element back before moving on."""
    g = np.empty_like(x)
    for i in np.ndindex(x.shape):
        kept = x[i]
        x[i] = kept + delta
        up = f(x)
        x[i] = kept - delta
        down = f(x)
        x[i] = kept
        g[i] = (up - down) / (2 * delta)
    return g


def grad_variant(divide_by=2.0, one_sided=False, all_at_once=False, restore=True):
    """The planted mistakes: a central-difference gradient with one slip switched on by a flag."""

    def numerical_grad(f, x, delta=1e-5):
        if all_at_once:
            value = (f(x + delta) - f(x - delta)) / (2 * delta)
            return np.full_like(x, value)
        g = np.zeros_like(x)
        for i in np.ndindex(x.shape):
            x[i] += delta
            up = f(x)
            x[i] -= delta if one_sided else 2 * delta
            down = f(x)
            if restore:
                x[i] += 0 if one_sided else delta
            g[i] = (up - down) / (delta if one_sided else divide_by * delta)
        return g

    return numerical_grad


def test_02_1_correct():
    passes("02.1", grad_by_unit_vectors)
    passes("02.1", grad_in_place)
    passes("02.1", lambda f, x, delta=1e-5: torch.tensor(grad_in_place(f, x.copy(), delta)))


def test_02_1_stubs_and_crashes():
    fails("02.1", ..., mentions="not answered")
    fails("02.1", None, mentions="not answered")
    fails("02.1", returns_none, mentions="returned None")
    fails("02.1", crash, mentions="RuntimeError")
    fails("02.1", 3.0, mentions="should be a function")
    fails("02.1", lambda f, x, delta=1e-5: grad_in_place(f, x.copy(), delta).sum(), mentions="one partial derivative")


# ----------------------------------------------------------------------------------------------
# 02.2 a chain of any length
# ----------------------------------------------------------------------------------------------


def chain_backward(chain, x):
    """Forward pass storing every input, then the local slopes multiplied from the last link back."""
    inputs = []
    for f in chain:
        inputs.append(x)
        x = f(x)
    grad = 1.0
    for f, u in zip(reversed(chain), reversed(inputs)):
        grad = grad * central(f, u, 1e-4)
    return grad


def chain_forward_mode(chain, x):
    """Forward accumulation, one element at a time, with a one-sided-free central slope of step 1e-5."""
    out = []
    for xi in np.asarray(x).tolist():
        value, grad = xi, 1.0
        for f in chain:
            grad *= (f(value + 1e-5) - f(value - 1e-5)) / 2e-5
            value = f(value)
        out.append(grad)
    return np.array(out)


def whole_chain_numeric(chain, x):
    def composed(v):
        for f in chain:
            v = f(v)
        return v
    return central(composed, x, 1e-5)


def test_02_2_correct():
    passes("02.2", chain_backward)
    passes("02.2", chain_forward_mode)


def test_02_2_stubs_and_crashes():
    fails("02.2", ..., mentions="not answered")
    fails("02.2", returns_none, mentions="returned None")
    fails("02.2", crash, mentions="RuntimeError")


def central(f, x, delta=1e-3):
    """The mean of the forward and the backward difference: the central difference, written another way."""
    fx = f(x)
    return ((f(x + delta) - fx) / delta + (fx - f(x - delta)) / delta) / 2


# ----------------------------------------------------------------------------------------------
# 02.3 gradient of the quadratic model
# ----------------------------------------------------------------------------------------------


def grad_quad_closed_form(t, t_c, t_p, w2, w1, b):
    r = 2 * (t_p - t_c)
    return torch.tensor([(r * t * t).mean().item(), (r * t).mean().item(), r.mean().item()], dtype=torch.float64)


def grad_quad_design(t, t_c, t_p, w2, w1, b):
    design = torch.stack([t ** 2, t, torch.ones_like(t)], 1)   # columns: how t_p moves with each parameter
    return (2 / len(t)) * design.T @ (t_p - t_c)


def test_02_3_correct():
    passes("02.3", grad_quad_closed_form)
    passes("02.3", grad_quad_design)
    passes("02.3", lambda *a: grad_quad_closed_form(*a).tolist())


def test_02_3_stubs_and_crashes():
    fails("02.3", ..., mentions="not answered")
    fails("02.3", returns_none, mentions="returned None")
    fails("02.3", crash, mentions="RuntimeError")
    fails("02.3", lambda *a: "gradient")
    fails("02.3", lambda t, t_c, t_p, w2, w1, b: 2 * (t_p - t_c), mentions="shape (3,)")


# ----------------------------------------------------------------------------------------------
# 02.4 predict the output
# ----------------------------------------------------------------------------------------------

RIGHT_C, RIGHT_D = (False, False, True), (False, True, True)


def test_02_4_correct():
    passes("02.4", 12, None, RIGHT_C, RIGHT_D)
    passes("02.4", 12.0, None, [torch.tensor(False), np.bool_(False), True], list(RIGHT_D))
    passes("02.4", torch.tensor(12.0), None, RIGHT_C, RIGHT_D)


def test_02_4_every_wrong_item_is_named():
    line = fails("02.4", 6.0, torch.zeros(3), (True, True, True), (False, False, False))
    assert all(item in line for item in ("(a)", "(b)", "(c)", "(d)")), line
    fails("02.4", "12", None, "False", "False", mentions="should be")
    fails("02.4", 12, None, False, RIGHT_D, mentions="(c) should be three")


# Plausible slips; the ❌ line names the item and must not state its value (12, None, a pattern of booleans).
@pytest.mark.parametrize("answers, item", [
    ((6.0, None, RIGHT_C, RIGHT_D), "(a)"),                  # forgot that backward() accumulates
    ((9.0, None, RIGHT_C, RIGHT_D), "(a)"),                  # took y = x ** 2 itself, not its derivative
    ((0.0, None, RIGHT_C, RIGHT_D), "(a)"),                  # thought the second backward() resets .grad
    ((12.0, torch.zeros(3), RIGHT_C, RIGHT_D), "(b)"),       # zeros, as before PyTorch 2.0
    ((12.0, 0.0, RIGHT_C, RIGHT_D), "(b)"),
    ((12.0, torch.full((3,), 2.0), RIGHT_C, RIGHT_D), "(b)"),  # the gradient left untouched
    ((12.0, None, (False, False, False), RIGHT_D), "(c)"),   # requires_grad_() on a detached tensor forgotten
    ((12.0, None, (True, False, True), RIGHT_D), "(c)"),     # detach() taken to keep tracking
    ((12.0, None, RIGHT_C, (False, False, False)), "(d)"),   # no_grad() taken to switch leaves off
    ((12.0, None, RIGHT_C, (False, True, False)), "(d)"),    # a no_grad result taken to poison later ops
])
def test_02_4_hint_does_not_give_the_answer(answers, item):
    line = fails("02.4", *answers, mentions=item)
    message = line.split(":", 1)[1]
    assert "12" not in message and "None" not in message and "False" not in message, line
    assert "third" not in message and "one of the three" not in message, line  # (c)/(d): never which of the three
    assert "section" in message, line  # points at where to reread


def test_02_4_stubs():
    fails("02.4", ..., ..., ..., ..., mentions="not answered")
    fails("02.4", 12.0, ..., RIGHT_C, RIGHT_D, mentions="(b) grad_after_zero_grad")


# ----------------------------------------------------------------------------------------------
# 02.5 debug: keep the best epoch
# ----------------------------------------------------------------------------------------------


def linear(t, w, b):
    return w * t + b


def mse(pred, target):
    return ((pred - target) ** 2).mean()


def fit_best_functional(n_epochs, learning_rate, params, train_u, train_c, val_u, val_c):
    """No .grad and no optimizer: autograd.grad returns each epoch's gradient."""
    p = params.detach().clone()
    history, best = [], None
    for _ in range(n_epochs):
        p.requires_grad_(True)
        (grad,) = torch.autograd.grad(mse(linear(train_u, *p), train_c), p)
        p = (p - learning_rate * grad).detach()
        history.append(mse(linear(val_u, *p), val_c).item())
        if history[-1] == min(history):
            best = p
    return best, history


def fit_best_variant(zero="before", val_graph=False, alias=False, keep_tensors=False):
    """The planted mistakes: an optimizer loop with one bug switched back on by a flag."""

    def fit_best(n_epochs, learning_rate, params, train_u, train_c, val_u, val_c):
        params = params.detach().clone().requires_grad_(True)
        opt = torch.optim.SGD([params], lr=learning_rate)
        history, best, best_loss = [], None, float("inf")
        for _ in range(n_epochs):
            if zero == "before":
                opt.zero_grad()
            mse(linear(train_u, *params), train_c).backward()
            if zero == "between":
                opt.zero_grad()
            opt.step()
            with torch.set_grad_enabled(val_graph):
                val_loss = mse(linear(val_u, *params), val_c)
            history.append(val_loss if keep_tensors else val_loss.item())
            if val_loss.item() < best_loss:
                best_loss = val_loss.item()
                best = params if alias else params.detach().clone()
        return best, history

    return fit_best


def test_02_5_correct():
    passes("02.5", fit_best_functional)
    passes("02.5", fit_best_variant())
    with_tensors = fit_best_variant(keep_tensors=True)   # detached 0-d tensors in the history are fine
    passes("02.5", with_tensors)


def test_02_5_stubs_and_crashes():
    fails("02.5", ..., mentions="not answered")
    fails("02.5", returns_none, mentions="returned None")
    fails("02.5", crash, mentions="RuntimeError")
    fails("02.5", lambda *a: fit_best_variant()(*a)[0], mentions="two things")

    def buggy_fit_best(n_epochs, learning_rate, params, train_u, train_c, val_u, val_c):  # planted: copied from the chapter
        params = params.detach().clone().requires_grad_(True)
        optimizer = torch.optim.SGD([params], lr=learning_rate)
        history, best_loss, best_params = [], float("inf"), None
        for epoch in range(n_epochs):
            train_loss = mse(linear(train_u, *params), train_c)
            train_loss.backward()
            optimizer.zero_grad()
            optimizer.step()
            val_loss = mse(linear(val_u, *params), val_c)
            history.append(val_loss)
            if val_loss < best_loss:
                best_loss, best_params = val_loss, params
        return best_params, history

    fails("02.5", buggy_fit_best, mentions="graph")


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


def only_weight(x):
    """The Hessian's top-left entry taken for λ_max: the bias ignored."""
    return 2 / (2 * (torch.as_tensor(x, dtype=torch.float64) ** 2).mean().item())


def test_02_6_more_wrong():
    fails("02.6", crit_closed_form, lambda x, lr: True, crit_closed_form(T_U), crit_closed_form(0.1 * T_U))
    fails("02.6", crit_closed_form, lambda x, lr: "yes", crit_closed_form(T_U), crit_closed_form(0.1 * T_U))


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


def test_02_7_more_wrong():
    answer = _quadratic_answer()
    fails("02.7", *answer[:6], "the curve")
    fails("02.7", answer[0][:2], *answer[1:], mentions="shape (3,)")
    fails("02.7", answer[0], torch.tensor([1.0, 0.0]), *answer[2:], mentions="lin_losses")


def untrained_quadratic():
    """A quadratic left at zero, its (honest) losses reported."""
    answer = _quadratic_answer()
    t_c, t_u = thermometer()
    t, y = 0.1 * t_u, t_c
    tr, va = answer[2], answer[3]
    bad = (((0 * t[tr] - y[tr]) ** 2).mean().item(), ((0 * t[va] - y[va]) ** 2).mean().item())
    return (torch.zeros(3), answer[1], tr, va, bad, answer[5], "quadratic" if bad[1] < answer[5][1] else "linear")


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


def test_02_8_missing_operator():
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
# 02.9 backpropagation through two tanh layers
# ----------------------------------------------------------------------------------------------


def deep_backprop(x, y, w1, b1, w2, b2, w3, b3, tanh_at="out", mse_scale=2.0, skip_x=False):
    """Layer by layer with einsum; the flags switch on the planted slips."""
    pre1 = x @ w1 + b1
    h1 = torch.tanh(pre1)
    pre2 = h1 @ w2 + b2
    h2 = torch.tanh(pre2)
    out = h2 @ w3 + b3
    n = y.shape[0]

    def local(pre, h):
        if tanh_at == "out":
            return 1 - h * h
        if tanh_at == "inp":
            return 1 - pre * pre
        return (pre > 0).to(pre.dtype)            # a ReLU mask

    d_out = mse_scale * (out[:, 0] - y)[:, None] / n
    b3.g, w3.g = d_out.sum(0), torch.einsum("ni,nj->ij", h2, d_out)
    d_pre2 = (d_out @ w3.T) * local(pre2, h2)
    b2.g, w2.g = d_pre2.sum(0), torch.einsum("ni,nj->ij", h1, d_pre2)
    d_pre1 = (d_pre2 @ w2.T) * local(pre1, h1)
    b1.g, w1.g = d_pre1.sum(0), torch.einsum("ni,nj->ij", x, d_pre1)
    if not skip_x:
        x.g = d_pre1 @ w1.T
    return ((out[:, 0] - y) ** 2).mean()


def test_02_9_correct():
    passes("02.9", deep_backprop)

    def no_return(*args):
        deep_backprop(*args)

    passes("02.9", no_return)   # fastai's version returns nothing; the .g attributes are the answer


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


class Naive(WhereSoftplus):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return torch.log(1 + torch.exp(x))


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


def test_02_10_not_a_function_class():
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


def test_02_11_one_thing_returned():
    fails("02.11", lambda n, f, g: torch.randperm(n, generator=g), mentions="two things")


def test_02_11_stubs_and_crashes():
    fails("02.11", ..., mentions="not answered")
    fails("02.11", returns_none, mentions="returned None")
    fails("02.11", crash, mentions="RuntimeError")


# ----------------------------------------------------------------------------------------------
# 02.12 a Jacobian, one row per backward pass
# ----------------------------------------------------------------------------------------------


def jacobian_by_grad(f, x):
    """torch.autograd.grad with grad_outputs: nothing accumulates in .grad, the graph kept for the next row."""
    x = x.detach().requires_grad_(True)
    y = f(x)
    basis = torch.eye(y.numel(), dtype=y.dtype)
    return torch.stack([torch.autograd.grad(y, x, grad_outputs=e, retain_graph=True)[0] for e in basis])


def jacobian_variant(zero=True, transpose=False, forward_per_row=False, library=False, finite=False):
    """One backward per row into x.grad; a flag switches on each planted slip."""

    def jacobian_rows(f, x):
        if library:
            return torch.autograd.functional.jacobian(f, x)
        if finite:
            cols = [(f(x + 1e-6 * e) - f(x - 1e-6 * e)) / 2e-6 for e in torch.eye(x.numel(), dtype=x.dtype)]
            return torch.stack(cols, 1)
        leaf = x.clone().requires_grad_()
        out = f(leaf)
        rows = []
        for i, e in enumerate(torch.eye(out.numel(), dtype=out.dtype)):
            if forward_per_row and i:
                out = f(leaf)
            if zero and leaf.grad is not None:
                leaf.grad.zero_()
            out.backward(e, retain_graph=True)
            rows.append(leaf.grad.clone())
        jac = torch.stack(rows)
        return jac.T if transpose else jac

    return jacobian_rows


def test_02_12_correct():
    passes("02.12", jacobian_by_grad)
    passes("02.12", jacobian_variant())


def test_02_12_stubs_and_crashes():
    fails("02.12", ..., mentions="not answered")
    fails("02.12", returns_none, mentions="returned None")
    fails("02.12", crash, mentions="RuntimeError")

    def no_retain(f, x):
        x = x.detach().requires_grad_(True)
        y = f(x)
        rows = []
        for e in torch.eye(y.numel(), dtype=y.dtype):
            x.grad = None
            y.backward(gradient=e)
            rows.append(x.grad.clone())
        return torch.stack(rows)

    fails("02.12", no_retain, mentions="keep it")


# ----------------------------------------------------------------------------------------------
# every check: never raises, never moves the caller's random state
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("exercise_id", [f"02.{k}" for k in range(1, 13)])
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


# ----------------------------------------------------------------------------------------------
# the planted learner mistakes (run at the end of this module; tests/test_planted.py counts them)
# ----------------------------------------------------------------------------------------------

_Q = _quadratic_answer

PLANTED = [
    Planted("02.1", "divides by delta instead of 2 delta", lambda: (grad_variant(divide_by=1.0),), mentions="twice"),
    Planted("02.1", "a forward difference instead of a central one", lambda: (grad_variant(one_sided=True),),
            mentions="one-sided"),
    Planted("02.1", "bumps every coordinate at once", lambda: (grad_variant(all_at_once=True),), mentions="one coordinate"),
    Planted("02.1", "bumps x in place and never puts it back", lambda: (grad_variant(restore=False),), mentions="changed the x"),
    Planted("02.2", "a numerical derivative of the whole composition", lambda: (whole_chain_numeric,), mentions="flows into it"),
    Planted("02.2", "every link differentiated at x", lambda: (lambda chain, x: np.prod([central(f, x) for f in chain], 0),),
            mentions="flows into it"),
    Planted("02.2", "the chain applied in reverse order", lambda: (lambda chain, x: chain_backward(chain[::-1], x),),
            mentions="flows into it"),
    Planted("02.2", "the loop stops one link short", lambda: (lambda chain, x: chain_backward(chain[:-1], x) if len(chain) > 1
                                                              else chain_backward(chain, x),), mentions="flows into it"),
    Planted("02.3", "w2's gradient uses t instead of t²", lambda: (lambda t, *a: torch.cat([grad_quad_design(t, *a)[1:2],
                                                                                             grad_quad_design(t, *a)[1:]]),),
            mentions="dL/dw2"),
    Planted("02.3", "a sum where the MSE has a mean", lambda: (lambda t, *a: len(t) * grad_quad_design(t, *a),), mentions="factor"),
    Planted("02.3", "the factor 2 of the square forgotten", lambda: (lambda *a: grad_quad_design(*a) / 2,), mentions="factor"),
    Planted("02.3", "the gradient returned as [b, w1, w2]", lambda: (lambda *a: grad_quad_design(*a).flip(0),), mentions="order"),
    Planted("02.4", "forgets that backward() accumulates", lambda: (6.0, None, RIGHT_C, RIGHT_D), mentions="(a)"),
    Planted("02.4", "zero_grad() taken to fill zeros", lambda: (12.0, torch.zeros(3), RIGHT_C, RIGHT_D), mentions="(b)"),
    Planted("02.4", "detach() taken to end every later graph", lambda: (12.0, None, (False, False, False), RIGHT_D),
            mentions="(c)"),
    Planted("02.4", "no_grad() taken to switch leaves off too", lambda: (12.0, None, RIGHT_C, (False, False, False)),
            mentions="(d)"),
    Planted("02.5", "zero_grad() between backward() and step()", lambda: (fit_best_variant(zero="between"),), mentions="step()"),
    Planted("02.5", "no zero_grad() at all", lambda: (fit_best_variant(zero="never"),), mentions="step()"),
    Planted("02.5", "validation loss computed with a graph, then .item()", lambda: (fit_best_variant(val_graph=True),),
            mentions="graph"),
    Planted("02.5", "history keeps the validation loss tensors and their graphs",
            lambda: (fit_best_variant(val_graph=True, keep_tensors=True),), mentions="graph"),
    Planted("02.5", "best_params another name for the trained tensor", lambda: (fit_best_variant(alias=True),), mentions="copy"),
    Planted("02.6", "λ_max read off the Hessian's top-left entry", lambda: (only_weight, predict, crit_closed_form(T_U),
                                                                          crit_closed_form(0.1 * T_U)), mentions="whole matrix"),
    Planted("02.6", "the 2/N factor of the Hessian dropped",
            lambda: (lambda x: crit_closed_form(x) * len(x) / 2, predict, 1.0, 1.0), mentions="2/λ_max"),
    Planted("02.6", "divergence predicted above 1/λ_max", lambda: (crit_closed_form, lambda x, lr: lr > crit_closed_form(x) / 2,
                                                                    crit_closed_form(T_U), crit_closed_form(0.1 * T_U)),
            mentions="300 real steps"),
    Planted("02.6", "the raw and scaled values swapped", lambda: (crit_closed_form, predict, crit_closed_form(0.1 * T_U),
                                                                   crit_closed_form(T_U)), mentions="other input"),
    Planted("02.7", "the verdict flipped", lambda: (*_Q()[:6], "linear" if _Q()[6] == "quadratic" else "quadratic"),
            mentions="validation losses say"),
    Planted("02.7", "a made-up training loss for the quadratic",
            lambda: (*_Q()[:4], (_Q()[4][0] * 1.1, _Q()[4][1]), *_Q()[5:]), mentions="quad_losses[0]"),
    Planted("02.7", "the linear losses reported as (val, train)",
            lambda: (*_Q()[:5], (_Q()[5][1], _Q()[5][0]), _Q()[6]), mentions="lin_losses"),
    Planted("02.7", "the quadratic never trained", untrained_quadratic, mentions="above the best the line can do"),
    Planted("02.7", "validated on the training indices", lambda: (*_Q()[:3], _Q()[2], *_Q()[4:]), mentions="disjoint"),
    Planted("02.8", "`=` instead of `+=` in backward", lambda: (Overwrites,), mentions="expected"),
    Planted("02.8", "recursion that walks every path", lambda: (NoDedupe,), mentions="topological"),
    Planted("02.8", "zero_grad() resets only the output", lambda: (LazyZero,), mentions="zero_grad()"),
    Planted("02.9", "tanh' taken at the layer's input, not its output", lambda: (lambda *a: deep_backprop(*a, tanh_at="inp"),),
            mentions="`w3` are right"),
    Planted("02.9", "the ReLU mask copied from section 7", lambda: (lambda *a: deep_backprop(*a, tanh_at="relu"),),
            mentions="`w3` are right"),
    Planted("02.9", "the MSE's factor 2 forgotten", lambda: (lambda *a: deep_backprop(*a, mse_scale=1.0),), mentions="b3.g"),
    Planted("02.9", "x's gradient never computed", lambda: (lambda *a: deep_backprop(*a, skip_x=True),),
            mentions="`x` has no `.g`"),
    Planted("02.10", "log(1 + exp(x)) written literally", lambda: (Naive,), mentions="inf or nan"),
    Planted("02.10", "backward ignores grad_output", lambda: (IgnoresGradOutput,), mentions="gradcheck"),
    Planted("02.10", "the sigmoid as exp(x) / (1 + exp(x))", lambda: (NaiveBackward,), mentions="gradient"),
    Planted("02.10", "tanh taken for the derivative", lambda: (WrongDerivative,), mentions="gradient"),
    Planted("02.11", "round() instead of int()", lambda: (rounds,), mentions="validation indices"),
    Planted("02.11", "the global generator instead of the one passed in", lambda: (global_rng,), mentions="seeded alike"),
    Planted("02.11", "validation indices drawn with replacement", lambda: (with_replacement,), mentions="both"),
    Planted("02.11", "the first indices taken, unshuffled", lambda: (not_shuffled,), mentions="random at all"),
    Planted("02.12", "torch's ready-made jacobian", lambda: (jacobian_variant(library=True),), mentions="ready-made"),
    Planted("02.12", "x.grad not cleared between rows", lambda: (jacobian_variant(zero=False),), mentions="accumulated"),
    Planted("02.12", "columns instead of rows", lambda: (jacobian_variant(transpose=True),), mentions="transpose"),
    Planted("02.12", "a fresh forward pass for every row", lambda: (jacobian_variant(forward_per_row=True),),
            mentions="forward pass"),
    Planted("02.12", "central differences instead of backward passes", lambda: (jacobian_variant(finite=True),),
            mentions="finite-difference"),
]

test_planted_mistake_is_rejected_with_a_hint = planted_test(PLANTED)  # tests/test_planted.py checks it is here
