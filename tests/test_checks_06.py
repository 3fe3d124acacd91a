"""Tests of the 06_tabular checks: other correct answers pass, planted wrong answers, stubs and crashing
answers fail (naming what is wrong), and no check ever raises.

The correct answers here are deliberately other ways to write them: multi-hot by scattering along dim 0 or
one column at a time, the Gini split by cumulative counts or a loop over distinct values, a tree as nested
dicts routed by masks or as a class walked row by row, a boosted model's contributions walked row by row or
read off decision_path by parent pointers, thresholds searched over every distinct probability, frames built with
pandas alone instead of fastai's procs. The forests are small (at most 60 trees) and single-threaded.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from check_helpers import Planted, crash, fails, passes, planted_test, returns_none


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# 06.1 -------------------------------------------------------------------------------------------


def multi_hot_by_columns(codes, n):
    """Scatter along dim 0 into an (n, rows) matrix, then transpose."""
    return torch.zeros(n, len(codes)).scatter_(0, codes.T, torch.ones(codes.T.shape)).T


def multi_hot_column_by_column(codes, n):
    """The functional torch.scatter, one column of codes at a time."""
    out = torch.zeros(len(codes), n)
    for j in range(codes.shape[1]):
        out = torch.scatter(out, 1, codes[:, j:j + 1], 1.0)
    return out


def multi_hot_by_indexing(codes, n):
    out = torch.zeros(len(codes), n)
    out[torch.arange(len(codes))[:, None], codes] = 1.0
    return out


def multi_hot_transposing_codes(codes, n):
    """Right values, but transpose_ turns the caller's codes around."""
    return torch.zeros(n, codes.shape[0]).scatter_(0, codes.transpose_(0, 1), 1.0).T


def test_06_1():
    passes("06.1", multi_hot_by_columns)
    passes("06.1", multi_hot_column_by_column)
    passes("06.1", lambda codes, n: torch.zeros(codes.shape[0], n).scatter_(1, codes, 1.0))
    fails("06.1", lambda codes, n: multi_hot_by_columns(codes, n).numpy(), mentions="tensor")
    fails("06.1", lambda codes, n: torch.zeros(len(codes), n).scatter_add_(1, codes, torch.ones(codes.shape)).clamp(max=1),
          mentions="does not place them with scatter_")
    fails("06.1", multi_hot_transposing_codes, mentions="in place")
    fails("06.1", lambda codes, n: torch.zeros(len(codes), codes.shape[1], n).scatter_(2, codes[..., None], 1.0),
          mentions="not one row per code")
    fails("06.1", crash, mentions="raised")
    fails("06.1", returns_none, mentions="None")
    fails("06.1", ..., mentions="not answered")


# 06.2 -------------------------------------------------------------------------------------------


def _xlogx(p):
    return np.where(p > 0, p * np.log(np.where(p > 0, p, 1.0)), 0.0)


def gini_split_by_cumsum(x, y, min_leaf=1, score="gini", threshold="mid", distinct=True, leaf="at least"):
    """Sort once, score every cut from running counts of 1s. The keyword flags plant mistakes (defaults are right)."""
    order = np.argsort(x, kind="stable")
    xs, ys = x[order], y[order].astype(np.float64)
    n = len(xs)
    k = np.arange(1, n)
    ones = np.cumsum(ys)[:-1]
    p_l, p_r = ones / k, (ys.sum() - ones) / (n - k)
    gini = lambda p: 1 - p ** 2 - (1 - p) ** 2
    scores = {
        "gini": k * gini(p_l) + (n - k) * gini(p_r),
        "mean": (gini(p_l) + gini(p_r)) / 2,
        "sse": k * p_l * (1 - p_l) + (n - k) * p_r * (1 - p_r),
        "entropy": -k * (_xlogx(p_l) + _xlogx(1 - p_l)) - (n - k) * (_xlogx(p_r) + _xlogx(1 - p_r)),
        "average": (k * gini(p_l) + (n - k) * gini(p_r)) / n,
    }[score]
    ok = np.ones(n - 1, dtype=bool)
    if distinct:
        ok &= xs[1:] > xs[:-1]
    if leaf == "at least":
        ok &= (k >= min_leaf) & (n - k >= min_leaf)
    elif leaf == "more than":
        ok &= (k > min_leaf) & (n - k > min_leaf)
    if not ok.any():
        return None
    i = np.flatnonzero(ok)[np.argmin(scores[ok])]
    thr = {"mid": (xs[i] + xs[i + 1]) / 2, "left": xs[i]}[threshold]
    return thr, scores[i]


def gini_split_by_counts(x, y, min_leaf=1):
    """A loop over the distinct values, n * G as 2 * n1 * n0 / n; tensors out, the last of equal scores kept."""
    values = sorted(set(x.tolist()))
    best = None
    for a, b in zip(values[:-1], values[1:]):
        thr = (a + b) / 2
        left = [label for v, label in zip(x.tolist(), y.tolist()) if v <= thr]
        right = [label for v, label in zip(x.tolist(), y.tolist()) if v > thr]
        if len(left) < min_leaf or len(right) < min_leaf:
            continue
        score = sum(2 * sum(side) * (len(side) - sum(side)) / len(side) for side in (left, right))
        if best is None or score <= best[1]:
            best = (thr, score)
    return None if best is None else (torch.tensor(best[0]), torch.tensor(best[1]))


def test_06_2():
    passes("06.2", gini_split_by_cumsum)
    passes("06.2", gini_split_by_counts)
    passes("06.2", lambda x, y, min_leaf=1: gini_split_by_cumsum(x, y, min_leaf) or (None, None))
    fails("06.2", lambda x, y, min_leaf=1: gini_split_by_cumsum(x, y, min_leaf) or (0.0, 0.0), mentions="return None")
    fails("06.2", lambda x, y, min_leaf=1: [gini_split_by_cumsum(x, y, min_leaf)], mentions="pair")
    fails("06.2", lambda x, y, min_leaf=1: (lambda r: r and (r[0], -r[1]))(gini_split_by_cumsum(x, y, min_leaf)),
          mentions="not n_left*G_left")
    fails("06.2", crash, mentions="raised")
    fails("06.2", returns_none, mentions="None")
    fails("06.2", ..., mentions="not answered")


def test_06_2_cases_have_one_best_cut_and_match_sklearn():
    from course_utils.checks.ch06 import _best_gini_ref, _gini_cases, _gini_cuts, _sklearn_root

    cases = _gini_cases()
    assert len(cases) >= 6
    for what, x, y, min_leaf in cases:
        assert x.dtype == np.float64 and y.dtype == np.int64 and set(np.unique(y)) <= {0, 1}
        scores = sorted(s for _, s in _gini_cuts(x, y, min_leaf))
        if what != "pure" and len(scores) > 1:
            assert scores[1] - scores[0] > 1e-6, what
    what, x, y, _ = cases[0]
    assert (x.astype(np.float32) == x).all() and _sklearn_root(x, y) == _best_gini_ref(x, y, 1)[0]
    assert {w for w, x, y, m in cases if not _gini_cuts(x, y, m)} == {"constant", "too few"}


# 06.3 -------------------------------------------------------------------------------------------


def grow_clf(X, y, depth, columns=None, score="gini", leaf="fraction"):
    """A tree as nested dicts, split by gini_split_by_cumsum over the columns; flags plant mistakes."""
    value = {"fraction": y.mean(), "majority": float(y.mean() >= 0.5), "zeros": 1 - y.mean()}[leaf]
    if depth <= 0 or y.min() == y.max():
        return {"p": float(value)}
    found = [(r[1], j, r[0]) for j in (columns or range(X.shape[1]))
             if (r := gini_split_by_cumsum(X[:, j], y, score=score)) is not None]
    if not found:
        return {"p": float(value)}
    _, j, thr = min(found)
    go_left = X[:, j] <= thr
    return {"column": j, "threshold": thr,
            "left": grow_clf(X[go_left], y[go_left], depth - 1, columns, score, leaf),
            "right": grow_clf(X[~go_left], y[~go_left], depth - 1, columns, score, leaf)}


def predict_by_masks(tree, X, strict=False):
    """All rows at once: each split sends a boolean mask of rows down each side."""
    out = np.empty(len(X))

    def route(node, rows):
        if "p" in node:
            out[rows] = node["p"]
            return
        v = X[rows, node["column"]]
        left = v < node["threshold"] if strict else v <= node["threshold"]
        route(node["left"], rows[left])
        route(node["right"], rows[~left])

    route(tree, np.arange(len(X)))
    return out


class Node:
    """A class-based tree grown with gini_split_by_counts (a different split search), walked row by row."""

    def __init__(self, X, y, depth):
        self.p, self.split = float(np.mean(y)), None
        if depth == 0 or self.p in (0.0, 1.0):
            return
        found = [(float(r[1]), j, float(r[0])) for j in range(X.shape[1])
                 if (r := gini_split_by_counts(X[:, j], y)) is not None]
        if found:
            _, j, thr = min(found)
            left = X[:, j] <= thr
            self.split = (j, thr, Node(X[left], y[left], depth - 1), Node(X[~left], y[~left], depth - 1))

    def proba(self, row):
        if self.split is None:
            return self.p
        j, thr, left, right = self.split
        return (left if row[j] <= thr else right).proba(row)


def test_06_3():
    passes("06.3", lambda X, y, d: grow_clf(X, y, d), predict_by_masks)
    passes("06.3", Node, lambda tree, X: torch.tensor([tree.proba(row) for row in X]))
    fails("06.3", lambda X, y, d: grow_clf(X, y, d), lambda tree, X: predict_by_masks(tree, X)[:, None], mentions="shape")
    fails("06.3", crash, predict_by_masks, mentions="raised")
    fails("06.3", lambda X, y, d: grow_clf(X, y, d), returns_none, mentions="None")
    fails("06.3", ..., ..., mentions="not answered")


def test_06_3_datasets_have_one_best_split_per_node():
    """Tie-breaking never matters: the Gini trees to depth 3 (depth 2 for the depth-1 case, whose hint compares
    with depth 2), the entropy trees, the unweighted and column-0 stumps each have a single best split per node;
    the float64 walk is sklearn's predict_proba."""
    from course_utils.checks.ch06 import _CLF_CASES, _clf_data, _fit_clf, _walk_clf

    def gap(X, y, depth, score="gini", columns=None):
        if depth == 0 or y.min() == y.max():
            return np.inf
        found = []
        for j in columns or range(X.shape[1]):
            xs = np.unique(X[:, j])
            for thr in (xs[1:] + xs[:-1]) / 2:
                left = X[:, j] <= thr
                found.append((_score(y[left], y[~left], score), j, thr))
        found.sort()
        best, j, thr = found[0]
        left = X[:, j] <= thr
        second = found[1][0] - best if len(found) > 1 else np.inf
        return min(second, gap(X[left], y[left], depth - 1, score, columns), gap(X[~left], y[~left], depth - 1, score, columns))

    for seed, n, p in _CLF_CASES:
        X, y, queries = _clf_data(seed, n, p)
        assert (X.astype(np.float32) == X).all() and (queries.astype(np.float32) == queries).all()
        assert all(len(np.unique(col)) == n for col in X.T)
        assert gap(X, y, 3) > 1e-6 and gap(X, y, 3, "entropy") > 1e-6
        assert gap(X, y, 1, "unweighted") > 1e-6 and gap(X, y, 1, columns=[0]) > 1e-6
        for depth in (1, 3):
            model = _fit_clf(X, y, depth)
            for rows in (X, queries):
                assert np.allclose(model.predict_proba(rows)[:, 1], _walk_clf(model, rows), atol=1e-12)


def _score(left, right, score):
    g = lambda s: 1 - s.mean() ** 2 - (1 - s.mean()) ** 2
    h = lambda s: -sum(q * np.log(q) for q in (s.mean(), 1 - s.mean()) if q > 0)
    if score == "unweighted":
        return g(left) + g(right)
    f = h if score == "entropy" else g
    return len(left) * f(left) + len(right) * f(right)


# 06.4 -------------------------------------------------------------------------------------------


def test_06_4():
    passes("06.4", "b", "bootstrap")
    passes("06.4", " B", "Bootstrap ")
    fails("06.4", "lower", "bootstrap", mentions="'a', 'b', 'c', 'd'")
    fails("06.4", "b", 3, mentions="'bootstrap'")
    fails("06.4", "b", ..., mentions="not answered")
    fails("06.4", ..., ..., mentions="not answered")


def test_06_4_letter_follows_the_measured_rmses():
    """The forest's training RMSE is about 0.37 of its OOB RMSE on Ames (0.052 against 0.142), so 'b' is right, far
    from every threshold; the thresholds themselves map numbers to letters as the docstring says."""
    from course_utils.checks.ch06 import _train_and_oob_rmse, _train_error_letter

    train, oob = _train_and_oob_rmse()
    assert 0.1 * oob < train < 0.6 * oob, (train, oob)
    assert _train_error_letter(train, oob) == "b"
    assert [_train_error_letter(t, 1.0) for t in (0.0, 0.5, 0.8, 0.95, 1.05, 1.2)] == ["a", "b", None, "c", "c", "d"]


# 06.5 -------------------------------------------------------------------------------------------


def bag_by_counts(X, y, k, seed, draw="bootstrap", oob_from="out", reseed=False, fit_on="recorded"):
    """Bootstrap counts from np.bincount; OOB = masked mean of a (k, n) prediction matrix. Flags plant mistakes."""
    from sklearn.tree import DecisionTreeRegressor

    n, rng = len(X), np.random.default_rng(seed if draw != "unseeded" else None)
    trees, indices = [], []
    for t in range(k):
        if reseed:
            rng = np.random.default_rng(seed)
        idx = {"bootstrap": lambda: rng.integers(0, n, n), "unseeded": lambda: rng.integers(0, n, n),
               "shuffle": lambda: rng.permutation(n), "short": lambda: rng.integers(0, n - 1, n)}[draw]()
        rows = idx if fit_on == "recorded" else rng.integers(0, n, n)
        trees.append(DecisionTreeRegressor(random_state=t).fit(X[rows], y[rows]))
        indices.append(idx)
    preds = np.stack([tree.predict(X) for tree in trees])
    out = np.stack([np.bincount(i, minlength=n) == 0 for i in indices])
    if oob_from == "all":
        out = np.ones_like(out)
    with np.errstate(invalid="ignore"):
        oob = np.where(out, preds, 0).sum(0) / out.sum(0)
    return trees, indices, oob


def test_06_5():
    passes("06.5", bag_by_counts)
    passes("06.5", lambda X, y, k, seed: (lambda t, i, o: (tuple(t), [torch.tensor(a) for a in i], list(o)))(
        *bag_by_counts(X, y, k, seed)))
    fails("06.5", lambda X, y, k, seed: bag_by_counts(X, y, k, seed)[:2], mentions="(trees, indices, oob)")
    fails("06.5", crash, mentions="raised")
    fails("06.5", returns_none, mentions="None")
    fails("06.5", ..., mentions="not answered")


# 06.6 -------------------------------------------------------------------------------------------


def boosting_by_walk(gbr, X, rate="model", bias_from="init", credit="parent", sign=1, trees=None):
    """Walk each tree row by row with its child arrays; bias from init_.constant_. Flags plant mistakes (defaults
    are right): rate="one" forgets the learning rate, rate="fixed" hard-codes 0.1, bias_from="root" takes the first
    tree's root value, credit="next" credits the feature of the node entered (a leaf's feature, -2, lands in column
    p - 2), sign=-1 flips the moves, trees=1 keeps the first tree only."""
    lr = {"model": gbr.learning_rate, "one": 1.0, "fixed": 0.1}[rate]
    contrib = np.zeros(X.shape)
    for est in gbr.estimators_[:trees, 0]:
        t = est.tree_
        value = t.value[:, 0, 0]
        for r, row in enumerate(X):
            node = 0
            while t.children_left[node] != -1:
                child = t.children_left[node] if row[t.feature[node]] <= t.threshold[node] else t.children_right[node]
                col = t.feature[node] if credit == "parent" else t.feature[child]
                contrib[r, col] += sign * lr * (value[child] - value[node])
                node = child
    bias = float(gbr.init_.constant_[0, 0]) if bias_from == "init" else float(gbr.estimators_[0, 0].tree_.value[0, 0, 0])
    return bias, contrib


def boosting_by_paths(gbr, X):
    """decision_path for all rows at once, the moves as a dense (rows, nodes) matrix; bias one per row, from the model."""
    bias = gbr.init_.predict(X)
    contrib = torch.zeros(X.shape, dtype=torch.float64)
    for est in gbr.estimators_.ravel():
        t = est.tree_
        parent = np.full(t.node_count, -1)
        inner = np.flatnonzero(t.children_left >= 0)
        parent[t.children_left[inner]], parent[t.children_right[inner]] = inner, inner
        visited = est.decision_path(X).toarray().astype(bool)
        move = np.zeros(t.node_count)
        move[1:] = gbr.learning_rate * (t.value[1:, 0, 0] - t.value[parent[1:], 0, 0])
        for node in range(1, t.node_count):
            contrib[:, t.feature[parent[node]]] += torch.tensor(visited[:, node] * move[node])
    return torch.tensor(bias), contrib


def test_06_6():
    passes("06.6", boosting_by_walk)
    passes("06.6", boosting_by_paths)
    passes("06.6", lambda gbr, X: (np.full((len(X), 1), gbr.init_.constant_[0, 0]), boosting_by_walk(gbr, X)[1].tolist()))
    fails("06.6", lambda gbr, X: (boosting_by_walk(gbr, X)[0], boosting_by_walk(gbr, X)[1].T), mentions="shape")
    fails("06.6", lambda gbr, X: boosting_by_walk(gbr, X)[1], mentions="(bias, contrib)")
    fails("06.6", lambda gbr, X: (np.zeros(3), boosting_by_walk(gbr, X)[1]), mentions="one per row")
    fails("06.6", lambda gbr, X: boosting_by_walk(gbr, X, rate="fixed"), mentions="gbr.learning_rate, 0.3")
    fails("06.6", crash, mentions="raised")
    fails("06.6", returns_none, mentions="None")
    fails("06.6", ..., mentions="not answered")


def test_06_6_cases():
    """The hidden rows are float32-exact, the trees' roots hold a mean residual of about 0, the reference adds up to
    gbr.predict, and crediting the node entered would move contributions between features on every model."""
    from course_utils.checks.ch06 import _boosting_cases

    for gbr, rows, bias, contrib in _boosting_cases():
        assert (rows.astype(np.float32) == rows).all()
        assert max(abs(est.tree_.value[0, 0, 0]) for est in gbr.estimators_[:, 0]) < 1e-9
        assert np.allclose(bias + contrib.sum(1), gbr.predict(rows), rtol=0, atol=1e-9)
        assert np.allclose(bias, gbr.init_.constant_[0, 0]) and abs(bias[0]) > 5
        assert np.abs(boosting_by_walk(gbr, rows, credit="next")[1] - contrib).max() > 1e-3


# 06.7 -------------------------------------------------------------------------------------------


@cache
def wage_frame():
    from course_utils.data import table

    return table("wage")


def wage_accuracy(columns, on="valid"):
    """Codes by pd.factorize(sort=True), the exercise's split and forest; `on="train"` plants a mistake."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.model_selection import train_test_split

    df = wage_frame()
    X = pd.DataFrame({c: (pd.factorize(df[c], sort=True)[0] if df[c].dtype.kind not in "biuf" else df[c]) for c in columns})
    a, b, ya, yb = train_test_split(X, df["wage"].to_numpy() > 100, test_size=0.2, random_state=42)
    model = RandomForestClassifier(n_estimators=60, min_samples_leaf=5, random_state=42).fit(a, ya)
    return float((model.predict(a) == ya).mean() if on == "train" else (model.predict(b) == yb).mean())


CLEAN_WAGE = ["year", "age", "maritl", "race", "education", "region", "jobclass", "health", "health_ins"]


def test_06_7():
    passes("06.7", CLEAN_WAGE, wage_accuracy(CLEAN_WAGE))
    passes("06.7", tuple(CLEAN_WAGE[::-1]), np.float32(wage_accuracy(CLEAN_WAGE)))
    fails("06.7", "age, year", 0.7, mentions="list")
    fails("06.7", CLEAN_WAGE + ["salary"], 0.7, mentions="unknown")
    fails("06.7", CLEAN_WAGE, ..., mentions="not answered")
    fails("06.7", ..., ..., mentions="not answered")


# 06.8 / 06.10: the chapter's frames, built with pandas alone -------------------------------------


@cache
def ames_frames(split="time"):
    """Ames with date parts by hand, codes (0 kept for missing, as Categorify) and log price, split by time (2010 is
    valid), or by place: the 341 northernmost (split="north") or, planted, southernmost ("south") houses are valid."""
    from course_utils.data import table

    df = table("ames").rename(columns={"rownames": "Sale_Order"})
    sold = pd.to_datetime(dict(year=df.Year_Sold, month=df.Mo_Sold, day=15))
    df = df.assign(saleYear=sold.dt.year, saleMonth=sold.dt.month, saleElapsed=sold.astype("int64") // 10**9)
    for c in df.columns[df.dtypes.map(lambda t: t.kind not in "biuf")]:
        df[c] = pd.Categorical(df[c]).codes + 1
    y = np.log(df.pop("Sale_Price"))
    late = {"time": df.saleYear == 2010,
            "north": df.Latitude.rank(method="first", ascending=False) <= 341,
            "south": df.Latitude.rank(method="first") <= 341}[split]
    return df[~late], y[~late].to_numpy(), df[late], y[late].to_numpy()


def forest_rmse(xs, y, valid_xs, valid_y, trees=60):
    from sklearn.ensemble import RandomForestRegressor

    model = RandomForestRegressor(trees, max_features=0.5, min_samples_leaf=3, random_state=42).fit(xs, y)
    return float(np.sqrt(np.mean((model.predict(valid_xs) - valid_y) ** 2)))


@cache
def domain_answer(model="forest"):
    """(top3, rmse) for the northern split: the top features of a domain classifier (a 60-tree forest, or ExtraTrees)
    or, planted, of the price model; and a 60-tree forest's valid RMSE without them."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, RandomForestRegressor

    xs, y, vxs, vy = ames_frames("north")
    both, is_valid = pd.concat([xs, vxs]), np.r_[[0] * len(xs), [1] * len(vxs)]
    fitted = {
        "forest": lambda: RandomForestClassifier(60, max_features=0.5, min_samples_leaf=5, random_state=0).fit(both, is_valid),
        "extra": lambda: ExtraTreesClassifier(30, min_samples_leaf=5, random_state=0).fit(both, is_valid),
        "price": lambda: RandomForestRegressor(30, min_samples_leaf=5, random_state=0).fit(xs, y),
    }[model]()
    top3 = list(pd.Series(fitted.feature_importances_, both.columns).nlargest(3).index)
    return top3, forest_rmse(xs.drop(columns=top3), y, vxs.drop(columns=top3), vy)


def domain_by_ranks():
    """Another right answer: the split by argsort, an is_valid RandomForestRegressor on 0/1 (as the chapter's
    `forest` helper would fit it) with another seed and 50 trees, its top 3 by argsort, refitted with 100 trees."""
    from sklearn.ensemble import RandomForestRegressor

    xs, y, vxs, vy = ames_frames("north")
    both = pd.concat([xs, vxs])
    model = RandomForestRegressor(50, max_features=0.5, min_samples_leaf=3, random_state=7).fit(
        both, np.r_[np.zeros(len(xs)), np.ones(len(vxs))])
    top3 = [both.columns[i] for i in np.argsort(model.feature_importances_)[::-1][:3]]
    return top3, forest_rmse(xs.drop(columns=top3), y, vxs.drop(columns=top3), vy, trees=100)


def test_06_8():
    xs, y, vxs, vy = ames_frames("north")
    top3, rmse = domain_answer()
    assert top3[:2] == ["Latitude", "Year_Built"]
    passes("06.8", top3, rmse, xs, y, vxs, vy)
    passes("06.8", tuple(top3), torch.tensor(rmse), xs, pd.Series(y), vxs, vy)
    passes("06.8", *domain_answer("extra"), xs, y, vxs, vy)
    passes("06.8", *domain_by_ranks(), xs, y, vxs, vy)
    fails("06.8", top3, rmse, xs.values, y, vxs, vy, mentions="DataFrame")
    fails("06.8", top3[:2], rmse, xs, y, vxs, vy, mentions="three")
    fails("06.8", top3, rmse, xs, y, vxs[xs.columns[::-1]], vy, mentions="same columns")
    fails("06.8", top3, rmse, xs.drop(columns="Latitude"), y, vxs.drop(columns="Latitude"), vy, mentions="Latitude")
    fails("06.8", top3, rmse, xs.iloc[1:], y[1:], vxs, vy, mentions="spatial split")
    fails("06.8", ..., ..., ..., ..., ..., ..., mentions="not answered")


EMBEDDED = {"Neighborhood": 8, "MS_Zoning": 3, "Exterior_1st": 5}


@cache
def embedding_tables():
    """Stand-ins for trained embeddings: seeded random matrices, one row per code (row 0 is #na#)."""
    xs, _, vxs, _ = ames_frames()
    g = np.random.default_rng(6)
    return {c: g.normal(0, 1, (int(max(xs[c].max(), vxs[c].max())) + 1, w)) for c, w in EMBEDDED.items()}


def embed(frame, tables, shift=0, keep_codes=False, aligned=True, names="{}_{}"):
    """Each code column replaced by its embedding rows, via np.take; flags plant mistakes."""
    parts = [frame if keep_codes else frame.drop(columns=list(tables))]
    for c, W in tables.items():
        block = np.take(W, frame[c].to_numpy() - shift, axis=0)
        parts.append(pd.DataFrame(block, columns=[names.format(c, j) for j in range(W.shape[1])],
                                  index=frame.index if aligned else None))
    if aligned:
        return pd.concat(parts, axis=1)
    out = parts[0].copy()
    for part in parts[1:]:
        for col in part.columns:
            out[col] = part[col]  # aligned on the index: rows whose labels differ become NaN
    return out


@cache
def embedded_answer(**mistakes):
    xs, y, vxs, vy = ames_frames()
    tables = embedding_tables()
    exs, evxs = embed(xs, tables, **mistakes), embed(vxs, tables, **mistakes)
    return exs, evxs, forest_rmse(exs.fillna(0), y, evxs.fillna(0), vy)


def test_06_10():
    xs, y, vxs, vy = ames_frames()
    tables = embedding_tables()
    exs, evxs, rmse = embedded_answer()
    weights = {c: torch.tensor(W, dtype=torch.float32) for c, W in tables.items()}
    passes("06.10", exs, evxs, rmse, tables, xs, y, vxs, vy)
    passes("06.10", exs, evxs, np.float64(rmse), weights, xs, y, vxs, vy)
    fails("06.10", exs, evxs, rmse, list(tables.values()), xs, y, vxs, vy, mentions="dict")
    fails("06.10", exs, evxs, rmse, {**tables, "Pool": tables["MS_Zoning"]}, xs, y, vxs, vy, mentions="not a column")
    fails("06.10", exs, evxs, rmse, tables, xs, y, vxs, ..., mentions="not answered")


# 06.9 -------------------------------------------------------------------------------------------


class TabularByDict(nn.Module):
    """Embeddings in a ModuleDict, the MLP as a Sequential built in a loop, hidden Linears with biases.
    `registered`, `squash` and `bn_cont` plant mistakes."""

    registered, squash, bn_cont = "module", "range", True

    def __init__(self, emb_szs, n_cont, layers, y_range):
        super().__init__()
        embs = [nn.Embedding(n, d) for n, d in emb_szs]
        if self.registered == "module":
            self.embs = nn.ModuleDict({str(i): e for i, e in enumerate(embs)})
        elif self.registered == "list":
            self.embs = {str(i): e for i, e in enumerate(embs)}
        else:  # plain tensors
            self.tables = [torch.randn(n, d, requires_grad=True) for n, d in emb_szs]
        self.cont = nn.BatchNorm1d(n_cont) if self.bn_cont else nn.Identity()
        width, blocks = sum(d for _, d in emb_szs) + n_cont, []
        for h in layers:
            blocks += [nn.Linear(width, h), nn.ReLU(), nn.BatchNorm1d(h)]
            width = h
        self.mlp = nn.Sequential(*blocks, nn.Linear(width, 1))
        self.lo, self.hi = y_range

    def lookup(self, x_cat):
        if self.registered == "tensor":
            return [W[x_cat[:, i]] for i, W in enumerate(self.tables)]
        return [self.embs[str(i)](x_cat[:, i]) for i in range(x_cat.shape[1])]

    def forward(self, x_cat, x_cont):
        z = self.mlp(torch.cat([*self.lookup(x_cat), self.cont(x_cont)], 1))
        if self.squash == "none":
            return z
        if self.squash == "high":
            return torch.sigmoid(z) * self.hi
        return self.lo + (self.hi - self.lo) * torch.sigmoid(z)


class TabularListed(TabularByDict):
    registered = "list"


class TabularTensors(TabularByDict):
    registered = "tensor"


class TabularRaw(TabularByDict):
    squash = "none"


class TabularHighOnly(TabularByDict):
    squash = "high"


class TabularNoBnCont(TabularByDict):
    bn_cont = False


class TabularFlat(TabularByDict):
    def forward(self, x_cat, x_cont):
        return super().forward(x_cat, x_cont).squeeze(1)


class TabularSwapped(TabularByDict):
    def __init__(self, emb_szs, n_cont, layers, y_range):
        super().__init__([(d, n) for n, d in emb_szs], n_cont, layers, y_range)


def fastai_tabular(emb_szs, n_cont, layers, y_range):
    from fastai.tabular.model import TabularModel

    return TabularModel(emb_szs, n_cont, 1, layers, y_range=y_range)


@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_06_9():
    passes("06.9", TabularByDict)
    passes("06.9", fastai_tabular)
    fails("06.9", lambda *a: 3, mentions="nn.Module")
    fails("06.9", crash, mentions="raised")
    fails("06.9", returns_none, mentions="None")
    fails("06.9", ..., mentions="not answered")


# 06.11 ------------------------------------------------------------------------------------------


@cache
def credit_probs():
    """P(bad) for RandomSplitter(0.2, seed=42)'s validation rows, from a small forest on the other rows."""
    from sklearn.ensemble import RandomForestClassifier

    from course_utils.data import table

    df = table("credit").drop(columns="rownames")
    bad = (df.pop("Status") == "bad").to_numpy()
    X = df.apply(lambda c: pd.factorize(c)[0] if c.dtype.kind not in "biuf" else c.fillna(-1))
    order = torch.randperm(len(X), generator=torch.Generator().manual_seed(42)).numpy()
    valid, train = order[:890], order[890:]
    model = RandomForestClassifier(30, min_samples_leaf=3, random_state=0).fit(X.iloc[train], bad[train])
    return model.predict_proba(X.iloc[valid])[:, 1], bad[valid].astype(int)


def threshold_by_sweep(probs, bad, strict=False, rule="best"):
    """Every distinct probability as a candidate, precision and recall from counts; flags plant mistakes."""
    found = []
    for t in np.unique(probs):
        flagged = probs > t if strict else probs >= t
        tp = int((flagged & (bad == 1)).sum())
        if flagged.any() and tp >= 0.8 * bad.sum():
            found.append((float(t), tp / flagged.sum(), tp / bad.sum()))
    if rule == "lowest":  # the first threshold that reaches the recall, precision never looked at
        return min(found)
    return max(found, key=lambda c: c[1])


def test_06_11():
    probs, bad = credit_probs()
    thr, prec, rec = threshold_by_sweep(probs, bad)
    passes("06.11", thr, prec, rec, probs)
    passes("06.11", np.float32(thr), prec, rec, torch.tensor(probs))
    fails("06.11", thr, prec, rec, probs[:-1], mentions="shape")
    fails("06.11", thr, prec, rec, probs * 10 - 5, mentions="[0, 1]")
    fails("06.11", thr, prec, rec, np.random.default_rng(0).random(len(probs)), mentions="barely separate")
    fails("06.11", ..., ..., ..., ..., mentions="not answered")


def test_checks_leave_global_rngs_alone():
    import random

    states = random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state()
    passes("06.5", bag_by_counts)
    passes("06.9", TabularByDict)
    fails("06.5", lambda X, y, k, seed: bag_by_counts(X, y, k, seed, draw="unseeded"))
    assert random.getstate() == states[0]
    assert (np.random.get_state()[1] == states[1]).all()
    assert torch.equal(torch.get_rng_state(), states[2])


# Planted learner mistakes (run at the end of this module: each must be rejected with a hint naming it) -------------


def _planted_split(**flags):
    return lambda x, y, min_leaf=1: gini_split_by_cumsum(x, y, min_leaf, **flags)


def _planted_tree(depth_shift=0, columns=None, score="gini", leaf="fraction", strict=False):
    return (lambda X, y, d: grow_clf(X, y, d + depth_shift, columns, score, leaf),
            lambda tree, X: predict_by_masks(tree, X, strict))


def _domain(top3=None, rmse=None, frames=None):
    xs, y, vxs, vy = frames or ames_frames("north")
    real_top3, real_rmse = domain_answer()
    return (top3 or real_top3, real_rmse if rmse is None else rmse, xs, y, vxs, vy)


def _undropped_rmse():
    """The northern split's valid RMSE of a forest on every column (the three columns never dropped)."""
    return forest_rmse(*ames_frames("north"))


def _with_price(frames):
    xs, y, vxs, vy = frames
    return xs.assign(Sale_Price=np.exp(y)), y, vxs.assign(Sale_Price=np.exp(vy)), vy


def _embedded(rmse=None, **mistakes):
    xs, y, vxs, vy = ames_frames()
    exs, evxs, real = embedded_answer(**mistakes)
    return exs, evxs, real if rmse is None else rmse, embedding_tables(), xs, y, vxs, vy


def _threshold(**flags):
    probs, bad = credit_probs()
    return (*threshold_by_sweep(probs, bad, **flags), probs)


PLANTED = [
    # 06.1
    Planted("06.1", "scatter_add_: a code listed twice gives 2.0", lambda: (
        lambda codes, n: torch.zeros(len(codes), n).scatter_add_(1, codes, torch.ones(codes.shape)),), mentions="more than once"),
    Planted("06.1", "zeros(rows, n - 1): code n - 1 is out of bounds", lambda: (
        lambda codes, n: torch.zeros(len(codes), n - 1).scatter_(1, codes, 1.0),), mentions="n columns"),
    Planted("06.1", "first column dropped, as drop_first dummies", lambda: (
        lambda codes, n: torch.zeros(len(codes), n).scatter_(1, codes, 1.0)[:, 1:],), mentions="one column too few"),
    Planted("06.1", "only the first code of each row used", lambda: (
        lambda codes, n: torch.zeros(len(codes), n).scatter_(1, codes[:, :1], 1.0),), mentions="codes[:, 0]"),
    Planted("06.1", "int64 zeros: the result is not float32", lambda: (
        lambda codes, n: torch.zeros(len(codes), n, dtype=torch.long).scatter_(1, codes, 1),), mentions="float32"),
    Planted("06.1", "F.one_hot(...).sum(1), forbidden and 2.0 for repeats", lambda: (
        lambda codes, n: F.one_hot(codes, n).sum(1).float(),), mentions="F.one_hot"),
    Planted("06.1", "fancy indexing instead of scatter_", lambda: (multi_hot_by_indexing,),
            mentions="does not place them with scatter_"),
    # 06.2
    Planted("06.2", "unweighted mean of the two sides' Gini", lambda: (_planted_split(score="mean"),), mentions="weight"),
    Planted("06.2", "squared-error (regression) score", lambda: (_planted_split(score="sse"),), mentions="squared-error"),
    Planted("06.2", "entropy instead of Gini", lambda: (_planted_split(score="entropy"),), mentions="entropy"),
    Planted("06.2", "score divided by n (a weighted average)", lambda: (_planted_split(score="average"),), mentions="divided"),
    Planted("06.2", "threshold at the left value, not the midpoint", lambda: (_planted_split(threshold="left"),),
            mentions="halfway"),
    Planted("06.2", "min_leaf ignored", lambda: (_planted_split(leaf="ignored"),), mentions="min_leaf"),
    Planted("06.2", "min_leaf off by one: sides need more than min_leaf rows", lambda: (_planted_split(leaf="more than"),),
            mentions="exactly min_leaf"),
    Planted("06.2", "cuts inside runs of tied values", lambda: (_planted_split(distinct=False),), mentions="tied"),
    # 06.3
    Planted("06.3", "one level too deep", lambda: _planted_tree(depth_shift=1), mentions="max_depth"),
    Planted("06.3", "one level too shallow", lambda: _planted_tree(depth_shift=-1), mentions="max_depth"),
    Planted("06.3", "`<` instead of `<=` when predicting", lambda: _planted_tree(strict=True), mentions="`<=`"),
    Planted("06.3", "a leaf predicts the majority class", lambda: _planted_tree(leaf="majority"), mentions="a class (0 or 1)"),
    Planted("06.3", "a leaf predicts the fraction of 0s", lambda: _planted_tree(leaf="zeros"), mentions="fraction of 0s"),
    Planted("06.3", "only column 0 searched", lambda: _planted_tree(columns=[0]), mentions="column 0"),
    Planted("06.3", "entropy splits instead of Gini", lambda: _planted_tree(score="entropy"), mentions="entropy"),
    Planted("06.3", "unweighted Gini: the two sides' impurities added", lambda: _planted_tree(score="mean"),
            mentions="weight each side"),
    # 06.4
    Planted("06.4", "0: each tree reproduces its rows", lambda: ("a", "bootstrap"), mentions="does every tree"),
    Planted("06.4", "about equal to the OOB RMSE", lambda: ("c", "bootstrap"), mentions="never saw it"),
    Planted("06.4", "above the OOB RMSE", lambda: ("d", "bootstrap"), mentions="cannot push"),
    Planted("06.4", "right answer, reason: the leaves are too large", lambda: ("b", "leaves"), mentions="single row"),
    Planted("06.4", "right answer, reason: half of the columns", lambda: ("b", "columns"), mentions="max_features"),
    Planted("06.4", "right answer, reason: averaging adds error", lambda: ("b", "average"), mentions="which trees"),
    Planted("06.4", "an answer outside TRAIN_ERROR_CHOICES", lambda: ("e", "bootstrap"), mentions="should be one of"),
    # 06.5
    Planted("06.5", "OOB averages every tree, including those that saw the row", lambda: (
        lambda X, y, k, seed: bag_by_counts(X, y, k, seed, oob_from="all"),), mentions="including those"),
    Planted("06.5", "rows drawn without replacement (a shuffle)", lambda: (
        lambda X, y, k, seed: bag_by_counts(X, y, k, seed, draw="shuffle"),), mentions="replacement"),
    Planted("06.5", "integers(0, n - 1): the last row is never drawn", lambda: (
        lambda X, y, k, seed: bag_by_counts(X, y, k, seed, draw="short"),), mentions="never drawn"),
    Planted("06.5", "the seed ignored", lambda: (lambda X, y, k, seed: bag_by_counts(X, y, k, seed, draw="unseeded"),),
            mentions="seed"),
    Planted("06.5", "generator re-seeded inside the loop: every tree gets the same rows", lambda: (
        lambda X, y, k, seed: bag_by_counts(X, y, k, seed, reseed=True),), mentions="same bootstrap rows"),
    Planted("06.5", "trees fitted on a fresh draw, not the recorded indices", lambda: (
        lambda X, y, k, seed: bag_by_counts(X, y, k, seed, fit_on="fresh"),), mentions="index array lists"),
    # 06.6
    Planted("06.6", "learning rate forgotten", lambda: (lambda gbr, X: boosting_by_walk(gbr, X, rate="one"),),
            mentions="learning_rate"),
    Planted("06.6", "bias: the first tree's root value, not the initial prediction", lambda: (
        lambda gbr, X: boosting_by_walk(gbr, X, bias_from="root"),), mentions="initial prediction"),
    Planted("06.6", "credit to the feature of the next node on the path (off by one)", lambda: (
        lambda gbr, X: boosting_by_walk(gbr, X, credit="next"),), mentions="parent"),
    Planted("06.6", "sign flipped (node minus child)", lambda: (lambda gbr, X: boosting_by_walk(gbr, X, sign=-1),),
            mentions="sign"),
    Planted("06.6", "only the first tree used", lambda: (lambda gbr, X: boosting_by_walk(gbr, X, trees=1),),
            mentions="first tree"),
    # 06.7
    Planted("06.7", "logwage left in", lambda: (CLEAN_WAGE + ["logwage"], 1.0), mentions="logwage"),
    Planted("06.7", "wage itself left in", lambda: (CLEAN_WAGE + ["wage"], 1.0), mentions="`wage`"),
    Planted("06.7", "a made-up accuracy", lambda: (CLEAN_WAGE, 0.8), mentions="re-running"),
    Planted("06.7", "training accuracy reported", lambda: (CLEAN_WAGE, wage_accuracy(CLEAN_WAGE, on="train")), mentions="re-running"),
    Planted("06.7", "accuracy as a percentage", lambda: (CLEAN_WAGE, 100 * wage_accuracy(CLEAN_WAGE)), mentions="percentage"),
    Planted("06.7", "every informative column dropped with the leak", lambda: (["year", "region"], wage_accuracy(["year", "region"])),
            mentions="0.65-0.85"),
    # 06.8
    Planted("06.8", "the chapter's time split kept", lambda: _domain(frames=ames_frames("time")), mentions="Latitude"),
    Planted("06.8", "the southernmost houses held out", lambda: _domain(frames=ames_frames("south")),
            mentions="southernmost"),
    Planted("06.8", "a made-up RMSE", lambda: _domain(rmse=0.12), mentions="refitting"),
    Planted("06.8", "top 3 of the price model, not of the is_valid classifier", lambda: _domain(*domain_answer("price")),
            mentions="is_valid"),
    Planted("06.8", "the three columns not dropped before refitting", lambda: _domain(rmse=_undropped_rmse()),
            mentions="every column"),
    Planted("06.8", "Sale_Price left among the features", lambda: _domain(frames=_with_price(ames_frames("north"))),
            mentions="target"),
    Planted("06.8", "target not logged", lambda: _domain(
        frames=(lambda f: (f[0], np.exp(f[1]), f[2], np.exp(f[3])))(ames_frames("north"))), mentions="log(Sale_Price)"),
    # 06.9
    Planted("06.9", "embeddings in a plain dict, not registered", lambda: (TabularListed,), mentions="registered"),
    Planted("06.9", "embeddings as plain tensor attributes", lambda: (TabularTensors,), mentions="registered"),
    Planted("06.9", "no sigmoid range on the output", lambda: (TabularRaw,), mentions="y_range"),
    Planted("06.9", "sigmoid scaled to hi, lo ignored", lambda: (TabularHighOnly,), mentions="y_range"),
    Planted("06.9", "output squeezed to (bs,)", lambda: (TabularFlat,), mentions="(32, 1)"),
    Planted("06.9", "no BatchNorm1d on the continuous columns", lambda: (TabularNoBnCont,), mentions="parameters"),
    Planted("06.9", "nn.Embedding(width, n_categories)", lambda: (TabularSwapped,), mentions="nn.Embedding(n_categories, width)"),
    # 06.10
    Planted("06.10", "code c looked up as row c - 1", lambda: _embedded(shift=1), mentions="off by one"),
    Planted("06.10", "the code columns kept beside the embeddings", lambda: _embedded(keep_codes=True), mentions="code columns"),
    Planted("06.10", "new columns aligned on another index", lambda: _embedded(aligned=False), mentions="index"),
    Planted("06.10", "a made-up RMSE", lambda: _embedded(rmse=0.12), mentions="refitting"),
    Planted("06.10", "embedding columns named differently", lambda: _embedded(names="{}_emb{}"), mentions="should name"),
    # 06.11
    Planted("06.11", "flags P(bad) > thr", lambda: _threshold(strict=True), mentions="`>=`"),
    Planted("06.11", "P(good) passed as probs", lambda: (lambda t: (t[0], t[1], t[2], 1 - t[3]))(_threshold()), mentions="P(good)"),
    Planted("06.11", "threshold chosen on recall alone", lambda: _threshold(rule="lowest"), mentions="best precision"),
    Planted("06.11", "precision and recall swapped", lambda: (lambda t: (t[0], t[2], t[1], t[3]))(_threshold()), mentions="swapped"),
    Planted("06.11", "a made-up precision", lambda: (lambda t: (t[0], 0.6, t[2], t[3]))(_threshold()), mentions="recomputed"),
]

test_planted_mistake_is_rejected_with_a_hint = planted_test(PLANTED)  # tests/test_planted.py checks it is here
