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
    one_line,
    require,
    require_callable,
    short,
    STUB_HINT,
    Wrong,
)

__all__ = [
    "check_chain_deriv", "check_critical_lr", "check_fit_best", "check_forward_and_backward", "check_grad_quad",
    "check_jacobian_rows", "check_numerical_grad", "check_predictions", "check_quadratic", "check_softplus",
    "check_split_indices", "check_value",
]



# ----------------------------------------------------------------------------------------------
# 02.1 a numerical gradient
# ----------------------------------------------------------------------------------------------

# (name, f, grad f): scalar functions of a NumPy array of any shape, with their exact gradients.
_A = np.array([[2.0, 0.5, -0.3, 0.0, 0.1, 0.2], [0.5, 1.5, 0.2, -0.4, 0.0, 0.3], [-0.3, 0.2, 1.0, 0.1, 0.6, 0.0],
               [0.0, -0.4, 0.1, 2.5, 0.2, -0.1], [0.1, 0.0, 0.6, 0.2, 1.2, 0.4], [0.2, 0.3, 0.0, -0.1, 0.4, 0.8]])


def _neighbours(x):
    flat = x.reshape(-1)
    return float(np.sum(flat[:-1] * flat[1:]))


def _neighbours_grad(x):
    flat, g = x.reshape(-1), np.zeros(x.size)
    g[:-1] += flat[1:]
    g[1:] += flat[:-1]
    return g.reshape(x.shape)


_FIELDS = [
    ("sum(sin(x) * x)", lambda x: float(np.sum(np.sin(x) * x)), lambda x: np.cos(x) * x + np.sin(x)),
    ("log(sum(exp(x)))", lambda x: float(np.log(np.sum(np.exp(x)))), lambda x: np.exp(x) / np.sum(np.exp(x))),
    ("xᵀ A x / 2 (x flattened)", lambda x: float(x.reshape(-1) @ _A[: x.size, : x.size] @ x.reshape(-1)) / 2,
     lambda x: (_A[: x.size, : x.size] @ x.reshape(-1)).reshape(x.shape)),
    ("sum of neighbours' products", _neighbours, _neighbours_grad),
]


def _learner_grad(numerical_grad: Callable, f: Callable, x: np.ndarray, **kwargs) -> np.ndarray:
    given = x.copy()
    got = call(numerical_grad, f, given, name="numerical_grad", **kwargs)
    if given.shape != x.shape or not np.allclose(given, x, rtol=0, atol=1e-12):  # round-off of x + d - 2d + d is fine
        raise Wrong(
            "numerical_grad changed the x it was given. Hint: after bumping an element, put it back exactly "
            "as it was (or bump a copy), or every later partial derivative is taken at the wrong point."
        )
    return as_array(got, "numerical_grad(f, x)", x.shape, hint="one partial derivative per element of x, in x's shape.")


@exercise("02.1", "a numerical gradient")
def check_numerical_grad(numerical_grad: Any) -> None:
    require_callable(numerical_grad, "numerical_grad")
    rng = np.random.RandomState(2021)
    for shape in [(6,), (2, 3)]:
        x = rng.uniform(-1.2, 1.2, size=shape)
        for label, f, grad in _FIELDS:
            exact = grad(x)
            scale = np.max(np.abs(exact))
            coarse = _learner_grad(numerical_grad, f, x, delta=1e-3)
            fine = _learner_grad(numerical_grad, f, x)
            for got in (coarse, fine):
                if np.allclose(got, got.reshape(-1)[0]) and not np.allclose(exact, exact.reshape(-1)[0]):
                    raise Wrong(
                        f"for f(x) = {label} on x of shape {shape} every entry of your gradient is the same number. "
                        "Hint: a partial derivative moves one coordinate at a time and holds the others still."
                    )
                for factor in (2.0, 0.5):
                    if np.allclose(got, factor * exact, rtol=1e-4, atol=1e-6 * scale):
                        raise Wrong(
                            f"for f(x) = {label} your gradient is {'twice' if factor == 2 else 'half'} the true one. "
                            "Hint: divide the change in f by the distance between the two points you evaluated."
                        )
            err_coarse = np.max(np.abs(coarse - exact)) / scale
            if not err_coarse < 1e-5:
                raise Wrong(
                    f"with delta=1e-3, your gradient of f(x) = {label} is off by {err_coarse:.2g} (relative), about "
                    "delta times the curvature: the error of a one-sided difference. Hint: look both ways, x ± delta."
                )
            err_fine = np.max(np.abs(fine - exact)) / scale
            if not err_fine < 1e-6:
                raise Wrong(
                    f"with its default delta, numerical_grad for f(x) = {label} is off by {err_fine:.2g} (relative), "
                    "more than 1e-6. Hint: is the default delta small (1e-5), and the difference central?"
                )


# ----------------------------------------------------------------------------------------------
# 02.2 a chain of any length
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
    (_TANH,),
    (_SQUARE, _TANH, _COS, _SIN),
    (_SIGMOID, _HALF_EXP),
    (_TANH, _HALF_EXP, _SQUARE, _SIGMOID, _COS),
]


class _Recorder:
    """Wraps one link of a chain and records every value it is evaluated at (NumPy only)."""

    def __init__(self, fn: Callable) -> None:
        self.fn, self.points = fn, []
        self.__name__ = fn.__name__

    def __call__(self, x):
        if isinstance(x, torch.Tensor):
            raise TypeError(f"{self.__name__} takes NumPy arrays or floats here, not tensors")
        self.points.append(np.array(x, dtype=np.float64, copy=True).reshape(-1))
        return self.fn(x)


def _stepped_around(points: list[np.ndarray], centre: np.ndarray) -> bool:
    """True when the link was evaluated at centre + h for one small step h != 0 shared by every element
    (what a numerical derivative of that link at its own input does), in one call or one per element."""
    pool = np.concatenate(points) if points else np.zeros(0)
    if pool.size == 0:
        return False
    common = None
    for c in centre:
        offsets = np.round(pool - c, 10)
        steps = {o for o in offsets.tolist() if 0 < abs(o) <= 0.1}
        common = steps if common is None else common & steps
        if not common:
            return False
    return True


@exercise("02.2", "a chain of any length")
def check_chain_deriv(chain_deriv: Any) -> None:
    require_callable(chain_deriv, "chain_deriv")
    x = np.random.RandomState(7).uniform(-1.5, 1.5, size=9)
    for chain in _CHAINS:
        names = " → ".join(f.__name__ for f in chain)
        links = [_Recorder(f) for f in chain]
        got = as_array(call(chain_deriv, list(links), x.copy(), name="chain_deriv"), "chain_deriv(chain, x)", x.shape)
        flowing = [x]
        for f in chain[:-1]:
            flowing.append(f(flowing[-1]))
        for k, (link, centre) in enumerate(zip(links, flowing), start=1):
            if not _stepped_around(link.points, centre):
                where = "x itself" if k == 1 else f"the output of link {k - 1}"
                raise Wrong(
                    f"for the chain {names}, link {k} ({link.__name__}) was never evaluated a small step either side "
                    f"of the value that flows into it ({where}). Hint: the chain rule multiplies each link's own "
                    "derivative, taken numerically with deriv at that link's input."
                )
        xt = torch.tensor(x, dtype=F64, requires_grad=True)
        out = xt
        for f in chain:
            out = f(out)
        out.sum().backward()
        gap = np.max(np.abs(got - xt.grad.numpy()))
        if not gap < 1e-5:
            raise Wrong(
                f"for the chain {names} your derivative is off by up to {gap:.2g}. Hint: one factor per link, "
                "each evaluated at the value that flows into that link, multiplied together."
            )


# ----------------------------------------------------------------------------------------------
# 02.3 gradient of the quadratic model
# ----------------------------------------------------------------------------------------------


@exercise("02.3", "gradient of the quadratic model")
def check_grad_quad(grad_quad: Any) -> None:
    require_callable(grad_quad, "grad_quad")
    gen = generator(203)
    for n in (11, 5, 20, 3, 8):
        t = torch.rand(n, generator=gen, dtype=F64) * 6 + 1
        t_c = torch.randn(n, generator=gen, dtype=F64) * 10 + 5
        w2, w1, b = (torch.randn((), generator=gen, dtype=F64) for _ in range(3))
        t_p = w2 * t ** 2 + w1 * t + b
        result = call(grad_quad, t.clone(), t_c.clone(), t_p.clone(), w2.clone(), w1.clone(), b.clone(), name="grad_quad")
        got = as_tensor(result, "grad_quad(...)")
        if tuple(got.shape) != (3,):
            raise Wrong(
                f"grad_quad should return a tensor of shape (3,): [dL/dw2, dL/dw1, dL/db], got shape {tuple(got.shape)}. "
                "Hint: each parameter's gradient is a sum over the points."
            )
        leaves = [v.clone().requires_grad_(True) for v in (w2, w1, b)]
        loss = ((leaves[0] * t ** 2 + leaves[1] * t + leaves[2] - t_c) ** 2).mean()
        expected = torch.stack(torch.autograd.grad(loss, leaves))
        if torch.allclose(got, expected, rtol=1e-5, atol=1e-10):
            continue
        if torch.allclose(got, expected.flip(0), rtol=1e-5, atol=1e-10):
            raise Wrong("your three numbers are right but in the wrong order: return [dL/dw2, dL/dw1, dL/db].")
        ratio = got / expected
        if torch.allclose(ratio, ratio[0].expand(3), rtol=1e-5):
            raise Wrong(
                f"on a hidden dataset of {n} points all three components are {ratio[0].item():.3g} times the true "
                "gradient. Hint: check the constant factors, the square's 2 and the mean's 1/N."
            )
        right = [name for name, ok in zip(("dL/dw2", "dL/dw1", "dL/db"), torch.isclose(got, expected, rtol=1e-5, atol=1e-10)) if ok]
        wrong = [name for name in ("dL/dw2", "dL/dw1", "dL/db") if name not in right]
        raise Wrong(
            f"on a hidden dataset of {n} points {', '.join(wrong)} {'is' if len(wrong) == 1 else 'are'} off"
            f"{' (' + ', '.join(right) + ' right)' if right else ''}. Hint: by the chain rule each is "
            "dL/dt_p times how t_p changes when that parameter moves, summed over the points."
        )


# ----------------------------------------------------------------------------------------------
# 02.4 predict the output
# ----------------------------------------------------------------------------------------------


def _three_bools(value: Any, label: str) -> tuple[bool, bool, bool] | None:
    if not isinstance(value, (tuple, list)) or len(value) != 3:
        return None
    try:
        return tuple(as_bool(v, label) for v in value)
    except Wrong:
        return None


@exercise("02.4", "predict the output")
def check_predictions(grad_after_two_backwards: Any, grad_after_zero_grad: Any,
                      detach_answers: Any, no_grad_answers: Any) -> None:
    answers = {
        "(a) grad_after_two_backwards": grad_after_two_backwards,
        "(b) grad_after_zero_grad": grad_after_zero_grad,
        "(c) detach_answers": detach_answers,
        "(d) no_grad_answers": no_grad_answers,
    }
    missing = [name for name, value in answers.items() if value is Ellipsis]
    if missing:
        raise Wrong(f"not answered yet: {', '.join(missing)}; {STUB_HINT}.")
    # Each ❌ names the wrong item and points at the section to reread, never at the value; (c) and (d)
    # hold three predictions each and the line never says which of the three is wrong.
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

    for label, value, truth, why in [
        ("(c)", detach_answers, (False, False, True),
         "what does detach() return, and what does requires_grad_() do to it (section 9)?"),
        ("(d)", no_grad_answers, (False, True, True),
         "what does no_grad() switch off, for new results and for existing leaves, and after the block (section 9)?"),
    ]:
        got = _three_bools(value, label)
        if got is None:
            problems.append(f"{label} should be three predictions, True or False each, in a tuple")
        elif got != truth:
            problems.append(f"{label} has at least one wrong prediction: {why}")
    if problems:
        message = "; ".join(problems)
        raise Wrong(message if message.endswith("?") else message + ".")


# ----------------------------------------------------------------------------------------------
# 02.5 debug: keep the best epoch
# ----------------------------------------------------------------------------------------------


def _reference_fit_best(n_epochs, learning_rate, params, train_u, train_c, val_u, val_c):
    """Plain gradient descent; after each step the validation loss; the params of the lowest one."""
    p = params.detach().clone()
    n = train_u.numel()
    history, best, best_loss, path = [], p.clone(), math.inf, []
    for _ in range(n_epochs):
        r = 2 * (p[0] * train_u + p[1] - train_c) / n
        p = p - learning_rate * torch.stack([(r * train_u).sum(), r.sum()])
        path.append(p.clone())
        if val_c is not None:
            v = ((p[0] * val_u + p[1] - val_c) ** 2).mean().item()
            history.append(v)
            if v < best_loss:
                best_loss, best = v, p.clone()
    return best, history, path


def _watched_tensor_type():
    """A tensor subclass that notes whether any result computed from it carries a graph."""

    class Watched(torch.Tensor):
        graph_built = False

        @classmethod
        def __torch_function__(cls, func, types, args=(), kwargs=None):
            out = super().__torch_function__(func, types, args, kwargs or {})
            if isinstance(out, torch.Tensor) and out.requires_grad:
                cls.graph_built = True
            return out

    return Watched


@exercise("02.5", "debug: keep the best epoch")
def check_fit_best(fit_best: Any) -> None:
    require_callable(fit_best, "fit_best")
    gen = generator(205)
    for n_train, n_val, n_epochs, lr, best_epoch in [(9, 3, 60, 1e-2, 20), (15, 5, 40, 2e-2, 12)]:
        train_u = torch.rand(n_train, generator=gen, dtype=F64) * 6 + 2
        val_u = torch.rand(n_val, generator=gen, dtype=F64) * 6 + 2
        train_c = 5 * train_u - 17 + torch.randn(n_train, generator=gen, dtype=F64)
        params0 = torch.tensor([0.5, 1.0], dtype=F64)
        # validation points on the line the descent passes through at `best_epoch`: their loss falls, then rises
        _, _, path = _reference_fit_best(n_epochs, lr, params0, train_u, train_c, val_u, None)
        w_mid, b_mid = path[best_epoch - 1]
        val_c = w_mid * val_u + b_mid + 0.05 * torch.randn(n_val, generator=gen, dtype=F64)
        best_ref, history_ref, _ = _reference_fit_best(n_epochs, lr, params0, train_u, train_c, val_u, val_c)
        Watched = _watched_tensor_type()
        inputs = [params0, train_u, train_c, val_u, val_c]
        before = [t.clone() for t in inputs]
        result = call(fit_best, n_epochs, lr, params0, train_u, train_c, val_u.as_subclass(Watched),
                      val_c.as_subclass(Watched), name="fit_best")
        if any(not torch.equal(t, old) for t, old in zip(inputs, before)) or params0.requires_grad:
            raise Wrong("fit_best(...) changed a tensor that was passed in. Hint: train a detached clone of params.")
        if not (isinstance(result, (tuple, list)) and len(result) == 2):
            raise Wrong("fit_best(...) should return two things, `best_params, history`, like buggy_fit_best.")
        best, history = result
        if not isinstance(history, (list, tuple)) or len(history) != n_epochs:
            raise Wrong(f"`history` should be a list with one validation loss per epoch ({n_epochs} here).")
        if any(isinstance(h, torch.Tensor) and h.requires_grad for h in history):
            raise Wrong(
                "`history` holds tensors that carry a graph, each keeping its whole computation alive. "
                "Hint: a validation loss is never differentiated; store plain numbers."
            )
        if Watched.graph_built:
            raise Wrong(
                "the validation loss was computed with a graph (autograd recorded operations on val_u), even if "
                "what you stored was detached. Hint: a validation pass should record nothing at all."
            )
        got = [as_float(h, "history[i]") for h in history]
        off = [k for k, (g, r) in enumerate(zip(got, history_ref)) if not math.isclose(g, r, rel_tol=1e-6, abs_tol=1e-9)]
        if off:
            flat = max(got) - min(got) <= 1e-12 * max(1.0, abs(got[0]))
            raise Wrong(
                f"the validation losses differ from a correct loop's from epoch {off[0] + 1} on"
                f"{' (they never change: the parameters never move)' if flat else ''}. "
                "Hint: look at what .grad holds when step() runs, every epoch."
            )
        best_t = as_tensor(best, "best_params", shape=(2,))
        if not torch.allclose(best_t, best_ref, rtol=1e-6, atol=1e-9):
            last = _reference_fit_best(n_epochs, lr, params0, train_u, train_c, val_u, val_c)[2][-1]
            why = (" They are the last epoch's: is best_params a copy, or another name for the tensor that keeps training?"
                   if torch.allclose(best_t, last, rtol=1e-6, atol=1e-9) else "")
            raise Wrong(f"best_params are not the parameters of the epoch with the lowest validation loss.{why}")


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
# 02.9 backpropagation through two tanh layers
# ----------------------------------------------------------------------------------------------

_DEEP_NAMES = ("b3", "w3", "b2", "w2", "b1", "w1", "x")  # from the output back to the input


@exercise("02.9", "backpropagation through two tanh layers")
def check_forward_and_backward(forward_and_backward_deep: Any) -> None:
    require_callable(forward_and_backward_deep, "forward_and_backward_deep")
    gen = generator(209)
    for n, n_in, h1, h2 in [(7, 5, 4, 3), (1, 3, 6, 2), (20, 1, 2, 5)]:
        x = torch.randn(n, n_in, generator=gen, dtype=F64)
        y = torch.randn(n, generator=gen, dtype=F64)
        w1 = torch.randn(n_in, h1, generator=gen, dtype=F64)
        b1 = torch.randn(h1, generator=gen, dtype=F64) * 0.5
        w2 = torch.randn(h1, h2, generator=gen, dtype=F64)
        b2 = torch.randn(h2, generator=gen, dtype=F64) * 0.5
        w3 = torch.randn(h2, 1, generator=gen, dtype=F64)
        b3 = torch.randn(1, generator=gen, dtype=F64)
        tensors = {"x": x, "w1": w1, "b1": b1, "w2": w2, "b2": b2, "w3": w3, "b3": b3}
        leaves = {k: v.clone().requires_grad_(True) for k, v in tensors.items()}
        h = torch.tanh(leaves["x"] @ leaves["w1"] + leaves["b1"])
        h = torch.tanh(h @ leaves["w2"] + leaves["b2"])
        out = h @ leaves["w3"] + leaves["b3"]
        ((out.squeeze(-1) - y) ** 2).mean().backward()
        call(forward_and_backward_deep, x, y, w1, b1, w2, b2, w3, b3, name="forward_and_backward_deep", allow_none=True)
        if all(getattr(t, "g", None) is None for t in tensors.values()):
            raise Wrong(f"after forward_and_backward_deep(...) no tensor has a `.g`: {STUB_HINT}.")
        shapes = f"N={n}, in={n_in}, hidden={h1} and {h2}"
        for k, name in enumerate(_DEEP_NAMES):
            g = getattr(tensors[name], "g", None)
            if g is None:
                raise Wrong(f"after forward_and_backward_deep(...), `{name}` has no `.g`. Which backward step should set it?")
            fine = ", ".join(f"`{m}`" for m in _DEEP_NAMES[:k])
            assert_close(
                g, leaves[name].grad, f"{name}.g ({shapes})", rtol=0, atol=1e-8,
                hint=(f"the gradients of {fine} are right, so look at the backward steps between them and `{name}`."
                      if fine else "start at the loss: dL/d out for a mean of squares, shaped like out."),
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


# ----------------------------------------------------------------------------------------------
# 02.12 a Jacobian, one row per backward pass
# ----------------------------------------------------------------------------------------------

_M = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7], [-0.2, 0.8, 0.4], [1.0, 1.0, -1.0]], dtype=F64)
_JAC_FUNCTIONS = [
    ("R³ → R⁴: tanh(M x)", 3, lambda x: torch.tanh(_M @ x)),
    ("R⁵ → R²: [sum(x²), x₀·x₄·exp(x₂)]", 5, lambda x: torch.stack([(x ** 2).sum(), x[0] * x[4] * torch.exp(x[2])])),
    ("R⁴ → R⁴: x · cumsum(x)", 4, lambda x: x * torch.cumsum(x, 0)),
]
_SHORTCUTS = [(torch.autograd.functional, "jacobian"), (torch.func, "jacrev"), (torch.func, "jacfwd"),
              (torch.autograd.functional, "vjp"), (torch.func, "vjp"), (torch.func, "vmap")]


class _UsedShortcut(Exception):
    pass


@exercise("02.12", "a Jacobian, one row per backward")
def check_jacobian_rows(jacobian_rows: Any) -> None:
    require_callable(jacobian_rows, "jacobian_rows")
    gen = generator(212)
    for label, n, fn in _JAC_FUNCTIONS:
        x = torch.randn(n, generator=gen, dtype=F64) * 0.8
        calls = [0]

        def f(v, fn=fn):
            calls[0] += 1
            return fn(v)

        saved = [(module, name, getattr(module, name)) for module, name in _SHORTCUTS]

        def refuse(*args, name="", **kwargs):
            raise _UsedShortcut(name)

        for module, name, _ in saved:
            setattr(module, name, lambda *a, name=name, **k: refuse(name=name))
        try:
            result = jacobian_rows(f, x.clone())
        except _UsedShortcut as used:
            raise Wrong(
                f"jacobian_rows called torch's ready-made {used}: this exercise builds the Jacobian itself, "
                "from backward passes with a chosen `gradient`."
            ) from None
        except Exception as err:
            hint = (" Hint: a graph is freed by its first backward unless you ask to keep it."
                    if "second time" in str(err) else "")
            raise Wrong(f"`jacobian_rows` raised {type(err).__name__}: {one_line(str(err), 160)}{hint}") from err
        finally:
            for module, name, original in saved:
                setattr(module, name, original)
        if result is None:
            raise Wrong(f"`jacobian_rows` returned None: {STUB_HINT}, and make sure it ends with `return`.")
        expected = torch.autograd.functional.jacobian(fn, x)
        m = expected.shape[0]
        got = as_tensor(result, "jacobian_rows(f, x)")
        if tuple(got.shape) != (m, n):
            turned = " (that is the transpose's shape)" if tuple(got.shape) == (n, m) else ""
            raise Wrong(
                f"for f: {label} the Jacobian should have shape (outputs, inputs) = {(m, n)}, got "
                f"{tuple(got.shape)}{turned}. Row i holds the gradient of output i."
            )
        if torch.allclose(got, expected, rtol=1e-10, atol=1e-12):
            if calls[0] > 1:
                raise Wrong(
                    f"for f: {label} you ran the forward pass {calls[0]} times. One forward pass is enough: keep its "
                    "graph alive across the backward passes (retain_graph)."
                )
            continue
        if torch.allclose(got, expected.cumsum(0), rtol=1e-10, atol=1e-12):
            raise Wrong(
                f"for f: {label} row i holds the sum of rows 0..i: each backward pass accumulated into .grad on top of "
                "the previous ones. Hint: what must happen to x.grad between two rows?"
            )
        if m == n and torch.allclose(got, expected.T, rtol=1e-10, atol=1e-12):
            raise Wrong(f"for f: {label} your matrix is the transpose of the Jacobian: row i should be the gradient of output i.")
        gap = (got - expected).abs().max().item()
        raise Wrong(
            f"for f: {label} your Jacobian is off by up to {gap:.2g}"
            f"{': that is finite-difference accuracy, not an exact backward pass' if gap < 1e-4 else ''}. "
            "Hint: output i's gradient is one backward pass whose `gradient` is 1 at position i and 0 elsewhere."
        )
