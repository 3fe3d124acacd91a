"""Figures of 06_tabular: the fastbook helpers that fastai does not ship.

`cluster_columns` draws a Spearman dendrogram of a frame's columns (redundant columns merge first),
`waterfall` one row's per-feature contributions from the bias to the prediction, and `draw_tree` a
fitted scikit-learn tree with readable text. `spearman_linkage` and `waterfall_steps` are the numbers
behind the first two. Two explorers: `leaf_size_explorer` (a tree's size against its errors) and
`house_explorer` (a forest's price for a house you edit, with its waterfall).
"""

from __future__ import annotations

import numpy as np

from course_utils.plots.widgets import explorer, pyplot

__all__ = ["cluster_columns", "draw_house", "draw_leaf_size", "draw_tree", "house_explorer", "leaf_size_explorer",
           "spearman_linkage", "waterfall", "waterfall_steps"]

_UP, _DOWN, _TOTAL = "#4c9a2a", "#c0392b", "#555555"


def spearman_linkage(df, absolute: bool = True):
    """(corr, Z) for a DataFrame's columns. Used in 06_tabular, by `cluster_columns`.

    `corr` is the Spearman rank correlation as a DataFrame (pairwise over rows where both columns are
    present; a constant column correlates 0 with the others), `Z` scipy's average-linkage matrix on the
    distance 1 - |rho| (1 - rho, fastbook's, with absolute=False), so Z[0] joins the two columns that rank
    the rows most alike. A column that ranks them in reverse (Ames' Sale_Order against Year_Sold) is as
    redundant to a tree as a copy, hence |rho| by default.
    """
    from scipy.cluster import hierarchy
    from scipy.spatial.distance import squareform

    corr = df.corr(method="spearman").fillna(0.0)
    values = corr.to_numpy(copy=True)
    np.fill_diagonal(values, 1.0)
    corr.iloc[:, :] = values
    similarity = (values + values.T) / 2
    distance = np.clip(1.0 - (np.abs(similarity) if absolute else similarity), 0.0, 2.0)  # symmetric to the last bit, as squareform needs
    np.fill_diagonal(distance, 0.0)
    return corr, hierarchy.linkage(squareform(distance, checks=False), method="average")


def cluster_columns(df, ax=None, font_size: int = 9, absolute: bool = True):
    """Draw a dendrogram of the columns of `df` by Spearman rank correlation. Taught in 06_tabular.

    fastbook's helper, rebuilt on scipy: columns that merge near the right edge (distance 1 - |rho| close
    to 0) rank the rows nearly alike, or in reverse, and are candidates to drop (see `spearman_linkage`). Draws into `ax` (a new
    figure, tall enough for one label per column, when None) and returns the correlation DataFrame, so a
    cell can print a pair's rho; the figure is `ax.figure`.
    """
    from scipy.cluster import hierarchy

    plt = pyplot()
    corr, Z = spearman_linkage(df, absolute)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, max(3.6, 0.22 * len(corr) + 1.0)))
    hierarchy.dendrogram(Z, labels=list(map(str, corr.columns)), orientation="left", leaf_font_size=font_size, ax=ax,
                         color_threshold=0.0, above_threshold_color="#3b75af")
    ax.set_xlabel(f"1 - {'|Spearman rho|' if absolute else 'Spearman rho'} (columns merging near 0 are redundant)")
    ax.grid(False)
    ax.figure.tight_layout()
    return corr


def waterfall_steps(bias: float, contributions, names, top: int = 10) -> list[tuple[str, float, float]]:
    """(label, start, end) of each bar of `waterfall`. Used in 06_tabular, by `waterfall`.

    The bias bar runs from 0 to the bias; then the `top` contributions largest in size, in that order,
    each from the running total to the running total plus itself; then "other" (the rest, summed, when
    there is a rest); the last bar, "prediction", from 0 to bias + sum of all contributions.
    """
    contributions = np.asarray(contributions, dtype=np.float64).ravel()
    names = [str(n) for n in names]
    if len(names) != len(contributions):
        raise ValueError(f"{len(names)} names for {len(contributions)} contributions")
    order = np.argsort(-np.abs(contributions), kind="stable")
    shown, rest = order[:top], order[top:]
    steps, total = [("bias", 0.0, float(bias))], float(bias)
    for label, value in [(names[i], contributions[i]) for i in shown] + ([("other", contributions[rest].sum())] if len(rest) else []):
        steps.append((label, total, total + float(value)))
        total += float(value)
    steps.append(("prediction", 0.0, float(bias) + float(contributions.sum())))
    return steps


def waterfall(bias: float, contributions, names, ax=None, top: int = 10, fmt: str = "{:+.3f}"):
    """Draw one row's contributions as a horizontal waterfall, from the bias to the prediction. Taught in 06_tabular.

    The top bar is the bias; each bar below moves the running total by one feature's contribution (green
    up, red down), the `top` largest first and the rest grouped as "other"; the bottom bar is the
    prediction, bias + sum of contributions. The x axis spans the running totals, not 0, so small steps on
    a large bias (log prices) stay visible. Draws into `ax` (a new figure when None); returns the Figure.
    """
    plt = pyplot()
    steps = waterfall_steps(bias, contributions, names, top)
    if ax is None:
        _, ax = plt.subplots(figsize=(6.0, max(3.6, 0.32 * len(steps) + 1.0)))
    last = len(steps) - 1
    for row, (_, start, end) in enumerate(steps):
        if row in (0, last):  # the bias and the prediction: a marker at the value, no bar from 0
            ax.plot([end], [row], marker="D", color=_TOTAL, markersize=7)
            text = f"{end:.3f}"
        else:
            ax.barh(row, abs(end - start), left=min(start, end), color=_UP if end >= start else _DOWN, height=0.6)
            text = fmt.format(end - start)
        ax.annotate(text, (max(start, end), row), xytext=(5, 0), textcoords="offset points", va="center", fontsize=8)
    for row in range(last):
        ax.plot([steps[row][2]] * 2, [row + 0.3, row + 0.7], color="#999999", lw=0.8)
    values = [steps[0][2], steps[last][2]] + [v for _, start, end in steps[1:last] for v in (start, end)]
    low, high = min(values), max(values)
    pad = 0.15 * (high - low or 1.0)
    ax.set_xlim(low - pad, high + 2 * pad)
    ax.set_yticks(range(len(steps)), [label for label, _, _ in steps], fontsize=9)
    ax.invert_yaxis()
    ax.set_xlabel("running total (the diamonds mark the bias and the prediction)")
    ax.grid(False)
    ax.figure.tight_layout()
    return ax.figure


def draw_tree(tree, feature_names, ax=None, max_depth: int | None = None, font_size: int = 10, precision: int = 3):
    """Draw a fitted scikit-learn decision tree, boxes filled by value. Taught in 06_tabular.

    A thin wrapper of `sklearn.tree.plot_tree` (fastbook's `draw_tree` needed graphviz and dtreeviz):
    each box shows its split, sample count and value, with text at `font_size`. `max_depth` cuts the
    drawing, not the tree. Draws into `ax` (a new figure sized to the tree when None); returns the Figure.
    """
    from sklearn.tree import plot_tree

    plt = pyplot()
    if ax is None:
        depth = min(tree.get_depth(), max_depth if max_depth is not None else tree.get_depth())
        _, ax = plt.subplots(figsize=(max(6.0, 2.4 * 2 ** depth), max(3.6, 1.5 * (depth + 1))))
    plot_tree(tree, feature_names=[str(n) for n in feature_names], filled=True, rounded=True, impurity=False,
              max_depth=max_depth, fontsize=font_size, precision=precision, ax=ax)
    ax.grid(False)
    return ax.figure


def draw_leaf_size(xs, y, valid_xs, valid_y, min_samples_leaf: int = 25, depth_shown: int = 2, seed: int = 0):
    """Fit a tree with `min_samples_leaf`, draw its top levels, return (train RMSE, valid RMSE, leaves). Taught in 06_tabular.

    The whole tree is fitted; only its first `depth_shown` levels are drawn. The title gives its size and errors.
    """
    from sklearn.tree import DecisionTreeRegressor

    plt = pyplot()
    tree = DecisionTreeRegressor(min_samples_leaf=min_samples_leaf, random_state=seed).fit(xs, y)
    errors = [float(np.sqrt(np.mean((tree.predict(x) - np.asarray(t, dtype=np.float64)) ** 2)))
              for x, t in ((xs, y), (valid_xs, valid_y))]
    fig, ax = plt.subplots(figsize=(10, 3.6))
    draw_tree(tree, list(xs.columns), ax=ax, max_depth=depth_shown, font_size=9)
    ax.set_title(f"min_samples_leaf={min_samples_leaf}: {tree.get_n_leaves()} leaves, train RMSE {errors[0]:.3f}, "
                 f"valid RMSE {errors[1]:.3f} (top {depth_shown} levels drawn)", fontsize=10)
    plt.show()
    return errors[0], errors[1], int(tree.get_n_leaves())


def leaf_size_explorer(xs, y, valid_xs, valid_y):
    """Widget: a `min_samples_leaf` slider redrawing `draw_leaf_size`. Taught in 06_tabular."""
    import ipywidgets as widgets

    def draw(min_samples_leaf=25):
        draw_leaf_size(xs, y, valid_xs, valid_y, min_samples_leaf=min_samples_leaf)

    return explorer(draw, min_samples_leaf=widgets.SelectionSlider(
        options=[1, 2, 3, 5, 10, 25, 50, 100, 250, 500], value=25, description="min leaf", continuous_update=False))


def draw_house(forest, houses, contributions, neighborhoods, index: int = 0, year_built=None, living_area=None,
               garage_cars=None, neighborhood=None, top: int = 8):
    """Price house `index` of `houses`, edited, with `forest`; draw its waterfall; return (price $, spread). Taught in 06_tabular.

    `houses`: the processed frame the forest was fitted on (codes, not labels). The four edits, when
    given, replace the house's `Year_Built`, `Gr_Liv_Area`, `Garage_Cars` and `Neighborhood` (a code into
    `neighborhoods`, the labels in code order). `contributions(forest, row)` gives (bias, per-column
    contributions) for a float32 row, as the chapter's `forest_contributions` does. The spread is the
    standard deviation of the trees' log-price predictions.
    """
    plt = pyplot()
    house = houses.iloc[[index]].copy()
    edits = {"Year_Built": year_built, "Gr_Liv_Area": living_area, "Garage_Cars": garage_cars,
             "Neighborhood": neighborhood}
    for column, value in edits.items():
        if value is not None:
            house[column] = value
    row = house.to_numpy(np.float32)[0]
    per_tree = np.array([tree.predict(row[None])[0] for tree in forest.estimators_])
    bias, contrib = contributions(forest, row)
    price, spread = float(np.exp(per_tree.mean())), float(per_tree.std())
    fig, ax = plt.subplots(figsize=(7, 3.6))
    waterfall(bias, contrib, list(house.columns), ax=ax, top=top)
    where = neighborhoods[int(house["Neighborhood"].iloc[0])]
    ax.set_title(f"house {index} in {where}: forest price ${price:,.0f} (trees disagree by ±{spread:.3f} "
                 f"in log price)", fontsize=10)
    plt.show()
    return price, spread


def house_explorer(forest, houses, contributions, neighborhoods):
    """Widget: pick a house, then change its age, size, garage and neighbourhood; see the forest's price. Taught in 06_tabular.

    The arguments are `draw_house`'s. Picking a house resets the other controls to that house's values;
    each change redraws `draw_house`.
    """
    import ipywidgets as widgets

    def column_range(name):
        return int(houses[name].min()), int(houses[name].max())

    controls = dict(
        index=widgets.IntSlider(value=0, min=0, max=len(houses) - 1, description="house", continuous_update=False),
        year_built=widgets.IntSlider(min=column_range("Year_Built")[0], max=column_range("Year_Built")[1],
                                     description="Year_Built", continuous_update=False),
        living_area=widgets.IntSlider(min=column_range("Gr_Liv_Area")[0], max=column_range("Gr_Liv_Area")[1],
                                      step=10, description="Gr_Liv_Area", continuous_update=False),
        garage_cars=widgets.IntSlider(min=column_range("Garage_Cars")[0], max=column_range("Garage_Cars")[1],
                                      description="Garage_Cars", continuous_update=False),
        neighborhood=widgets.Dropdown(options=[(label, code) for code, label in enumerate(neighborhoods)],
                                      description="Neighborhood"),
    )

    def load_house(*_):
        original = houses.iloc[controls["index"].value]
        controls["year_built"].value = int(original["Year_Built"])
        controls["living_area"].value = int(original["Gr_Liv_Area"])
        controls["garage_cars"].value = int(original["Garage_Cars"])
        controls["neighborhood"].value = int(original["Neighborhood"])

    def draw(**values):
        draw_house(forest, houses, contributions, neighborhoods, **values)

    load_house()
    controls["index"].observe(load_house, names="value")
    return explorer(draw, **controls)
