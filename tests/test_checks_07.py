"""Tests of the 07_collab checks: other correct answers pass, planted wrong answers, stubs and crashing answers fail
(naming what is wrong), and no check ever raises.

The correct answers here are written other ways than the obvious ones: coverage by a crosstab or by plain Python
dicts, the prediction by einsum or a loop, the bag mean by a sparse or an index_add_-built count matrix, the model
with nn.Parameter tables or nn.Embedding and a (1, 1) global bias, Adam as one function or a loop over a state dict,
the repaired model with nn.ModuleList or attributes.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from check_helpers import Planted, crash, fails, passes, planted_test, returns_none


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# 07.1 -------------------------------------------------------------------------------------------


def coverage_by_crosstab(ratings, k, user_order="count", tie=1, denominator="k", movie_tie=1):
    """A pd.crosstab of the block; flags plant mistakes (defaults are right)."""
    uc = ratings.groupby("userId").size()
    if user_order == "mean":
        users = ratings.groupby("userId")["rating"].mean().sort_values(ascending=False, kind="stable").index[:k].tolist()
    else:
        users = sorted(uc.index, key=lambda u: (-uc[u], tie * u))[:k]
    mc = ratings.groupby("movieId").size()
    movies = sorted(mc.index, key=lambda m: (-mc[m], movie_tie * m))[:k]
    block = ratings[ratings.userId.isin(users) & ratings.movieId.isin(movies)]
    table = pd.crosstab(block.userId, block.movieId).reindex(index=users, fill_value=0) > 0
    seen = table.sum(axis=1).astype(float)
    return {"k": seen / k, "count": seen, "all": seen / ratings.movieId.nunique()}[denominator]


def coverage_by_dicts(ratings, k):
    """Plain Python: Counters and sets; returns a one-column DataFrame."""
    from collections import Counter

    pairs = list(zip(ratings["userId"].tolist(), ratings["movieId"].tolist()))
    uc, mc = Counter(u for u, _ in pairs), Counter(m for _, m in pairs)
    users = sorted(uc, key=lambda u: (-uc[u], u))[:k]
    movies = set(sorted(mc, key=lambda m: (-mc[m], m))[:k])
    rated = {u: set() for u in users}
    for u, m in pairs:
        if u in rated and m in movies:
            rated[u].add(m)
    return pd.DataFrame({"coverage": [len(rated[u]) / k for u in users]}, index=users)


def coverage_sorting_in_place(ratings, k):
    ratings.sort_values("userId", inplace=True)
    return coverage_by_crosstab(ratings, k)


def test_07_1():
    passes("07.1", coverage_by_crosstab)
    passes("07.1", coverage_by_dicts)
    fails("07.1", lambda r, k: coverage_by_crosstab(r, k).to_numpy(), mentions="Series")
    fails("07.1", lambda r, k: coverage_by_crosstab(r, k).iloc[:-1], mentions="expected k=")
    fails("07.1", coverage_sorting_in_place, mentions="changed the ratings frame")
    fails("07.1", crash, mentions="raised")
    fails("07.1", returns_none, mentions="None")
    fails("07.1", ..., mentions="not answered")


def test_07_1_frames_have_ties_at_the_cut():
    from course_utils.checks.ch07 import _coverage_frames

    frames = _coverage_frames()
    assert len(frames) == 3 and len(frames[-1][1]) == 100_004
    for _, frame, k in frames[:2]:
        for column in ("userId", "movieId"):
            counts = frame[column].value_counts().sort_values(ascending=False).to_numpy()
            assert counts[k - 1] == counts[k]  # a tie across the cut: the tie rule decides
        assert not frame.userId.is_monotonic_increasing


# 07.2 -------------------------------------------------------------------------------------------


def predict_by_einsum(user, items, user_bias, item_bias, y_range, biases="both", squash="range"):
    score = torch.einsum("k,nk->n", user, items)
    if biases in ("both", "user"):
        score = score + user_bias
    if biases in ("both", "item"):
        score = score + item_bias
    lo, hi = y_range
    return {"range": lo + (hi - lo) * torch.sigmoid(score), "none": score, "hi": hi * torch.sigmoid(score)}[squash]


def predict_by_loop(user, items, user_bias, item_bias, y_range):
    import math

    lo, hi = y_range
    out = []
    for row, b in zip(items.tolist(), item_bias.tolist()):
        s = sum(a * c for a, c in zip(user.tolist(), row)) + user_bias + b
        out.append(lo + (hi - lo) / (1 + math.exp(-s)))
    return np.array(out)


def test_07_2():
    passes("07.2", predict_by_einsum)
    passes("07.2", predict_by_loop)
    passes("07.2", lambda *a: predict_by_loop(*a).tolist())
    fails("07.2", lambda *a: predict_by_loop(*a)[:1], mentions="one predicted rating per movie")
    fails("07.2", lambda *a: "4.5", mentions="tensor or an array")
    fails("07.2", crash, mentions="raised")
    fails("07.2", returns_none, mentions="None")
    fails("07.2", ..., mentions="not answered")


# 07.3 -------------------------------------------------------------------------------------------


def bag_by_index_add(bags, W, repeats=True, divide="length"):
    """Counts built with index_add_ on a flat index; flags plant mistakes (defaults are right)."""
    n = W.shape[0]
    counts = torch.zeros(len(bags), n)
    for r, bag in enumerate(bags):
        idx = torch.tensor(bag if repeats else sorted(set(bag)))
        counts[r].index_add_(0, idx, torch.ones(len(idx)))
    length = {"length": torch.tensor([float(len(b)) for b in bags])[:, None], "one": torch.ones(len(bags), 1),
              "n": torch.full((len(bags), 1), float(n))}[divide]
    return torch.matmul(counts / length, W)


def bag_by_sparse(bags, W):
    """A sparse COO multi-hot of weights 1/len(bag), duplicates summed by coalesce, densified, then mm."""
    rows = [r for r, b in enumerate(bags) for _ in b]
    cols = [i for b in bags for i in b]
    vals = [1.0 / len(b) for b in bags for _ in b]
    m = torch.sparse_coo_tensor(torch.tensor([rows, cols]), torch.tensor(vals), (len(bags), W.shape[0])).coalesce()
    return m.to_dense().mm(W)


def test_07_3():
    passes("07.3", bag_by_index_add)
    passes("07.3", bag_by_sparse)
    passes("07.3", lambda bags, W: torch.einsum(
        "bn,nd->bd", torch.stack([F.one_hot(torch.tensor(b), W.shape[0]).float().mean(0) for b in bags]), W))
    fails("07.3", lambda bags, W: torch.stack([W[b].mean(0) for b in bags]), mentions="indexes W")
    fails("07.3", lambda bags, W: F.embedding_bag(torch.tensor(sum(bags, [])), W,
                                                  torch.tensor([0] + list(np.cumsum([len(b) for b in bags])[:-1])),
                                                  mode="mean"), mentions="embedding_bag")
    fails("07.3", lambda bags, W: bag_by_index_add(bags, W.detach()), mentions="gradient")
    fails("07.3", lambda bags, W: bag_by_index_add(bags, W).T, mentions="shape")
    fails("07.3", crash, mentions="raised")
    fails("07.3", returns_none, mentions="None")
    fails("07.3", ..., mentions="not answered")


# 07.4 -------------------------------------------------------------------------------------------


class GlobalBiasParams(nn.Module):
    """Hand-made tables as nn.Parameter, 1-D biases, a 0-d global bias; flags plant mistakes (defaults are right)."""

    def __init__(self, n_users, n_items, n_factors, y_range, use_global=True, squash="range", register_global=True):
        super().__init__()
        self.uf = nn.Parameter(torch.randn(n_users, n_factors) * 0.01)
        self.itf = nn.Parameter(torch.randn(n_items, n_factors) * 0.01)
        self.ub = nn.Parameter(torch.zeros(n_users))
        self.ib = nn.Parameter(torch.zeros(n_items))
        self.g = nn.Parameter(torch.tensor(0.0)) if register_global else torch.tensor(0.0)
        self.y_range, self.use_global, self.squash = y_range, use_global, squash

    def forward(self, x):
        u, i = x.unbind(1)
        s = torch.einsum("bk,bk->b", self.uf[u], self.itf[i]) + self.ub[u] + self.ib[i]
        if self.use_global:
            s = s + self.g
        lo, hi = self.y_range
        return {"range": torch.sigmoid(s) * (hi - lo) + lo, "hi": hi * torch.sigmoid(s), "none": s}[self.squash]


class GlobalBiasEmbeddings(nn.Module):
    """nn.Embedding tables, (n, 1) biases and a (1, 1) global bias, squashed with torch.lerp."""

    def __init__(self, n_users, n_items, n_factors, y_range, keep_dim=False):
        super().__init__()
        self.u, self.i = nn.Embedding(n_users, n_factors), nn.Embedding(n_items, n_factors)
        self.bu, self.bi = nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)
        self.g = nn.Parameter(torch.zeros(1, 1))
        self.lo, self.hi, self.keep_dim = *y_range, keep_dim

    def forward(self, x):
        s = (self.u(x[:, 0]) * self.i(x[:, 1])).sum(1, keepdim=True) + self.bu(x[:, 0]) + self.bi(x[:, 1]) + self.g
        out = torch.lerp(torch.full_like(s, self.lo), torch.full_like(s, self.hi), torch.sigmoid(s))
        return out if self.keep_dim else out[:, 0]


class GlobalBiasExtraLayer(GlobalBiasParams):
    def __init__(self, *args):
        super().__init__(*args)
        self.head = nn.Linear(1, 1)


def test_07_4():
    passes("07.4", GlobalBiasParams)
    passes("07.4", GlobalBiasEmbeddings)
    fails("07.4", lambda *a: GlobalBiasEmbeddings(*a, keep_dim=True), mentions="(32,)")
    fails("07.4", GlobalBiasExtraLayer, mentions="not one of the five")
    fails("07.4", lambda *a: 3.0, mentions="nn.Module")
    fails("07.4", crash, mentions="raised")
    fails("07.4", returns_none, mentions="None")
    fails("07.4", ..., mentions="not answered")


# 07.5 -------------------------------------------------------------------------------------------


def adam_by_state(p, grads, lr, wd, betas, decoupled, coupled=1.0, decay_lr=True, correct=True, decay="before"):
    """A state dict updated in a loop; flags plant mistakes (defaults are right)."""
    b1, b2 = betas
    state = {"p": p.clone(), "m": 0.0, "v": 0.0}
    for step, g in enumerate(grads, start=1):
        if decoupled and decay == "before":
            state["p"] = state["p"] - (lr if decay_lr else 1.0) * wd * state["p"]
        if not decoupled:
            g = g + coupled * wd * state["p"]
        state["m"] = b1 * state["m"] + (1 - b1) * g
        state["v"] = b2 * state["v"] + (1 - b2) * g.square()
        m_hat = state["m"] / (1 - b1 ** step) if correct else state["m"]
        v_hat = state["v"] / (1 - b2 ** step) if correct else state["v"]
        state["p"] = state["p"] - lr * m_hat / (torch.sqrt(v_hat) + 1e-8)
        if decoupled and decay == "after":
            state["p"] = state["p"] * (1 - lr * wd)
    return state["p"]


def adam_in_numpy(p, grads, lr, wd, betas, decoupled):
    """NumPy, the step size folded into one factor as in the Adam paper's efficient form (eps placed as torch does)."""
    x, m, v = p.numpy().copy(), 0.0, 0.0
    for t, g in enumerate(grads, 1):
        g = g.numpy()
        if decoupled:
            x *= 1 - lr * wd
        else:
            g = g + wd * x
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        c1, c2 = 1 - betas[0] ** t, np.sqrt(1 - betas[1] ** t)
        x = x - (lr / c1) * m / (np.sqrt(v) / c2 + 1e-8)
    return x


def test_07_5():
    passes("07.5", adam_by_state)
    passes("07.5", adam_in_numpy)
    fails("07.5", lambda p, grads, *a: adam_by_state(p, grads, *a)[0], mentions="shape")
    fails("07.5", lambda p, grads, *a: p.copy_(adam_by_state(p, grads, *a)), mentions="in place")
    fails("07.5", crash, mentions="raised")
    fails("07.5", returns_none, mentions="None")
    fails("07.5", ..., mentions="not answered")


# 07.6 -------------------------------------------------------------------------------------------


class RepairedList(nn.Module):
    """nn.ModuleList of four embeddings, 1-wide biases flattened; flags plant mistakes (defaults are right)."""

    def __init__(self, n_users, n_items, n_factors, registered=True, flatten=True, columns=(0, 1), freeze=False):
        super().__init__()
        embs = [nn.Embedding(n_users, n_factors), nn.Embedding(n_items, n_factors),
                nn.Embedding(n_users, 1), nn.Embedding(n_items, 1)]
        self.embs = nn.ModuleList(embs) if registered else embs
        self.flatten, self.columns, self.freeze = flatten, columns, freeze

    def forward(self, x):
        cu, ci = self.columns
        u, i, bu, bi = (e(x[:, c]) for e, c in zip(self.embs, (cu, ci, cu, ci)))
        if self.freeze:
            u = u.detach()
            i = i.detach()
            bu, bi = bu.detach(), bi.detach()
        score = (u * i).sum(dim=1)
        return score + (bu.view(-1) + bi.view(-1) if self.flatten else bu + bi)


class RepairedAttributes(nn.Module):
    """Four attributes, biases as 1-D nn.Parameter tables, scaled init."""

    def __init__(self, n_users, n_items, n_factors):
        super().__init__()
        self.user, self.item = nn.Embedding(n_users, n_factors), nn.Embedding(n_items, n_factors)
        nn.init.normal_(self.user.weight, 0, 0.1)
        nn.init.normal_(self.item.weight, 0, 0.1)
        self.user_b, self.item_b = nn.Parameter(torch.zeros(n_users)), nn.Parameter(torch.zeros(n_items))

    def forward(self, x):
        return torch.bmm(self.user(x[:, 0])[:, None], self.item(x[:, 1])[:, :, None]).flatten() \
            + self.user_b[x[:, 0]] + self.item_b[x[:, 1]]


def test_07_6():
    passes("07.6", RepairedList)
    passes("07.6", RepairedAttributes)
    fails("07.6", lambda *a: RepairedList(*a, freeze=True), mentions="detach")
    fails("07.6", lambda *a: 0, mentions="nn.Module")
    fails("07.6", crash, mentions="raised")
    fails("07.6", returns_none, mentions="None")
    fails("07.6", ..., mentions="not answered")


def test_07_6_margin_over_seeds():
    """Both correct answers bring the loss well below 0.8 x the start from several initial seeds."""
    from course_utils.checks.ch07 import _repair_batch

    x, y = _repair_batch()
    for cls in (RepairedList, RepairedAttributes):
        for seed in range(4):
            torch.manual_seed(seed)
            model = cls(30, 40, 4)
            opt = torch.optim.Adam(model.parameters(), lr=0.05)
            losses = []
            for _ in range(30):
                loss = F.mse_loss(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            assert losses[-1] < 0.5 * losses[0], (cls.__name__, seed, losses[0], losses[-1])


# 07.7 -------------------------------------------------------------------------------------------


def recommend_by_normalize(vec, emb, k, seen, score="cos", exclude=True, tie="small"):
    """F.normalize both sides, mask seen with -inf, a stable argsort; flags plant mistakes (defaults are right)."""
    if score == "cos":
        sims = F.normalize(emb.double(), dim=1) @ F.normalize(vec.double(), dim=0)
    elif score == "dot":
        sims = emb.double() @ vec.double()
    else:
        sims = -torch.cdist(emb.double(), vec.double()[None])[:, 0]
    if exclude and seen:
        sims[torch.tensor(seen)] = -torch.inf
    if tie == "large":
        return (len(sims) - 1 - torch.argsort(-sims.flip(0), stable=True))[:k]
    return torch.argsort(sims, descending=True, stable=True)[:k]


def recommend_by_python(vec, emb, k, seen):
    """Plain Python sort on (-cosine, index) pairs, NumPy cosines; returns a NumPy array."""
    e, v = emb.numpy().astype(np.float64), vec.numpy().astype(np.float64)
    cos = e @ v / (np.linalg.norm(e, axis=1) * np.linalg.norm(v))
    ranked = sorted((-c, j) for j, c in enumerate(cos) if j not in seen)
    return np.array([j for _, j in ranked[:k]])


def test_07_7():
    passes("07.7", recommend_by_normalize)
    passes("07.7", recommend_by_python)
    passes("07.7", lambda *a: recommend_by_python(*a).tolist())
    fails("07.7", lambda *a: recommend_by_python(*a).astype(float), mentions="ints")
    fails("07.7", lambda vec, emb, k, seen: recommend_by_python(vec, emb, k + 1, seen), mentions="exactly k")
    fails("07.7", crash, mentions="raised")
    fails("07.7", returns_none, mentions="None")
    fails("07.7", ..., mentions="not answered")


def test_07_7_cases_separate_the_mistakes():
    """Each hidden case has exact ties among the answer, and the top k+1 similarities (ties aside) differ by > 1e-5."""
    from course_utils.checks.ch07 import _RECOMMEND_CASES, _recommend_case, _recommend_ref, generator

    g = generator(770)
    for n, d, k, n_seen in _RECOMMEND_CASES:
        vec, emb, seen = _recommend_case(n, d, n_seen, g)
        ref = _recommend_ref(vec, emb, k + 1, seen)
        cos = F.cosine_similarity(emb.double(), vec.double()[None], dim=1)[ref]
        gaps = (cos[:-1] - cos[1:]).tolist()
        assert all(gap == 0 or gap > 1e-5 for gap in gaps) and 0 in gaps
        for flags in (dict(tie=-1), dict(score="dot"), dict(score="dist")):
            assert _recommend_ref(vec, emb, k, seen, **flags) != ref[:k]


# 07.8 -------------------------------------------------------------------------------------------


def per_user_split(how="per-user"):
    """groupby().sample(frac=0.2) per user; how="random"/"time" plant mistakes."""
    df = _cleaned()
    if how == "per-user":
        valid = df.groupby("userId", group_keys=False).sample(frac=0.2, random_state=1)
    elif how == "random":
        valid = df.sample(frac=0.2, random_state=1)
    else:
        valid = df.sort_values("timestamp", kind="mergesort").iloc[-round(0.2 * len(df)):]
    return df.drop(valid.index), valid


def per_user_split_by_rank():
    """A random rank inside each user's ratings from one NumPy permutation; the first 80% of ranks train."""
    df = _cleaned().reset_index(drop=True)
    rng = np.random.default_rng(3)
    key = pd.Series(rng.permutation(len(df)), index=df.index)
    rank = key.groupby(df["userId"]).rank(method="first")
    size = df.groupby("userId")["rating"].transform("size")
    in_valid = rank > np.round(0.8 * size)
    return df[~in_valid], df[in_valid]


def _sweep_answer(how="per-user", keys=(0.0, 0.3, 1.0), gaps=(0.1, 0.0, 0.02), scale=1.0, split=None):
    """Movie-mean predictions stand in for the best model; the other sweep values are placed around it."""
    train, valid = split if split is not None else per_user_split(how)
    preds = movie_mean_preds(train, valid)
    mse = float(np.mean((preds - valid["rating"].to_numpy()) ** 2))
    return {k: scale * (mse + g) for k, g in zip(keys, gaps)}, train, valid, preds


def test_07_8():
    passes("07.8", *_sweep_answer())
    passes("07.8", *_sweep_answer(split=per_user_split_by_rank(), keys=(0, 1e-2, 0.1, 1), gaps=(0.2, 0.1, 0.0, 0.05)))
    sweep, train, valid, preds = _sweep_answer()
    fails("07.8", sweep, train, valid, preds[:-1], mentions="one per row")
    fails("07.8", [0.9, 0.8, 0.85], train, valid, preds, mentions="dict")
    fails("07.8", sweep, train, valid.drop(columns="rating"), preds, mentions="columns")
    fails("07.8", crash, train, valid, preds, mentions="dict")
    fails("07.8", ..., ..., ..., ..., mentions="not answered")


# 07.9 -------------------------------------------------------------------------------------------


def user_biases_by_adam(ratings, k=4, item_bias=True, index="id", which="user", steps=300):
    """Full-batch Adam on a dot-product + biases model, codes from pd.factorize; flags plant mistakes (defaults are right)."""
    u_codes, u_ids = pd.factorize(ratings["userId"])
    i_codes, i_ids = pd.factorize(ratings["movieId"])
    u, i = torch.as_tensor(u_codes), torch.as_tensor(i_codes)
    y = torch.tensor(ratings["rating"].to_numpy(), dtype=torch.float32)
    tables = [nn.Parameter(0.01 * torch.randn(len(u_ids), k)), nn.Parameter(0.01 * torch.randn(len(i_ids), k)),
              nn.Parameter(torch.zeros(len(u_ids))), nn.Parameter(torch.zeros(len(i_ids))), nn.Parameter(y.mean())]
    opt = torch.optim.AdamW(tables, lr=0.05, weight_decay=0.01)
    for _ in range(steps):
        U, V, bu, bi, g = tables
        pred = (U[u] * V[i]).sum(1) + bu[u] + g + (bi[i] if item_bias else 0)
        loss = F.mse_loss(pred, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    if which == "item":
        return pd.Series(tables[3].detach().numpy(), index=i_ids)
    return pd.Series(tables[2].detach().numpy(), index=u_ids if index == "id" else range(len(u_ids)))


def user_biases_by_alternating_means(ratings, sweeps=30):
    """No gradient: a biases-only model fitted by alternating means of the residuals (backfitting); a one-column frame."""
    r = ratings.assign(res=ratings["rating"] - ratings["rating"].mean())
    bu = pd.Series(0.0, index=r["userId"].unique())
    bi = pd.Series(0.0, index=r["movieId"].unique())
    for _ in range(sweeps):
        bi = (r["res"] - bu.loc[r["userId"]].to_numpy()).groupby(r["movieId"]).mean()
        bu = (r["res"] - bi.loc[r["movieId"]].to_numpy()).groupby(r["userId"]).mean()
    return bu.to_frame("bias")


def test_07_9():
    passes("07.9", user_biases_by_adam)
    passes("07.9", user_biases_by_alternating_means)
    fails("07.9", lambda r: user_biases_by_adam(r).to_numpy(), mentions="Series")
    fails("07.9", lambda r: user_biases_by_adam(r).iloc[:-5], mentions="index does not match")
    fails("07.9", crash, mentions="raised")
    fails("07.9", returns_none, mentions="None")
    fails("07.9", ..., mentions="not answered")


def test_07_9_margin_over_seeds():
    """Over other frames of the same generator and other init seeds, the correct answers stay well above 0.80 and the
    user means well below it."""
    from scipy.stats import spearmanr

    from course_utils.checks.ch07 import _selective_ratings

    for seed in (1, 2, 3):
        frame, planted = _selective_ratings(seed)
        torch.manual_seed(seed)
        for answer in (user_biases_by_adam, user_biases_by_alternating_means):
            got = answer(frame)
            got = got.iloc[:, 0] if isinstance(got, pd.DataFrame) else got
            assert spearmanr(got.loc[planted.index], planted).statistic > 0.85  # Adam 0.87-0.96, means 0.99
        means = frame.groupby("userId")["rating"].mean().loc[planted.index]
        assert spearmanr(means, planted).statistic < 0.72


# 07.10 ------------------------------------------------------------------------------------------


def fold_by_adam(U, bu, users, ratings, steps=300, fit_vector=True, squash=True, touch_users=False, wd=0.0):
    """Adam on a new (v, b) pair; flags plant mistakes (defaults are right)."""
    v = torch.zeros(U.shape[1], requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    params = ([v] if fit_vector else []) + [b]
    if touch_users:
        U.requires_grad_(True)
        params.append(U)
    opt = torch.optim.Adam(params, lr=0.05, weight_decay=wd)
    for _ in range(steps):
        score = U[users] @ v + bu[users] + b
        pred = 5.5 * torch.sigmoid(score) if squash else score
        opt.zero_grad()
        F.mse_loss(pred, ratings).backward()
        opt.step()
    return v.detach(), b.detach()


def fold_by_lbfgs(U, bu, users, ratings):
    """L-BFGS in float64 on one vector [v, b], a small ridge; returns NumPy and a float."""
    X, off, y = U[users].double(), bu[users].double(), ratings.double()
    w = torch.zeros(U.shape[1] + 1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w], max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = ((5.5 * torch.sigmoid(X @ w[:-1] + off + w[-1]) - y) ** 2).mean() + 1e-3 * w[:-1].square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w[:-1].detach().numpy(), float(w[-1])


def test_07_10():
    passes("07.10", fold_by_adam)
    passes("07.10", fold_by_lbfgs)
    passes("07.10", lambda *a: fold_by_adam(*a, wd=0.1))
    fails("07.10", lambda *a: fold_by_adam(*a)[0], mentions="pair")
    fails("07.10", lambda *a: (fold_by_adam(*a)[0][:2], 0.0), mentions="shape")
    fails("07.10", crash, mentions="raised")
    fails("07.10", returns_none, mentions="None")
    fails("07.10", ..., mentions="not answered")


def test_07_10_margin_over_worlds():
    """On other worlds of the same generator, Adam's fold-in stays below the 0.12 ratio of the check."""
    from course_utils.checks.ch07 import _fold_in_world, _fold_predict

    for seed in range(7101, 7107):
        w = _fold_in_world(seed)
        U, bu, us, r = w["U"], w["bu"], w["users"], w["ratings"]
        held = r[10:].double()
        start = ((_fold_predict(U, bu, us[10:], w["V"].mean(0), w["bv"].mean()) - held) ** 2).mean()
        v, b = fold_by_adam(U, bu, us[:10], r[:10])
        mse = ((_fold_predict(U, bu, us[10:], v.double(), b.double()) - held) ** 2).mean()
        assert mse < 0.06 * start, (seed, float(mse), float(start))


# 07.11 ------------------------------------------------------------------------------------------


def _cleaned():
    from course_utils.data import movielens

    df = movielens()
    df = df[df["title"].notna()]
    keep = df.groupby("movieId")["rating"].transform("size") >= 20
    return df[keep]


def time_split(how="latest", pct=0.2, frame=None):
    """Sorted by timestamp (mergesort) and cut by position; how="random"/"earliest" plant mistakes."""
    df = _cleaned() if frame is None else frame
    if how == "random":
        df = df.sample(frac=1.0, random_state=0)
    else:
        df = df.sort_values("timestamp", kind="mergesort")
    cut = len(df) - round(pct * len(df))
    train, valid = df.iloc[:cut], df.iloc[cut:]
    return (valid, train) if how == "earliest" else (train, valid)


def movie_mean_preds(train, valid):
    """Each movie's mean training rating, the global mean for movies unseen in training; a NumPy array."""
    means = train.groupby("movieId")["rating"].mean()
    return valid["movieId"].map(means).fillna(train["rating"].mean()).to_numpy()


def split_by_quantile():
    """A timestamp threshold at the 80% quantile instead of a positional cut; predictions as a float32 tensor."""
    df = _cleaned()
    cut = df["timestamp"].quantile(0.8, interpolation="lower")
    train, valid = df[df["timestamp"] <= cut], df[df["timestamp"] > cut]
    preds = torch.tensor(movie_mean_preds(train, valid), dtype=torch.float32)
    return train, valid, preds, torch.mean((preds.double() - torch.tensor(valid["rating"].to_numpy())) ** 2), " A"


def _time_answer(how="latest", pct=0.2, mse=None, choice="a", frame=None):
    train, valid = time_split(how, pct, frame)
    preds = movie_mean_preds(train, valid)
    real = float(np.mean((preds - valid["rating"].to_numpy()) ** 2))
    return train, valid, preds, real if mse is None else mse, choice


def test_07_11():
    passes("07.11", *_time_answer())
    passes("07.11", *split_by_quantile())
    train, valid, preds, mse, choice = _time_answer()
    fails("07.11", train, valid, preds[:-1], mse, choice, mentions="one per row")
    fails("07.11", train, valid.drop(columns="timestamp"), preds, mse, choice, mentions="columns")
    fails("07.11", train, valid, preds, mse, "e", mentions="should be one of")
    fails("07.11", train, valid, preds, mse, ..., mentions="not answered")
    fails("07.11", ..., ..., ..., ..., ..., mentions="not answered")


def test_07_checks_are_fast():
    from course_utils.checks import run_check

    for ex, answers in (("07.1", (coverage_by_dicts,)), ("07.3", (bag_by_sparse,)), ("07.5", (adam_by_state,)),
                        ("07.6", (RepairedAttributes,)),
                        ("07.9", (user_biases_by_adam,)), ("07.10", (fold_by_lbfgs,))):
        start = time.perf_counter()
        assert run_check(ex, *answers)[0]
        assert time.perf_counter() - start < 10, ex


# Planted mistakes ---------------------------------------------------------------------------------


def _cov(**flags):
    return (lambda r, k: coverage_by_crosstab(r, k, **flags),)


PLANTED = [
    # 07.1
    Planted("07.1", "ties among users broken by the larger id", lambda: _cov(tie=-1), mentions="smaller userId"),
    Planted("07.1", "users ranked by mean rating", lambda: _cov(user_order="mean"), mentions="most ratings"),
    Planted("07.1", "counts instead of fractions", lambda: _cov(denominator="count"), mentions="counts"),
    Planted("07.1", "fraction over all movies", lambda: _cov(denominator="all"), mentions="all movies"),
    Planted("07.1", "ties among movies broken by the larger id", lambda: _cov(movie_tie=-1), mentions="smaller movieId"),
    Planted("07.1", "users in ascending order of activity", lambda: (
        lambda r, k: coverage_by_crosstab(r, k).iloc[::-1],), mentions="wrong order"),
    # 07.2
    Planted("07.2", "biases left out", lambda: (lambda *a: predict_by_einsum(*a, biases="none"),), mentions="biases are missing"),
    Planted("07.2", "user bias left out", lambda: (lambda *a: predict_by_einsum(*a, biases="item"),), mentions="user's bias"),
    Planted("07.2", "no sigmoid range", lambda: (lambda *a: predict_by_einsum(*a, squash="none"),), mentions="squashing"),
    Planted("07.2", "sigmoid scaled to hi only", lambda: (lambda *a: predict_by_einsum(*a, squash="hi"),), mentions="lo is ignored"),
    Planted("07.2", "biases added after the sigmoid", lambda: (
        lambda u, it, ub, ib, yr: predict_by_einsum(u, it, 0.0, torch.zeros_like(ib), yr) + ub + ib,), mentions="after the sigmoid"),
    # 07.3
    Planted("07.3", "the sum, not the mean", lambda: (lambda b, W: bag_by_index_add(b, W, divide="one"),), mentions="sum"),
    Planted("07.3", "repeats marked once (0/1 multi-hot)", lambda: (lambda b, W: bag_by_index_add(b, W, repeats=False),),
            mentions="counts twice"),
    Planted("07.3", "divided by the number of rows of W", lambda: (lambda b, W: bag_by_index_add(b, W, divide="n"),),
            mentions="own length"),
    Planted("07.3", "nn.functional.embedding_bag called", lambda: (
        lambda b, W: F.embedding_bag(torch.tensor(sum(b, [])), W, torch.tensor([0] + list(np.cumsum([len(x) for x in b])[:-1])),
                                     mode="mean"),), mentions="embedding_bag"),
    # 07.4
    Planted("07.4", "global bias registered but not added", lambda: (
        lambda *a: GlobalBiasParams(*a, use_global=False),), mentions="never added"),
    Planted("07.4", "global bias a plain tensor", lambda: (lambda *a: GlobalBiasParams(*a, register_global=False),),
            mentions="global_bias"),
    Planted("07.4", "no sigmoid range", lambda: (lambda *a: GlobalBiasParams(*a, squash="none"),), mentions="squashing"),
    Planted("07.4", "sigmoid scaled to hi only", lambda: (lambda *a: GlobalBiasParams(*a, squash="hi"),), mentions="lo is ignored"),
    # 07.5
    Planted("07.5", "no bias correction", lambda: (lambda *a: adam_by_state(*a, correct=False),), mentions="bias correction"),
    Planted("07.5", "decoupled decay not multiplied by lr", lambda: (lambda *a: adam_by_state(*a, decay_lr=False),),
            mentions="multiplied by the learning rate"),
    Planted("07.5", "coupled penalty 2 wd p", lambda: (lambda *a: adam_by_state(*a, coupled=2.0),), mentions="2 * wd"),
    Planted("07.5", "decay after the step", lambda: (lambda *a: adam_by_state(*a, decay="after"),), mentions="before the Adam step"),
    Planted("07.5", "the two rules swapped", lambda: (lambda p, g, lr, wd, b, d: adam_by_state(p, g, lr, wd, b, not d),),
            mentions="swapped"),
    # 07.6
    Planted("07.6", "embeddings still in a plain Python list", lambda: (lambda *a: RepairedList(*a, registered=False),),
            mentions="no registered parameters"),
    Planted("07.6", "bias broadcast (bs, 1) + (bs,) left in", lambda: (lambda *a: RepairedList(*a, flatten=False),),
            mentions="(bs, bs)"),
    Planted("07.6", "an extra layer registered", lambda: (lambda *a: (lambda m: (m.add_module("head", nn.Linear(4, 1)), m)[1])(
        RepairedList(*a)),), mentions="exactly four"),
    Planted("07.6", "factors detached in forward", lambda: (lambda *a: RepairedList(*a, freeze=True),), mentions="no detach"),
    # 07.7
    Planted("07.7", "ranked by the dot product", lambda: (lambda *a: recommend_by_normalize(*a, score="dot"),), mentions="dot product"),
    Planted("07.7", "seen items not left out", lambda: (lambda *a: recommend_by_normalize(*a, exclude=False),), mentions="seen"),
    Planted("07.7", "ties by the larger index", lambda: (lambda *a: recommend_by_normalize(*a, tie="large"),), mentions="smaller index"),
    Planted("07.7", "ranked by Euclidean distance", lambda: (lambda *a: recommend_by_normalize(*a, score="dist"),), mentions="Euclidean"),
    Planted("07.7", "least similar first", lambda: (lambda *a: recommend_by_python(*a)[::-1].copy(),), mentions="wrong order"),
    # 07.8
    Planted("07.8", "all rows split at random", lambda: _sweep_answer(how="random"), mentions="at random"),
    Planted("07.8", "the time split reused", lambda: _sweep_answer(how="time"), mentions="per-user split"),
    Planted("07.8", "no wd = 0 run", lambda: _sweep_answer(keys=(0.01, 0.3, 1.0)), mentions="wd = 0"),
    Planted("07.8", "weight decay that does not help", lambda: _sweep_answer(gaps=(0.01, 0.0, 0.02)), mentions="larger values"),
    Planted("07.8", "the best value not from best_preds", lambda: (lambda s, *r: ({k: v - 0.01 for k, v in s.items()}, *r))(
        *_sweep_answer()), mentions="MSE of best_preds"),
    Planted("07.8", "values on another scale (a summed loss)", lambda: _sweep_answer(scale=2.0), mentions="not RMSE"),
    # 07.9
    Planted("07.9", "each user's mean rating", lambda: (lambda r: r.groupby("userId")["rating"].mean(),), mentions="mean rating"),
    Planted("07.9", "neither item biases nor factors: a user bias and a global mean", lambda: (
        lambda r: user_biases_by_adam(r, k=0, item_bias=False),), mentions="item bias"),
    Planted("07.9", "indexed by position, not userId", lambda: (lambda r: user_biases_by_adam(r, index="position"),),
            mentions="position"),
    Planted("07.9", "item biases returned", lambda: (lambda r: user_biases_by_adam(r, which="item"),), mentions="movieId"),
    # 07.10
    Planted("07.10", "only the bias fitted", lambda: (lambda *a: fold_by_adam(*a, fit_vector=False),), mentions="not only the bias"),
    Planted("07.10", "user factors trained too", lambda: (lambda *a: fold_by_adam(*a, touch_users=True),), mentions="frozen"),
    Planted("07.10", "fitted without the sigmoid range", lambda: (lambda *a: fold_by_adam(*a, squash=False),),
            mentions="sigmoid range"),
    Planted("07.10", "too few steps", lambda: (lambda *a: fold_by_adam(*a, steps=10),), mentions="more steps"),
    # 07.11
    Planted("07.11", "a random split", lambda: _time_answer(how="random"), mentions="not a time split"),
    Planted("07.11", "the earliest 20% validated", lambda: _time_answer(how="earliest"), mentions="earliest"),
    Planted("07.11", "10% held out", lambda: _time_answer(pct=0.1), mentions="latest 20%"),
    Planted("07.11", "a made-up MSE", lambda: _time_answer(mse=0.85), mentions="recomputed"),
    Planted("07.11", "the raw frame split, not the cleaned one", lambda: _time_answer(frame=__import__(
        "course_utils.data", fromlist=["movielens"]).movielens()), mentions="cleaned"),
    Planted("07.11", "the random split called the honest one", lambda: _time_answer(choice="b"), mentions="deployment"),
]

test_planted_mistake_is_rejected_with_a_hint = planted_test(PLANTED)  # tests/test_planted.py checks it is here
