"""Checks for 02_autograd: derivatives, gradient descent and autograd.

Where the thermometer data is needed (02.6, 02.7), the reference is computed here from the data, never
taken from the chapter's printed fit. What every check promises is in framework.py's docstring.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.checks.framework import (
    as_array,
    as_bool,
    as_float,
    as_tensor,
    assert_close,
    call,
    exercise,
    F64,
    generator,
    require,
    require_callable,
    short,
    STUB_HINT,
    Wrong,
)

__all__ = [
    "check_chain_deriv_3", "check_critical_lr", "check_deriv", "check_forward_and_backward",
    "check_grad_fn", "check_predictions", "check_quadratic", "check_softplus", "check_split_indices",
    "check_train", "check_value",
]



# ----------------------------------------------------------------------------------------------
# 02.1 central differences
# ----------------------------------------------------------------------------------------------

# (name, f, f') pairs; f works elementwise on NumPy arrays.
_SMOOTH = [
    ("sin(x)", np.sin, np.cos),
    ("exp(x/2)", lambda x: np.exp(0.5 * x), lambda x: 0.5 * np.exp(0.5 * x)),
    ("x³/3 + x", lambda x: x ** 3 / 3 + x, lambda x: x ** 2 + 1),
    ("tanh(x)", np.tanh, lambda x: 1 - np.tanh(x) ** 2),
    ("log(1 + x²)", lambda x: np.log1p(x ** 2), lambda x: 2 * x / (1 + x ** 2)),
]


@exercise("02.1", "central differences")
def check_deriv(deriv: Any, forward_deriv: Any) -> None:
    require_callable(deriv, "deriv")
    require_callable(forward_deriv, "forward_deriv")
    rng = np.random.RandomState(2021)
    points = rng.uniform(0.2, 1.2, size=7) * rng.choice([-1.0, 1.0], size=7)
    for label, f, df in _SMOOTH:
        got = as_array(call(deriv, f, points.copy(), name="deriv"), "deriv", points.shape)
        exact = df(points)
        rel = np.max(np.abs(got - exact) / np.abs(exact))
        if not rel < 1e-5:
            raise Wrong(
                f"deriv(f, x) for f(x) = {label} is off by {rel:.2g} (relative), more than 1e-5. "
                "Hint: the central difference is (f(x + delta) - f(x - delta)) / (2 * delta)."
            )
    for label, f, df in [("exp(x)", np.exp, np.exp), ("sin(x)", np.sin, np.cos)]:
        x = rng.uniform(0.3, 1.3, size=5)
        exact = df(x)
        central = as_array(call(deriv, f, x.copy(), delta=1e-3, name="deriv"), "deriv", x.shape)
        forward = as_array(call(forward_deriv, f, x.copy(), delta=1e-3, name="forward_deriv"), "forward_deriv", x.shape)
        err_c = np.max(np.abs(central - exact))
        err_f = np.max(np.abs(forward - exact))
        if not err_f < 1e-2 * np.max(np.abs(exact)):
            raise Wrong(
                f"forward_deriv for f(x) = {label} is far from the derivative (error {err_f:.2g}). "
                "Hint: the forward difference is (f(x + delta) - f(x)) / delta."
            )
        if not err_f > 2 * err_c:
            raise Wrong(
                f"for f(x) = {label} your forward difference (error {err_f:.2g}) is not less accurate than "
                f"your central difference (error {err_c:.2g}). Is forward_deriv really one-sided, "
                "(f(x + delta) - f(x)) / delta?"
            )


# ----------------------------------------------------------------------------------------------
# 02.2 chain of three
# ----------------------------------------------------------------------------------------------


def _dual(np_fn: Callable, torch_fn: Callable, label: str) -> Callable:
    """An elementwise function that works on NumPy arrays (for the learner) and tensors (for autograd)."""

    def fn(x):
        return torch_fn(x) if isinstance(x, torch.Tensor) else np_fn(x)

    fn.__name__ = label
    return fn


_SIN = _dual(np.sin, torch.sin, "sin")
_TANH = _dual(np.tanh, torch.tanh, "tanh")
_SIGMOID = _dual(lambda x: 1 / (1 + np.exp(-x)), torch.sigmoid, "sigmoid")
_SQUARE = _dual(lambda x: x ** 2, lambda x: x ** 2, "square")
_HALF_EXP = _dual(lambda x: np.exp(0.5 * x), lambda x: torch.exp(0.5 * x), "exp(x/2)")
_COS = _dual(np.cos, torch.cos, "cos")

_CHAINS = [
    (_SIN, _SQUARE, _SIGMOID),
    (_SQUARE, _TANH, _COS),
    (_SIGMOID, _SIN, _HALF_EXP),
    (_TANH, _HALF_EXP, _SQUARE),
]


@exercise("02.2", "a chain of three")
def check_chain_deriv_3(chain_deriv_3: Any) -> None:
    require_callable(chain_deriv_3, "chain_deriv_3")
    x = np.random.RandomState(7).uniform(-1.5, 1.5, size=9)
    for f1, f2, f3 in _CHAINS:
        got = as_array(call(chain_deriv_3, f1, f2, f3, x.copy(), name="chain_deriv_3"), "chain_deriv_3", x.shape)
        xt = torch.tensor(x, dtype=F64, requires_grad=True)
        f3(f2(f1(xt))).sum().backward()
        exact = xt.grad.numpy()
        gap = np.max(np.abs(got - exact))
        if not gap < 1e-6:
            raise Wrong(
                f"for f1, f2, f3 = {f1.__name__}, {f2.__name__}, {f3.__name__} your derivative is off by up to "
                f"{gap:.2g}. Hint: the outer links' derivatives are taken at the values that flow into them: "
                "f3' at f2(f1(x)), f2' at f1(x), f1' at x."
            )


# ----------------------------------------------------------------------------------------------
# 02.3 gradient of the linear model
# ----------------------------------------------------------------------------------------------


@exercise("02.3", "gradient of the linear model")
def check_grad_fn(grad_fn: Any) -> None:
    require_callable(grad_fn, "grad_fn")
    gen = generator(203)
    for n in (11, 5, 20, 3, 8):
        t_u = torch.rand(n, generator=gen, dtype=F64) * 60 + 20
        t_c = torch.randn(n, generator=gen, dtype=F64) * 10 + 5
        w = torch.randn((), generator=gen, dtype=F64)
        b = torch.randn((), generator=gen, dtype=F64) * 5
        t_p = w * t_u + b
        result = call(grad_fn, t_u.clone(), t_c.clone(), t_p.clone(), w.clone(), b.clone(), name="grad_fn")
        got = as_tensor(result, "grad_fn(...)")
        if tuple(got.shape) != (2,):
            raise Wrong(
                f"grad_fn should return a tensor of shape (2,): [dL/dw, dL/db], got shape {tuple(got.shape)}. "
                "Hint: the gradient of each parameter is a sum over the readings."
            )
        w_, b_ = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
        loss = ((w_ * t_u + b_ - t_c) ** 2).mean()
        expected = torch.stack(torch.autograd.grad(loss, (w_, b_)))
        assert_close(
            got, expected, f"grad_fn(...) on a hidden dataset of {n} points", rtol=1e-5, atol=1e-10,
            hint="dL/dt_p = 2 (t_p - t_c) / N; then multiply by t_u for w, by 1 for b, and sum over the points.",
        )


# ----------------------------------------------------------------------------------------------
# 02.4 predict the output
# ----------------------------------------------------------------------------------------------


@exercise("02.4", "predict the output")
def check_predictions(grad_after_two_backwards: Any, grad_after_zero_grad: Any,
                      detached_requires_grad: Any, no_grad_requires_grad: Any) -> None:
    answers = {
        "(a) grad_after_two_backwards": grad_after_two_backwards,
        "(b) grad_after_zero_grad": grad_after_zero_grad,
        "(c) detached_requires_grad": detached_requires_grad,
        "(d) no_grad_requires_grad": no_grad_requires_grad,
    }
    missing = [name for name, value in answers.items() if value is Ellipsis]
    if missing:
        raise Wrong(f"not answered yet: {', '.join(missing)}; {STUB_HINT}.")
    # Each ❌ names the wrong item and points at the section to reread, never at the value.
    problems = []

    a = grad_after_two_backwards
    if a is None or isinstance(a, bool):
        problems.append("(a) should be a number")
    else:
        try:
            a_value = as_float(a, "grad_after_two_backwards")
        except Wrong:
            problems.append("(a) should be a number")
        else:
            if a_value == 6:  # one backward's gradient: the accumulation forgotten
                problems.append("(a) counts one backward(): what does the second do to .grad (section 5)?")
            elif a_value != 12:
                problems.append("(a) is off: one backward's dy/dx at x = 3 first, then what the second does (section 5)")

    if grad_after_zero_grad is not None:  # zeros, 0, or the old gradient
        problems.append("(b) is not what zero_grad() leaves since PyTorch 2.0: reread section 8 on its default")

    for label, value, why in [
        ("(c)", detached_requires_grad, "does detach()'s result still belong to the graph (section 9)?"),
        ("(d)", no_grad_requires_grad, "what does no_grad() switch off (section 9)?"),
    ]:
        if isinstance(value, (bool, np.bool_)) or (isinstance(value, torch.Tensor) and value.dtype == torch.bool and value.numel() == 1):
            if bool(value):
                problems.append(f"{label} is wrong: {why}")
        else:
            problems.append(f"{label} should be True or False, got {type(value).__name__}")
    if problems:
        message = "; ".join(problems)
        raise Wrong(message if message.endswith("?") else message + ".")


# ----------------------------------------------------------------------------------------------
# 02.5 debug the training loop
# ----------------------------------------------------------------------------------------------


def _reference_train(n_epochs, learning_rate, params, train_u, train_c, val_u, val_c):
    params = params.detach().clone().requires_grad_(True)
    val_loss = None
    for _ in range(n_epochs):
        train_loss = ((params[0] * train_u + params[1] - train_c) ** 2).mean()
        with torch.no_grad():
            val_loss = ((params[0] * val_u + params[1] - val_c) ** 2).mean()
        if params.grad is not None:
            params.grad.zero_()
        train_loss.backward()
        with torch.no_grad():
            params -= learning_rate * params.grad
    return params.detach(), val_loss


@exercise("02.5", "debug the training loop")
def check_train(train: Any) -> None:
    require_callable(train, "train")
    gen = generator(205)
    for n_train, n_val, n_epochs, lr in [(9, 3, 200, 1e-2), (15, 5, 120, 2e-2)]:
        train_u = torch.rand(n_train, generator=gen, dtype=F64) * 6 + 2
        val_u = torch.rand(n_val, generator=gen, dtype=F64) * 6 + 2
        train_c = 5 * train_u - 17 + torch.randn(n_train, generator=gen, dtype=F64)
        val_c = 5 * val_u - 17 + torch.randn(n_val, generator=gen, dtype=F64)
        params0 = torch.tensor([0.5, 1.0], dtype=F64)
        inputs = [params0, train_u, train_c, val_u, val_c]
        before = [t.clone() for t in inputs]
        result = call(train, n_epochs, lr, params0, train_u, train_c, val_u, val_c, name="train")
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise Wrong("train(...) should return two things, `params, val_loss`, like buggy_train.")
        params, val_loss = result
        if any(not torch.equal(t, old) for t, old in zip(inputs, before)) or params0.requires_grad:
            raise Wrong(
                "train(...) changed a tensor that was passed in. Hint: work on "
                "`params.detach().clone().requires_grad_(True)`, as buggy_train does."
            )
        expected_params, _ = _reference_train(n_epochs, lr, params0, train_u, train_c, val_u, val_c)
        assert_close(
            as_tensor(params, "params", shape=(2,)), expected_params, "the trained params", rtol=1e-5, atol=1e-5,
            hint="zero the gradient every epoch, and let only the training loss go into backward().",
        )
        if not isinstance(val_loss, torch.Tensor):
            raise Wrong(f"the returned val_loss should be the loss tensor (not .item()), got a {type(val_loss).__name__}.")
        if val_loss.numel() != 1 or not torch.isfinite(val_loss).all():
            raise Wrong("the returned val_loss should be a single finite number in a tensor.")
        if val_loss.requires_grad:
            raise Wrong(
                "the returned val_loss has requires_grad=True: it was computed with a graph. "
                "Hint: compute it inside `with torch.no_grad():`."
            )


# ----------------------------------------------------------------------------------------------
# 02.6 critical learning rate
# ----------------------------------------------------------------------------------------------


def _lambda_max(x: torch.Tensor) -> float:
    x = x.to(F64)
    n = x.numel()
    h = (2.0 / n) * torch.tensor([[(x * x).sum().item(), x.sum().item()], [x.sum().item(), float(n)]], dtype=F64)
    return torch.linalg.eigvalsh(h)[-1].item()


def _gd_blows_up(x: torch.Tensor, y: torch.Tensor, lr: float, steps: int = 300) -> bool:
    """Really run plain gradient descent on the MSE of w*x + b from (1, 0)."""
    p = torch.tensor([1.0, 0.0], dtype=F64)
    n = x.numel()

    def loss(p):
        return ((p[0] * x + p[1] - y) ** 2).mean()

    start = loss(p)
    for _ in range(steps):
        r = 2 * (p[0] * x + p[1] - y) / n
        p = p - lr * torch.stack([(r * x).sum(), r.sum()])
    end = loss(p)
    return bool(not torch.isfinite(end) or end > start)


@exercise("02.6", "critical learning rate")
def check_critical_lr(critical_lr: Any, diverges: Any, crit_raw: Any, crit_scaled: Any) -> None:
    require_callable(critical_lr, "critical_lr")
    require_callable(diverges, "diverges")
    gen = generator(206)
    hidden = [
        torch.rand(12, generator=gen, dtype=F64) * 40 + 30,     # raw-like: large offset, tiny critical lr
        torch.randn(25, generator=gen, dtype=F64) * 0.3,        # centred and small: the bias sets λ_max
        torch.rand(8, generator=gen, dtype=F64) * 4 - 1,        # in between
    ]
    for x in hidden:
        got = as_float(call(critical_lr, x.clone(), name="critical_lr"), "critical_lr(x)")
        if not (math.isfinite(got) and got > 0):
            raise Wrong(f"critical_lr(x) returned {got}, expected a positive number.")
        lam = _lambda_max(x)
        if abs(2.0 / got - lam) > 1e-6 * lam:
            raise Wrong(
                f"on a hidden input, critical_lr(x) = {got:.6g} but 2/λ_max = {2.0 / lam:.6g}. Hint: the Hessian is "
                "(2/N) [[Σx², Σx], [Σx, N]]; take the largest eigenvalue of the whole matrix."
            )
    for x, seed in [(hidden[0], 1), (hidden[2], 2)]:
        y = 0.5 * x + 3 + torch.randn(x.numel(), generator=generator(seed), dtype=F64)
        crit = 2.0 / _lambda_max(x)
        for factor in (0.1, 0.6, 0.9, 0.95, 1.05, 1.5):
            lr = factor * crit
            predicted = as_bool(call(diverges, x.clone(), lr, name="diverges"), "diverges(x, lr)")
            actual = _gd_blows_up(x, y, lr)
            if predicted != actual:
                raise Wrong(
                    f"diverges(x, lr) predicted {'divergence' if predicted else 'convergence'} for lr = "
                    f"{factor} × 2/λ_max, but 300 real steps {'diverged' if actual else 'converged'}. "
                    "Hint: gradient descent diverges exactly when lr > 2/λ_max."
                )
    from course_utils.data import thermometer

    _, t_u = thermometer()
    for name, value, x in [("crit_raw", crit_raw, t_u), ("crit_scaled", crit_scaled, 0.1 * t_u)]:
        got = as_float(value, name)
        expected = 2.0 / _lambda_max(x)
        if not abs(got - expected) <= 1e-4 * expected:
            other = 2.0 / _lambda_max(0.1 * t_u if name == "crit_raw" else t_u)
            hint = " (that is the other input's value)" if abs(got - other) <= 1e-4 * other else ""
            raise Wrong(f"`{name}` = {got:.4g} is not critical_lr of the {'raw t_u' if name == 'crit_raw' else 'scaled t_un = 0.1 * t_u'}{hint}.")


# ----------------------------------------------------------------------------------------------
# 02.7 the quadratic model
# ----------------------------------------------------------------------------------------------


def _indices(value: Any, name: str) -> list[int]:
    require(value, name)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().tolist()
    try:
        out = [int(v) for v in np.asarray(value).reshape(-1).tolist()]
    except (TypeError, ValueError) as err:
        raise Wrong(f"`{name}` should be a list or tensor of indices ({err}).") from err
    return out


def _pair(value: Any, name: str) -> tuple[float, float]:
    require(value, name)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().reshape(-1).tolist()
    if not isinstance(value, (tuple, list)) or len(value) != 2:
        raise Wrong(f"`{name}` should be a pair (train loss, val loss).")
    return as_float(value[0], f"{name}[0]"), as_float(value[1], f"{name}[1]")


@exercise("02.7", "one more parameter")
def check_quadratic(quad_params: Any, lin_params: Any, train_indices: Any, val_indices: Any,
                    quad_losses: Any, lin_losses: Any, better_on_val: Any) -> None:
    for value, name in [(quad_params, "quad_params"), (quad_losses, "quad_losses"),
                        (lin_losses, "lin_losses"), (better_on_val, "better_on_val")]:
        require(value, name)
    qp = as_tensor(quad_params, "quad_params", shape=(3,))
    lp = as_tensor(lin_params, "lin_params", shape=(2,))
    train_idx, val_idx = _indices(train_indices, "train_indices"), _indices(val_indices, "val_indices")
    if sorted(train_idx + val_idx) != list(range(11)) or not val_idx:
        raise Wrong("train_indices and val_indices should split the 11 readings into two disjoint parts (use section 9's).")
    q_train, q_val = _pair(quad_losses, "quad_losses")
    l_train, l_val = _pair(lin_losses, "lin_losses")

    from course_utils.data import thermometer

    t_c, t_u = thermometer()
    t = (0.1 * t_u).to(F64)
    y = t_c.to(F64)
    tr, va = torch.tensor(train_idx), torch.tensor(val_idx)

    def quad_loss(idx):
        return ((qp[0] * t[idx] ** 2 + qp[1] * t[idx] + qp[2] - y[idx]) ** 2).mean().item()

    def lin_loss(idx):
        return ((lp[0] * t[idx] + lp[1] - y[idx]) ** 2).mean().item()

    recomputed = {
        "quad_losses[0] (quadratic, train)": (q_train, quad_loss(tr)),
        "quad_losses[1] (quadratic, val)": (q_val, quad_loss(va)),
        "lin_losses[0] (linear, train)": (l_train, lin_loss(tr)),
        "lin_losses[1] (linear, val)": (l_val, lin_loss(va)),
    }
    for name, (reported, actual) in recomputed.items():
        if not math.isfinite(actual) or abs(reported - actual) > 1e-4 * max(1.0, abs(actual)):
            raise Wrong(
                f"{name} is {reported:.6g}, but the parameters you returned give {actual:.6g}. Hint: the model "
                "works on t_un = 0.1 * t_u and the losses are MSEs on the train/val indices."
            )
    design = torch.stack([t[tr], torch.ones_like(t[tr])], dim=1)
    best_line = ((design @ torch.linalg.lstsq(design, y[tr].unsqueeze(1)).solution.squeeze(1) - y[tr]) ** 2).mean().item()
    if recomputed["lin_losses[0] (linear, train)"][1] > best_line * 1.01 + 1e-3:
        raise Wrong("lin_params is not a trained line (its training loss is well above the best possible). Use split_params from section 9.")
    if recomputed["quad_losses[0] (quadratic, train)"][1] > best_line + 1e-3:
        raise Wrong(
            f"the quadratic model's training loss ({q_train:.4g}) is above the best the line can do ({best_line:.4g}), "
            "although the quadratic contains the line (w2 = 0). Train longer, or start from the linear solution."
        )
    if not isinstance(better_on_val, str) or better_on_val.strip().lower() not in ("quadratic", "linear"):
        raise Wrong(f'`better_on_val` should be "quadratic" or "linear", got {better_on_val!r}.')
    truth = "quadratic" if quad_loss(va) < lin_loss(va) else "linear"
    if better_on_val.strip().lower() != truth:
        raise Wrong(f'`better_on_val` says "{better_on_val.strip()}", but the validation losses say "{truth}" (lower is better).')


# ----------------------------------------------------------------------------------------------
# 02.8 scalar autodiff
# ----------------------------------------------------------------------------------------------

# Each expression is written once and evaluated twice: on the learner's Values and on float64
# tensors. It takes three leaves (a, b, c).
_EXPRESSIONS = [
    ("a * b + c", lambda a, b, c: a * b + c),
    ("e = a * b; e * e + e - c (e reused)", lambda a, b, c: (lambda e: e * e + e - c)(a * b)),
    ("diamond: (a * 2) * (a + 3) + b / c", lambda a, b, c: (a * 2) * (a + 3) + b / c),
    ("(a - b) / (c ** 2 + 1) with 1 - a and 2 / b", lambda a, b, c: (a - b) / (c ** 2 + 1) + (1 - a) * (2 / b)),
    ("(a * b).tanh() + (c * 0.5).exp() - a", lambda a, b, c: (a * b).tanh() + (c * 0.5).exp() - a),
    ("-(a ** 3) + b.exp() / c.tanh(), a reused", lambda a, b, c: -(a ** 3) + b.exp() / c.tanh() + a * a.tanh()),
]


def _leaf_values(seed: int) -> list[float]:
    g = generator(seed)
    vals = (torch.rand(3, generator=g, dtype=F64) * 1.4 + 0.3) * torch.tensor([1.0, -1.0, 1.0], dtype=F64)
    return [float(v) for v in vals]


@exercise("02.8", "a scalar autodiff engine")
def check_value(Value: Any) -> None:
    require_callable(Value, "Value")
    own = {k for k in vars(Value) if k not in ("__module__", "__qualname__", "__doc__", "__dict__", "__weakref__",
                                                "__firstlineno__", "__static_attributes__")} if isinstance(Value, type) else {1}
    if not own:
        raise Wrong(f"the class `Value` is still empty: {STUB_HINT}.")
    probe = call(Value, 2.0, name="Value")
    if not hasattr(probe, "data") or not hasattr(probe, "grad"):
        raise Wrong(f"Value(2.0) has no `.data` and `.grad` attributes yet: {STUB_HINT}.")
    for k, (label, expr) in enumerate(_EXPRESSIONS):
        vals = _leaf_values(280 + k)
        leaves = [call(Value, v, name="Value") for v in vals]
        try:
            out = expr(*leaves)
        except Exception as err:
            raise Wrong(f"building `{label}` raised {type(err).__name__}: {err}. Which operator is missing?") from err
        tensors = [torch.tensor(v, dtype=F64, requires_grad=True) for v in vals]
        expected = expr(*tensors)
        expected.backward()
        data = as_float(getattr(out, "data", None), f"({label}).data")
        if not abs(data - expected.item()) <= 1e-9 * max(1.0, abs(expected.item())):
            raise Wrong(f"`{label}` has .data {data:.10g}, expected {expected.item():.10g}.")
        for attempt in ("backward()", "zero_grad() and a second backward()"):
            try:
                if attempt != "backward()":
                    out.zero_grad()
                out.backward()
            except Exception as err:
                raise Wrong(f"`{label}`: {attempt} raised {type(err).__name__}: {err}") from err
            for name, leaf, t in zip("abc", leaves, tensors):
                got = as_float(getattr(leaf, "grad", None), f"{name}.grad")
                want = t.grad.item()
                if not abs(got - want) <= 1e-9 * max(1.0, abs(want)):
                    extra = (
                        " Hint: zero_grad() must reset every node the output depends on, not only the output."
                        if attempt != "backward()"
                        else " Hint: visit the nodes in reverse topological order, each once, and add (+=) contributions."
                    )
                    raise Wrong(f"`{label}`: after {attempt}, {name}.grad = {got:.10g}, expected {want:.10g}.{extra}")


# ----------------------------------------------------------------------------------------------
# 02.9 backpropagation by hand
# ----------------------------------------------------------------------------------------------


@exercise("02.9", "backpropagation by hand")
def check_forward_and_backward(forward_and_backward: Any) -> None:
    require_callable(forward_and_backward, "forward_and_backward")
    gen = generator(209)
    for n, n_in, n_hidden in [(7, 5, 4), (1, 3, 6), (20, 1, 2)]:
        x = torch.randn(n, n_in, generator=gen, dtype=F64)
        y = torch.randn(n, generator=gen, dtype=F64)
        w1 = torch.randn(n_in, n_hidden, generator=gen, dtype=F64)
        b1 = torch.randn(n_hidden, generator=gen, dtype=F64) * 0.5
        w2 = torch.randn(n_hidden, 1, generator=gen, dtype=F64)
        b2 = torch.randn(1, generator=gen, dtype=F64)
        tensors = {"x": x, "w1": w1, "b1": b1, "w2": w2, "b2": b2}
        leaves = {k: v.clone().requires_grad_(True) for k, v in tensors.items()}
        hidden = (leaves["x"] @ leaves["w1"] + leaves["b1"]).clamp_min(0)
        out = hidden @ leaves["w2"] + leaves["b2"]
        ((out.squeeze(-1) - y) ** 2).mean().backward()
        call(forward_and_backward, x, y, w1, b1, w2, b2, name="forward_and_backward", allow_none=True)
        if all(getattr(t, "g", None) is None for t in tensors.values()):
            raise Wrong(f"after forward_and_backward(...) no tensor has a `.g`: {STUB_HINT}.")
        for name, t in tensors.items():
            g = getattr(t, "g", None)
            if g is None:
                raise Wrong(f"after forward_and_backward(...), `{name}` has no `.g`. Which backward function should set it?")
            assert_close(
                g, leaves[name].grad, f"{name}.g (shapes N={n}, in={n_in}, hidden={n_hidden})", rtol=0, atol=1e-8,
                hint="mse_grad: 2 (out - y) / N as (N, 1); relu_grad: pass where the input was > 0; "
                "lin_grad: inp.g = out.g @ w.T, w.g = inp.T @ out.g, b.g = out.g.sum(0).",
            )


# ----------------------------------------------------------------------------------------------
# 02.10 stable softplus
# ----------------------------------------------------------------------------------------------


@exercise("02.10", "a stable softplus")
def check_softplus(MySoftplus: Any) -> None:
    require(MySoftplus, "MySoftplus")
    if not (isinstance(MySoftplus, type) and issubclass(MySoftplus, torch.autograd.Function)):
        raise Wrong("MySoftplus should be a class that subclasses torch.autograd.Function.")
    x = torch.tensor([-1000.0, -50.0, -3.0, -0.5, 0.0, 0.7, 4.0, 50.0, 1000.0], dtype=F64, requires_grad=True)
    y = call(MySoftplus.apply, x, name="MySoftplus.apply")
    if not isinstance(y, torch.Tensor) or y.shape != x.shape:
        raise Wrong(f"MySoftplus.apply(x) should return a tensor shaped like x {tuple(x.shape)}.")
    if not torch.isfinite(y).all():
        raise Wrong(
            f"MySoftplus.apply(x) gives inf or nan for x = {short(x.detach()[~torch.isfinite(y.detach())])}. Hint: for x > 0 "
            "use x + log1p(exp(-x)), so that exp never sees a large positive number."
        )
    assert_close(y.detach(), F.softplus(x.detach()), "MySoftplus.apply(x)", rtol=0, atol=1e-6,
                 hint="softplus(x) = log(1 + exp(x)); compute it as max(x, 0) + log1p(exp(-|x|)).")
    try:
        y.sum().backward()
    except Exception as err:
        raise Wrong(f"backward through MySoftplus raised {type(err).__name__}: {err}") from err
    if x.grad is None:
        raise Wrong("backward through MySoftplus gave x no gradient: does `backward` return the gradient for x?")
    if not torch.isfinite(x.grad).all():
        bad = x.detach()[~torch.isfinite(x.grad)]
        raise Wrong(f"the gradient of MySoftplus is inf or nan at x = {short(bad)}. Hint: the derivative is the "
                    "sigmoid; torch.sigmoid(x) is stable, exp(x) / (1 + exp(x)) is not.")
    assert_close(x.grad, torch.sigmoid(x.detach()), "the gradient of MySoftplus", rtol=0, atol=1e-6,
                 hint="the derivative of softplus is the sigmoid; return grad_output * torch.sigmoid(x).")
    inputs = (torch.randn(6, generator=generator(210), dtype=F64) * 3).requires_grad_(True)
    try:
        ok = torch.autograd.gradcheck(MySoftplus.apply, (inputs,), eps=1e-6, atol=1e-6, raise_exception=False)
    except Exception as err:
        raise Wrong(f"gradcheck could not run MySoftplus ({type(err).__name__}: {err}).") from err
    if not ok:
        raise Wrong("gradcheck failed: your backward does not match the numerical derivative. "
                    "Hint: multiply by grad_output.")


# ----------------------------------------------------------------------------------------------
# 02.11 reproducible split
# ----------------------------------------------------------------------------------------------


def _split(split_indices: Callable, n: int, frac: float, seed: int) -> tuple[list[int], list[int]]:
    result = call(split_indices, n, frac, generator(seed), name="split_indices")
    if not (isinstance(result, (tuple, list)) and len(result) == 2):
        raise Wrong("split_indices should return two things: (train_idx, val_idx).")
    return _indices(result[0], "train_idx"), _indices(result[1], "val_idx")


@exercise("02.11", "a reproducible split")
def check_split_indices(split_indices: Any) -> None:
    require_callable(split_indices, "split_indices")
    for n, frac in [(11, 0.2), (11, 0.25), (100, 0.15), (1000, 0.3)]:
        train_idx, val_idx = _split(split_indices, n, frac, 11)
        if set(train_idx) & set(val_idx):
            raise Wrong(f"for n={n}, some indices are in both the training and the validation set.")
        if sorted(train_idx + val_idx) != list(range(n)):
            raise Wrong(f"for n={n}, the two index sets together should be exactly range({n}), each index once.")
        if len(val_idx) != int(frac * n):
            raise Wrong(f"for n={n} and val_frac={frac}, expected int({frac} * {n}) = {int(frac * n)} validation indices, got {len(val_idx)}.")
        if _split(split_indices, n, frac, 11) != (train_idx, val_idx):
            raise Wrong(f"for n={n}, two calls with generators seeded alike gave different splits. "
                        "Hint: pass the generator to torch.randperm(n, generator=generator).")
        differs = [(_split(split_indices, n, frac, seed) != (train_idx, val_idx)) for seed in (12, 13, 14)]
        if not (any(differs) if n < 50 else all(differs)):
            raise Wrong(f"for n={n}, differently seeded generators gave the same split: is it random at all?")
