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
    TorchCalls,
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
# 01.4 debug sqrt_: an in-place square root that works for every dtype
# ----------------------------------------------------------------------------------------------

# (dtype, shape, make a view?) of the hidden inputs; the floats must be rooted in place, the integers copied.
_SQRT_CASES = [
    (torch.float32, (9,), False), (torch.float64, (3, 4), False), (torch.float16, (2, 3, 2), False),
    (torch.float32, (4, 6), True), (torch.int64, (9,), False), (torch.int16, (2, 5), False),
    (torch.uint8, (3, 3), False), (torch.int64, (4, 6), True),
]


@exercise("01.4", "debug an in-place square root")
def check_sqrt_fix(sqrt_in_place: Any) -> None:
    require_callable(sqrt_in_place, "sqrt_in_place")
    gen = generator(104)
    for dtype, shape, as_view in _SQRT_CASES:
        base = torch.randint(0, 200, shape if not as_view else (shape[1], shape[0]), generator=gen).to(dtype)
        t = base.t() if as_view else base  # a non-contiguous view: in place must still mean "in its memory"
        before = t.clone()
        label = f"sqrt_in_place of a {dtype} tensor of shape {tuple(t.shape)}" + (" (a transposed view)" if as_view else "")
        out = call(sqrt_in_place, t, name="sqrt_in_place")
        if not isinstance(out, torch.Tensor):
            raise Wrong(f"{label} returned a {type(out).__name__}; return a tensor.")
        if tuple(out.shape) != tuple(shape):
            raise Wrong(f"{label} returned shape {tuple(out.shape)}; keep the input's shape.")
        expected = before.double().sqrt()
        if dtype.is_floating_point:
            if out.dtype != dtype:
                raise Wrong(f"{label} returned {out.dtype}: a floating input keeps its dtype (float16 stays "
                            "float16, float64 keeps its precision). Hint: only integers need a new float tensor.")
            if out.data_ptr() != t.data_ptr() or out.stride() != t.stride():
                raise Wrong(f"{label} returned new memory: a floating tensor can hold its own square roots, so "
                            "work in place and return the tensor itself (the method whose name ends in `_`).")
            atol = 2e-3 * float(expected.abs().max()) if dtype == torch.float16 else 1e-6 * float(expected.abs().max())
            if (out.double() - expected).abs().max().item() > atol:
                raise Wrong(f"{label} does not hold the square roots of the input's values.")
        else:
            if not torch.equal(t, before):
                raise Wrong(f"{label} changed the integer input: an integer tensor cannot hold square roots, "
                            "so leave it alone and return a new tensor.")
            if out.dtype != torch.float32:
                raise Wrong(f"{label} returned {out.dtype}; for integer inputs return float32, the default float.")
            if out.data_ptr() == t.data_ptr():
                raise Wrong(f"{label} returned the integer tensor's own memory; integers need a new float tensor.")
            if (out.double() - expected).abs().max().item() > 1e-5:
                raise Wrong(f"{label} does not hold the square roots of the input's values.")


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
        if got != expected and len(got) == len(expected) and 0 in expected and \
                all(g == e or (e == 0 and g == 1) for g, e in zip(got, expected)):
            raise Wrong(
                f"broadcast_shape({s1}, {s2}) returned {got}, expected {expected}. Hint: a size-1 dimension "
                "stretches to the other size, even when that size is 0 (an empty tensor): the larger of the two "
                "is not the rule."
            )
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
# 01.6 standardise each image on its own (reductions with keepdim)
# ----------------------------------------------------------------------------------------------


@exercise("01.6", "standardise each image on its own")
def check_normalize(standardize_each: Any) -> None:
    require_callable(standardize_each, "standardize_each")
    gen = generator(106)
    for shape in [(3, 5, 7), (4, 2, 6, 5), (1, 4, 3, 3), (2, 3, 4, 4), (2, 8, 3)]:
        c = shape[-3]
        # every image and channel gets its own offset and scale, so batch-wide statistics are visibly wrong
        offsets = torch.randn(*shape[:-2], 1, 1, generator=gen) * 3
        scales = torch.rand(*shape[:-2], 1, 1, generator=gen) * 4 + 0.5
        x = torch.randn(shape, generator=gen) * scales + offsets + torch.arange(c, dtype=torch.float32).view(c, 1, 1)
        x_in = x.clone()
        label = f"standardize_each(x of shape {shape})"
        out = _tensor_result(call(standardize_each, x_in, name="standardize_each"), label)
        if not torch.equal(x_in, x):
            raise Wrong("standardize_each changed its input. Hint: out-of-place operations, not sub_ or -=.")
        if tuple(out.shape) != shape:
            raise Wrong(f"{label} has shape {tuple(out.shape)}; it should keep the input's shape. Hint: a reduction "
                        "with keepdim=True leaves size-1 dimensions that broadcast back.")
        x64 = x.double()
        mean = x64.mean(dim=(-2, -1), keepdim=True)
        expected = (x64 - mean) / x64.std(dim=(-2, -1), keepdim=True, correction=0)
        got = out.double()
        if torch.isfinite(got).all() and (got - expected).abs().max().item() <= 1e-4:
            continue
        n = shape[-1] * shape[-2]
        plane_mean = got.mean(dim=(-2, -1))
        plane_std = got.std(dim=(-2, -1), correction=0)
        if not torch.isfinite(got).all():
            raise Wrong(f"{label} contains inf or nan.")
        if plane_mean.abs().max() > 1e-4:
            raise Wrong(f"in {label} some image's channel does not have mean 0 over its own height and width: the "
                        "statistics mix images or channels. Hint: each image gets its own statistics; reduce over "
                        "the last two dimensions only.")
        if ((plane_std - ((n - 1) / n) ** 0.5).abs().max() < 1e-4):
            raise Wrong(f"{label} divides by the sample std (n − 1): the exercise asks for the population std, "
                        "correction=0.")
        raise Wrong(f"{label} is not each channel of each image standardised over its own height and width. "
                    "Hint: mean and std over dims (-2, -1) together, with keepdim=True so they broadcast back.")


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
    with TorchCalls() as counter:  # deterministic: a loop makes one torch call per step
        call(matmul_einsum, a, b, name="matmul_einsum")
    shortcut = [name for name in counter.names if name in _MATMUL_SHORTCUTS and name != "einsum"]
    if shortcut:
        raise Wrong(
            f"matmul_einsum calls {_matmul_label(shortcut[0])}; the exercise asks for torch.einsum. "
            "Hint: one torch.einsum call whose string names the index of each dimension and leaves out the summed one."
        )
    if counter.count > 10:
        raise Wrong(
            f"matmul_einsum made {counter.count} torch calls on 50×50 matrices; one torch.einsum call is enough. "
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
        with TorchCalls() as counter:
            call(matmul_one_loop, a, b, name="matmul_one_loop")
        counts[label] = counter.count
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


# ----------------------------------------------------------------------------------------------
# 01.8 colour shares: which photo is the reddest?
# ----------------------------------------------------------------------------------------------

_PHOTO_NAMES = ("chelsea", "coffee", "astronaut", "horse")


def _reference_shares(images: torch.Tensor) -> torch.Tensor:
    """(N, 3): per image, the fraction of pixels whose red (green, blue) value is strictly the largest."""
    x = images.to(torch.int32)
    shares = []
    for c in range(3):
        others = [x[:, o] for o in range(3) if o != c]
        shares.append(((x[:, c] > others[0]) & (x[:, c] > others[1])).double().mean(dim=(-2, -1)))
    return torch.stack(shares, dim=1)


@functools.lru_cache(maxsize=1)
def _photo_crops() -> torch.Tensor:
    """Section 9's batch: the 256×256 centre crop of each photo, RGB, uint8."""
    from course_utils import data

    crops = []
    for name in _PHOTO_NAMES:
        photo = torch.from_numpy(np.ascontiguousarray(data.photo(name))).permute(2, 0, 1)[:3]
        top, left = (photo.shape[1] - 256) // 2, (photo.shape[2] - 256) // 2
        crops.append(photo[:, top:top + 256, left:left + 256])
    return torch.stack(crops)


def _hidden_images(gen: torch.Generator, n: int, h: int, w: int) -> torch.Tensor:
    images = torch.randint(0, 256, (n, 3, h, w), generator=gen).to(torch.uint8)
    images[0] = images[0, :1]  # a gray image: R = G = B everywhere
    images[-1, 1, : h // 2] = images[-1, 0, : h // 2]  # ties between red and green on half the rows
    return images


@exercise("01.8", "colour shares: which photo is the reddest")
def check_photo_colours(colour_shares: Any, reddest: Any) -> None:
    require_callable(colour_shares, "colour_shares")
    require(reddest, "reddest")
    gen = generator(108)
    for n, h, w in [(3, 4, 5), (5, 7, 3), (2, 16, 16)]:
        images = _hidden_images(gen, n, h, w)
        given = images.clone()
        label = f"colour_shares on a uint8 batch of shape {tuple(images.shape)}"
        got = call(colour_shares, given, name="colour_shares")
        if not torch.equal(given, images):
            raise Wrong("colour_shares changed the images it was given.")
        got = as_tensor(got, label)
        if tuple(got.shape) != (n, 3):
            raise Wrong(f"{label} has shape {tuple(got.shape)}; it should be ({n}, 3): one share per image and colour. "
                        "Hint: reduce over height and width only.")
        if got.max() > 1 + 1e-6 or got.min() < 0:
            raise Wrong(f"{label} has values outside [0, 1]: a share is a fraction of the image's pixels, not a count.")
        expected = _reference_shares(images)
        if (got - expected).abs().max().item() > 1e-6:
            if got[0].sum() > 0.5:
                raise Wrong(f"{label}: a gray image (R = G = B everywhere) gets a share of {got[0].max():.2f}. "
                            "Hint: on a tie no colour is strictly the largest, so a tied pixel counts for none "
                            "(argmax and >= both hand ties to a colour).")
            if (got.sum(dim=1) > 1 + 1e-6).any():
                raise Wrong(f"{label}: an image's three shares add up to more than 1, so some pixels count twice. "
                            "Hint: strictly larger than both other channels.")
            raise Wrong(f"{label} is off. Hint: per image, the mean over its pixels of a boolean 'this channel is "
                        "strictly larger than both others'.")
    if not isinstance(reddest, str):
        raise Wrong(f"`reddest` should be the name of a photo (a str), got a {type(reddest).__name__}.")
    truth = _PHOTO_NAMES[int(_reference_shares(_photo_crops())[:, 0].argmax())]
    if reddest.strip().lower() != truth:
        raise Wrong(f"`reddest` = {reddest!r} is not the crop in `batch` with the largest red share. "
                    "Hint: run colour_shares on section 9's batch and take the argmax of the red column.")


# ----------------------------------------------------------------------------------------------
# 01.9 a table split: training statistics, and clarity one-hot
# ----------------------------------------------------------------------------------------------

_GRADES = {
    "color": ["J", "I", "H", "G", "F", "E", "D"],
    "clarity": ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"],
    "cut": ["Fair", "Good", "Very Good", "Premium", "Ideal"],
}
_CONTINUOUS_COLS, _CLARITY_COL = (0, 3, 4, 5, 6, 7, 8), 2


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


def _reference_split(train: torch.Tensor, valid: torch.Tensor, correction: int) -> tuple[torch.Tensor, torch.Tensor]:
    cols = list(_CONTINUOUS_COLS)
    t64 = train[:, cols].double()
    mean, std = t64.mean(dim=0), t64.std(dim=0, correction=correction)

    def encode(table: torch.Tensor) -> torch.Tensor:
        onehot = torch.zeros(table.shape[0], 8, dtype=F64)
        onehot[torch.arange(table.shape[0]), table[:, _CLARITY_COL].long() - 1] = 1.0
        return torch.cat(((table[:, cols].double() - mean) / std, onehot), dim=1)

    return encode(train), encode(valid)


@exercise("01.9", "a table split: training statistics and clarity one-hot")
def check_diamonds(prepare_split: Any) -> None:
    require_callable(prepare_split, "prepare_split")
    full = _diamonds()
    order = torch.randperm(full.shape[0], generator=generator(109))
    splits = [(full[order[:43000]], full[order[43000:]], "an 80/20 split of the diamonds"),
              (full[order[:600]], full[order[600:800]], "a hidden split of 600 and 200 diamonds")]
    for train, valid, label in splits:
        train_in, valid_in = train.clone(), valid.clone()
        result = call(prepare_split, train_in, valid_in, name="prepare_split")
        if not (torch.equal(train_in, train) and torch.equal(valid_in, valid)):
            raise Wrong("prepare_split changed a table it was given. Hint: avoid in-place operations on them.")
        if not isinstance(result, (tuple, list)) or len(result) != 2:
            raise Wrong(f"prepare_split should return two tensors (train_x, valid_x), got a {type(result).__name__}.")
        for part, table, name in ((result[0], train, "train_x"), (result[1], valid, "valid_x")):
            got = _tensor_result(part, name)
            if tuple(got.shape) != (table.shape[0], 15):
                raise Wrong(f"for {label}, `{name}` has shape {tuple(got.shape)}, expected ({table.shape[0]}, 15): the "
                            "7 continuous columns, then 8 clarity columns. Hint: leave color and cut out.")
            if got.dtype != torch.float32:
                raise Wrong(f"`{name}` should be float32, got {got.dtype}.")
        train_x, valid_x = (r.detach().cpu().double() for r in result)
        onehots = (train_x[:, 7:], valid_x[:, 7:])
        for onehot, table, name in zip(onehots, (train, valid), ("train_x", "valid_x")):
            if not torch.isin(onehot, torch.tensor([0.0, 1.0], dtype=F64)).all() or not (onehot.sum(dim=1) == 1).all():
                raise Wrong(f"the last 8 columns of `{name}` should be one-hot: a single 1 per row.")
            if not torch.equal(onehot.argmax(dim=1) + 1, table[:, _CLARITY_COL].long()):
                raise Wrong(f"the clarity one-hot of `{name}` puts its 1 in the wrong column: grade g (1 to 8) "
                            "belongs in column g − 1 of the 8.")
        refs = [_reference_split(train, valid, correction) for correction in (0, 1)]
        if any((train_x - rt).abs().max() <= 1e-3 and (valid_x - rv).abs().max() <= 1e-3 for rt, rv in refs):
            continue
        if not any((train_x - rt).abs().max() <= 1e-3 for rt, _ in refs):
            raise Wrong(f"for {label}, the first 7 columns of `train_x` are not carat, depth, table, price, x, y, z "
                        "standardised with the training part's mean and std, in this order.")
        own = [_reference_split(valid, valid, correction)[0] for correction in (0, 1)]
        if any((valid_x - r).abs().max() <= 1e-3 for r in own):
            raise Wrong(f"for {label}, `valid_x` is scaled with its own statistics. Hint: the validation part stands "
                        "for unseen data, so it is scaled with the mean and std of the training part.")
        raise Wrong(f"for {label}, the continuous columns of `valid_x` are not scaled with the training part's "
                    "mean and std.")


# ----------------------------------------------------------------------------------------------
# 01.10 weeks of flights
# ----------------------------------------------------------------------------------------------

_WEEKDAY_COL, _WEATHER_COL, _DEPARTURES_COL, _N_COLS, _WEEK = 4, 6, 14, 15, 168


@functools.lru_cache(maxsize=1)
def _hourly() -> torch.Tensor:
    from course_utils import data

    return torch.from_numpy(np.loadtxt(data.path("ewr_hourly"), dtype=np.float32, delimiter=",", skiprows=1))


def _reference_weeks(hourly: torch.Tensor) -> torch.Tensor:
    n = hourly.shape[0] // _WEEK
    weeks = hourly[: n * _WEEK].reshape(n, _WEEK, _N_COLS).permute(0, 2, 1)
    weather = torch.nn.functional.one_hot(weeks[:, _WEATHER_COL].long() - 1, 4).permute(0, 2, 1).float()
    return torch.cat((weeks, weather), dim=1)


@exercise("01.10", "weeks of flights")
def check_days(build_weeks: Any, weekday_means: Any) -> None:
    require_callable(build_weeks, "build_weeks")
    require(weekday_means, "weekday_means")
    hourly = _hourly()
    gen = generator(110)
    picked = torch.randperm(hourly.shape[0] // 24, generator=gen)[:30]  # 30 days: 4 whole weeks and 2 days
    hidden = hourly.view(-1, 24, _N_COLS)[picked].reshape(-1, _N_COLS).clone()
    hidden[:, _WEATHER_COL] = torch.randint(1, 5, (hidden.shape[0],), generator=gen).float()
    for table, label in ((hourly, "the 2013 hours"), (hidden, "720 hidden hours with made-up weather")):
        table_in = table.clone()
        out = _tensor_result(call(build_weeks, table_in, name="build_weeks"), f"build_weeks({label})")
        n_weeks = table.shape[0] // _WEEK
        if not torch.equal(table_in, table):
            raise Wrong("build_weeks changed the table it was given.")
        if tuple(out.shape) != (n_weeks, 19, _WEEK):
            raise Wrong(f"build_weeks({label}) has shape {tuple(out.shape)}, expected ({n_weeks}, 19, 168): whole "
                        "weeks only, 15 columns + 4 weather channels, 168 hours. Hint: torch.stack adds a new "
                        "dimension, torch.cat joins along an existing one.")
        if out.dtype != torch.float32:
            raise Wrong(f"build_weeks should return float32, got {out.dtype}.")
        expected = _reference_weeks(table)
        if not torch.equal(out[:, :15], expected[:, :15]):
            if torch.equal(out[:, :15], _reference_weeks(table[table.shape[0] - n_weeks * _WEEK:])[:, :15]):
                raise Wrong(f"for {label} the weeks start at the wrong hour: the first week starts with the table's "
                            "first hour, and the incomplete week at the end is dropped.")
            raise Wrong(f"for {label} channels 0-14 are not the table's columns over each week's 168 hours. Hint: "
                        "a view of the rows as (weeks, hours, columns) puts columns last; move them before the hours.")
        if not torch.equal(out[:, 15:].sum(dim=1), torch.ones(n_weeks, _WEEK)):
            raise Wrong(f"for {label} the 4 weather channels (15-18) should sum to 1 at every hour: one channel per "
                        "weather situation 1, 2, 3, 4.")
        if not torch.equal(out, expected):
            raise Wrong(f"for {label} the weather channels are in the wrong order: channel 15 + k is 1 where "
                        "weathersit is k + 1.")
    days_of_week = hourly[:, _WEEKDAY_COL].long()
    expected_means = torch.stack([hourly[days_of_week == d, _DEPARTURES_COL].double().mean() for d in range(7)])
    got = as_tensor(weekday_means, "weekday_means")
    if tuple(got.shape) != (7,):
        raise Wrong(f"`weekday_means` should have shape (7,), Monday first, got {tuple(got.shape)}.")
    if not torch.isfinite(got).all():
        raise Wrong("`weekday_means` contains nan or inf: a weekday with no hours? Monday is 0, Sunday 6.")
    if (got - expected_means).abs().max().item() > 0.01:
        if (got - expected_means * 24).abs().max().item() < 0.5:
            raise Wrong("`weekday_means` looks like departures per day; the exercise asks for the mean per hour.")
        raise Wrong("`weekday_means` is off. Hint: a boolean mask on the weekday column (Monday = 0) picks the "
                    "hours of each weekday; average their departures.")


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


@exercise("01.11", "a vocabulary for code, and what lower-casing loses")
def check_vocabulary(build_index: Any, source_onehot: Any, merged_by_case: Any) -> None:
    require_callable(build_index, "build_index")
    require(source_onehot, "source_onehot")
    require(merged_by_case, "merged_by_case")
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
    if isinstance(merged_by_case, str) or not isinstance(merged_by_case, (list, tuple, set)):
        raise Wrong(f"`merged_by_case` should be a list of words (str), got a {type(merged_by_case).__name__}.")
    if not all(isinstance(w, str) for w in merged_by_case):
        raise Wrong("`merged_by_case` should hold words (str) only.")
    spellings: dict[str, set[str]] = {}
    for word in re.sub(r"[^a-zA-Z0-9_]+", " ", source).split():
        spellings.setdefault(word.lower(), set()).add(word)
    truth = {w for w, forms in spellings.items() if len(forms) > 1}
    given = list(merged_by_case)
    if set(given) == truth and given != sorted(truth):
        raise Wrong("`merged_by_case` has the right words; return them as a sorted list.")
    if set(given) != truth:
        with_capitals = {w for w, forms in spellings.items() if any(f != w for f in forms)}
        if set(given) == with_capitals:
            raise Wrong(f"`merged_by_case` lists every word written with a capital somewhere ({len(given)}); "
                        "lower-casing loses information only where two or more different spellings become one word.")
        if set(given) - set(index):
            raise Wrong(f"`merged_by_case` holds {sorted(set(given) - set(index))[:3]}, which are not words of the "
                        "cleaned, lower-cased index. Hint: list the index's words, lower-case, as build_index makes them.")
        raise Wrong(f"`merged_by_case` has {len(given)} words, not the words of the index that come from two or more "
                    "spellings in the original source. Hint: clean the source without lower-casing, and group the "
                    "words by their lower-case form.")


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
            if (out.double() - expected).abs().max().item() > 1e-6:
                label = f"window(hu, level={level}, width={width})"
                if out.min() < 0 or out.max() > 1:
                    raise Wrong(f"{label} has values outside [0, 1]: everything below the window should be 0, "
                                "everything above it 1.")
                at_level = given.double() == level
                if at_level.any() and (out.double()[at_level] - 0.5).abs().max() > 1e-6:
                    raise Wrong(f"{label} does not map HU = level to 0.5: `level` is the centre of the window, "
                                "not its lower edge.")
                raise Wrong(f"{label} is off: inside the window the output should rise linearly from 0 at the "
                            "lower edge to 1 at the upper edge.")
    got = as_int(bone_voxels, "bone_voxels")
    if got != _bone_count():
        raise Wrong(f"bone_voxels = {got} is not the number of Cranium voxels with 226 <= HU <= 3071. "
                    "Hint: both ends are included, and a voxel must meet both bounds at once.")
