"""Checks for 05_nlp: tokenizer rules, LM batches, RNN/LSTM/GRU cells, AWD-LSTM regularization, ULMFiT.

References are fastai's text rules, `LMDataLoader` and `RNNRegularizer`, torch's
`nn.LSTMCell`/`nn.GRUCell`/`nn.GRU` and sklearn's `CountVectorizer`. What every check promises is in
framework.py's docstring.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.checks.framework import (
    as_array,
    as_float,
    as_int,
    call,
    exercise,
    F64,
    generator,
    one_line,
    require,
    require_callable,
    Wrong,
)

__all__ = [
    "check_ar_tar", "check_bow", "check_cells", "check_dropout", "check_group_chunks", "check_gru_lm",
    "check_lm_batches", "check_predict_batches", "check_report", "check_rnn", "check_rules",
    "check_sample_next", "check_stateful", "check_two_word_model", "LM_HINT", "METHODS", "N_LABELS",
]



def _int_tensor(value: Any, name: str) -> torch.Tensor:
    """A tensor, array or nested list of whole numbers as an int64 tensor."""
    require(value, name)
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu()
    else:
        try:
            t = torch.as_tensor(np.asarray(value, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise Wrong(f"`{name}` should be a tensor, an array or a nested list of ints ({err}).") from err
    if t.is_floating_point():
        if not torch.isfinite(t).all() or not torch.equal(t, t.round()):
            raise Wrong(f"`{name}` should hold token ids (whole numbers).")
    return t.long()


def _instance(cls: Any, name: str, *args: Any) -> nn.Module:
    obj = call(cls, *args, name=name)
    if not isinstance(obj, nn.Module):
        raise Wrong(f"`{name}({', '.join(map(str, args))})` should build an nn.Module, got a {type(obj).__name__}.")
    return obj


# ----------------------------------------------------------------------------------------------
# 05.1 tokenizer rules
# ----------------------------------------------------------------------------------------------

_RULE_STRINGS = (
    "This was sooooo good!!!! I LOVE it",
    "The U.S. dollar $1 is $1.00 and 10000 people agree",
    "very very very very tasty, tasty tasty",
    "WOW WOW WOW. Best coffee EVER, A+ product",
    "I'm in Paris with McDonald and my iPhone",
    "A B C d e f ... hmmmm",
    "NO no no no NO! it is OK OK OK",
    "Ahhh   the   the   the end  :))))",
    "go go goal then go go go home",
    "Hello, World! HELLO, WORLD! hello, world!",
    "R2D2 and C-3PO met a PhD at the B&B in the USA",
    "Yum yum yum yum. Zzzz... xxxxx 2 cups",
)


def _fastai_rules():
    from fastai.text import core

    return core


def _tokens_answer(out: Any, call_text: str) -> list[str]:
    if isinstance(out, str) or not isinstance(out, (list, tuple)) or not all(isinstance(t, str) for t in out):
        raise Wrong(f"{call_text} should return a list of str tokens, got {one_line(repr(out), 60)}.")
    return list(out)


@exercise("05.1", "tokenizer rules")
def check_rules(replace_rep: Any, replace_wrep: Any, replace_maj: Any, replace_all_caps: Any) -> None:
    core = _fastai_rules()
    fns = {
        "replace_rep": require_callable(replace_rep, "replace_rep"),
        "replace_wrep": require_callable(replace_wrep, "replace_wrep"),
        "replace_maj": require_callable(replace_maj, "replace_maj"),
        "replace_all_caps": require_callable(replace_all_caps, "replace_all_caps"),
    }
    hints = {
        "replace_rep": "any non-space character 3+ times in a row becomes ' xxrep n c ' (regex (\\S)(\\1{2,})).",
        "replace_wrep": "a word 3+ times in a row becomes ' xxwrep n word ' (case-sensitive, whole words).",
        "replace_maj": "a token of A-Z then no A-Z is lowercased, with 'xxmaj' before it if longer than 1.",
        "replace_all_caps": "a token of A-Z then no a-z is lowercased, with 'xxup' before it if longer than 1.",
    }
    for name in ("replace_rep", "replace_wrep"):
        ref_fn = getattr(core, name)
        for s in _RULE_STRINGS:
            out = call(fns[name], s, name=name)
            if not isinstance(out, str):
                raise Wrong(f"`{name}` works on a string and should return a string, got a {type(out).__name__}.")
            if out.split() != ref_fn(s).split():
                raise Wrong(f"{name}({s!r}) gives {' '.join(out.split())!r}, fastai's gives {' '.join(ref_fn(s).split())!r} "
                            f"(compared token by token). Hint: {hints[name]}")
    for name in ("replace_all_caps", "replace_maj"):
        ref_fn = getattr(core, name)
        for s in _RULE_STRINGS:
            tokens = s.split()
            out = _tokens_answer(call(fns[name], list(tokens), name=name), f"`{name}(tokens)`")
            expected = ref_fn(" ".join(tokens)).split()
            if out != expected:
                raise Wrong(f"{name}({s!r}.split()) gives {' '.join(out)!r} (joined), fastai's gives {' '.join(expected)!r}. "
                            f"Hint: {hints[name]}")


# ----------------------------------------------------------------------------------------------
# 05.2 predict the LM batches
# ----------------------------------------------------------------------------------------------


def _lm_reference(nums: torch.Tensor, bs: int, seq_len: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """fastai's LMDataLoader(shuffle=False) batches on one document, as plain int64 tensors."""
    from fastai.text.data import LMDataLoader

    dl = LMDataLoader([nums], bs=bs, seq_len=seq_len, shuffle=False)
    return [(torch.as_tensor(x).as_subclass(torch.Tensor).long().clone(), torch.as_tensor(y).as_subclass(torch.Tensor).long().clone())
            for x, y in dl]


def _rows_differ(got: torch.Tensor, ref: torch.Tensor) -> list[int]:
    return [i for i in range(ref.shape[0]) if not torch.equal(got[i], ref[i])]


@exercise("05.2", "predict the LM batches")
def check_predict_batches(first_x: Any, first_y: Any, n_batches: Any) -> None:
    x = _int_tensor(first_x, "first_x")
    y = _int_tensor(first_y, "first_y")
    n = as_int(n_batches, "n_batches")
    ref = _lm_reference(torch.arange(90), 6, 5)
    rx, ry = ref[0]
    for got, exp, name in ((x, rx, "first_x"), (y, ry, "first_y")):
        if tuple(got.shape) != tuple(exp.shape):
            raise Wrong(f"`{name}` should have shape {tuple(exp.shape)} (bs rows, seq_len columns), got {tuple(got.shape)}.")
    bad = _rows_differ(x, rx)
    if bad:
        starts15 = torch.arange(6)[:, None] * 15 + torch.arange(5)
        hint = ("each row starts where its sub-stream starts. The targets need one token past the inputs, so only 89 "
                "tokens are usable: 84 = 6 x 14, each sub-stream is 14 tokens long, not 15."
                if torch.equal(x, starts15) else
                "row i is the start of sub-stream i; the stream is cut into bs = 6 equal contiguous sub-streams.")
        raise Wrong(f"rows {bad} of first_x are wrong. Hint: {hint}")
    bad = _rows_differ(y, ry)
    if bad:
        raise Wrong(f"rows {bad} of first_y are wrong. Hint: y is x shifted by one token: the token that follows each x.")
    if n != len(ref):
        raise Wrong(f"n_batches = {n} is wrong. Hint: each sub-stream has 14 tokens; windows of seq_len 5, and a shorter "
                    "last window is still a batch.")


# ----------------------------------------------------------------------------------------------
# 05.3 lm_batches
# ----------------------------------------------------------------------------------------------

_LM_CASES = ((90, 6, 5), (101, 4, 7), (61, 6, 5), (250, 8, 10), (57, 3, 4), (1000, 16, 12), (64, 2, 16), (200, 5, 3))
LM_HINT = ("usable length = ((len(nums) - 1) // bs) * bs (one token is kept for the last target); each of the bs rows is "
           "a contiguous sub-stream; windows of seq_len, the last one shorter; y is x shifted by one.")


@exercise("05.3", "lm_batches")
def check_lm_batches(lm_batches: Any) -> None:
    fn = require_callable(lm_batches, "lm_batches")
    g = generator(503)
    for length, bs, sl in _LM_CASES:
        nums = torch.randint(0, 500, (length,), generator=g)
        ref = _lm_reference(nums, bs, sl)
        label = f"lm_batches(stream of {length} tokens, bs={bs}, seq_len={sl})"
        out = call(fn, nums.clone(), bs, sl, name="lm_batches")
        try:
            out = list(out)
        except TypeError:
            raise Wrong(f"{label} should return a list of (x, y) pairs, got a {type(out).__name__}.") from None
        if len(out) != len(ref):
            raise Wrong(f"{label} returned {len(out)} batches, LMDataLoader gives {len(ref)}. Hint: {LM_HINT}")
        for k, (pair, (rx, ry)) in enumerate(zip(out, ref)):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise Wrong(f"each batch of `lm_batches` should be an (x, y) pair; batch {k} is {one_line(repr(pair), 50)}.")
            for got, exp, which in ((pair[0], rx, "x"), (pair[1], ry, "y")):
                got = _int_tensor(got, f"batch {k}'s {which}")
                if tuple(got.shape) != tuple(exp.shape):
                    raise Wrong(f"{label}: batch {k}'s {which} has shape {tuple(got.shape)}, LMDataLoader gives "
                                f"{tuple(exp.shape)}. Hint: {LM_HINT}")
                if not torch.equal(got, exp):
                    raise Wrong(f"{label}: batch {k}'s {which} differs from LMDataLoader's (rows {_rows_differ(got, exp)}). "
                                f"Hint: {LM_HINT}")


# ----------------------------------------------------------------------------------------------
# 05.4 RNN forward and BPTT
# ----------------------------------------------------------------------------------------------

_RNN_SHAPES = ((5, 3, 4, 6, 2), (1, 2, 3, 5, 4), (8, 4, 2, 3, 3))  # T, B, n_in, nh, n_out


def _rnn_case(seed: int, T: int, B: int, n_in: int, nh: int, n_out: int):
    g = generator(seed)
    def r(*shape, scale=1.0):
        return (torch.randn(*shape, generator=g, dtype=F64) * scale)
    return (r(T, B, n_in), r(B, nh, scale=0.5), r(n_in + nh, nh, scale=0.6), r(nh, scale=0.3), r(nh, n_out), r(n_out))


def _rnn_torch(x, h0, W, b, V, c):
    h, hs = h0, []
    for t in range(x.shape[0]):
        h = torch.tanh(torch.cat([x[t], h], 1) @ W + b)
        hs.append(h)
    hs = torch.stack(hs)
    return hs, hs @ V + c


@exercise("05.4", "RNN forward and BPTT")
def check_rnn(rnn_forward: Any, rnn_backward: Any) -> None:
    fwd = require_callable(rnn_forward, "rnn_forward")
    bwd = require_callable(rnn_backward, "rnn_backward")
    names = ("dW", "db", "dV", "dc", "dh0")
    hints = {
        "dW": "sum the weight gradient over all T steps: dW += concat([x_t, h_prev]).T @ da_t, with da_t = dh_t * (1 - h_t**2).",
        "db": "db is da_t summed over the batch and over all T steps.",
        "dV": "dV = sum over steps of h_t.T @ ones (every output counts 1 in the loss).",
        "dc": "dc counts 1 per output: T * B for each output unit.",
        "dh0": "the gradient flowing back into the previous state is da_t @ W[n_in:].T, added to the output's V.sum(1) term.",
    }
    for i, shape in enumerate(_RNN_SHAPES):
        T, B, n_in, nh, n_out = shape
        args = _rnn_case(540 + i, *shape)
        params = [a.clone().requires_grad_(True) for a in args]
        hs_ref, ys_ref = _rnn_torch(*params)
        ys_ref.sum().backward()
        grads_ref = [params[k].grad for k in (2, 3, 4, 5, 1)]
        label = f"T={T}, B={B}, n_in={n_in}, nh={nh}, n_out={n_out}"
        out = call(fwd, *[a.numpy().copy() for a in args], name="rnn_forward")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Wrong("`rnn_forward` should return (hs, ys).")
        hs = as_array(out[0], f"hs from rnn_forward ({label})", (T, B, nh), hint="hs stacks the state after each step: (T, B, nh).")
        if not np.allclose(hs, hs_ref.detach().numpy(), atol=1e-8, rtol=1e-8):
            raise Wrong(f"`rnn_forward`'s hs differ from the reference ({label}). Hint: h_t = tanh(concat([x_t, h_prev], 1) @ W + b), "
                        "starting from h0.")
        ys = as_array(out[1], f"ys from rnn_forward ({label})", (T, B, n_out))
        if not np.allclose(ys, ys_ref.detach().numpy(), atol=1e-8, rtol=1e-8):
            raise Wrong(f"`rnn_forward`'s ys differ from the reference ({label}). Hint: ys = hs @ V + c.")
        grads = call(bwd, *[a.numpy().copy() for a in args], name="rnn_backward")
        if not isinstance(grads, (tuple, list)) or len(grads) != 5:
            raise Wrong("`rnn_backward` should return the 5 gradients (dW, db, dV, dc, dh0).")
        for name, got, ref in zip(names, grads, grads_ref):
            got = as_array(got, f"{name} from rnn_backward ({label})", tuple(ref.shape), hint=f"{name} has the shape of its parameter.")
            if not np.allclose(got, ref.numpy(), atol=1e-8, rtol=1e-8):
                gap = np.abs(got - ref.numpy()).max()
                raise Wrong(f"`{name}` differs from autograd's (largest gap {gap:.3g}, {label}). Hint: {hints[name]}")


# ----------------------------------------------------------------------------------------------
# 05.5 LSTM and GRU cells
# ----------------------------------------------------------------------------------------------


def _cell_inputs(seed: int, B: int, n_in: int, nh: int):
    g = generator(seed)
    return (torch.randn(B, n_in, generator=g, dtype=F64), torch.randn(B, nh, generator=g, dtype=F64) * 0.7,
            torch.randn(B, nh, generator=g, dtype=F64) * 0.7)


def _seeded(make, seed: int):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return make()


def _np_params(cell: nn.Module) -> list[np.ndarray]:
    return [getattr(cell, n).detach().numpy().copy() for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]


def _gru_cho(x, h, W_ih, W_hh, b_ih, b_hh):
    gi, nh = x @ W_ih.T + b_ih, h.shape[1]
    r = torch.sigmoid(gi[:, :nh] + h @ W_hh[:nh].T + b_hh[:nh])
    z = torch.sigmoid(gi[:, nh:2 * nh] + h @ W_hh[nh:2 * nh].T + b_hh[nh:2 * nh])
    n = torch.tanh(gi[:, 2 * nh:] + (r * h) @ W_hh[2 * nh:].T + b_hh[2 * nh:])
    return (1 - z) * n + z * h


@exercise("05.5", "LSTM and GRU cells")
def check_cells(lstm_cell: Any, gru_cell: Any) -> None:
    lstm = require_callable(lstm_cell, "lstm_cell")
    gru = require_callable(gru_cell, "gru_cell")
    for i, (B, n_in, nh) in enumerate(((3, 4, 5), (2, 6, 3), (4, 3, 7))):
        x, h, c = _cell_inputs(550 + i, B, n_in, nh)
        ref_cell = _seeded(lambda: nn.LSTMCell(n_in, nh).double(), 551 + i)
        with torch.no_grad():
            h_ref, c_ref = ref_cell(x, (h, c))
        label = f"B={B}, n_in={n_in}, nh={nh}"
        out = call(lstm, x.numpy().copy(), h.numpy().copy(), c.numpy().copy(), *_np_params(ref_cell), name="lstm_cell")
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Wrong("`lstm_cell` should return (h_new, c_new).")
        h_new = as_array(out[0], f"h_new from lstm_cell ({label})", (B, nh))
        c_new = as_array(out[1], f"c_new from lstm_cell ({label})", (B, nh))
        if not np.allclose(c_new, c_ref.numpy(), atol=1e-10, rtol=1e-10):
            raise Wrong(f"`lstm_cell`'s c_new differs from nn.LSTMCell's ({label}). Hint: gates = x @ W_ih.T + b_ih + h @ W_hh.T + b_hh, "
                        "split in the order i, f, g, o; c_new = f * c + i * g with sigmoid i, f and tanh g.")
        if not np.allclose(h_new, h_ref.numpy(), atol=1e-10, rtol=1e-10):
            raise Wrong(f"`lstm_cell`'s h_new differs from nn.LSTMCell's ({label}). Hint: h_new = o * tanh(c_new), o = sigmoid.")
        gcell = _seeded(lambda: nn.GRUCell(n_in, nh).double(), 561 + i)
        with torch.no_grad():
            g_ref = gcell(x, h)
            g_cho = _gru_cho(x, h, gcell.weight_ih, gcell.weight_hh, gcell.bias_ih, gcell.bias_hh)
        got = as_array(call(gru, x.numpy().copy(), h.numpy().copy(), *_np_params(gcell), name="gru_cell"),
                       f"gru_cell's output ({label})", (B, nh))
        if np.allclose(got, g_ref.numpy(), atol=1e-10, rtol=1e-10):
            continue
        if np.allclose(got, g_cho.numpy(), atol=1e-10, rtol=1e-10):
            raise Wrong("`gru_cell` applies the reset gate to h before the matmul (Cho et al.'s form, as in Weidman). "
                        "PyTorch applies it after: n = tanh(W_in x + b_in + r * (W_hn h + b_hn)).")
        raise Wrong(f"`gru_cell` differs from nn.GRUCell ({label}). Hint: chunks r, z, n of x @ W_ih.T + b_ih and of h @ W_hh.T + b_hh; "
                    "n = tanh(i_n + r * h_n); h_new = (1 - z) * n + z * h.")


# ----------------------------------------------------------------------------------------------
# 05.6 group_chunks
# ----------------------------------------------------------------------------------------------


def _group_chunks(ds, bs):
    m = len(ds) // bs
    return [ds[i + m * j] for i in range(m) for j in range(bs)]


@exercise("05.6", "group_chunks")
def check_group_chunks(group_chunks: Any) -> None:
    fn = require_callable(group_chunks, "group_chunks")
    for n, bs in ((24, 4), (50, 8), (64, 64), (103, 10), (7, 3), (330, 64)):
        ds = [f"s{k}" for k in range(n)]
        out = call(fn, list(ds), bs, name="group_chunks")
        try:
            out = list(out)
        except TypeError:
            raise Wrong(f"`group_chunks` should return a list, got a {type(out).__name__}.") from None
        ref = _group_chunks(ds, bs)
        label = f"group_chunks(dataset of {n} items, bs={bs})"
        if len(out) != len(ref):
            raise Wrong(f"{label} returned {len(out)} items, expected bs * (len(ds) // bs) = {len(ref)}. "
                        "Hint: drop the last len(ds) % bs items.")
        if out == ref:
            continue
        m = n // bs
        for k in range(1, m):
            for i in range(bs):
                prev, cur = out[(k - 1) * bs + i], out[k * bs + i]
                if prev not in ds or cur not in ds or ds.index(cur) != ds.index(prev) + 1:
                    raise Wrong(f"{label}: row {i} of batch {k} is not the item after row {i} of batch {k - 1}. "
                                f"Hint: split the dataset into bs streams of m = len(ds) // bs; batch k holds item k of each stream.")
        raise Wrong(f"{label} differs from fastbook's layout. Hint: item k of stream j is ds[k + m * j].")


# ----------------------------------------------------------------------------------------------
# 05.7 Dropout
# ----------------------------------------------------------------------------------------------


@exercise("05.7", "Dropout from scratch")
def check_dropout(Dropout: Any) -> None:
    cls = require_callable(Dropout, "Dropout")
    g = generator(570)
    x = 1.0 + torch.rand(100, 100, 100, generator=g)
    for p in (0.3, 0.6):
        drop = _instance(cls, "Dropout", p)
        drop.train()
        x_before = x.clone()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(57)
            out = call(drop, x, name=f"Dropout({p})(x)")
            again = call(drop, x, name=f"Dropout({p})(x), a second call")  # a mask kept from the first call would repeat
        if not torch.equal(x, x_before):
            x.copy_(x_before)
            raise Wrong("your Dropout changed its input in place. Hint: build a new mask tensor and return x * mask.")
        if not isinstance(out, torch.Tensor) or out.shape != x.shape:
            raise Wrong(f"Dropout({p}) should return a tensor shaped like its input {tuple(x.shape)}.")
        out = out.detach().double()
        if isinstance(again, torch.Tensor) and again.shape == out.shape and 0 < (out == 0).sum() and torch.equal(out == 0, again == 0):
            raise Wrong(f"two calls of the same Dropout({p}) in training mode zeroed exactly the same elements. Hint: "
                        "dropout draws a new random mask on every forward pass; nothing about the mask is kept between calls.")
        zeros = (out == 0).double().mean().item()
        if zeros == 0:
            raise Wrong(f"Dropout({p}) in training mode zeroed nothing. Hint: in train mode (self.training) multiply by a bernoulli mask.")
        if abs(zeros - p) > 0.01:
            hint = ("bernoulli_(1 - p) keeps each element with probability 1 - p." if abs(zeros - (1 - p)) < 0.01
                    else "zero each element with probability p.")
            raise Wrong(f"Dropout({p}) zeroed {zeros:.1%} of the elements, expected {p:.0%}. Hint: {hint}")
        kept = out != 0
        ratio = out[kept] / x.double()[kept]
        if not torch.allclose(ratio, torch.full_like(ratio, 1 / (1 - p)), rtol=1e-5):
            raise Wrong(f"the elements Dropout({p}) keeps are scaled by {ratio.mean().item():.3g}, expected 1/(1-p) = {1 / (1 - p):.3g}. "
                        "Hint: inverted dropout divides the mask by 1 - p so the mean is unchanged.")
        if abs(out.mean().item() / x.double().mean().item() - 1) > 0.01:
            raise Wrong(f"Dropout({p}) changed the mean by more than 1%.")
        drop.eval()
        out = call(drop, x, name=f"Dropout({p}) in eval mode")
        if not isinstance(out, torch.Tensor) or not torch.equal(out, x):
            raise Wrong(f"in eval mode Dropout({p}) should return its input unchanged. Hint: `if not self.training: return x`.")
    drop = _instance(cls, "Dropout", 0.0)
    drop.train()
    out = call(drop, x[:10], name="Dropout(0)(x)")
    if not isinstance(out, torch.Tensor) or not torch.allclose(out, x[:10]):
        raise Wrong("Dropout(0) should be the identity, in training mode too.")
    xs = torch.randn(4, 7, generator=g, requires_grad=True)
    drop = _instance(cls, "Dropout", 0.5)
    drop.train()
    call(drop, xs, name="Dropout(0.5)(x)").sum().backward()
    if xs.grad is None:
        raise Wrong("no gradient reaches the input through your Dropout. Hint: multiply x by the mask, don't detach.")


# ----------------------------------------------------------------------------------------------
# 05.8 AR and TAR
# ----------------------------------------------------------------------------------------------


def _fastai_ar_tar(raw: torch.Tensor, dropped: torch.Tensor, alpha: float, beta: float) -> torch.Tensor:
    """Run fastai's RNNRegularizer.after_loss on a stand-in learner and return what it adds to the loss."""
    from fastai.callback.rnn import RNNRegularizer

    cb = RNNRegularizer(alpha=alpha, beta=beta)
    cb.learn = SimpleNamespace(training=True, loss_grad=torch.zeros((), dtype=raw.dtype),
                               rnn=SimpleNamespace(out=dropped, raw_out=raw))
    cb.after_loss()
    return cb.learn.loss_grad


@exercise("05.8", "AR and TAR")
def check_ar_tar(ar_tar_penalty: Any) -> None:
    fn = require_callable(ar_tar_penalty, "ar_tar_penalty")
    g = generator(580)
    for bs, sl, nh, alpha, beta in ((4, 7, 5, 2.0, 1.0), (3, 10, 8, 0.5, 3.0), (6, 4, 3, 0.0, 1.5), (2, 6, 4, 1.0, 0.0)):
        raw = torch.randn(bs, sl, nh, generator=g).cumsum(1)
        dropped = raw * (torch.rand(bs, sl, nh, generator=g) > 0.4) / 0.6
        ref = _fastai_ar_tar(raw, dropped, alpha, beta)
        label = f"ar_tar_penalty(raw, dropped of shape {(bs, sl, nh)}, alpha={alpha}, beta={beta})"
        raw_in, dropped_in = raw.clone().requires_grad_(True), dropped.clone().requires_grad_(True)
        out = call(fn, raw_in, dropped_in, alpha, beta, name="ar_tar_penalty")
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            raise Wrong("`ar_tar_penalty` should return a one-element tensor (keep it a tensor, so autograd can use it).")
        if not torch.allclose(out.detach().double(), ref.double(), rtol=1e-6, atol=1e-6):
            swapped = alpha * raw.pow(2).mean() + beta * (dropped[:, 1:] - dropped[:, :-1]).pow(2).mean()
            if alpha and beta and torch.allclose(out.detach(), swapped, rtol=1e-6):
                hint = "AR uses the dropped-out outputs, TAR the raw ones (you swapped them)."
            else:
                hint = ("alpha * dropped.pow(2).mean() + beta * (raw[:, 1:] - raw[:, :-1]).pow(2).mean(); "
                        "TAR differences are along the time axis (dim 1).")
            raise Wrong(f"{label} returned {out.item():.6g}, fastai's RNNRegularizer adds {ref.item():.6g}. Hint: {hint}")
        if (alpha or beta) and out.requires_grad:
            out.backward()
        if alpha and dropped_in.grad is None or beta and raw_in.grad is None:
            raise Wrong("the penalty is not differentiable with respect to its inputs. Hint: don't detach or call .item().")


# ----------------------------------------------------------------------------------------------
# 05.9 a two-word model
# ----------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _human_numbers_ids() -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The chapter's HUMAN_NUMBERS stream: lines joined with ' . ', vocab in first-appearance order."""
    from course_utils.data import human_numbers

    train, valid = human_numbers()
    tokens = " . ".join(line.strip() for line in train + valid).split(" ")
    vocab = tuple(dict.fromkeys(tokens))
    index = {w: i for i, w in enumerate(vocab)}
    return vocab, tuple(index[w] for w in tokens)


def _two_word_data():
    _, ids = _human_numbers_ids()
    nums = torch.tensor(ids)
    x = torch.stack([nums[:-2], nums[1:-1]], 1)
    y = nums[2:]
    perm = torch.randperm(len(x), generator=generator(590))
    cut = int(0.8 * len(x))
    return x[perm[:cut]], y[perm[:cut]], x[perm[cut:]], y[perm[cut:]]


@exercise("05.9", "a two-word model")
def check_two_word_model(make_model: Any) -> None:
    fn = require_callable(make_model, "make_model")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(59)
        model = call(fn, name="make_model")
    if not isinstance(model, nn.Module):
        raise Wrong(f"`make_model()` should return an nn.Module, got a {type(model).__name__}.")
    params = list(model.parameters())
    if not params:
        raise Wrong("your model has no parameters to train.")
    n_params = sum(p.numel() for p in params)
    if n_params > 1_000_000:
        raise Wrong(f"your model has {n_params:,} parameters; keep it under 1,000,000 (64 hidden units are plenty).")
    model = model.cpu().float().train()
    xt, yt, xv, yv = _two_word_data()
    out = call(model, xt[:5], name="model(x)")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (5, 30):
        raise Wrong(f"for a (5, 2) batch of token ids the model should return (5, 30) logits, got "
                    f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}.")
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for b in torch.randperm(len(xt), generator=generator(591)).split(128):
        loss = F.cross_entropy(model(xt[b]), yt[b])
        if not torch.isfinite(loss):
            raise Wrong("the training loss became inf or nan.")
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        acc = (model(xv).argmax(1) == yv).float().mean().item()
    base = (yv == yv.mode().values).float().mean().item()
    if acc < base + 0.2:
        raise Wrong(f"after one epoch (Adam, lr 3e-3, bs 128) your model reaches {acc:.2f} validation accuracy; it needs "
                    f"baseline {base:.2f} + 0.2. Hint: embed both words and combine them (sum through a hidden layer, or "
                    "concatenate), with a nonlinearity before the output layer.")


# ----------------------------------------------------------------------------------------------
# 05.10 GRU cell in an LM
# ----------------------------------------------------------------------------------------------


def _copy_gru(cell: nn.Module, gru: nn.Module, suffix: str) -> None:
    with torch.no_grad():
        getattr(gru, "weight_ih" + suffix).copy_(cell.ih.weight)
        getattr(gru, "bias_ih" + suffix).copy_(cell.ih.bias)
        getattr(gru, "weight_hh" + suffix).copy_(cell.hh.weight)
        getattr(gru, "bias_hh" + suffix).copy_(cell.hh.bias)


def _require_linear(module: nn.Module, attr: str, n_in: int, n_out: int, owner: str) -> None:
    layer = getattr(module, attr, None)
    if not isinstance(layer, nn.Linear) or (layer.in_features, layer.out_features) != (n_in, n_out) or layer.bias is None:
        raise Wrong(f"{owner} needs an attribute `{attr}` = nn.Linear({n_in}, {n_out}) (with bias), as nn.GRU's layout.")


def _is_zero_state(h: Any) -> bool:
    """0, a tensor of zeros, or None (what nn.RNN, nn.GRU and nn.GRUCell read as zeros)."""
    if h is None:
        return True
    try:
        return bool((torch.as_tensor(h) == 0).all())
    except (TypeError, ValueError, RuntimeError):
        return False


@exercise("05.10", "a GRU cell in an LM")
def check_gru_lm(GRUCellScratch: Any, LMModelGRU: Any) -> None:
    cell_cls = require_callable(GRUCellScratch, "GRUCellScratch")
    lm_cls = require_callable(LMModelGRU, "LMModelGRU")
    ni, nh, B = 5, 6, 3
    cell = _seeded(lambda: _instance(cell_cls, "GRUCellScratch", ni, nh), 5100)
    _require_linear(cell, "ih", ni, 3 * nh, "GRUCellScratch(5, 6)")
    _require_linear(cell, "hh", nh, 3 * nh, "GRUCellScratch(5, 6)")
    ref = nn.GRUCell(ni, nh)
    _copy_gru(cell, ref, "")
    g = generator(5101)
    x, h = torch.randn(B, ni, generator=g), torch.randn(B, nh, generator=g)
    out = call(cell, x, h, name="GRUCellScratch(5, 6)(x, h)")
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (B, nh):
        raise Wrong(f"GRUCellScratch(5, 6)(x, h) should return the new state, shape {(B, nh)}.")
    with torch.no_grad():
        expected = ref(x, h)
        cho = _gru_cho(x, h, ref.weight_ih, ref.weight_hh, ref.bias_ih, ref.bias_hh)
    if not torch.allclose(out.detach(), expected, atol=1e-5):
        if torch.allclose(out.detach(), cho, atol=1e-5):
            raise Wrong("your cell applies the reset gate before `hh` (Cho's form); nn.GRU applies it after: "
                        "n = tanh(i_n + r * h_n) with i_n, h_n the third chunks of ih(x) and hh(h).")
        raise Wrong("GRUCellScratch differs from nn.GRUCell with the same weights. Hint: chunk ih(x) and hh(h) into r, z, n; "
                    "h_new = (1 - z) * n + z * h.")

    vocab, nh, bs, sl = 30, 8, 4, 16
    model = _seeded(lambda: _instance(lm_cls, "LMModelGRU", vocab, nh), 5102)
    for attr, kind in (("i_h", nn.Embedding), ("h_o", nn.Linear), ("cell", nn.Module)):
        if not isinstance(getattr(model, attr, None), kind):
            raise Wrong(f"LMModelGRU needs an attribute `{attr}` ({kind.__name__}), as in LMModel3.")
    _require_linear(model.cell, "ih", nh, 3 * nh, "LMModelGRU's `cell`")
    _require_linear(model.cell, "hh", nh, 3 * nh, "LMModelGRU's `cell`")
    gru = nn.GRU(nh, nh, batch_first=True)
    _copy_gru(model.cell, gru, "_l0")
    reset = getattr(model, "reset", None)
    if not callable(reset):
        raise Wrong("LMModelGRU needs a `reset()` method that zeroes the state.")
    call(reset, name="reset", allow_none=True)
    model.train()
    state = torch.zeros(1, bs, nh)
    for k in range(3):
        xb = torch.randint(0, vocab, (bs, sl), generator=g)
        out = call(model, xb, name="LMModelGRU(30, 8)(x)")
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (bs, sl, vocab):
            raise Wrong(f"for x of shape {(bs, sl)} LMModelGRU should return ({bs}, {sl}, {vocab}) logits, got "
                        f"{tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__}.")
        with torch.no_grad():
            hs, state = gru(model.i_h(xb), state)
            expected = model.h_o(hs)
        if not torch.allclose(out.detach(), expected, atol=1e-5):
            extra = (" Hint: keep the last state in self.h and start the next batch from it (don't reset inside forward)."
                     if k else " Hint: run the cell over the 16 steps from the state, then h_o on every step's state.")
            raise Wrong(f"batch {k + 1}: your LM's outputs differ from i_h -> nn.GRU -> h_o with the same weights.{extra}")
        try:
            model.zero_grad()
            F.cross_entropy(out.reshape(-1, vocab), xb.flatten()).backward()
        except RuntimeError as err:
            raise Wrong(f"backward on batch {k + 1} failed ({one_line(str(err), 80)}). Hint: detach the kept state: "
                        "self.h = h.detach().") from None
        h_kept = getattr(model, "h", None)
        if not isinstance(h_kept, torch.Tensor):
            raise Wrong("after a forward, the state should be kept in `self.h` as a tensor.")
        if h_kept.grad_fn is not None:
            raise Wrong("the kept state self.h still has a grad_fn: detach it at the end of forward (truncated BPTT).")
    call(reset, name="reset", allow_none=True)
    if not _is_zero_state(getattr(model, "h", None)):
        raise Wrong("after reset() the state self.h should be zeros (or 0).")


# ----------------------------------------------------------------------------------------------
# 05.11 sampling with a temperature
# ----------------------------------------------------------------------------------------------


def _entropy(counts: np.ndarray) -> float:
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log(p)).sum())


@exercise("05.11", "sampling with a temperature")
def check_sample_next(sample_next: Any) -> None:
    fn = require_callable(sample_next, "sample_next")
    g = generator(5110)
    for k in range(3):
        logits = torch.randn(12 + k, generator=g) * 2
        try:
            got = call(fn, logits.clone(), 0, torch.Generator().manual_seed(k), name="sample_next")
        except Wrong as wrong:
            if "returned None" in str(wrong):
                raise
            raise Wrong(f"{wrong} Hint: temperature 0 means argmax; handle it before dividing by the temperature.") from None
        got = as_int(got, "sample_next(logits, 0, g)")
        if got != int(logits.argmax()):
            raise Wrong(f"sample_next(logits, temperature=0, g) returned {got}, expected the argmax {int(logits.argmax())}.")
    logits = torch.randn(20, generator=g) * 1.5
    for T in (1.0, 0.7, 1.6):
        mine, ref = torch.Generator().manual_seed(77), torch.Generator().manual_seed(77)
        for draw in range(25):
            got = as_int(call(fn, logits.clone(), T, mine, name="sample_next"), f"sample_next(logits, {T}, g)")
            expected = int(torch.multinomial(F.softmax(logits / T, -1), 1, generator=ref))
            if got != expected:
                hint = ("use the generator you are given: torch.multinomial(F.softmax(logits / temperature, -1), 1, generator=generator)."
                        if T == 1.0 else "divide the logits by the temperature before the softmax.")
                raise Wrong(f"draw {draw + 1} at temperature {T} returned {got}, torch.multinomial with the same generator "
                            f"gives {expected}. Hint: {hint}")
    entropies = []
    for T in (0.3, 1.0, 3.0):
        gen = torch.Generator().manual_seed(5111)
        counts = np.zeros(len(logits))
        for _ in range(400):
            counts[as_int(call(fn, logits.clone(), T, gen, name="sample_next"), "sample_next(...)")] += 1
        entropies.append(_entropy(counts))
    if not entropies[0] < entropies[1] < entropies[2]:
        raise Wrong(f"the entropy of your samples should rise with the temperature; at T = 0.3, 1, 3 it is "
                    f"{', '.join(f'{e:.2f}' for e in entropies)}. Hint: logits / temperature.")


# ----------------------------------------------------------------------------------------------
# 05.12 bag of words and logistic regression
# ----------------------------------------------------------------------------------------------

_BOW_DOCS = (
    ["great", "coffee", "great", "price"],
    [],
    ["awful", "taste", "never", "again", "awful", "awful"],
    ["the", "dog", "loves", "it", "zzz"],
    ["coffee", "coffee", "coffee", "unseen", "tea"],
)
_BOW_VOCAB = ["again", "awful", "coffee", "dog", "great", "it", "loves", "never", "price", "taste", "tea", "the"]


def _count_matrix(docs, vocab) -> np.ndarray:
    from sklearn.feature_extraction.text import CountVectorizer

    cv = CountVectorizer(vocabulary=list(vocab), analyzer=lambda doc: doc)
    return cv.transform(docs).toarray().astype(np.float32)


def _review_tokens(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower().replace("<br />", " "))


@lru_cache(maxsize=1)
def _review_docs():
    """Tokenized reviews (lowercase words), the 2,000 words in most training reviews, 0/1 labels (1 = 'great')."""
    from course_utils.data import reviews

    train, test = reviews()
    docs_tr = tuple(tuple(_review_tokens(t)) for t in train.review)
    docs_te = tuple(tuple(_review_tokens(t)) for t in test.review)
    df = Counter(w for doc in docs_tr for w in set(doc))
    vocab = tuple(sorted(w for w, _ in df.most_common(2000)))
    y_tr = (train.score == "great").to_numpy().astype(np.int64)
    y_te = (test.score == "great").to_numpy().astype(np.int64)
    return vocab, docs_tr, y_tr, docs_te, y_te


def _review_matrices():
    vocab, docs_tr, y_tr, docs_te, y_te = _review_docs()
    return (list(vocab), [list(d) for d in docs_tr[:40]], _count_matrix(docs_tr, vocab), torch.tensor(y_tr),
            _count_matrix(docs_te, vocab), torch.tensor(y_te))


@exercise("05.12", "bag of words")
def check_bow(bow_matrix: Any, fit_bow_logreg: Any) -> None:
    bow = require_callable(bow_matrix, "bow_matrix")
    fit = require_callable(fit_bow_logreg, "fit_bow_logreg")
    cases = [(list(_BOW_DOCS), list(_BOW_VOCAB)), ([list(d) for d in _BOW_DOCS[2:]], ["tea", "awful", "coffee", "again"])]
    vocab, some_docs, X_tr, y_tr, X_te, y_te = _review_matrices()
    cases.append(([list(d) for d in some_docs], list(vocab)))
    for docs, voc in cases:
        ref = _count_matrix(docs, voc)
        label = f"bow_matrix({len(docs)} documents, a vocab of {len(voc)} words)"
        got = as_array(call(bow, [list(d) for d in docs], list(voc), name="bow_matrix"), label, ref.shape,
                       hint="one row per document, one column per vocab word.")
        if not np.array_equal(got, ref):
            rows = [i for i in range(len(docs)) if not np.array_equal(got[i], ref[i])]
            raise Wrong(f"{label} differs from CountVectorizer(vocabulary=vocab) in rows {rows[:5]}. Hint: column j counts "
                        "how often vocab[j] occurs in the document; words not in the vocab are ignored.")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(512)
        model = call(fit, torch.tensor(X_tr), y_tr.clone(), name="fit_bow_logreg")
    if not isinstance(model, nn.Module):
        raise Wrong(f"`fit_bow_logreg` should return the trained nn.Module, got a {type(model).__name__}.")
    model = model.cpu().eval()
    with torch.no_grad():
        logits = call(model, torch.tensor(X_te), name="your model")
    if not isinstance(logits, torch.Tensor) or tuple(logits.shape) != (len(y_te), 2):
        raise Wrong(f"the model should map ({len(y_te)}, {X_te.shape[1]}) counts to ({len(y_te)}, 2) logits.")
    acc = (logits.argmax(1) == y_te).float().mean().item()
    if acc < 0.74:
        raise Wrong(f"refit on the check's {X_tr.shape[1]:,}-word vocabulary, your model scores {acc:.2f} on the 1,000 test "
                    "reviews (majority 0.66); it needs 0.74. Hint: nn.Linear(n_words, 2), full-batch Adam (lr 1e-2) for about "
                    "50 steps on cross-entropy; logit 1 is 'great'.")


# ----------------------------------------------------------------------------------------------
# 05.13 the honest report
# ----------------------------------------------------------------------------------------------

METHODS = ("bow", "scratch", "ulmfit")
N_LABELS = (250, 1000, 3600)  # the chapter keeps 400 of the 4,000 training reviews for validation


@lru_cache(maxsize=1)
def _test_labels() -> np.ndarray:
    from course_utils.data import reviews

    return (reviews()[1].score == "great").to_numpy().astype(np.int64)


def _predictions(value: Any, key: tuple, n: int) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        raise Wrong(f"predictions[{key}] should be an array of 0/1 predictions.") from None
    if arr.ndim != 1 or len(arr) != n:
        raise Wrong(f"predictions[{key}] should be 1-D with one prediction per test review ({n}), got shape {arr.shape}.")
    if arr.dtype == bool:
        arr = arr.astype(np.int64)
    if not np.isin(arr, (0, 1)).all():
        raise Wrong(f"predictions[{key}] should hold 0/1 labels (1 = 'great'), not probabilities or other values.")
    return arr.astype(np.int64)


BOW_AGREEMENT = 0.75   # the chapter's 16-token bag of words agrees 0.91-0.93 with the check's; random labels ~0.6
MIN_ERROR_GAP = 0.15   # per method, mean over its cells: trained models 0.4-0.6; labels flipped at random ~0


@lru_cache(maxsize=1)
def _reference_bow() -> np.ndarray:
    """The check's own bag of words: TF-IDF uni+bigrams of each review's first 14 words (about the chapter's 16
    fastai tokens) and a logistic regression on all 4,000 training reviews; 0/1 on the test reviews."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    from course_utils.data import reviews

    train, test = reviews()
    words = lambda text: " ".join(re.findall(r"\w+|[^\w\s]", str(text).lower())[:14])
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=r"\S+", lowercase=False)
    model = LogisticRegression(C=3, max_iter=2000).fit(vec.fit_transform(train.review.map(words)),
                                                       (train.score == "great").to_numpy().astype(np.int64))
    return model.predict(vec.transform(test.review.map(words))).astype(np.int64)


def _from_models(arrays: dict[tuple, np.ndarray], y: np.ndarray) -> None:
    """Predictions must come from trained models: recompute what real runs would show from the arrays alone."""
    for key, pred in arrays.items():
        if (pred == y).mean() >= 0.97:
            raise Wrong(f"predictions[{key}] score {(pred == y).mean():.3f}: no model of this chapter comes near that. Hint: "
                        "report what a model trained on the training reviews predicts, never the test labels themselves.")
    for method in METHODS:
        if all(len(np.unique(p)) == 1 for (m, _, _), p in arrays.items() if m == method):
            raise Wrong(f"every prediction of {method!r} is one label for all reviews: that is a placeholder (the majority "
                        "guess), not a trained model. Hint: fill each cell with the model's own predictions.")
    cells: dict[tuple[str, int], list[np.ndarray]] = {}
    for (method, n, _), pred in arrays.items():
        cells.setdefault((method, int(n)), []).append(pred)
    for (method, n), preds in cells.items():
        if method == "bow" and n == max(N_LABELS):
            continue  # all 3,600 labelled rows whatever the seed, and a deterministic fit: identical is right
        if len(np.unique(preds[0])) > 1 and all(np.array_equal(preds[0], p) for p in preds[1:]):
            raise Wrong(f"the seeds of ({method!r}, {n}) give identical predictions: the seed never reached the run. Hint: "
                        "pass it to both the sample of labelled rows and the model's initialization.")
    reference = _reference_bow()
    for (method, n, seed), pred in arrays.items():
        if method == "bow" and n == max(N_LABELS) and (pred == reference).mean() < BOW_AGREEMENT:
            raise Wrong(f"predictions[('bow', {n}, {seed})] agree with a bag of words retrained here on the 4,000 training "
                        f"reviews on only {(pred == reference).mean():.2f} of the test reviews. Hint: fit the bag of words "
                        "on the training reviews' tokens and predict the test reviews in test order (1 = 'great').")
    easy = reference == y
    for method in METHODS:
        gap = np.mean([(p == y)[easy].mean() - (p == y)[~easy].mean() for (m, _, _), p in arrays.items() if m == method])
        if gap < MIN_ERROR_GAP:
            raise Wrong(f"the predictions of {method!r} are wrong as often on reviews that are easy to classify as on hard "
                        f"ones (accuracy gap {gap:+.2f}; trained models show about +0.4): they look made up. Hint: each "
                        "array must be what a trained model predicts for the test reviews.")


@exercise("05.13", "the honest report")
def check_report(report: Any) -> None:
    require(report, "report")
    if not isinstance(report, dict) or not {"predictions", "accuracy", "winner"} <= set(report):
        raise Wrong("`report` should be a dict with the keys 'predictions', 'accuracy' and 'winner'.")
    preds, accs, winner = report["predictions"], report["accuracy"], report["winner"]
    if not isinstance(preds, dict) or not isinstance(accs, dict) or not isinstance(winner, dict):
        raise Wrong("report['predictions'], report['accuracy'] and report['winner'] should each be a dict.")
    y = _test_labels()
    recomputed: dict[tuple[str, int], list[float]] = {}
    arrays: dict[tuple, np.ndarray] = {}
    for key, value in preds.items():
        if not isinstance(key, tuple) or len(key) != 3:
            raise Wrong(f"prediction keys should be (method, n_labels, seed) tuples, got {one_line(repr(key), 40)}.")
        method, n_labels, _seed = key
        if method not in METHODS:
            raise Wrong(f"unknown method {method!r} in {key}: use one of {METHODS}.")
        if isinstance(n_labels, (bool, np.bool_)) or not isinstance(n_labels, (int, np.integer)) or int(n_labels) not in N_LABELS:
            raise Wrong(f"n_labels in {key} should be one of {N_LABELS}.")
        pred = _predictions(value, key, len(y))
        acc = float((pred == y).mean())
        if key not in accs:
            raise Wrong(f"report['accuracy'] has no entry for {key}.")
        reported = as_float(accs[key], f"accuracy[{key}]")
        if abs(reported - acc) > 0.005:
            raise Wrong(f"accuracy[{key}] is {reported:.3f}, but its predictions score {acc:.3f} on the test reviews. "
                        "Hint: report the accuracy of exactly these predictions, in test order (1 = 'great').")
        recomputed.setdefault((method, int(n_labels)), []).append(acc)
        arrays[key] = pred
    extra = [k for k in accs if k not in preds]
    if extra:
        raise Wrong(f"report['accuracy'] has {one_line(repr(extra[0]), 40)} without predictions.")
    for n in N_LABELS:
        for method in METHODS:
            if len(recomputed.get((method, n), [])) < 2:
                raise Wrong(f"need at least 2 seeds for ({method!r}, {n}); got {len(recomputed.get((method, n), []))}.")
    _from_models(arrays, y)
    for n in N_LABELS:
        means = {m: float(np.mean(recomputed[(m, n)])) for m in METHODS}
        claimed = winner.get(n, winner.get(str(n)))
        if claimed is None:
            raise Wrong(f"report['winner'] has no entry for {n} labels.")
        best = max(means.values())
        if claimed not in METHODS or means[claimed] < best - 1e-9:
            table = ", ".join(f"{m} {a:.3f}" for m, a in means.items())
            raise Wrong(f"winner[{n}] is {claimed!r}, but the mean accuracies over seeds are {table}.")


# ----------------------------------------------------------------------------------------------
# 05.14 debug a stateful LM
# ----------------------------------------------------------------------------------------------


def _three_token_dataset(n: int) -> list[tuple[torch.Tensor, int]]:
    """fastbook's first n 3-token sequences of HUMAN_NUMBERS (stride 3): (x of 3 ids, the next id)."""
    _, ids = _human_numbers_ids()
    nums = torch.tensor(ids[: 3 * n + 1])
    return [(nums[i:i + 3], int(nums[i + 3])) for i in range(0, 3 * n, 3)]


def _batches(loader: Any, name: str, limit: int = 50) -> list[tuple[torch.Tensor, torch.Tensor]]:
    if hasattr(loader, "train") and hasattr(loader, "valid"):
        raise Wrong(f"`{name}` returned a DataLoaders pair; return one DataLoader over the dataset it is given.")
    try:
        iterator = iter(loader)
    except TypeError:
        raise Wrong(f"`{name}` should return a DataLoader (something you can iterate over), got a {type(loader).__name__}.") from None
    out = []
    for _ in range(limit):
        try:
            batch = next(iterator)
        except StopIteration:
            break
        except Exception as err:
            raise Wrong(f"iterating over your loader raised {type(err).__name__}: {one_line(str(err), 100)}") from None
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise Wrong("each batch of the loader should be an (x, y) pair.")
        out.append((torch.as_tensor(batch[0]).as_subclass(torch.Tensor), torch.as_tensor(batch[1]).as_subclass(torch.Tensor)))
    return out


@exercise("05.14", "debug a stateful LM")
def check_stateful(LMModel3Fixed: Any, make_loader: Any) -> None:
    model_cls = require_callable(LMModel3Fixed, "LMModel3Fixed")
    loader_fn = require_callable(make_loader, "make_loader")
    bs, vocab, nh = 16, 30, 24
    seqs = _three_token_dataset(5 * bs + 7)
    ds = _group_chunks(seqs[: 5 * bs], bs) + seqs[5 * bs:]  # 7 left-over items, so drop_last matters
    expected_x = torch.stack([x for x, _ in ds])
    expected_y = torch.tensor([y for _, y in ds])
    for epoch in range(2):
        loader = call(loader_fn, list(ds), bs, name="make_loader")
        batches = _batches(loader, "make_loader")
        if len(batches) != len(ds) // bs:
            hint = "drop_last=True: a last, smaller batch would break the state's shape." if len(batches) == len(ds) // bs + 1 else ""
            raise Wrong(f"a dataset of {len(ds)} items with bs={bs} should give {len(ds) // bs} batches, your loader gave "
                        f"{len(batches)}. {hint}")
        for k, (xb, yb) in enumerate(batches):
            rows = slice(k * bs, (k + 1) * bs)
            if (tuple(xb.shape) != (bs, 3) or tuple(yb.shape) != (bs,) or not torch.equal(xb.long(), expected_x[rows])
                    or not torch.equal(yb.long(), expected_y[rows])):
                raise Wrong(f"batch {k} (epoch {epoch + 1}) does not hold items {k * bs}..{(k + 1) * bs - 1} in order: "
                            "your loader shuffles. Hint: shuffle=False, or group_chunks' layout is lost.")
    model = _seeded(lambda: _instance(model_cls, "LMModel3Fixed", vocab, nh), 5140)
    reset = getattr(model, "reset", None)
    if not callable(reset):
        raise Wrong("LMModel3Fixed needs a `reset()` method (ModelResetter calls it).")
    call(reset, name="reset", allow_none=True)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for k, (xb, yb) in enumerate(batches[:3]):
        out = call(model, xb.long(), name="LMModel3Fixed(30, 24)(x)")
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (bs, vocab):
            raise Wrong(f"for x of shape {(bs, 3)} the model should return ({bs}, {vocab}) logits.")
        try:
            loss = F.cross_entropy(out, yb.long())
            opt.zero_grad()
            loss.backward()
            opt.step()
        except RuntimeError as err:
            raise Wrong(f"training batch {k + 1} failed: {one_line(str(err), 90)}. Hint: detach the kept state at the end of "
                        "forward (self.h = self.h.detach()).") from None
        h = getattr(model, "h", None)
        if not isinstance(h, torch.Tensor) or tuple(h.shape) != (bs, nh):
            raise Wrong(f"after a forward the model should keep its state in `self.h`, shape ({bs}, {nh}).")
        if h.grad_fn is not None:
            raise Wrong("after a forward, self.h still has a grad_fn: detach it (truncated backpropagation through time).")
    x_next = batches[3][0].long()
    model.eval()
    with torch.no_grad():
        carried = call(model, x_next, name="LMModel3Fixed(...)(x)").clone()
        call(reset, name="reset", allow_none=True)
        if not _is_zero_state(getattr(model, "h", None)):
            raise Wrong("after reset() the state self.h should be zeros (or 0, or None).")
        fresh = call(model, x_next, name="LMModel3Fixed(...)(x)")
    if torch.allclose(carried, fresh):
        raise Wrong("the output does not depend on the previous batch: the state is not carried across batches. "
                    "Hint: start from self.h and store the new state in self.h; only reset() zeroes it.")
