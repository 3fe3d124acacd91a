"""Checks for 01_tensors: the memory model, broadcasting, and real data as tensors.

The exercises on course datasets (photos, diamonds, EWR hours, Pride and Prejudice, the Cranium CT)
also run the learner's functions on a hidden variant of the data, so hard-coded results fail. What
every check promises is in framework.py's docstring.
"""

from __future__ import annotations

import functools
import inspect
import json.decoder
import re
import sys
from typing import Any, Callable

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

from course_utils.checks.framework import (
    as_bool,
    as_int,
    as_shape,
    as_tensor,
    assert_close,
    call,
    exercise,
    F64,
    generator,
    require,
    require_callable,
    Wrong,
)

__all__ = [
    "check_addresses", "check_broadcast_shape", "check_contiguous", "check_days", "check_diamonds",
    "check_matmul", "check_normalize", "check_photo_colours", "check_predict", "check_sqrt_fix",
    "check_vocabulary", "check_window",
]



def _tensor_result(value: Any, name: str) -> torch.Tensor:
    """The learner's result must be a tensor (not a list or an array); return it detached on the CPU."""
    require(value, name)
    if not isinstance(value, torch.Tensor):
        raise Wrong(f"`{name}` should be a torch tensor, got a {type(value).__name__}.")
    return value.detach().cpu()


def _close_quietly(actual: Any, expected: torch.Tensor, name: str, atol: float, hint: str) -> None:
    """Like assert_close, but for values the learner computes: the message does not give the answer away."""
    got = as_tensor(actual, name, shape=tuple(expected.shape))
    if not torch.isfinite(got).all():
        raise Wrong(f"`{name}` contains inf or nan.")
    gap = (got - expected.to(F64)).abs().max().item()
    if gap > atol:
        raise Wrong(f"`{name}` is off by up to {gap:.3g} (allowed {atol:g}). Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 01.1 predict the output
# ----------------------------------------------------------------------------------------------

# One hint per key, toward the reasoning, never the value (the ❌ line names the wrong keys only).
_PREDICT_HINTS = {
    "shape": "which rows and columns does b[1:, 1:] keep?",
    "storage_offset": "c[0, 0] is b[1, 1]: how far into a is it?",
    "stride": "does a step-1 slice change strides?",
    "is_contiguous": "walk c row by row: any gap?",
    "a_b_share_storage": "does `view` copy (section 4)?",
}


@exercise("01.1", "predict shape, offset and stride")
def check_predict(answers: Any) -> None:
    require(answers, "c_answers")
    if not isinstance(answers, dict):
        raise Wrong(f"`c_answers` should be a dict with the keys {', '.join(_PREDICT_HINTS)}; got a {type(answers).__name__}.")
    missing = [k for k in _PREDICT_HINTS if k not in answers]
    if missing:
        raise Wrong(f"`c_answers` is missing the key(s) {', '.join(missing)}.")
    a = torch.arange(9)
    b = a.view(3, 3)
    c = b[1:, 1:]
    truth = {
        "shape": tuple(c.shape),
        "storage_offset": c.storage_offset(),
        "stride": tuple(c.stride()),
        "is_contiguous": c.is_contiguous(),
        "a_b_share_storage": a.untyped_storage().data_ptr() == b.untyped_storage().data_ptr(),
    }
    wrong = []
    for key, expected in truth.items():
        given = answers[key]
        try:
            if key in ("shape", "stride"):
                ok = as_shape(given, key) == expected
            elif key == "storage_offset":
                ok = as_int(given, key) == expected
            else:
                ok = as_bool(given, key) == expected
        except Wrong:
            ok = False
        if not ok:
            wrong.append(key)
    if wrong:
        raise Wrong("not right yet: " + "; ".join(f"{k} ({_PREDICT_HINTS[k]})" for k in wrong) + ".")


# ----------------------------------------------------------------------------------------------
# 01.2 addresses and the whole storage
# ----------------------------------------------------------------------------------------------

_VIEW_DTYPES = (torch.float32, torch.float64, torch.int16, torch.int64, torch.uint8)

# Each entry makes a view of a 60-element base tensor b.
_VIEWS: list[tuple[str, Callable[[torch.Tensor], torch.Tensor]]] = [
    ("b.view(3, 4, 5)[1]", lambda b: b.view(3, 4, 5)[1]),
    ("b.view(3, 4, 5)[:, 1:, ::2]", lambda b: b.view(3, 4, 5)[:, 1:, ::2]),
    ("b.view(3, 4, 5).transpose(0, 2)", lambda b: b.view(3, 4, 5).transpose(0, 2)),
    ("b.view(3, 4, 5).permute(2, 0, 1)", lambda b: b.view(3, 4, 5).permute(2, 0, 1)),
    ("b.view(3, 4, 5)[..., 1:4:2]", lambda b: b.view(3, 4, 5)[..., 1:4:2]),
    ("b.view(12, 5).t()", lambda b: b.view(12, 5).t()),
    ("b[7:]", lambda b: b[7:]),
    ("b[3:51].view(6, 8)[::2, 1::3]", lambda b: b[3:51].view(6, 8)[::2, 1::3]),
    ("b[5:10].expand(3, 5)", lambda b: b[5:10].expand(3, 5)),
    ("b.view(3, 4, 5)[:, :1].expand(3, 4, 5)", lambda b: b.view(3, 4, 5)[:, :1].expand(3, 4, 5)),
    ("b[::7]", lambda b: b[::7]),
    ("b.view(4, 15)[1:3, 2:9:3].t()", lambda b: b.view(4, 15)[1:3, 2:9:3].t()),
    ("b.view(3, 20)[2]", lambda b: b.view(3, 20)[2]),
    ("b.view(2, 3, 10)[1].t()[::3]", lambda b: b.view(2, 3, 10)[1].t()[::3]),
    ("b[59:]", lambda b: b[59:]),
    ("b.view(5, 12)[:, 4].unsqueeze(1).expand(5, 6)", lambda b: b.view(5, 12)[:, 4].unsqueeze(1).expand(5, 6)),
    ("b.view(6, 10)[1::2, ::4]", lambda b: b.view(6, 10)[1::2, ::4]),
    ("b.view(3, 4, 5)[2, 3]", lambda b: b.view(3, 4, 5)[2, 3]),
    ("b.view(60, 1).expand(60, 3)[10:20]", lambda b: b.view(60, 1).expand(60, 3)[10:20]),
    ("b.view(2, 30)[:, None, 5:25].expand(2, 3, 20)", lambda b: b.view(2, 30)[:, None, 5:25].expand(2, 3, 20)),
]


@exercise("01.2", "addresses and the whole storage")
def check_addresses(element_address: Any, storage_view: Any) -> None:
    require_callable(element_address, "element_address")
    require_callable(storage_view, "storage_view")
    gen = generator(102)
    # the formula on its own, with offsets and zero strides
    for _ in range(10):
        rank = int(torch.randint(1, 5, (1,), generator=gen))
        offset = int(torch.randint(0, 50, (1,), generator=gen))
        stride = tuple(int(s) for s in torch.randint(0, 30, (rank,), generator=gen))
        index = tuple(int(i) for i in torch.randint(0, 6, (rank,), generator=gen))
        got = as_int(call(element_address, offset, stride, index, name="element_address"), "element_address(...)")
        expected = offset + sum(s * i for s, i in zip(stride, index))
        if got != expected:
            raise Wrong(
                f"element_address({offset}, {stride}, {index}) returned {got}, expected {expected}. "
                "Hint: offset + the sum of stride[i] * index[i]."
            )
    # real views
    for k, (label, make) in enumerate(_VIEWS):
        dtype = _VIEW_DTYPES[k % len(_VIEW_DTYPES)]
        base = torch.randperm(60, generator=gen).to(dtype)
        view = make(base)
        flat = _tensor_result(call(storage_view, view, name="storage_view"), "storage_view(t)")
        if flat.ndim != 1:
            raise Wrong(f"storage_view({label}) should be 1-D, got shape {tuple(flat.shape)}.")
        if flat.numel() != base.numel():
            raise Wrong(
                f"storage_view({label}) has {flat.numel()} elements, but the storage behind it holds {base.numel()} "
                f"({dtype} elements). Hint: untyped_storage().nbytes() counts bytes; divide by element_size(), and "
                "start at position 0 whatever the view's offset."
            )
        if flat.dtype != dtype:
            raise Wrong(f"storage_view({label}) has dtype {flat.dtype}, but the tensor is {dtype}: keep the dtype.")
        if not torch.equal(flat, base):
            raise Wrong(
                f"storage_view({label}) does not list the storage in order from position 0. "
                "Hint: torch.as_strided(t, (n,), (1,), 0) reads n elements from the very start."
            )
        for _ in range(3):
            index = tuple(int(torch.randint(0, max(s, 1), (1,), generator=gen)) for s in view.shape)
            address = as_int(
                call(element_address, view.storage_offset(), view.stride(), index, name="element_address"),
                "element_address(...)",
            )
            if not 0 <= address < flat.numel() or flat[address] != view[index]:
                raise Wrong(
                    f"for t = {label} (offset {view.storage_offset()}, stride {view.stride()}), index {index}: "
                    f"element_address gave {address}, which does not hold t{list(index)}. "
                    "Hint: offset + the sum of stride[i] * index[i]."
                )


# ----------------------------------------------------------------------------------------------
# 01.3 contiguous or not
# ----------------------------------------------------------------------------------------------

_CONTIGUITY_EDGES = [
    ((), ()),
    ((0, 3), (7, 9)),
    ((2, 0, 3), (1, 1, 1)),
    ((1,), (5,)),
    ((3, 1, 4), (4, 99, 1)),
    ((4, 1), (1, 7)),
    ((1, 4), (9, 1)),
    ((1, 1), (0, 0)),
    ((3, 4), (4, 1)),
    ((3, 4), (1, 3)),
    ((3, 4), (0, 1)),
    ((3, 4), (4, 0)),
    ((3,), (0,)),
    ((5,), (2,)),
    ((2, 3, 4), (12, 4, 1)),
    ((2, 3, 4), (1, 2, 6)),
    ((2, 2), (1, 2)),
    ((2, 3, 1, 4), (12, 4, 1, 1)),
    ((2, 3, 1, 4), (12, 4, 3, 1)),
    ((2, 3), (4, 1)),
]


def _contiguity_cases() -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    gen = generator(103)
    cases = list(_CONTIGUITY_EDGES)
    while len(cases) < 30:
        shape = [int(s) for s in torch.randint(1, 5, (int(torch.randint(2, 5, (1,), generator=gen)),), generator=gen)]
        t = torch.empty(shape)
        kind = len(cases) % 5
        if kind == 0:
            v = t.transpose(0, -1)
        elif kind == 1:
            v = t.unsqueeze(1)
        elif kind == 2:
            v = t[..., ::2]
        elif kind == 3:
            v = t.unsqueeze(0).expand(3, *shape)
        else:
            v = t[:1]
        cases.append((tuple(v.shape), tuple(v.stride())))
    return cases


@exercise("01.3", "contiguous or not")
def check_contiguous(is_contiguous_manual: Any) -> None:
    require_callable(is_contiguous_manual, "is_contiguous_manual")
    for shape, stride in _contiguity_cases():
        expected = torch.empty_strided(shape, stride).is_contiguous()
        got = as_bool(call(is_contiguous_manual, shape, stride, name="is_contiguous_manual"), "is_contiguous_manual(...)")
        if got != expected:
            if 0 in shape:
                hint = "a tensor with no elements counts as contiguous."
            elif any(size == 1 for size in shape):
                hint = "the stride of a size-1 dimension never matters: skip it."
            elif 0 in stride:
                hint = "an expanded dimension (stride 0) repeats memory, so it cannot be row-major."
            else:
                hint = "walk from the last dimension: its stride must be 1, then each stride the product of the sizes to its right."
            raise Wrong(f"is_contiguous_manual({shape}, {stride}) returned {got}, but torch says {expected}. Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 01.4 debug sqrt_
# ----------------------------------------------------------------------------------------------


@exercise("01.4", "debug an in-place square root")
def check_sqrt_fix(a: Any) -> None:
    t = _tensor_result(a, "a")
    if tuple(t.shape) != (9,):
        raise Wrong(f"`a` should have shape (9,), got {tuple(t.shape)}.")
    if not t.dtype.is_floating_point:
        raise Wrong(
            f"`a` has dtype {t.dtype}: square roots need a floating dtype. "
            "Hint: create a as float32 (arange takes a dtype), then sqrt_() can write into it."
        )
    assert_close(t, torch.arange(9, dtype=F64).sqrt(), "a", rtol=0, atol=1e-6,
                 hint="a should hold sqrt(0), sqrt(1), ..., sqrt(8); did the square root run?")


# ----------------------------------------------------------------------------------------------
# 01.5 broadcasting by hand
# ----------------------------------------------------------------------------------------------


def _shape_pairs() -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    gen = generator(105)
    pairs = [((), ()), ((), (3, 1)), ((0, 3), (1, 3)), ((2, 3), (4, 3)), ((5, 1, 4), (2, 1))]

    def randint(lo: int, hi: int) -> int:
        return int(torch.randint(lo, hi, (1,), generator=gen))

    while len(pairs) < 40:
        rank = randint(1, 5)
        full = [randint(2, 6) for _ in range(rank)]
        a = [d if randint(0, 3) else 1 for d in full][rank - randint(0, rank + 1):]
        b = [d if randint(0, 3) else 1 for d in full][rank - randint(0, rank + 1):]
        if len(pairs) % 4 == 0 and a and b:  # plant a clash
            pos = randint(1, min(len(a), len(b)) + 1)
            a[-pos], b[-pos] = full[-pos], full[-pos] + 1
        pairs.append((tuple(a), tuple(b)))
    return pairs


@exercise("01.5", "broadcasting by hand")
def check_broadcast_shape(broadcast_shape: Any) -> None:
    require_callable(broadcast_shape, "broadcast_shape")
    cases = []
    for s1, s2 in _shape_pairs():
        try:
            cases.append((s1, s2, tuple(torch.broadcast_shapes(s1, s2))))
        except RuntimeError:
            cases.append((s1, s2, None))
    # The learner's calls run under two spies: which broadcasting helpers of torch/NumPy run, and (for one
    # probe pair) whether tensors of the two shapes are built and combined, i.e. torch does the broadcasting.
    results, failure = [], None
    with _LibraryCalls(_BROADCAST_HELPERS) as helpers:
        with _TensorShapes() as made:
            try:
                broadcast_shape(*_BROADCAST_PROBE)
            except Exception:  # reported below, by the checked calls
                pass
        try:
            for s1, s2, _ in cases:
                results.append(call(broadcast_shape, s1, s2, name="broadcast_shape", allow_none=True))
        except Wrong as wrong:
            failure = wrong
    used = helpers.seen or _named_helpers(broadcast_shape)
    if used:
        raise Wrong(
            f"broadcast_shape uses `{used[0]}`, which the exercise forbids (the check compares against it). "
            "Hint: apply section 5's rules to the two tuples of ints yourself, size by size from the right."
        )
    if made.shapes & set(_BROADCAST_PROBE):
        raise Wrong(
            f"broadcast_shape{_BROADCAST_PROBE} builds tensors of those shapes and lets torch broadcast them; "
            "the exercise asks for the rules themselves. Hint: work on the two tuples of ints only, size by size "
            "from the right."
        )
    if failure is not None:
        raise failure
    for (s1, s2, expected), got in zip(cases, results):
        if expected is None:
            if got is not None:
                raise Wrong(
                    f"broadcast_shape({s1}, {s2}) returned {got!r}, but these shapes are incompatible: return None. "
                    "Hint: aligned on the right, two sizes must be equal or one of them 1."
                )
            continue
        if got is None:
            raise Wrong(
                f"broadcast_shape({s1}, {s2}) returned None, but the shapes broadcast to {expected}. "
                "Hint: a missing dimension counts as 1. (Not started yet? Replace the `...` with your code.)"
            )
        got = as_shape(got, f"broadcast_shape({s1}, {s2})")
        if got != expected:
            raise Wrong(
                f"broadcast_shape({s1}, {s2}) returned {got}, expected {expected}. "
                "Hint: align the shapes on the right and pad the shorter one with 1s on the left."
            )


# The library functions that would do 01.5's work (torch's and NumPy's), and a probe pair whose shapes no
# rule-by-rule implementation builds tensors of (one written with tensors of sizes makes 1-D tensors).
_BROADCAST_HELPERS = frozenset({"broadcast_shapes", "_broadcast_shapes", "broadcast_tensors", "broadcast_to",
                                "broadcast_arrays", "_broadcast_shape"})
_BROADCAST_PROBE = ((5, 1, 4), (3, 1))


def _code_names(fn: Any) -> set[str]:
    """The global and attribute names a function's code (nested functions included) refers to."""
    code = getattr(fn, "__code__", None) or getattr(getattr(fn, "__call__", None), "__code__", None)
    names: set[str] = set()
    stack = [code] if code is not None else []
    while stack:
        c = stack.pop()
        names.update(c.co_names)
        stack.extend(k for k in c.co_consts if inspect.iscode(k))
    return names


def _named_helpers(fn: Any) -> list[str]:
    """The broadcasting helpers the learner's code names, even on a branch the check did not run."""
    names = _code_names(fn)
    found = sorted(names & (_BROADCAST_HELPERS - {"_broadcast_shape"}))
    if "broadcast" in names and names & {"np", "numpy"}:
        found.append("np.broadcast")
    return found


class _LibraryCalls:
    """Records, by name, which of `names` torch or NumPy run inside a `with` block (a sys.setprofile spy:
    it sees the call however the learner imported the function)."""

    def __init__(self, names: frozenset[str]):
        self.names = names
        self.seen: list[str] = []

    def _profile(self, frame, event, arg):
        if event == "call":
            name, filename = frame.f_code.co_name, frame.f_code.co_filename.replace("\\", "/")
            if name in self.names:
                for lib, label in (("/torch/", "torch"), ("/numpy/", "np")):
                    if lib in filename and "-packages" in filename:
                        self._add(f"{label}.{name.lstrip('_')}")
        elif event == "c_call" and getattr(arg, "__name__", "") in self.names:  # torch's C functions and methods
            self._add(f"torch.{arg.__name__}")

    def _add(self, label: str) -> None:
        if label not in self.seen:
            self.seen.append(label)

    def __enter__(self):
        self._previous = sys.getprofile()
        sys.setprofile(self._profile)
        return self

    def __exit__(self, *exc):
        sys.setprofile(self._previous)
        return False


class _TensorShapes(TorchFunctionMode):
    """Records the shapes of the tensors that torch functions and tensor methods return inside a `with` block."""

    def __init__(self):
        super().__init__()
        self.shapes: set[tuple[int, ...]] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in (out if isinstance(out, (tuple, list)) else (out,)):
            if isinstance(t, torch.Tensor):
                self.shapes.add(tuple(t.shape))
        return out


# ----------------------------------------------------------------------------------------------
# 01.6 normalise any image or batch
# ----------------------------------------------------------------------------------------------


@exercise("01.6", "normalise per channel")
def check_normalize(normalize_channels: Any) -> None:
    require_callable(normalize_channels, "normalize_channels")
    gen = generator(106)
    for shape in [(3, 5, 7), (4, 2, 6, 5), (1, 4, 3, 3), (2, 6, 1)]:
        c = shape[-3]
        x = torch.rand(shape, generator=gen) * 4 + torch.arange(c, dtype=torch.float32).view(c, 1, 1)
        for own_stats in (False, True):
            if own_stats:
                dims = tuple(d for d in range(x.ndim) if d != x.ndim - 3)
                mean, std = x.mean(dim=dims), x.std(dim=dims)
            else:
                mean = torch.rand(c, generator=gen) * 2 - 1
                std = torch.rand(c, generator=gen) + 0.5
            x_in, mean_in, std_in = x.clone(), mean.clone(), std.clone()
            out = _tensor_result(call(normalize_channels, x_in, mean_in, std_in, name="normalize_channels"),
                                 f"normalize_channels(x of shape {shape})")
            if not (torch.equal(x_in, x) and torch.equal(mean_in, mean) and torch.equal(std_in, std)):
                raise Wrong(
                    "normalize_channels changed its input. Hint: use out-of-place operations "
                    "(x - m) / s, not sub_ or div_ or -=."
                )
            expected = (x.double() - mean.double().view(c, 1, 1)) / std.double().view(c, 1, 1)
            assert_close(out, expected, f"normalize_channels(x of shape {shape})", rtol=1e-5, atol=1e-5,
                         hint="reshape mean and std to (C, 1, 1) so they line up with dim -3.")
            if own_stats:
                per_channel_mean = out.double().mean(dim=dims)
                per_channel_std = out.double().std(dim=dims)
                if per_channel_mean.abs().max() > 1e-5 or (per_channel_std - 1).abs().max() > 1e-4:
                    raise Wrong("with the input's own statistics the output should have mean 0 and std 1 per channel.")


# ----------------------------------------------------------------------------------------------
# 01.7 matrix multiplication, two more ways
# ----------------------------------------------------------------------------------------------


@exercise("01.7", "matmul with one loop and with einsum")
def check_matmul(matmul_one_loop: Any, matmul_einsum: Any) -> None:
    require_callable(matmul_one_loop, "matmul_one_loop")
    require_callable(matmul_einsum, "matmul_einsum")
    gen = generator(107)
    for m, k, n in [(1, 1, 1), (3, 1, 4), (1, 5, 1), (7, 13, 2), (17, 300, 23)]:
        a = torch.randn(m, k, generator=gen)
        b = torch.randn(k, n, generator=gen)
        expected = a.double() @ b.double()
        for fn, label in ((matmul_one_loop, "matmul_one_loop"), (matmul_einsum, "matmul_einsum")):
            out = _tensor_result(call(fn, a.clone(), b.clone(), name=label), f"{label}(a, b)")
            assert_close(out, expected, f"{label}(a, b) for a {m}×{k} and a {k}×{n} matrix", rtol=1e-4, atol=1e-4,
                         hint="c[i, j] is the sum over k of a[i, k] * b[k, j].")
    _check_one_loop(matmul_one_loop, gen)
    a = torch.randn(50, 50, generator=gen)
    b = torch.randn(50, 50, generator=gen)
    with _CountTorchCalls() as counter:  # deterministic: a loop makes one torch call per step
        call(matmul_einsum, a, b, name="matmul_einsum")
    shortcut = [name for name in counter.names if name in _MATMUL_SHORTCUTS and name != "einsum"]
    if shortcut:
        raise Wrong(
            f"matmul_einsum calls {_matmul_label(shortcut[0])}; the exercise asks for torch.einsum. "
            "Hint: one torch.einsum call whose string names the index of each dimension and leaves out the summed one."
        )
    if counter.calls > 10:
        raise Wrong(
            f"matmul_einsum made {counter.calls} torch calls on 50×50 matrices; one torch.einsum call is enough. "
            "Hint: no Python loop, let the einsum string name the summed index."
        )
    # A pure-Python loop over .tolist() makes few torch calls, but runs thousands of Python lines.
    lines = _python_lines_run(matmul_einsum, a, b)
    if lines > 200:
        raise Wrong(
            f"matmul_einsum ran {lines} lines of Python on 50×50 matrices: that is a Python loop. "
            "Hint: a single torch.einsum call, with no Python loop."
        )
    if "einsum" not in counter.names:
        raise Wrong(
            "matmul_einsum never calls torch.einsum: the numbers are right, but this exercise is about the einsum "
            "notation. Hint: one torch.einsum call whose string names the index of each dimension."
        )


# Ready-made matrix products (names as a TorchFunctionMode sees them: `a @ b` arrives as matmul).
_MATMUL_SHORTCUTS = frozenset({
    "matmul", "mm", "mv", "bmm", "einsum", "tensordot", "dot", "vdot", "inner", "addmm", "addmv", "addbmm",
    "baddbmm", "chain_matmul", "linalg_multi_dot", "linalg_vecdot", "linear", "bilinear",
})


def _matmul_label(name: str) -> str:
    if name == "matmul":
        return "torch.matmul (or `@`)"
    return "torch.linalg." + name[len("linalg_"):] if name.startswith("linalg_") else f"torch.{name}"


def _check_one_loop(matmul_one_loop: Callable, gen: torch.Generator) -> None:
    """One loop over the columns of b, broadcasting inside: no ready-made product, and torch calls that grow
    with the number of columns of b but not with the rows of a or the inner size k."""
    counts, names = {}, set()
    for label, (m, k, n) in {"base": (3, 4, 3), "rows": (27, 4, 3), "inner": (3, 27, 3), "columns": (3, 4, 27)}.items():
        a = torch.randn(m, k, generator=gen)
        b = torch.randn(k, n, generator=gen)
        with _CountTorchCalls() as counter:
            call(matmul_one_loop, a, b, name="matmul_one_loop")
        counts[label] = counter.calls
        names.update(counter.names)
    shortcut = sorted(names & _MATMUL_SHORTCUTS)
    if shortcut:
        raise Wrong(
            f"matmul_one_loop calls {_matmul_label(shortcut[0])}, a ready-made product; the exercise asks for "
            "broadcasting inside the loop. Hint: each step may use only elementwise operations and a sum, "
            "with broadcasting lining up one column of b against a."
        )
    grow = {label: counts[label] - counts["base"] for label in ("rows", "inner", "columns")}
    if grow["rows"] >= 24:
        raise Wrong(
            f"matmul_one_loop makes {grow['rows']} more torch calls when a has 27 rows instead of 3: it loops "
            "over the rows of a, like section 6. Hint: the exercise asks for a single loop over the columns of b."
        )
    if grow["inner"] >= 24:
        raise Wrong(
            f"matmul_one_loop makes {grow['inner']} more torch calls when the inner size k is 27 instead of 4: it "
            "loops over k. Hint: loop over the columns of b only, and let a broadcast product and a sum handle k."
        )
    if grow["columns"] < 24:
        raise Wrong(
            "matmul_one_loop makes about as many torch calls for 27 columns of b as for 3: it has no loop over the "
            "columns of b. Hint: one Python loop with one step per column of b, each step a broadcast tensor operation."
        )


def _python_lines_run(fn, *args) -> int:
    """How many lines of Python outside installed packages run during fn(*args) (deterministic, unlike a timing)."""
    count = 0

    def local(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return local

    def on_call(frame, event, arg):
        filename = frame.f_code.co_filename
        return None if "-packages" in filename or filename.startswith("<frozen") else local

    previous = sys.gettrace()
    sys.settrace(on_call)
    try:
        call(fn, *args, name=getattr(fn, "__name__", "matmul_einsum"))
    finally:
        sys.settrace(previous)
    return count


class _CountTorchCalls(TorchFunctionMode):
    """Counts (and names) the torch functions and tensor methods called inside a `with` block."""

    def __init__(self):
        super().__init__()
        self.calls = 0
        self.names: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        self.names.append(getattr(func, "__name__", ""))
        return func(*args, **(kwargs or {}))


# ----------------------------------------------------------------------------------------------
# 01.8 photo colours
# ----------------------------------------------------------------------------------------------

_PHOTO_NAMES = ("chelsea", "coffee", "astronaut", "horse")


@functools.lru_cache(maxsize=1)
def _photo_reference() -> tuple[torch.Tensor, torch.Tensor, dict[str, str]]:
    from course_utils import data

    means = []
    for name in _PHOTO_NAMES:
        rgb = torch.from_numpy(np.ascontiguousarray(data.photo(name)[..., :3])).double() / 255
        means.append(rgb.mean(dim=(0, 1)))
    means_t = torch.stack(means)
    bright = means_t.mean(dim=1)
    winners = (means_t / bright[:, None]).argmax(dim=0)
    dominant = {colour: _PHOTO_NAMES[int(i)] for colour, i in zip(("red", "green", "blue"), winners)}
    return means_t, bright, dominant


@exercise("01.8", "which photo is the reddest")
def check_photo_colours(channel_means: Any, brightness: Any, dominant: Any) -> None:
    require(channel_means, "channel_means")
    require(brightness, "brightness")
    require(dominant, "dominant")
    ref_means, ref_bright, ref_dominant = _photo_reference()
    got_means = as_tensor(channel_means, "channel_means")
    if tuple(got_means.shape) != (4, 3):
        raise Wrong(f"`channel_means` should have shape (4, 3), one row per photo in the order {', '.join(_PHOTO_NAMES)}; "
                    f"got {tuple(got_means.shape)}. Hint: keep only the first three channels of horse.")
    if got_means.max() > 1.5:
        raise Wrong("`channel_means` should be on the [0, 1] scale. Hint: divide the uint8 values by 255.")
    _close_quietly(got_means, ref_means, "channel_means", atol=1e-3,
                   hint="mean over height and width of each of the R, G, B planes, in the order of `names`.")
    _close_quietly(brightness, ref_bright, "brightness", atol=1e-3, hint="each photo's mean of its three channel means.")
    if not isinstance(dominant, dict):
        raise Wrong(f"`dominant` should be a dict like {{'red': 'coffee', ...}}, got a {type(dominant).__name__}.")
    for colour in ("red", "green", "blue"):
        if colour not in dominant:
            raise Wrong(f"`dominant` has no key {colour!r}.")
        if dominant[colour] != ref_dominant[colour]:
            raise Wrong(
                f"dominant[{colour!r}] = {dominant[colour]!r} is not the photo with the largest {colour} mean "
                "relative to its brightness. Hint: divide each row of channel_means by that photo's brightness, "
                "then take the argmax down each column."
            )


# ----------------------------------------------------------------------------------------------
# 01.9 diamonds
# ----------------------------------------------------------------------------------------------

_GRADES = {
    "color": ["J", "I", "H", "G", "F", "E", "D"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
    "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
}


@functools.lru_cache(maxsize=1)
def _diamonds() -> torch.Tensor:
    from course_utils import data

    path = data.path("diamonds")
    with open(path) as f:
        header = f.readline().strip().split(";")
    converters = {header.index(col): (lambda order: lambda s: order.index(s.strip('"')) + 1)(order)
                  for col, order in _GRADES.items()}
    table = np.loadtxt(path, dtype=np.float32, delimiter=";", skiprows=1, converters=converters)
    return torch.from_numpy(table)


def _check_prepared(result: Any, table: torch.Tensor, label: str) -> None:
    require(result, f"prepare_diamonds({label})")
    if not isinstance(result, (tuple, list)) or len(result) != 2:
        raise Wrong(f"prepare_diamonds should return two tensors (features, onehot), got a {type(result).__name__}.")
    feats = _tensor_result(result[0], "the standardised features")
    onehot = _tensor_result(result[1], "the one-hot cut")
    n = table.shape[0]
    if tuple(feats.shape) != (n, 9):
        raise Wrong(f"for {label} the features should have shape ({n}, 9), got {tuple(feats.shape)}. "
                    "Hint: every column except the last.")
    if tuple(onehot.shape) != (n, 5):
        raise Wrong(f"for {label} the one-hot cut should have shape ({n}, 5), got {tuple(onehot.shape)}.")
    if not onehot.dtype.is_floating_point:
        raise Wrong(f"the one-hot cut should be a float tensor, got {onehot.dtype}. Hint: scatter_ into torch.zeros(N, 5).")
    if not torch.isin(onehot, torch.tensor([0.0, 1.0], dtype=onehot.dtype)).all() or not (onehot.sum(dim=1) == 1).all():
        raise Wrong("each row of the one-hot cut should hold a single 1 and four 0s.")
    codes = table[:, -1].long()
    if not torch.equal(onehot.argmax(dim=1) + 1, codes):
        raise Wrong("the one-hot cut puts its 1 in the wrong column: grade g belongs in column g − 1. "
                    "Hint: scatter_(1, grade.unsqueeze(1) - 1, 1.0).")
    feats64 = feats.double()
    if not torch.isfinite(feats64).all():
        raise Wrong("the standardised features contain inf or nan.")
    if feats64.mean(dim=0).abs().max() > 1e-4 or (feats64.std(dim=0) - 1).abs().max() > 1e-3:
        raise Wrong(f"for {label} the standardised columns should have mean 0 and std 1. "
                    "Hint: subtract mean(dim=0) and divide by sqrt(var(dim=0)) of this table's features.")
    raw = table[:, :-1].double()
    expected = (raw - raw.mean(dim=0)) / raw.std(dim=0)
    if not torch.allclose(feats64, expected, atol=2e-3, rtol=0):
        raise Wrong(f"for {label} the features are not the table's first 9 columns, standardised, in their order.")


@exercise("01.9", "a reusable table pipeline")
def check_diamonds(prepare_diamonds: Any) -> None:
    require_callable(prepare_diamonds, "prepare_diamonds")
    full = _diamonds()
    subset = full[torch.randperm(full.shape[0], generator=generator(109))[:5000]]
    for table, label in ((full, "the diamonds table"), (subset, "a hidden sample of 5,000 diamonds")):
        table_in = table.clone()
        result = call(prepare_diamonds, table_in, name="prepare_diamonds")
        if not torch.equal(table_in, table):
            raise Wrong("prepare_diamonds changed the table it was given. Hint: avoid in-place operations on it.")
        _check_prepared(result, table, label)


# ----------------------------------------------------------------------------------------------
# 01.10 days of flights
# ----------------------------------------------------------------------------------------------

_WEATHER_COL, _DEPARTURES_COL, _N_COLS = 6, 14, 15


@functools.lru_cache(maxsize=1)
def _hourly() -> torch.Tensor:
    from course_utils import data

    return torch.from_numpy(np.loadtxt(data.path("ewr_hourly"), dtype=np.float32, delimiter=",", skiprows=1))


def _reference_days(hourly: torch.Tensor) -> torch.Tensor:
    days = hourly.reshape(-1, 24, _N_COLS).transpose(1, 2)
    onehot = torch.zeros(days.shape[0], 4, 24)
    onehot.scatter_(1, days[:, _WEATHER_COL:_WEATHER_COL + 1].long() - 1, 1.0)
    return torch.cat((days, onehot), dim=1)


@exercise("01.10", "days of flights")
def check_days(build_days: Any, weather_means: Any) -> None:
    require_callable(build_days, "build_days")
    require(weather_means, "weather_means")
    hourly = _hourly()
    gen = generator(110)
    picked = torch.randperm(hourly.shape[0] // 24, generator=gen)[:30]
    hidden = hourly.view(-1, 24, _N_COLS)[picked].reshape(-1, _N_COLS).clone()
    hidden[:, _WEATHER_COL] = torch.randint(1, 5, (hidden.shape[0],), generator=gen).float()
    for table, label in ((hourly, "the 2013 hours"), (hidden, "30 hidden days with made-up weather")):
        table_in = table.clone()
        out = _tensor_result(call(build_days, table_in, name="build_days"), f"build_days({label})")
        n_days = table.shape[0] // 24
        if tuple(out.shape) != (n_days, 19, 24):
            raise Wrong(f"build_days({label}) should have shape ({n_days}, 19, 24), got {tuple(out.shape)}. "
                        "Hint: view(-1, 24, 15), transpose(1, 2), then cat 4 one-hot channels on dim 1.")
        if out.dtype != torch.float32:
            raise Wrong(f"build_days should return float32, got {out.dtype}.")
        if not torch.equal(table_in, table):
            raise Wrong("build_days changed the table it was given.")
        if not torch.equal(out[:, 15:].sum(dim=1), torch.ones(n_days, 24)):
            raise Wrong(f"for {label} the 4 weather channels (15-18) should sum to 1 at every hour.")
        assert_close(out, _reference_days(table), f"build_days({label})", rtol=0, atol=1e-5,
                     hint="channels 0-14 are the table's columns, channels 15-18 one-hot weathersit 1-4.")
    days = _reference_days(hourly)
    expected = torch.stack([days[:, _DEPARTURES_COL][days[:, 15 + k] == 1].double().mean() for k in range(4)])
    got = as_tensor(weather_means, "weather_means")
    if tuple(got.shape) != (4,):
        raise Wrong(f"`weather_means` should have shape (4,), one mean per weather situation, got {tuple(got.shape)}.")
    _close_quietly(got, expected, "weather_means", atol=0.01,
                   hint="average the departures channel over all hours whose weather channel k is 1 (a boolean mask).")


# ----------------------------------------------------------------------------------------------
# 01.11 a vocabulary for code
# ----------------------------------------------------------------------------------------------

_HIDDEN_TEXTS = [
    "The cat_1 sat; the CAT_1 sat again -- on 2 mats!!! (Really?) x=y+z",
    "def f(x):\n    return x**2  # square\n\nprint(f(3), F(3))\n",
]


def _reference_index(text: str) -> dict[str, int]:
    words = re.sub(r"[^a-zA-Z0-9_]+", " ", text.lower()).split()
    return {word: i for i, word in enumerate(sorted(set(words)))}


@functools.lru_cache(maxsize=1)
def _austen_vocabulary_size() -> int:
    from course_utils import data

    return len(_reference_index(data.austen("prideprejudice")))


@exercise("01.11", "a vocabulary for code")
def check_vocabulary(build_index: Any, source_onehot: Any, bigger_vocabulary: Any) -> None:
    require_callable(build_index, "build_index")
    require(source_onehot, "source_onehot")
    require(bigger_vocabulary, "bigger_vocabulary")
    gen = generator(111)
    syllables = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "Po", "X_", "9"]
    random_words = ["".join(syllables[int(i)] for i in torch.randint(0, len(syllables), (int(torch.randint(1, 4, (1,), generator=gen)),), generator=gen))
                    for _ in range(60)]
    texts = _HIDDEN_TEXTS + [" ,. ".join(random_words)]
    for k, text in enumerate(texts):
        got = call(build_index, text, name="build_index")
        if not isinstance(got, dict):
            raise Wrong(f"build_index should return a dict {{word: index}}, got a {type(got).__name__}.")
        expected = _reference_index(text)
        if got != expected:
            extra = sorted(set(got) - set(expected))[:3]
            missing = sorted(set(expected) - set(got))[:3]
            detail = (f"unexpected words {extra}" if extra else f"missing words {missing}" if missing
                      else "the words are right but their numbers are not in sorted order")
            raise Wrong(f"build_index on hidden text {k + 1} ({text[:40]!r}…): {detail}. Hint: lower-case, "
                        "re.sub(r'[^a-zA-Z0-9_]+', ' ', ...), split(), then number the sorted distinct words.")
    source = inspect.getsource(json.decoder)
    index = _reference_index(source)
    words = re.sub(r"[^a-zA-Z0-9_]+", " ", source.lower()).split()
    expected = torch.zeros(len(words), len(index), dtype=F64)
    expected[torch.arange(len(words)), torch.tensor([index[w] for w in words])] = 1.0
    got = as_tensor(source_onehot, "source_onehot")
    if tuple(got.shape) != tuple(expected.shape):
        raise Wrong(f"`source_onehot` should have shape (number of words, vocabulary size) = {tuple(expected.shape)}, "
                    f"got {tuple(got.shape)}. Hint: one row per word of the cleaned source, in order.")
    if not torch.equal(got, expected):
        raise Wrong("`source_onehot` has its 1s in the wrong places: row i needs a 1 in the column of word i.")
    truth = "austen" if _austen_vocabulary_size() > len(index) else "python"
    if not isinstance(bigger_vocabulary, str) or bigger_vocabulary.strip().lower() not in ("austen", "python"):
        raise Wrong(f'`bigger_vocabulary` should be "austen" or "python", got {bigger_vocabulary!r}.')
    if bigger_vocabulary.strip().lower() != truth:
        raise Wrong("`bigger_vocabulary` is not the text with more distinct words. Hint: compare len(build_index(...)).")


# ----------------------------------------------------------------------------------------------
# 01.12 CT window and bone count
# ----------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _bone_count() -> int:
    from course_utils import data

    volume, _ = data.ct_volume()
    return int(((volume >= 226) & (volume <= 3071)).sum())


@exercise("01.12", "a CT window and the bone count")
def check_window(window: Any, bone_voxels: Any) -> None:
    require_callable(window, "window")
    require(bone_voxels, "bone_voxels")
    gen = generator(112)
    for level, width in [(40, 400), (500, 2000), (-600, 1500), (41, 81), (0, 1)]:
        low, high = level - width / 2, level + width / 2
        hu = torch.randint(-1024, 3072, (2, 16, 16), generator=gen).to(torch.int16)
        edges = [v for v in (low, high, low - 1, high + 1, level) if float(v).is_integer() and -32768 <= v <= 32767]
        hu.view(-1)[: len(edges)] = torch.tensor(edges).to(torch.int16)
        for given in (hu, hu.float()):
            given_in = given.clone()
            out = _tensor_result(call(window, given_in, level, width, name="window"), f"window(hu, {level}, {width})")
            if not torch.equal(given_in, given):
                raise Wrong("window changed its input tensor. Hint: use out-of-place operations (clamp, not clamp_ on hu).")
            if tuple(out.shape) != tuple(hu.shape):
                raise Wrong(f"window should keep the shape {tuple(hu.shape)}, got {tuple(out.shape)}.")
            if out.dtype != torch.float32:
                raise Wrong(f"window should return float32, got {out.dtype}. Hint: convert with .float() first.")
            expected = ((given.double() - low) / width).clamp(0.0, 1.0)
            assert_close(out, expected, f"window(hu, level={level}, width={width})", rtol=0, atol=1e-6,
                         hint="(hu - (level - width/2)) / width, then clamp to [0, 1].")
    got = as_int(bone_voxels, "bone_voxels")
    if got != _bone_count():
        raise Wrong(f"bone_voxels = {got} is not the number of Cranium voxels with 226 <= HU <= 3071. "
                    "Hint: ((vol >= 226) & (vol <= 3071)).sum(), both ends included.")
