"""The exercise-check framework: `check(id, *answers)` and the helpers check authors use.

A chapter's checks live in `course_utils/checks/chNN.py`. Each one is a function registered with
`@exercise("02.1", "central differences")` that receives the learner's answers and either returns
(the answer is right) or raises `Wrong("what is wrong, and a hint")`. The framework turns that into
exactly one printed line and a `CheckResult` (a bool to any code that asks, and nothing more on the
page: a cell ending in `check(...)` shows the line alone), and never lets anything escape into the notebook:

    ✅ 02.1 central differences
    ❌ 02.1 central differences: deriv(x**2, 3.0) returned 5.0, expected 6.0. Hint: ...

Stubs (`...`), None, wrong types and shapes, and exceptions inside the learner's code are all
reported as ❌ lines. The learner's own prints and warnings are swallowed while the check runs, so
the line stands alone.

What every chapter's checks promise (so a chNN.py docstring says only what is particular to it):
- a check runs the learner's answer on its own seeded inputs, from local generators (`generator()`,
  NumPy `default_rng`), and compares with a reference computed in the check, in float64 unless noted;
- the notebook's random state is never moved: `run_check` keeps Python's, NumPy's and torch's global
  generators, and models built inside a check get their weights inside `torch.random.fork_rng`;
- a reference that needs course data is computed from `course_utils.data`, never copied from what the
  chapter printed or from the learner's variables.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import random
import re
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

__all__ = [
    "F64", "FAIL_MARK", "LINE_PATTERN", "PASS_MARK", "STUB_HINT", "CheckResult", "Exercise", "TorchCalls", "Wrong",
    "as_array", "as_bool", "as_float", "as_int", "as_shape", "as_tensor", "assert_close", "call", "check", "exercise",
    "exercises_of", "find_exercise", "generator", "is_stub", "one_line", "require", "require_callable",
    "run_check", "short",
]

F64 = torch.float64  # the dtype references are computed in
PASS_MARK = "✅"
FAIL_MARK = "❌"
STUB_HINT = "replace the `...` with your code"

# One printed check line, as `course grade` and the tests read it back.
LINE_PATTERN = re.compile(rf"^({PASS_MARK}|{FAIL_MARK}) (\d\d\.\d+) (.*)$")


class Wrong(Exception):
    """Raised inside a check to report what is wrong with an answer (and, ideally, a hint)."""


@dataclass(frozen=True)
class Exercise:
    """One registered exercise: its id ("02.3"), its title and the function that checks it."""

    id: str
    title: str
    verify: Callable[..., None]

    @property
    def chapter(self) -> str:
        return self.id.split(".")[0]


_REGISTRY: dict[str, Exercise] = {}
_ID_PATTERN = re.compile(r"^\d\d\.\d+$")


def exercise(exercise_id: str, title: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Register a check function under an exercise id ("NN.k") and a short title."""
    if not _ID_PATTERN.match(exercise_id):
        raise ValueError(f"exercise ids look like '02.3', got {exercise_id!r}")

    def register(verify: Callable[..., None]) -> Callable[..., None]:
        if exercise_id in _REGISTRY and _REGISTRY[exercise_id].verify.__qualname__ != verify.__qualname__:
            raise ValueError(f"exercise {exercise_id} is registered twice")
        _REGISTRY[exercise_id] = Exercise(exercise_id, title, verify)
        return verify

    return register


def _load_chapter(chapter: str) -> None:
    """Import the checks module of a chapter ("02" -> course_utils.checks.ch02), if there is one."""
    try:
        importlib.import_module(f"course_utils.checks.ch{chapter}")
    except ModuleNotFoundError as err:
        if err.name != f"course_utils.checks.ch{chapter}":
            raise


def exercises_of(chapter: str) -> list[Exercise]:
    """All registered exercises of a chapter ("02"), in id order."""
    _load_chapter(chapter)
    found = [ex for ex in _REGISTRY.values() if ex.chapter == chapter]
    return sorted(found, key=lambda ex: int(ex.id.split(".")[1]))


def find_exercise(exercise_id: str) -> Exercise | None:
    """The exercise registered under an id, loading its chapter's checks on first use."""
    if not isinstance(exercise_id, str) or not _ID_PATTERN.match(exercise_id):
        return None
    _load_chapter(exercise_id.split(".")[0])
    return _REGISTRY.get(exercise_id)


def run_check(exercise_id: str, *answers: Any) -> tuple[bool, str]:
    """Check answers without printing: return (passed, the line `check` would print)."""
    ex = find_exercise(exercise_id)
    if ex is None:
        return False, f"{FAIL_MARK} {exercise_id} unknown exercise: check the id in the check(...) call"
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                with torch.random.fork_rng(devices=[]), _python_and_numpy_rng_kept():  # the notebook's RNGs stay put
                    ex.verify(*answers)
    except Wrong as wrong:
        return False, f"{FAIL_MARK} {ex.id} {ex.title}: {one_line(str(wrong))}"
    except Exception as err:  # a learner's answer can break a check in ways nobody planned for
        return False, (
            f"{FAIL_MARK} {ex.id} {ex.title}: your answer could not be checked "
            f"({type(err).__name__}: {one_line(str(err))}). Look at what type and shape it has."
        )
    return True, f"{PASS_MARK} {ex.id} {ex.title}"


@contextlib.contextmanager
def _python_and_numpy_rng_kept():
    """Restore Python's and NumPy's global random states afterwards (fork_rng covers torch's): fastai's
    DataLoader draws from `random` when it is built, and learners' answers may draw from either."""
    py_state, np_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


class CheckResult:
    """What `check` returns: whether the answer passed, as a bool to any code that asks.

    `if check(...)`, `assert check(...)`, `check(...) == True`, `bool(check(...))` and `print(...)` all
    see True or False (`is True` does not: it is not the bool itself). A notebook cell that ends in
    `check(...)` displays nothing for it (`_ipython_display_`), so the printed ✅/❌ line stands alone,
    with or without a trailing `;`, in a kernel with history or without (nbval).
    """

    __slots__ = ("passed", "line")

    def __init__(self, passed: bool, line: str) -> None:
        self.passed = bool(passed)
        self.line = line

    def __bool__(self) -> bool:
        return self.passed

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CheckResult):
            return self.passed == other.passed
        if isinstance(other, (bool, int, np.bool_, np.integer)):
            return self.passed == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.passed)

    def __repr__(self) -> str:
        return repr(self.passed)

    __str__ = __repr__

    def _ipython_display_(self) -> None:
        """IPython shows this instead of an `Out[...]` value: nothing (the check line is already printed)."""


def check(exercise_id: str, *answers: Any) -> CheckResult:
    """Check an exercise: print one ✅/❌ line and return whether it passed. Never raises.

    Used at the end of every exercise, e.g. `check("02.1", deriv)`. Taught in 01_tensors.
    The result is a `CheckResult`: true or false to code that asks, and no `True`/`False` echo under the line.
    """
    passed, line = run_check(exercise_id, *answers)
    print(line)
    return CheckResult(passed, line)


def one_line(text: str, limit: int = 300) -> str:
    """`text` on one line (whitespace runs collapsed), cut to `limit` characters with an ellipsis."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------------------------
# Helpers for check authors. Each raises Wrong with a message written for the learner.
# ----------------------------------------------------------------------------------------------


def is_stub(answer: Any) -> bool:
    """True for the placeholders a stripped notebook leaves: `...` and None."""
    return answer is Ellipsis or answer is None


def require(answer: Any, name: str) -> Any:
    """Fail when an answer is still a placeholder; otherwise return it."""
    if is_stub(answer):
        raise Wrong(f"`{name}` is not answered yet: {STUB_HINT}.")
    return answer


def require_callable(fn: Any, name: str) -> Callable[..., Any]:
    """Fail unless the answer is a function (or class) the check can call."""
    require(fn, name)
    if not callable(fn):
        raise Wrong(f"`{name}` should be a function, got a {type(fn).__name__}.")
    return fn


def call(fn: Callable[..., Any], *args: Any, name: str | None = None, allow_none: bool = False, **kwargs: Any) -> Any:
    """Call the learner's function, reporting an exception or a missing return value as Wrong."""
    label = name or getattr(fn, "__name__", "your function")
    try:
        result = fn(*args, **kwargs)
    except Wrong:
        raise
    except Exception as err:
        raise Wrong(f"`{label}` raised {type(err).__name__}: {one_line(str(err), 160)}") from err
    if result is None and not allow_none:
        raise Wrong(f"`{label}` returned None: {STUB_HINT}, and make sure it ends with `return`.")
    return result


def as_tensor(value: Any, name: str, shape: tuple[int, ...] | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Convert a number, list, array or tensor to a CPU tensor of `dtype`, checking its shape."""
    require(value, name)
    if isinstance(value, torch.Tensor):
        tensor = value.detach().cpu()
    elif isinstance(value, (np.ndarray, np.generic, int, float, list, tuple)) and not isinstance(value, bool):
        try:
            tensor = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise Wrong(f"`{name}` should be numeric, but could not be read as numbers ({err}).") from err
    else:
        raise Wrong(f"`{name}` should be a tensor or an array, got a {type(value).__name__}.")
    if shape is not None and tuple(tensor.shape) != tuple(shape):
        raise Wrong(f"`{name}` should have shape {tuple(shape)}, got {tuple(tensor.shape)}.")
    return tensor.to(dtype)


def assert_close(actual: Any, expected: Any, name: str, rtol: float = 1e-5, atol: float = 1e-8, hint: str = "") -> None:
    """Fail unless `actual` matches `expected` (same shape, finite, within tolerance)."""
    expected_t = torch.as_tensor(expected, dtype=torch.float64)
    actual_t = as_tensor(actual, name, shape=tuple(expected_t.shape))
    if not torch.isfinite(actual_t).all():
        raise Wrong(f"`{name}` contains inf or nan.{' ' + hint if hint else ''}")
    if not torch.allclose(actual_t, expected_t, rtol=rtol, atol=atol):
        gap = (actual_t - expected_t).abs().max().item()
        shown = short(actual_t), short(expected_t)
        raise Wrong(
            f"`{name}` is {shown[0]}, expected {shown[1]} (largest gap {gap:.3g})."
            f"{' Hint: ' + hint if hint else ''}"
        )


class TorchCalls(TorchFunctionMode):
    """Names the torch functions and tensor methods called inside a `with` block, in order.

    Checks use it to see *how* an answer was computed (a forbidden shortcut, a required call, how
    many calls a loop made): `with TorchCalls() as calls: ...`, then `calls.names` and `calls.count`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.names: list[str] = []

    @property
    def count(self) -> int:
        return len(self.names)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.names.append(getattr(func, "__name__", ""))
        return func(*args, **(kwargs or {}))


def generator(seed: int) -> torch.Generator:
    """A seeded CPU generator for a check's hidden inputs (the notebook's global RNG stays untouched)."""
    return torch.Generator().manual_seed(seed)


def as_array(value: Any, name: str, shape: tuple[int, ...] | None = None, hint: str = "") -> np.ndarray:
    """The learner's array-like result as a finite float64 NumPy array, of `shape` when one is given."""
    require(value, name)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise Wrong(f"`{name}` should be an array of numbers, got a {type(value).__name__}.") from err
    if shape is not None and arr.shape != tuple(shape):
        raise Wrong(f"`{name}` has shape {arr.shape}, expected {tuple(shape)}.{' Hint: ' + hint if hint else ''}")
    if not np.isfinite(arr).all():
        raise Wrong(f"`{name}` contains inf or nan.")
    return arr


def as_bool(value: Any, name: str) -> bool:
    """A Python or NumPy bool, or a one-element bool tensor, as a Python bool (1 and 0 are refused)."""
    require(value, name)
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, torch.Tensor) and value.dtype == torch.bool and value.numel() == 1:
        return bool(value.item())
    raise Wrong(f"`{name}` should be True or False, got {value!r} (a {type(value).__name__}).")


def as_int(value: Any, name: str) -> int:
    """An int, a NumPy integer, or a one-element integer tensor or array, as a Python int (bools and floats refused)."""
    require(value, name)
    if isinstance(value, (bool, np.bool_)):
        raise Wrong(f"`{name}` should be an int, got a bool.")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, torch.Tensor) and value.numel() == 1 and not value.is_floating_point() and value.dtype != torch.bool:
        return int(value.item())
    if isinstance(value, np.ndarray) and value.size == 1 and np.issubdtype(value.dtype, np.integer):
        return int(value.item())
    raise Wrong(f"`{name}` should be an int, got {value!r} (a {type(value).__name__}).")


def as_shape(value: Any, name: str) -> tuple[int, ...]:
    """A tuple, list or torch.Size of ints, as a tuple of Python ints."""
    if not isinstance(value, (tuple, list, torch.Size)):
        raise Wrong(f"`{name}` should be a tuple of ints, got {value!r} (a {type(value).__name__}).")
    try:
        return tuple(as_int(v, name) for v in value)
    except Wrong:
        raise Wrong(f"`{name}` should contain only ints, got {tuple(value)!r}.") from None


def as_float(value: Any, name: str) -> float:
    """A number, or a one-element tensor or array, as a Python float (bools are refused)."""
    require(value, name)
    if isinstance(value, (bool, np.bool_)):
        raise Wrong(f"`{name}` should be a number, got a bool.")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise Wrong(f"`{name}` should be a single number, got a tensor of shape {tuple(value.shape)}.")
        return float(value.detach().cpu().item())
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    if isinstance(value, np.ndarray) and value.size == 1:
        return float(value.item())
    raise Wrong(f"`{name}` should be a number, got a {type(value).__name__}.")


def short(t: torch.Tensor) -> str:
    """A tensor in a few characters for a message: its value, or its first four values."""
    if t.numel() == 1:
        return f"{t.item():.6g}"
    flat = ", ".join(f"{v:.4g}" for v in t.flatten()[:4].tolist())
    return f"[{flat}{', …' if t.numel() > 4 else ''}]"
