"""Checks for 07_collab: a coverage table of the densest block, a prediction with biases, a bag of embeddings as a
multi-hot matmul, a dot-product model with a global bias, Adam's coupled L2 against AdamW's decoupled decay, a broken
collaborative-filtering module to repair, recommendations by cosine for a new vector, a weight-decay sweep on a
per-user split, planted user biases recovered, a new movie folded in, and a time split.

References are computed here in float64: pandas counts on the ratings frame (07.1), the closed formulas (07.2, 07.4),
`F.embedding_bag(mode="mean")` and its autograd gradient (07.3), `torch.optim.Adam` / `torch.optim.AdamW` (07.5), a
stable sort of cosine similarities (07.7), MSEs recomputed from the predictions the learner passes (07.8, 07.10,
07.11). 07.1, 07.8 and 07.11 load the MovieLens ratings through `course_utils.data.movielens()` (07.8 and 07.11 clean
them as the chapter does: titles present, movies with >= 20 ratings, 69,104 rows). Hidden frames come from
`course_utils.data.synthetic_ratings` (planted factors and biases, the generator the chapter uses too) and this module's
`_selective_ratings` (who rates what confounded with item biases). 07.6 and 07.9 train (Adam, under a second);
07.9 runs the learner's training with one torch thread and a 20 s cap. What every check promises is in framework.py's
docstring.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.checks.framework import (
    F64,
    as_tensor,
    call,
    exercise,
    generator,
    one_line,
    require,
    require_callable,
    short,
    TorchCalls,
    Wrong,
)
from course_utils.data import synthetic_ratings

__all__ = [
    "check_adam_decay", "check_bag_mean", "check_coverage", "check_global_bias_model", "check_predict_with_bias",
    "check_fold_in_item", "check_recommend", "check_wd_sweep", "check_repair", "check_time_split", "check_user_biases",
    "TIME_SPLIT_CHOICES",
]


# ----------------------------------------------------------------------------------------------
# 07.1 the coverage of the densest block
# ----------------------------------------------------------------------------------------------


def _top_ids(counts, k: int) -> list[int]:
    """The k ids with the largest counts, ties by the smaller id."""
    items = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return [int(key) for key, _ in items[:k]]


def _coverage_ref(ratings, k: int, user_tie: int = 1, movie_tie: int = 1):
    """Reference coverage Series; user_tie / movie_tie = -1 break ties by the larger id (for hints)."""
    import pandas as pd

    uc, mc = ratings["userId"].value_counts(), ratings["movieId"].value_counts()
    users = [int(a) for a, _ in sorted(uc.items(), key=lambda kv: (-kv[1], user_tie * kv[0]))[:k]]
    movies = [int(a) for a, _ in sorted(mc.items(), key=lambda kv: (-kv[1], movie_tie * kv[0]))[:k]]
    block = ratings[ratings["userId"].isin(users) & ratings["movieId"].isin(movies)]
    seen = block.groupby("userId")["movieId"].nunique()
    return pd.Series([seen.get(u, 0) / k for u in users], index=users, dtype=np.float64)


@lru_cache(maxsize=1)
def _movielens_ratings():
    from course_utils.data import movielens

    return movielens()[["userId", "movieId", "rating"]].copy()


def _coverage_frames():
    """(label, frame, k): two hidden synthetic frames with ties in both counts at the cut, and the real ratings."""
    out = []
    for seed, (n_u, n_i, density, k) in enumerate(((40, 30, 0.25, 9), (25, 60, 0.12, 11)), start=701):
        frame, _ = synthetic_ratings(n_u, n_i, k=3, density=density, noise=0.3, seed=seed)
        out.append((f"a hidden synthetic frame ({n_u} users, {n_i} movies), k={k}", frame, k))
    out.append(("the MovieLens ratings, k=15", _movielens_ratings(), 15))
    return out


def _coverage_hint(got, ratings, k: int, ref) -> str:
    import pandas as pd

    idx = [int(v) for v in got.index]
    if set(idx) == set(ref.index) and idx != list(ref.index):
        return "the right users in the wrong order: the most active user first, ties by the smaller userId."
    if set(idx) != set(ref.index):
        alt = _coverage_ref(ratings, k, user_tie=-1)
        if idx == list(alt.index):
            return "ties in the number of ratings go to the smaller userId."
        by_mean = ratings.groupby("userId")["rating"].mean().sort_values(ascending=False).index[:k]
        if set(idx) == {int(v) for v in by_mean}:
            return "the k users with the most ratings, not the highest mean rating."
        return "the rows are the k users with the most ratings (ties by the smaller userId)."
    vals = got.to_numpy(dtype=np.float64)
    if np.allclose(vals, ref.to_numpy() * k):
        return "you return counts: divide by the number of movies in the block to get a fraction."
    n_movies = ratings["movieId"].nunique()
    if np.allclose(vals, ref.to_numpy() * k / n_movies):
        return "you divide by the number of all movies: the fraction is over the k movies of the block."
    counts = ratings.groupby("userId").size()
    if np.allclose(vals, ref.to_numpy() * k / counts.loc[idx].to_numpy()):
        return "you divide by the user's number of ratings: the fraction is over the k movies of the block."
    if np.allclose(vals, _coverage_ref(ratings, k, movie_tie=-1).to_numpy()):
        return "ties among the most-rated movies go to the smaller movieId."
    return "for each user, count the block's k movies they rated and divide by k."


@exercise("07.1", "coverage of the densest block")
def check_coverage(coverage: Any) -> None:
    """`coverage(ratings, k)`: ratings a DataFrame with (at least) columns userId, movieId, rating, one row per
    rating. Returns a pandas Series indexed by the userIds of the k users with the most ratings (most first, ties by
    the smaller userId), whose values are the fraction (0..1) of the k most-rated movies (ties by the smaller
    movieId) that the user has rated.

    Checked on two hidden synthetic frames (shuffled ids, ties in the counts at the cut) and on the MovieLens
    ratings (k=15); index order exact, values within 1e-9. The learner's frame must come back unchanged.
    """
    import pandas as pd

    fn = require_callable(coverage, "coverage")
    for label, frame, k in _coverage_frames():
        given = frame.copy()
        got = call(fn, given, k, name="coverage")
        if not given.equals(frame):
            raise Wrong(f"coverage changed the ratings frame it was given ({label}). Hint: work on a copy, or without "
                        "inplace=True.")
        if isinstance(got, pd.DataFrame) and got.shape[1] == 1:
            got = got.iloc[:, 0]
        if not isinstance(got, pd.Series):
            raise Wrong(f"coverage should return a pandas Series indexed by userId, got a {type(got).__name__}.")
        ref = _coverage_ref(frame, k)
        if len(got) != k:
            raise Wrong(f"on {label}, coverage returned {len(got)} rows, expected k={k}: one per user of the block.")
        try:
            vals = got.to_numpy(dtype=np.float64)
        except (TypeError, ValueError):
            raise Wrong("coverage's values should be numbers (fractions between 0 and 1).") from None
        if [int(v) for v in got.index] == list(ref.index) and np.allclose(vals, ref.to_numpy(), rtol=0, atol=1e-9):
            continue
        raise Wrong(f"on {label}, coverage gives users {[int(v) for v in got.index][:4]}… with "
                    f"{np.round(vals[:4], 3).tolist()}…, expected {list(ref.index)[:4]}… with "
                    f"{np.round(ref.to_numpy()[:4], 3).tolist()}…. Hint: {_coverage_hint(got, frame, k, ref)}")


# ----------------------------------------------------------------------------------------------
# 07.2 a prediction with biases
# ----------------------------------------------------------------------------------------------

_PREDICT_CASES = ((4, 3, (0.0, 5.5)), (6, 5, (0.5, 5.0)), (1, 2, (-1.0, 1.0)))


def _predict_ref(user, items, user_bias, item_bias, y_range):
    lo, hi = y_range
    return lo + (hi - lo) * torch.sigmoid(items @ user + user_bias + item_bias)


def _predict_hint(got, user, items, ub, ib, y_range) -> str:
    lo, hi = y_range
    s = lambda z: lo + (hi - lo) * torch.sigmoid(z)
    dot = items @ user
    tries = [
        (s(dot), "the biases are missing: add the user's bias and each movie's bias to the dot product before the sigmoid."),
        (s(dot + ib), "the user's bias is missing: it is added to every movie's score."),
        (s(dot + ub), "each movie's bias is missing."),
        (dot + ub + ib, "no squashing: put the score through lo + (hi - lo) * sigmoid(.)."),
        (hi * torch.sigmoid(dot + ub + ib), "the sigmoid is scaled to hi but lo is ignored: lo + (hi - lo) * sigmoid(.)."),
        (s(dot) + ub + ib, "the biases are added after the sigmoid: add them to the score, then squash it."),
        (s((items * user).sum(0).sum() + ub + ib) * torch.ones_like(dot), "one dot product per movie (a row of items each)."),
    ]
    for value, hint in tries:
        if value.shape == got.shape and torch.allclose(got, value, rtol=0, atol=1e-9):
            return hint
    return "score = user · movie + user_bias + movie_bias, then lo + (hi - lo) * sigmoid(score)."


@exercise("07.2", "a prediction with biases")
def check_predict_with_bias(predict: Any) -> None:
    """`predict(user, items, user_bias, item_bias, y_range)`: user a (k,) float64 taste vector, items (n, k) one movie
    per row, user_bias a float, item_bias (n,), y_range (lo, hi). Returns the n predicted ratings
    lo + (hi - lo) * sigmoid(user · items[j] + user_bias + item_bias[j]) as an (n,) tensor or array.

    Three hidden float64 cases, within 1e-9.
    """
    fn = require_callable(predict, "predict")
    g = generator(720)
    for k, n, y_range in _PREDICT_CASES:
        user = torch.randn(k, generator=g, dtype=torch.float64)
        items = torch.randn(n, k, generator=g, dtype=torch.float64)
        ub = float(torch.randn(1, generator=g, dtype=torch.float64))
        ib = torch.randn(n, generator=g, dtype=torch.float64)
        expected = _predict_ref(user, items, ub, ib, y_range)
        out = call(fn, user.clone(), items.clone(), ub, ib.clone(), y_range, name="predict")
        label = f"predict(user of size {k}, {n} movies, y_range={y_range})"
        got = as_tensor(out, label).flatten() if isinstance(out, (torch.Tensor, np.ndarray, list, tuple)) else None
        if got is None:
            raise Wrong(f"{label} should return a tensor or an array of {n} ratings, got a {type(out).__name__}.")
        if got.shape != expected.shape:
            raise Wrong(f"{label} returned {got.numel()} values, expected {n}: one predicted rating per movie.")
        if not torch.allclose(got, expected, rtol=0, atol=1e-9):
            raise Wrong(f"{label} is {short(got)}, expected {short(expected)}. "
                        f"Hint: {_predict_hint(got, user, items, ub, ib, y_range)}")


# ----------------------------------------------------------------------------------------------
# 07.3 a bag of embeddings as a multi-hot matmul
# ----------------------------------------------------------------------------------------------

# (n, d, bag lengths): every case has a bag listing an index twice; case 2 a bag of one and one index listed three times.
_BAG_CASES = ((7, 3, (3, 1, 4, 2)), (12, 5, (6, 2, 5, 1, 3, 4)), (4, 2, (5, 1)))


def _bags(n: int, lengths, g: torch.Generator) -> list[list[int]]:
    bags = [torch.randint(0, n, (m,), generator=g).tolist() for m in lengths]
    for bag in bags:
        if len(bag) >= 2:
            bag[1] = bag[0]  # a repeat in every longer bag
    if len(bags[0]) >= 3:
        bags[0][2] = bags[0][0]
    bags[-1][-1] = n - 1
    return bags


def _bag_ref(bags, W):
    flat = torch.tensor([i for b in bags for i in b])
    offsets = torch.tensor([0] + list(np.cumsum([len(b) for b in bags])[:-1]))
    return F.embedding_bag(flat, W, offsets, mode="mean")


def _bag_hint(got, bags, W) -> str:
    n = W.shape[0]
    counts = torch.zeros(len(bags), n, dtype=W.dtype)
    present = torch.zeros(len(bags), n, dtype=W.dtype)
    for r, b in enumerate(bags):
        for i in b:
            counts[r, i] += 1
        present[r, b] = 1
    lengths = torch.tensor([len(b) for b in bags], dtype=W.dtype)[:, None]
    tries = [
        (counts @ W, "you return the sum of each bag's vectors: divide by the bag's length for the mean."),
        (present @ W / lengths, "an index listed twice in a bag counts twice: add up the one-hot rows, don't mark 0/1."),
        (present @ W / present.sum(1, keepdim=True), "an index listed twice in a bag counts twice in the mean."),
        ((counts @ W) / n, "divide each bag by its own length, not by the number of rows of W."),
    ]
    for value, hint in tries:
        if value.shape == got.shape and torch.allclose(got, value, atol=1e-6):
            return hint
    return "row r is the mean of W's rows listed in bag r (repeats counted), i.e. (counts / length) @ W."


@exercise("07.3", "a bag of embeddings as a matmul")
def check_bag_mean(bag_mean: Any) -> None:
    """`bag_mean(bags, W)`: bags a list of non-empty lists of row indices into W (repeats allowed), W an (n, d) float
    tensor that requires grad. Returns the (len(bags), d) tensor whose row r is the mean of W's rows listed in
    bags[r], as nn.EmbeddingBag(mode="mean") does, computed by a matrix product with a multi-hot count matrix.

    Three hidden cases: values against F.embedding_bag(mode="mean") (atol 1e-6) and the gradient of
    sum(out * G) with respect to W for a hidden G (atol 1e-6). The learner's torch calls are watched:
    embedding_bag, embedding and indexing W are refused, and a matmul (@, mm, matmul) is required.
    """
    fn = require_callable(bag_mean, "bag_mean")
    g = generator(730)
    for n, d, lengths in _BAG_CASES:
        bags = _bags(n, lengths, g)
        W0 = torch.randn(n, d, generator=g)
        G = torch.randn(len(bags), d, generator=g)
        W = W0.clone().requires_grad_(True)
        label = f"bag_mean(bags={bags}, W of shape ({n}, {d}))"
        with TorchCalls() as spy:
            out = call(fn, [list(b) for b in bags], W, name="bag_mean")
        called = set(spy.names)
        if called & {"embedding_bag", "embedding"}:
            raise Wrong(f"{label} calls F.embedding or F.embedding_bag. Hint: the exercise is to build the multi-hot "
                        "count matrix yourself and multiply it by W.")
        if "__getitem__" in called and not called & {"matmul", "__matmul__", "mm", "__rmatmul__", "einsum"}:
            raise Wrong(f"{label} indexes W's rows instead of multiplying. Hint: build a (bags, n) matrix of counts "
                        "divided by lengths and multiply it by W.")
        if not called & {"matmul", "__matmul__", "mm", "__rmatmul__", "einsum"}:
            raise Wrong(f"{label} does not multiply a multi-hot matrix by W. Hint: the exercise is the matmul form "
                        "(counts / length) @ W.")
        if not isinstance(out, torch.Tensor):
            raise Wrong(f"{label} should return a tensor, got a {type(out).__name__}.")
        expected = _bag_ref(bags, W0.detach().double())
        if tuple(out.shape) != tuple(expected.shape):
            raise Wrong(f"{label} has shape {tuple(out.shape)}, expected {tuple(expected.shape)}: one row per bag.")
        got = out.detach().double()
        if not torch.allclose(got, expected, atol=1e-6):
            raise Wrong(f"{label} is wrong: {short(got)}, expected {short(expected)}. Hint: {_bag_hint(got, bags, W0.double())}")
        if not out.requires_grad:
            raise Wrong(f"{label}'s result has no gradient: keep the computation in torch, without detach or numpy.")
        (out * G).sum().backward()
        Wr = W0.double().clone().requires_grad_(True)
        (_bag_ref(bags, Wr) * G.double()).sum().backward()
        if W.grad is None or not torch.allclose(W.grad.double(), Wr.grad, atol=1e-6):
            raise Wrong(f"{label} has the right values but the gradient with respect to W is wrong. Hint: the result "
                        "must come from W itself (no copy or detach) through the matmul.")


# ----------------------------------------------------------------------------------------------
# 07.4 a dot-product model with a global bias
# ----------------------------------------------------------------------------------------------

_MODEL_CASES = ((7, 11, 3, (0.0, 5.5)), (13, 5, 4, (1.0, 3.0)))


def _model_params(model: nn.Module, n_u: int, n_i: int, k: int, label: str) -> dict[str, nn.Parameter]:
    """The model's parameters found by shape: user/item factors, user/item biases and the global bias."""
    found: dict[str, nn.Parameter] = {}
    want = {(n_u, k): "user_factors", (n_i, k): "item_factors", (n_u, 1): "user_bias", (n_u,): "user_bias",
            (n_i, 1): "item_bias", (n_i,): "item_bias", (1,): "global_bias", (): "global_bias", (1, 1): "global_bias"}
    for p in model.parameters():
        role = want.get(tuple(p.shape))
        if role is None or role in found:
            raise Wrong(f"{label} has a parameter of shape {tuple(p.shape)} that is not one of the five tables: user "
                        f"factors ({n_u}, {k}), item factors ({n_i}, {k}), a bias per user and per item, one global bias.")
        found[role] = p
    missing = [r for r in ("user_factors", "item_factors", "user_bias", "item_bias", "global_bias") if r not in found]
    if missing:
        hint = ("Hint: a single number added to every prediction is a parameter too: nn.Parameter(torch.zeros(1))."
                if missing == ["global_bias"] else
                "Hint: keep them as nn.Embedding or nn.Parameter attributes; a plain tensor or a Python list is invisible "
                "to parameters().")
        raise Wrong(f"{label} has no registered {', '.join(missing)}. {hint}")
    return found


@exercise("07.4", "a dot-product model with a global bias")
def check_global_bias_model(GlobalBiasDotProduct: Any) -> None:
    """`GlobalBiasDotProduct(n_users, n_items, n_factors, y_range)`: an nn.Module called on x, an int64 (bs, 2)
    tensor of (user index, item index) rows, returning a (bs,) float tensor
    lo + (hi - lo) * sigmoid(u · i + b_u + b_i + g), where g is one learned number shared by all predictions.

    Two hidden sizes. The check finds the five parameter tensors by shape (factors (n, k), biases (n,) or (n, 1),
    global () or (1,)), so the total is (n_users + n_items)(n_factors + 1) + 1 and nothing else may be registered;
    it sets them to seeded random values and compares the forward pass with the formula (atol 1e-5); with huge weights
    every output must stay within [lo, hi]; a gradient must reach the global bias.
    """
    cls = require_callable(GlobalBiasDotProduct, "GlobalBiasDotProduct")
    g = generator(740)
    for case, (n_u, n_i, k, y_range) in enumerate(_MODEL_CASES):
        lo, hi = y_range
        label = f"GlobalBiasDotProduct({n_u}, {n_i}, {k}, y_range={y_range})"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(741 + case)
            model = call(cls, n_u, n_i, k, y_range, name="GlobalBiasDotProduct")
        if not isinstance(model, nn.Module):
            raise Wrong(f"{label} should build an nn.Module, got a {type(model).__name__}.")
        params = _model_params(model, n_u, n_i, k, label)
        count = sum(p.numel() for p in model.parameters())
        expected_count = (n_u + n_i) * (k + 1) + 1
        if count != expected_count:
            raise Wrong(f"{label} has {count} parameters, expected {expected_count}.")
        values = {role: 0.5 * torch.randn(p.shape, generator=g) for role, p in params.items()}
        with torch.no_grad():
            for role, p in params.items():
                p.copy_(values[role])
        x = torch.stack([torch.randint(0, n_u, (32,), generator=g), torch.randint(0, n_i, (32,), generator=g)], 1)
        x[0] = torch.tensor([n_u - 1, n_i - 1])
        out = call(model, x.clone(), name=f"{label}(x)")
        if not isinstance(out, torch.Tensor):
            raise Wrong(f"{label}(x) should return a tensor, got a {type(out).__name__}.")
        if tuple(out.shape) != (32,):
            raise Wrong(f"{label} maps a batch of 32 (user, item) rows to shape {tuple(out.shape)}, expected (32,): one "
                        "prediction per row (sum the product over the factor axis; flatten the (bs, 1) biases).")
        v = {r: t.double() for r, t in values.items()}
        u, i = x[:, 0], x[:, 1]
        score = (v["user_factors"][u] * v["item_factors"][i]).sum(1) + v["user_bias"].reshape(-1)[u] \
            + v["item_bias"].reshape(-1)[i] + v["global_bias"].reshape(())
        expected = lo + (hi - lo) * torch.sigmoid(score)
        got = out.detach().double()
        if not torch.allclose(got, expected, atol=1e-5):
            no_global = lo + (hi - lo) * torch.sigmoid(score - v["global_bias"].reshape(()))
            if torch.allclose(got, no_global, atol=1e-5):
                hint = "the global bias is registered but never added to the score."
            elif torch.allclose(got, score, atol=1e-5):
                hint = "no squashing: put the score through lo + (hi - lo) * sigmoid(.)."
            elif torch.allclose(got, hi * torch.sigmoid(score), atol=1e-5):
                hint = "the sigmoid is scaled to hi and lo is ignored: lo + (hi - lo) * sigmoid(.)."
            else:
                hint = ("user factors are looked up with x[:, 0] and item factors with x[:, 1]; score = u · i + b_u + b_i "
                        "+ g, then lo + (hi - lo) * sigmoid(score).")
            raise Wrong(f"{label}(x) is {short(got)}, expected {short(expected)} from the model's own weights. Hint: {hint}")
        out.sum().backward()
        if params["global_bias"].grad is None or params["global_bias"].grad.abs().sum() == 0:
            raise Wrong(f"no gradient reaches {label}'s global bias. Hint: add it to the score inside forward.")
        with torch.no_grad():
            for role, p in params.items():
                p.copy_(40 * values[role])
            big = call(model, x.clone(), name=f"{label}(x)").detach()
        if not ((big >= lo) & (big <= hi)).all():
            raise Wrong(f"with large weights {label} outputs values in [{big.min().item():.3g}, {big.max().item():.3g}], "
                        f"outside y_range={y_range}. Hint: squash the whole score, biases included, into y_range.")


# ----------------------------------------------------------------------------------------------
# 07.5 Adam's coupled L2 against AdamW's decoupled decay
# ----------------------------------------------------------------------------------------------

_ADAM_CASES = ((0.1, 0.2, (0.9, 0.999), 5), (0.03, 0.5, (0.8, 0.99), 7), (0.2, 0.05, (0.9, 0.999), 1))


def _adam_torch(p0, grads, lr, wd, betas, decoupled: bool):
    p = p0.clone().requires_grad_(True)
    opt = (torch.optim.AdamW if decoupled else torch.optim.Adam)([p], lr=lr, betas=betas, eps=1e-8, weight_decay=wd)
    for grad in grads:
        p.grad = grad.clone()
        opt.step()
    return p.detach()


def _adam_manual(p0, grads, lr, wd, betas, decoupled, *, coupled_factor=1.0, lr_in_decay=True, bias_correction=True,
                 decay_after=False):
    """Adam/AdamW by hand with flags that plant mistakes (defaults are right)."""
    b1, b2 = betas
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for t, grad in enumerate(grads, 1):
        g = grad + coupled_factor * wd * p if not decoupled else grad
        if decoupled and not decay_after:
            p = p * (1 - (lr if lr_in_decay else 1.0) * wd)
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        mh, vh = (m / (1 - b1 ** t), v / (1 - b2 ** t)) if bias_correction else (m, v)
        p = p - lr * mh / (vh.sqrt() + 1e-8)
        if decoupled and decay_after:
            p = p * (1 - lr * wd)
    return p


def _adam_hint(got, p0, grads, lr, wd, betas, decoupled) -> str:
    tries = [
        (_adam_manual(p0, grads, lr, wd, betas, decoupled, bias_correction=False),
         "the bias correction is missing: divide m by 1 - beta1**t and v by 1 - beta2**t (t counts from 1)."),
        (_adam_torch(p0, grads, lr, wd, betas, not decoupled),
         "you swapped the two rules: Adam's weight_decay adds wd * p to the gradient (coupled); AdamW shrinks p itself."),
    ]
    if decoupled:
        tries += [
            (_adam_manual(p0, grads, lr, wd, betas, True, lr_in_decay=False),
             "the decoupled decay is multiplied by the learning rate: p ← p - lr * wd * p."),
            (_adam_manual(p0, grads, lr, wd, betas, True, decay_after=True),
             "the decay shrinks the weights before the Adam step, not after it."),
            (_adam_manual(p0, grads, lr, 0.0, betas, True), "no decay at all: shrink p by lr * wd * p each step."),
        ]
    else:
        tries += [
            (_adam_manual(p0, grads, lr, wd, betas, False, coupled_factor=2.0),
             "torch's weight_decay adds wd * p to the gradient, not 2 * wd * p."),
            (_adam_manual(p0, grads, lr, 0.0, betas, False), "no decay at all: add wd * p to the gradient each step."),
        ]
    for value, hint in tries:
        if torch.allclose(got, value, rtol=0, atol=1e-7):
            return hint
    return "keep m and v across the steps: m ← b1 m + (1-b1) g, v ← b2 v + (1-b2) g², p ← p - lr m̂ / (√v̂ + eps)."


@exercise("07.5", "Adam's L2 against AdamW's decay")
def check_adam_decay(adam: Any) -> None:
    """`adam(p, grads, lr, wd, betas, decoupled)`: p a float64 tensor (the starting weights, left unchanged), grads a
    list of float64 tensors of p's shape (the gradient of the loss at each step, given, not computed), eps = 1e-8.
    Returns p after len(grads) steps of Adam with coupled L2 (decoupled=False: wd * p added to the gradient, as
    torch.optim.Adam(weight_decay=wd)) or of AdamW (decoupled=True: p shrunk by lr * wd * p, as torch.optim.AdamW).

    Three hidden cases, each in both modes, against torch.optim (atol 1e-7); the two results of a case must differ.
    """
    fn = require_callable(adam, "adam")
    g = generator(750)
    for lr, wd, betas, steps in _ADAM_CASES:
        p0 = torch.randn(3, 4, generator=g, dtype=torch.float64) * 2
        grads = [torch.randn(3, 4, generator=g, dtype=torch.float64) for _ in range(steps)]
        results = {}
        for decoupled in (False, True):
            label = f"adam(p, {steps} grads, lr={lr}, wd={wd}, betas={betas}, decoupled={decoupled})"
            given = p0.clone()
            out = call(fn, given, [x.clone() for x in grads], lr, wd, betas, decoupled, name="adam")
            if not torch.equal(given, p0):
                raise Wrong(f"{label} changed the starting p in place. Hint: work on a copy (p = p.clone()).")
            got = as_tensor(out, label, shape=tuple(p0.shape))
            expected = _adam_torch(p0, grads, lr, wd, betas, decoupled)
            if not torch.allclose(got, expected, rtol=0, atol=1e-7):
                raise Wrong(f"{label} is {short(got)}, torch.optim gives {short(expected)}. "
                            f"Hint: {_adam_hint(got, p0, grads, lr, wd, betas, decoupled)}")
            results[decoupled] = got
        if torch.allclose(results[False], results[True], rtol=0, atol=1e-9):
            raise Wrong("your coupled and decoupled results are equal; they should differ.")


# ----------------------------------------------------------------------------------------------
# 07.6 repair a broken model
# ----------------------------------------------------------------------------------------------

_REPAIR_SIZES = (30, 40, 4)  # n_users, n_items, n_factors
_REPAIR_STEPS, _REPAIR_LR, _REPAIR_RATIO = 30, 0.05, 0.8


@lru_cache(maxsize=1)
def _repair_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """256 (user, item) rows of a hidden synthetic frame and their ratings, as float32."""
    n_u, n_i, _ = _REPAIR_SIZES
    frame, truth = synthetic_ratings(n_u, n_i, k=3, density=0.4, noise=0.3, seed=760)
    u_pos = {int(v): j for j, v in enumerate(truth["user_ids"])}
    i_pos = {int(v): j for j, v in enumerate(truth["item_ids"])}
    rows = frame.iloc[:256]
    x = torch.tensor([[u_pos[int(a)], i_pos[int(b)]] for a, b in zip(rows["userId"], rows["movieId"])])
    return x, torch.tensor(rows["rating"].to_numpy(), dtype=torch.float32)


@exercise("07.6", "repair a broken model")
def check_repair(FixedDotProductBias: Any) -> None:
    """`FixedDotProductBias(n_users, n_items, n_factors)`: the chapter's broken model (embeddings kept in a Python
    list, a (bs, 1) bias added to a (bs,) score) repaired. Called on x, an int64 (bs, 2) tensor of (user, item)
    rows, it returns a (bs,) float tensor u · i + b_u + b_i (no sigmoid range needed).

    The check builds it with (30, 40, 4): exactly 4 registered parameter tensors (two factor tables, two bias tables,
    (n, 1) or (n,)); output shape (256,) on a hidden batch; 30 Adam steps (lr 0.05, MSE) on 256 hidden synthetic
    ratings must bring the loss below 0.8 x the initial loss.
    """
    cls = require_callable(FixedDotProductBias, "FixedDotProductBias")
    n_u, n_i, k = _REPAIR_SIZES
    label = f"FixedDotProductBias({n_u}, {n_i}, {k})"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(761)
        model = call(cls, n_u, n_i, k, name="FixedDotProductBias")
    if not isinstance(model, nn.Module):
        raise Wrong(f"{label} should build an nn.Module, got a {type(model).__name__}.")
    params = list(model.parameters())
    shapes = sorted(tuple(p.shape) for p in params)
    if not params:
        raise Wrong(f"{label} has no registered parameters, so the optimiser has nothing to train. Hint: layers kept "
                    "in a plain Python list are invisible to parameters(); use nn.ModuleList or separate attributes.")
    ok = {(n_u, k), (n_i, k)} <= set(shapes) and len(shapes) == 4
    if not ok:
        raise Wrong(f"{label} registers parameters of shapes {shapes}; expected exactly four: ({n_u}, {k}), ({n_i}, {k}) "
                    f"and a bias per user and per item. Hint: every embedding must be registered (nn.ModuleList or "
                    "attributes), and nothing else added.")
    x, y = _repair_batch()
    out = call(model, x.clone(), name=f"{label}(x)")
    if not isinstance(out, torch.Tensor):
        raise Wrong(f"{label}(x) should return a tensor, got a {type(out).__name__}.")
    if tuple(out.shape) != (len(x),):
        hint = (" A (bs, 1) bias added to a (bs,) score broadcasts to (bs, bs): flatten the biases first."
                if tuple(out.shape) == (len(x), len(x)) else
                " Sum the product over the factor axis (dim=1) and flatten the (bs, 1) biases.")
        raise Wrong(f"{label} maps a batch of {len(x)} rows to shape {tuple(out.shape)}, expected ({len(x)},).{hint}")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(762)
        opt = torch.optim.Adam(model.parameters(), lr=_REPAIR_LR)
        first = last = None
        for _ in range(_REPAIR_STEPS):
            loss = F.mse_loss(call(model, x, name=f"{label}(x)"), y)
            if not loss.requires_grad:
                raise Wrong(f"{label}'s output carries no gradient, so nothing can train. Hint: no detach, no .data, "
                            "no numpy inside forward.")
            opt.zero_grad()
            loss.backward()
            opt.step()
            first = loss.item() if first is None else first
            last = loss.item()
    if not np.isfinite(last) or last >= _REPAIR_RATIO * first:
        raise Wrong(f"after {_REPAIR_STEPS} Adam steps the loss went from {first:.3g} to {last:.3g}, not below "
                    f"{_REPAIR_RATIO} x the start. Hint: look up the user factors with x[:, 0] and the item factors with "
                    "x[:, 1], and let the gradient reach every table (no detach, no .data).")


# ----------------------------------------------------------------------------------------------
# 07.7 recommendations for a new vector
# ----------------------------------------------------------------------------------------------

# (n items, d, k, how many seen): the hidden item tables have row norms spread over 0.2..5 and exact duplicate rows
_RECOMMEND_CASES = ((40, 6, 5, 4), (25, 3, 8, 0), (60, 8, 10, 12))


def _recommend_case(n: int, d: int, n_seen: int, g: torch.Generator):
    """(vec, emb, seen): emb float32 with varying norms, duplicate rows among the best; the best item is seen."""
    vec = torch.randn(d, generator=g)
    emb = torch.randn(n, d, generator=g) * torch.exp(torch.empty(n, 1).uniform_(-1.6, 1.6, generator=g))
    cos = F.cosine_similarity(emb.double(), vec.double()[None], dim=1)
    order = torch.argsort(-cos, stable=True).tolist()
    emb[order[-1]] = emb[order[1]]  # an exact twin of the 2nd best, at a later or earlier index
    emb[order[-2]] = emb[order[3]]
    seen = order[:1] + torch.randperm(n, generator=g)[: max(n_seen - 1, 0)].tolist() if n_seen else []
    return vec, emb, sorted(set(seen))


def _recommend_ref(vec, emb, k, seen, score="cos", tie=1):
    e, v = emb.double(), vec.double()
    values = {"cos": (e @ v) / (e.norm(dim=1) * v.norm()), "dot": e @ v, "dist": -(e - v).norm(dim=1)}[score]
    keys = sorted(range(len(e)), key=lambda j: (-values[j].item(), tie * j))
    return [j for j in keys if j not in set(seen)][:k]


@exercise("07.7", "recommendations for a new vector")
def check_recommend(recommend: Any) -> None:
    """`recommend(vec, emb, k, seen)`: vec a (d,) float tensor (e.g. a folded-in user), emb an (n, d) float tensor of
    item factors, k an int, seen a list of item indices to leave out (possibly empty). Returns the k item indices
    (list, array or tensor of ints) with the highest cosine similarity to vec, most similar first, equal similarities
    by the smaller index, none of them in seen.

    Three hidden cases: item norms vary (so the dot product ranks differently), two pairs of identical rows (exact
    ties), the single most similar item is among `seen` when seen is not empty. The order must match exactly.
    """
    fn = require_callable(recommend, "recommend")
    g = generator(770)
    for n, d, k, n_seen in _RECOMMEND_CASES:
        vec, emb, seen = _recommend_case(n, d, n_seen, g)
        label = f"recommend(vec, emb of shape ({n}, {d}), k={k}, seen of {len(seen)} items)"
        out = call(fn, vec.clone(), emb.clone(), k, list(seen), name="recommend")
        if isinstance(out, torch.Tensor):
            out = out.detach().cpu().flatten().tolist()
        elif isinstance(out, np.ndarray):
            out = out.flatten().tolist()
        if not isinstance(out, (list, tuple)) or not all(isinstance(j, (int, np.integer)) and not isinstance(j, bool)
                                                         for j in out):
            raise Wrong(f"{label} should return a list, array or tensor of item indices (ints), got "
                        f"{one_line(repr(out), 60)}.")
        got = [int(j) for j in out]
        expected = _recommend_ref(vec, emb, k, seen)
        if got == expected:
            continue
        if len(got) != k:
            hint = f"return exactly k={k} indices."
        elif set(got) & set(seen):
            hint = "some of your items are in `seen`: leave out what the user already rated."
        elif got == _recommend_ref(vec, emb, k, seen, tie=-1):
            hint = "equal similarities (identical rows) go to the smaller index first: sort stably."
        elif got == _recommend_ref(vec, emb, k, seen, score="dot"):
            hint = "you rank by the dot product, which favours long vectors: divide by both norms (cosine)."
        elif got == _recommend_ref(vec, emb, k, seen, score="dist"):
            hint = "you rank by Euclidean distance; the exercise ranks by cosine similarity."
        elif sorted(got) == sorted(expected):
            hint = "the right items in the wrong order: the most similar first."
        else:
            hint = "cosine(vec, emb[j]) = vec · emb[j] / (|vec| |emb[j]|), highest first."
        raise Wrong(f"{label} returned {got}, expected {expected}. Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 07.8 a weight-decay sweep on a per-user split
# ----------------------------------------------------------------------------------------------

_SWEEP_RANGE, _SWEEP_GAIN = (0.5, 1.2), 0.03


def _check_partition(train: Any, valid: Any, columns: set[str]) -> None:
    """train and valid are DataFrames with `columns` that together hold every row of the cleaned ratings once."""
    import pandas as pd

    for name, frame in (("train", train), ("valid", valid)):
        require(frame, name)
        if not isinstance(frame, pd.DataFrame) or not columns <= set(frame.columns):
            raise Wrong(f"`{name}` should be a DataFrame with the columns {', '.join(sorted(columns))}.")
    full = _cleaned_movielens()
    if len(train) + len(valid) != len(full):
        raise Wrong(f"train and valid hold {len(train):,} + {len(valid):,} rows; the cleaned ratings have {len(full):,}. "
                    "Hint: split the chapter's cleaned frame (titles present, movies with >= 20 ratings), every row once.")
    key = [c for c in ("userId", "movieId", "timestamp") if c in columns]
    both = pd.concat([train[key], valid[key]]).sort_values(key).to_numpy()
    if not np.array_equal(both, full[key].sort_values(key).to_numpy()):
        raise Wrong("train and valid together are not the cleaned ratings (some rows are missing or doubled).")


@exercise("07.8", "a weight-decay sweep on a per-user split")
def check_wd_sweep(sweep: Any, train: Any, valid: Any, best_preds: Any) -> None:
    """`sweep`: {wd: validation MSE} for at least 3 values of wd including 0, each model trained in the chapter's
    overfitting setting; `train, valid`: the chapter's cleaned ratings split per user, about 20% of each user's
    ratings in valid (columns userId, movieId, rating); `best_preds`: the best model's predictions for the rows of
    valid, in its order.

    The check rebuilds the cleaned frame: train and valid partition it; every validation user has ratings in train;
    valid holds 20% +- 1% of all ratings, and between 10% and 30% of the ratings of every user with >= 10 of them.
    The sweep: 0 present, all values in [0.5, 1.2], the best value below sweep[0] - 0.03, and equal (within 1e-4)
    to the MSE recomputed from best_preds.
    """
    _check_partition(train, valid, {"userId", "movieId", "rating"})
    if not set(valid["userId"]) <= set(train["userId"]):
        missing = len(set(valid["userId"]) - set(train["userId"]))
        raise Wrong(f"{missing} validation users have no rating in train: a per-user split keeps about 80% of every "
                    "user's ratings for training (group by user, then split each group).")
    share = len(valid) / (len(train) + len(valid))
    if abs(share - 0.2) > 0.01:
        raise Wrong(f"valid holds {share:.1%} of the ratings, expected about 20% of each user's.")
    n_all = train["userId"].value_counts().add(valid["userId"].value_counts(), fill_value=0)
    per_user = valid["userId"].value_counts().reindex(n_all.index, fill_value=0) / n_all
    busy = per_user[n_all >= 10]
    off = busy[(busy < 0.1) | (busy > 0.3)]
    if len(off):
        raise Wrong(f"{len(off)} users with 10 or more ratings have less than 10% or more than 30% of them in valid "
                    f"(e.g. user {int(off.index[0])}: {off.iloc[0]:.0%}). Hint: this looks like a split of all rows at "
                    "random; split each user's ratings 80/20.")
    require(sweep, "sweep")
    if not isinstance(sweep, dict) or len(sweep) < 3:
        raise Wrong("`sweep` should be a dict {wd: validation MSE} with at least 3 values of wd.")
    values = {float(k): as_tensor(v, f"sweep[{k}]").flatten() for k, v in sweep.items()}
    if any(v.numel() != 1 for v in values.values()):
        raise Wrong("each value of `sweep` should be one number (the final validation MSE).")
    values = {k: float(v[0]) for k, v in values.items()}
    if 0.0 not in values:
        raise Wrong("`sweep` has no wd = 0: the run without weight decay is the baseline the others are compared with.")
    outside = {k: v for k, v in values.items() if not _SWEEP_RANGE[0] <= v <= _SWEEP_RANGE[1]}
    if outside:
        raise Wrong(f"sweep values {outside} are outside {list(_SWEEP_RANGE)}: report validation MSEs (not RMSE, not "
                    "training loss).")
    best = min(values, key=values.get)
    if not values[best] < values[0.0] - _SWEEP_GAIN:
        raise Wrong(f"the best wd ({best:g}) scores {values[best]:.3f}, not {_SWEEP_GAIN} below wd = 0 ({values[0.0]:.3f}). "
                    "Hint: in the overfitting setting weight decay should help; try larger values.")
    preds = as_tensor(best_preds, "best_preds").flatten()
    if preds.numel() != len(valid):
        raise Wrong(f"best_preds has {preds.numel():,} values, expected one per row of valid ({len(valid):,}).")
    mse = float(((preds - torch.as_tensor(valid["rating"].to_numpy(), dtype=F64)) ** 2).mean())
    if abs(mse - values[best]) > 1e-4:
        raise Wrong(f"sweep[{best:g}] = {values[best]:.4f}, but the MSE of best_preds is {mse:.4f}. Hint: pass the "
                    "predictions of the best wd's model, for the rows of valid in their order.")


# ----------------------------------------------------------------------------------------------
# 07.9 planted user biases recovered
# ----------------------------------------------------------------------------------------------

_USER_BIAS_SPEARMAN, _USER_BIAS_SECONDS = 0.80, 20.0


def _selective_ratings(seed: int, n_users: int = 300, n_items: int = 200, k: int = 3):
    """Ratings where who rates what is confounded with the item biases: each user has a taste for good or bad films
    (independent of the user's bias), so a user's mean rating mixes their bias with their films'. (frame, user bias
    Series indexed by userId)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    uf, itf = rng.normal(0, 0.35, (n_users, k)), rng.normal(0, 0.35, (n_items, k))
    ub, ib = rng.normal(0, 0.6, n_users), rng.normal(0, 0.8, n_items)
    taste = rng.normal(0, 1, n_users)
    p = 1 / (1 + np.exp(2.0 - 2.5 * np.outer(taste, ib / ib.std())))
    u, i = np.nonzero(rng.random((n_users, n_items)) < p)
    raw = 3.2 + ub[u] + ib[i] + (uf[u] * itf[i]).sum(1) + rng.normal(0, 0.3, len(u))
    rating = np.clip(np.round(raw * 2) / 2, 0.5, 5.0)
    uid = rng.permutation(np.arange(1, 5 * n_users))[:n_users]
    iid = rng.permutation(np.arange(1, 5 * n_items))[:n_items]
    order = rng.permutation(len(u))
    frame = pd.DataFrame({"userId": uid[u][order], "movieId": iid[i][order], "rating": rating[order]})
    return frame.reset_index(drop=True), pd.Series(ub, index=uid)


@exercise("07.9", "planted user biases recovered")
def check_user_biases(train_user_biases: Any) -> None:
    """`train_user_biases(ratings)`: ratings a DataFrame userId, movieId, rating (half stars). Trains a dot-product model
    with user and item biases and returns the learned user biases as a pandas Series indexed by userId (any order).

    The check calls it once on a hidden synthetic frame (300 users x 200 movies, about 13k ratings) where users who
    like good films rate mostly good films, so a user's mean rating is a poor estimate of their bias (Spearman about
    0.56 with the planted biases). Passing: one value per user, Spearman(learned, planted) >= 0.80, within 20 s
    (the call runs with one torch thread, restored afterwards).
    """
    import time

    import pandas as pd
    from scipy.stats import spearmanr

    fn = require_callable(train_user_biases, "train_user_biases")
    frame, planted = _selective_ratings(790)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as setup() pins: on a shared 2-core box more threads made a 2 s fit take 15-20 s
    try:
        start = time.perf_counter()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(791)
            out = call(fn, frame.copy(), name="train_user_biases")
        seconds = time.perf_counter() - start
    finally:
        torch.set_num_threads(threads)
    if isinstance(out, pd.DataFrame) and out.shape[1] == 1:
        out = out.iloc[:, 0]
    if not isinstance(out, pd.Series):
        raise Wrong(f"train_user_biases should return a pandas Series indexed by userId, got a {type(out).__name__}. "
                    "Hint: pd.Series(biases, index=the userId of each row of the bias table).")
    try:
        idx = {int(v) for v in out.index}
    except (TypeError, ValueError):
        raise Wrong("the Series' index should hold the userIds (ints).") from None
    if len(out) != len(planted) or idx != {int(v) for v in planted.index}:
        items = {int(v) for v in frame["movieId"]}
        hint = ("it is indexed by movieId: return the user biases." if idx <= items and not idx <= set(planted.index)
                else "one value per userId of the frame, indexed by the userId itself (not by its position 0..n-1).")
        raise Wrong(f"train_user_biases returned {len(out)} values whose index does not match the {len(planted)} userIds "
                    f"of the frame. Hint: {hint}")
    learned = out.astype(np.float64).loc[planted.index].to_numpy()
    if not np.isfinite(learned).all():
        raise Wrong("the learned user biases contain inf or nan.")
    rho = float(spearmanr(learned, planted.to_numpy()).statistic)
    if not rho >= _USER_BIAS_SPEARMAN:
        means = frame.groupby("userId")["rating"].mean().loc[planted.index].to_numpy()
        like_mean = float(spearmanr(learned, means).statistic) > 0.95
        hint = ("your biases rank users like their mean rating, which mixes a user's bias with how good the films they "
                "chose are: learn an item bias beside the user bias, so the user bias measures the rest."
                if like_mean else
                "train a dot product + user bias + item bias model until it converges (a few factors, some weight decay).")
        raise Wrong(f"Spearman(your user biases, the planted ones) = {rho:.3f}, below {_USER_BIAS_SPEARMAN}. Hint: {hint}")
    if seconds > _USER_BIAS_SECONDS:
        raise Wrong(f"train_user_biases took {seconds:.0f} s on about {len(frame) // 1000}k ratings, over the "
                    f"{_USER_BIAS_SECONDS:.0f} s cap. Hint: train on whole tensors (full batch or large batches), not row by row.")


# ----------------------------------------------------------------------------------------------
# 07.10 folding in a new movie
# ----------------------------------------------------------------------------------------------

_FOLD_Y_RANGE = (0.0, 5.5)
# Held-out MSE must be below this fraction of the mean-movie start's. On the hidden world the start scores 3.03;
# Adam on (v, b) scores 0.021-0.028 of it (100-2000 steps, wd 0 or 0.1), fitting the bias alone 0.25, fitting
# without the sigmoid 0.76, 10 Adam steps 0.41.
_FOLD_RATIO = 0.12


def _fold_in_world(seed: int):
    """A 'trained' model (user factors (n, 3), user biases, item factors and biases) and a new movie: its users
    and ratings, 10 known and 20 held out. The new movie's bias is 1.2 above the mean item bias."""
    g = generator(seed)
    n_u, n_i, k = 80, 60, 3
    U = 0.7 * torch.randn(n_u, k, generator=g, dtype=F64)
    bu = 0.3 * torch.randn(n_u, generator=g, dtype=F64)
    V = 0.7 * torch.randn(n_i, k, generator=g, dtype=F64)
    bv = 0.4 * torch.randn(n_i, generator=g, dtype=F64)
    v_new = 0.9 * torch.randn(k, generator=g, dtype=F64)
    b_new = bv.mean() + 1.2
    users = torch.randperm(n_u, generator=g)[:30]
    lo, hi = _FOLD_Y_RANGE
    truth = lo + (hi - lo) * torch.sigmoid(U[users] @ v_new + bu[users] + b_new)
    ratings = truth + 0.25 * torch.randn(30, generator=g, dtype=F64)
    return dict(U=U.float(), bu=bu.float(), V=V, bv=bv, users=users, ratings=ratings.float())


def _fold_predict(U, bu, users, vec, bias):
    lo, hi = _FOLD_Y_RANGE
    return lo + (hi - lo) * torch.sigmoid(U.double()[users] @ vec + bu.double()[users] + bias)


@exercise("07.10", "folding in a new movie")
def check_fold_in_item(fold_in_item: Any) -> None:
    """`fold_in_item(user_factors, user_bias, users, ratings)`: user_factors (n_users, k) and user_bias (n_users,)
    float32 tensors of a trained model (frozen: they must come back bit-identical), users an int64 tensor of the 10
    users who rated the new movie, ratings their 10 float32 ratings. The model predicts
    0 + 5.5 * sigmoid(user_factors[u] · v + user_bias[u] + b). Returns (v, b): the new movie's (k,) vector and its
    bias (a number or a one-element tensor), fitted to the 10 ratings with the users frozen.

    Hidden world (80 users, 60 movies, k = 3, the new movie's bias 1.2 above the mean): the 20 held-out ratings of the
    new movie must be predicted with an MSE below 0.12 x that of the mean-movie start (mean item vector and mean item
    bias), which fitting the bias alone does not reach.
    """
    fn = require_callable(fold_in_item, "fold_in_item")
    world = _fold_in_world(7100)
    U, bu, users, ratings = world["U"], world["bu"], world["users"], world["ratings"]
    U_given, bu_given = U.clone(), bu.clone()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7101)
        out = call(fn, U_given, bu_given, users[:10].clone(), ratings[:10].clone(), name="fold_in_item")
    if not torch.equal(U_given, U) or not torch.equal(bu_given, bu):
        raise Wrong("fold_in_item changed the user factors or user biases. Hint: the users are frozen: optimise only a "
                    "new vector and a new bias (give the optimiser those two, and never step the user tables).")
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise Wrong(f"fold_in_item should return a pair (v, b), got {one_line(repr(out), 60)}.")
    k = U.shape[1]
    vec = as_tensor(out[0], "v", shape=(k,))
    bias = as_tensor(out[1], "b").reshape(-1)
    if bias.numel() != 1:
        raise Wrong(f"`b` should be one number (the new movie's bias), got {bias.numel()} values.")
    held_users, held = users[10:], ratings[10:].double()
    mse = float(((_fold_predict(U, bu, held_users, vec, bias[0]) - held) ** 2).mean())
    start = float(((_fold_predict(U, bu, held_users, world["V"].mean(0), world["bv"].mean()) - held) ** 2).mean())
    if not mse < _FOLD_RATIO * start:
        if float(vec.abs().max()) < 1e-6:
            raise Wrong(f"held-out MSE with your (v, b) is {mse:.3f}, more than {_FOLD_RATIO} x the mean-movie start's "
                        f"{start:.3f}, and v is all zeros. Hint: fit the vector too, not only the bias.")
        fit = float(((_fold_predict(U, bu, users[:10], vec, bias[0]) - ratings[:10].double()) ** 2).mean())
        hint = ("it does not even fit the 10 known ratings well (MSE {:.3f}): more steps or a larger learning rate, and "
                "check the sigmoid range 0 + 5.5 * sigmoid(.).".format(fit) if fit > _FOLD_RATIO * start else
                "it fits the 10 known ratings but not the others: with k + 1 numbers from 10 ratings, add some weight "
                "decay on v or start from the mean movie.")
        raise Wrong(f"held-out MSE with your (v, b) is {mse:.3f}, not below {_FOLD_RATIO} x the mean-movie start's "
                    f"{start:.3f}. Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 07.11 a time split
# ----------------------------------------------------------------------------------------------

TIME_SPLIT_CHOICES = {
    "a": "the time split is the harder and more honest estimate: it predicts later ratings, often of users it never saw",
    "b": "the random split is the more honest estimate: it uses every user's history",
    "c": "they estimate the same thing; the gap is noise",
}
_TIME_SPLIT_ANSWER = "a"
_VALID_PCT, _MSE_RANGE = 0.2, (0.5, 2.5)  # a global time split of this sample scores about 1.6 (most late users are new)


@lru_cache(maxsize=1)
def _cleaned_movielens():
    """The chapter's frame: rows with a title, movies with >= 20 ratings (69,104 ratings)."""
    from course_utils.data import movielens

    df = movielens().dropna(subset=["title"])
    counts = df["movieId"].value_counts()
    return df[df["movieId"].isin(counts[counts >= 20].index)]


@exercise("07.11", "a time split")
def check_time_split(train: Any, valid: Any, valid_preds: Any, valid_mse: Any, choice: Any) -> None:
    """`train, valid`: the chapter's cleaned ratings (69,104 rows, with their timestamp column) split by time, the
    latest 20% of ratings in `valid` (a cut inside a run of equal timestamps may fall either way);
    `valid_preds`: the retrained model's predictions for the rows of `valid`, in its order; `valid_mse`: the reported
    validation MSE; `choice`: a key of TIME_SPLIT_CHOICES.

    The check rebuilds the cleaned frame from `course_utils.data.movielens()`: train and valid must partition it
    (same (userId, movieId, timestamp) rows), max(train.timestamp) <= min(valid.timestamp), len(valid) within 0.5%
    of 20%; valid_mse equals the MSE of valid_preds against valid.rating within 1e-4 and lies in [0.5, 2.5]; the choice
    is "a".
    """
    import pandas as pd

    for name, frame in (("train", train), ("valid", valid)):
        require(frame, name)
        if not isinstance(frame, pd.DataFrame) or not {"userId", "movieId", "rating", "timestamp"} <= set(frame.columns):
            raise Wrong(f"`{name}` should be a DataFrame with the columns userId, movieId, rating and timestamp.")
    full = _cleaned_movielens()
    if len(train) + len(valid) != len(full):
        raise Wrong(f"train and valid hold {len(train):,} + {len(valid):,} rows; the cleaned ratings have {len(full):,}. "
                    "Hint: split the chapter's cleaned frame (titles present, movies with >= 20 ratings), every row once.")
    key = ["userId", "movieId", "timestamp"]
    both = pd.concat([train[key], valid[key]]).sort_values(key).to_numpy()
    if not np.array_equal(both, full[key].sort_values(key).to_numpy()):
        raise Wrong("train and valid together are not the cleaned ratings (some rows are missing or doubled).")
    share = len(valid) / len(full)
    if train["timestamp"].max() > valid["timestamp"].min():
        if valid["timestamp"].max() < train["timestamp"].min():
            raise Wrong("valid holds the earliest ratings: validate on the latest 20% and train on what came before.")
        raise Wrong("some training ratings are later than some validation ratings: this is not a time split. Hint: sort "
                    "by timestamp and cut, instead of drawing rows at random.")
    if abs(share - _VALID_PCT) > 0.005:
        raise Wrong(f"valid holds {share:.1%} of the ratings, expected the latest 20%.")
    preds = as_tensor(valid_preds, "valid_preds").flatten()
    if preds.numel() != len(valid):
        raise Wrong(f"valid_preds has {preds.numel():,} values, expected one per row of valid ({len(valid):,}).")
    mse = float(((preds - torch.as_tensor(valid["rating"].to_numpy(), dtype=F64)) ** 2).mean())
    reported = as_tensor(valid_mse, "valid_mse").flatten()
    if reported.numel() != 1:
        raise Wrong("`valid_mse` should be one number.")
    if abs(float(reported[0]) - mse) > 1e-4:
        raise Wrong(f"you report valid MSE {float(reported[0]):.4f}; recomputed from valid_preds it is {mse:.4f}. Hint: "
                    "the mean of (valid_preds - valid.rating)², on the validation rows in their order.")
    if not _MSE_RANGE[0] <= mse <= _MSE_RANGE[1]:
        raise Wrong(f"valid MSE {mse:.3f} is outside [{_MSE_RANGE[0]}, {_MSE_RANGE[1]}]: check that the predictions are "
                    "ratings (0.5..5), for the rows of valid, in their order.")
    require(choice, "choice")
    letter = str(choice).strip().lower()
    if letter not in TIME_SPLIT_CHOICES:
        raise Wrong(f"`choice` should be one of {sorted(TIME_SPLIT_CHOICES)}, got {choice!r}.")
    if letter != _TIME_SPLIT_ANSWER:
        raise Wrong(f"your split and MSE are right, but not choice {letter!r}. Hint: which of the two splits looks like "
                    "the way the model is used after deployment, and who are the users in the latest 20%?")
