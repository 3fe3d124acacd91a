"""The 06_tabular figures in course_utils.plots.ch06: the numbers behind the dendrogram and the waterfall,
and that each helper draws into the axes it is given."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from course_utils.plots import ch06


def frame(n=200, seed=0):
    """Columns with known rank relations: b is a monotone (non-linear) function of a, c is a noisy copy of a,
    d is independent noise, e is a with some values missing."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    e = a.copy()
    e[rng.random(n) < 0.2] = np.nan
    return pd.DataFrame({"a": a, "b": np.exp(3 * a), "c": a + rng.normal(0, 0.8, n), "d": rng.normal(size=n), "e": e})


def test_spearman_linkage_pairs_perfectly_rank_correlated_columns_first():
    corr, Z = ch06.spearman_linkage(frame())
    assert corr.loc["a", "b"] == pytest.approx(1.0) and corr.loc["a", "e"] == pytest.approx(1.0)
    first = {int(Z[0, 0]), int(Z[0, 1])}
    assert first <= {0, 1, 4} and Z[0, 2] == pytest.approx(0.0, abs=1e-12)  # a, b and e rank the rows identically
    assert Z[-1, 2] > 0.8  # the independent column d joins last, at a distance near 1 - 0
    assert Z.shape == (4, 4)


def test_spearman_linkage_treats_a_reversed_ranking_as_redundant():
    df = frame()[["a", "c", "d"]].assign(r=lambda f: -f.a ** 3)
    _, Z = ch06.spearman_linkage(df)
    assert {int(Z[0, 0]), int(Z[0, 1])} == {0, 3} and Z[0, 2] == pytest.approx(0.0, abs=1e-12)
    _, Z = ch06.spearman_linkage(df, absolute=False)  # fastbook's 1 - rho puts it as far as it goes
    assert 3 not in {int(Z[0, 0]), int(Z[0, 1])}


def test_spearman_linkage_survives_a_constant_column():
    df = frame().assign(k=1.0)
    corr, Z = ch06.spearman_linkage(df)
    assert corr.loc["k", "a"] == 0.0 and corr.loc["k", "k"] == 1.0
    assert np.isfinite(Z).all()


def test_cluster_columns_draws_one_label_per_column_and_returns_the_correlation():
    fig, ax = ch06.pyplot().subplots()
    corr = ch06.cluster_columns(frame(), ax=ax)
    assert isinstance(corr, pd.DataFrame) and list(corr.columns) == list("abcde")
    assert sorted(t.get_text() for t in ax.get_yticklabels()) == list("abcde")
    assert not any(line.get_visible() for line in ax.get_xgridlines() + ax.get_ygridlines())


def test_waterfall_steps_run_from_the_bias_to_the_prediction():
    contrib = np.array([0.05, -0.20, 0.01, 0.30, -0.02, 0.004])
    names = [f"f{i}" for i in range(6)]
    steps = ch06.waterfall_steps(12.0, contrib, names, top=3)
    assert [label for label, _, _ in steps] == ["bias", "f3", "f1", "f0", "other", "prediction"]
    assert steps[0] == ("bias", 0.0, 12.0)
    for (_, _, end), (_, start, _) in zip(steps[:-2], steps[1:-1]):
        assert start == end  # each bar starts where the previous one ended
    assert steps[-2][2] == pytest.approx(12.0 + contrib.sum())
    assert steps[-1] == ("prediction", 0.0, pytest.approx(12.0 + contrib.sum()))
    assert steps[-2][2] - steps[-2][1] == pytest.approx(0.01 - 0.02 + 0.004)  # "other" sums the rest
    assert [s[0] for s in ch06.waterfall_steps(1.0, contrib, names, top=6)][-2] == "f5"  # no "other" when nothing is left
    with pytest.raises(ValueError):
        ch06.waterfall_steps(1.0, contrib, names[:-1])


def test_waterfall_bars_move_the_running_total():
    contrib = np.array([0.3, -0.1, 0.05])
    fig = ch06.waterfall(2.0, contrib, ["x", "y", "z"])
    assert isinstance(fig, Figure)
    ax = fig.axes[0]
    bars = ax.patches
    assert len(bars) == 3  # one per contribution; the bias and the prediction are markers
    assert sorted(round(b.get_width(), 9) for b in bars) == [0.05, 0.1, 0.3]
    down = [b for b in bars if b.get_width() == pytest.approx(0.1)][0]
    assert down.get_x() == pytest.approx(2.2) and down.get_facecolor()[0] > down.get_facecolor()[1]  # red: 2.3 -> 2.2
    low, high = ax.get_xlim()
    assert low > 1.5 and high < 3.0  # the axis spans the running totals, not 0
    assert [t.get_text() for t in ax.get_yticklabels()] == ["bias", "x", "y", "z", "prediction"]


def test_draw_tree_labels_the_root_split():
    from sklearn.tree import DecisionTreeRegressor

    rng = np.random.default_rng(1)
    X = rng.uniform(0, 10, (100, 2))
    tree = DecisionTreeRegressor(max_depth=2, random_state=0).fit(X, (X[:, 1] > 4) + 0.1 * X[:, 0])
    fig = ch06.draw_tree(tree, ["Year_Built", "Gr_Liv_Area"])
    boxes = [t for t in fig.axes[0].texts if "samples" in t.get_text()]  # the others are the True/False arrow labels
    assert len(boxes) == tree.tree_.node_count
    assert boxes[0].get_text().startswith("Gr_Liv_Area <= ")
    assert all(t.get_fontsize() == 10 for t in boxes)
    fig, ax = ch06.pyplot().subplots()
    assert ch06.draw_tree(tree, ["u", "v"], ax=ax, max_depth=1) is fig


def houses(n=300, seed=0):
    """A small table with the columns the house explorer edits, and a log price that depends on them."""
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"Year_Built": rng.integers(1900, 2010, n), "Gr_Liv_Area": rng.integers(500, 4000, n),
                       "Garage_Cars": rng.integers(0, 4, n), "Neighborhood": rng.integers(1, 5, n),
                       "Lot_Area": rng.integers(2000, 20000, n)})
    y = 10 + 0.004 * (df["Year_Built"] - 1900) + 0.0003 * df["Gr_Liv_Area"] + 0.1 * df["Neighborhood"]
    return df, (y + rng.normal(0, 0.05, n)).to_numpy()


def mean_tree_contributions(forest, row):
    """A stand-in for the chapter's forest_contributions: all credit on column 0 (enough for the totals)."""
    contrib = np.zeros(forest.n_features_in_)
    bias = float(np.mean([t.tree_.value[0, 0, 0] for t in forest.estimators_]))
    contrib[0] = float(np.mean([t.predict(row[None])[0] for t in forest.estimators_])) - bias
    return bias, contrib


def test_draw_house_prices_the_edited_house_with_the_forest(monkeypatch):
    from sklearn.ensemble import RandomForestRegressor

    monkeypatch.setattr("matplotlib.pyplot.show", lambda: None)
    df, y = houses()
    forest = RandomForestRegressor(n_estimators=10, random_state=0).fit(df, y)
    labels = ["#na#", "A", "B", "C", "D"]
    price, spread = ch06.draw_house(forest, df, mean_tree_contributions, labels, index=3)
    assert price == pytest.approx(np.exp(forest.predict(df.iloc[[3]])[0]), rel=1e-6) and spread >= 0
    newer, _ = ch06.draw_house(forest, df, mean_tree_contributions, labels, index=3, year_built=2009,
                               living_area=3900, neighborhood=4)
    edited = df.iloc[[3]].assign(Year_Built=2009, Gr_Liv_Area=3900, Neighborhood=4)
    assert newer == pytest.approx(np.exp(forest.predict(edited)[0]), rel=1e-6) and newer > price


def test_draw_leaf_size_reports_the_fitted_tree(monkeypatch):
    from sklearn.tree import DecisionTreeRegressor

    monkeypatch.setattr("matplotlib.pyplot.show", lambda: None)
    df, y = houses()
    train_err, valid_err, leaves = ch06.draw_leaf_size(df[:200], y[:200], df[200:], y[200:], min_samples_leaf=10)
    tree = DecisionTreeRegressor(min_samples_leaf=10, random_state=0).fit(df[:200], y[:200])
    assert leaves == tree.get_n_leaves()
    assert train_err == pytest.approx(np.sqrt(np.mean((tree.predict(df[:200]) - y[:200]) ** 2)))
    assert valid_err == pytest.approx(np.sqrt(np.mean((tree.predict(df[200:]) - y[200:]) ** 2)))


def test_both_explorers_build_without_drawing():
    from sklearn.ensemble import RandomForestRegressor

    df, y = houses()
    forest = RandomForestRegressor(n_estimators=5, random_state=0).fit(df, y)
    box = ch06.house_explorer(forest, df, mean_tree_contributions, ["#na#", "A", "B", "C", "D"])
    assert repr(box).startswith("[interactive explorer")
    assert repr(ch06.leaf_size_explorer(df[:200], y[:200], df[200:], y[200:])).startswith("[interactive explorer")
