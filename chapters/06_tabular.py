# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 · Tabular data: trees, random forests and entity embeddings
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-course/executable-deep-learning/blob/main/chapters/06_tabular.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-course/executable-deep-learning/main?labpath=chapters%2F06_tabular.ipynb)
#
# Most data in companies sits in tables: one row per house, loan or customer, one column per measurement or category.
# This chapter turns such tables into tensors, then builds the two families of models that win on them: decision-tree
# ensembles and neural networks with learned embeddings for the categories. Every piece is written from scratch first
# (a tree's split search, bagging, per-row contributions, a tabular network) and checked against scikit-learn or
# fastai. The main table is the real Ames housing data, a stand-in for the fastai book's Blue Book for Bulldozers:
# predict a house's sale price from more than 70 facts about it, validating on the sales of the *last* year, as a
# forecaster must.
#
# **What you will learn**
#
# - to tell continuous, ordinal and nominal columns apart and turn each into tensors: floats, one-hot vectors
#   (by hand with `scatter_`), category codes and, at the end, learned embeddings;
# - to prepare a table the fastai way (`add_datepart`, ordered categoricals, `Categorify`, `FillMissing`,
#   `TabularPandas`), and to split validation by time when the task is to forecast;
# - how a decision tree chooses its splits (a greedy search you write), why a tree left alone memorises its
#   training rows, and how bagging and random features turn many such trees into a random forest;
# - to read a forest: out-of-bag error, feature importance, redundant columns, partial dependence, per-row
#   contributions, and how to catch a leaky column;
# - where trees fail (extrapolation, a shifted domain) and how to detect it;
# - to train a network with entity embeddings (`tabular_learner`, and a small one written by hand), ensemble it
#   with the forest, and compare both with gradient boosting; then to do the same for a classification table with
#   real missing values.
#
# *Runs on a CPU in about 1 minute.*

# %%
import sys
if "google.colab" in sys.modules:  # Colab only: add the course's package and what Colab lacks, keep Colab's torch
    # tested against a simulated Colab runtime (2026-12): Python 3.11, torch 2.14.1, fastai 2.8.12, numpy 2.4.6, pandas 3.1.1
    # %pip install -q "course-utils[colab] @ git+https://github.com/dl-course/executable-deep-learning@main"
from course_utils import setup, check
device = setup()

# %%
import warnings

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from course_utils import data

# fastai's import prints two notices that do not concern us: torch.jit's deprecation, and "The given NumPy array
# is not writable" (pandas 3 hands out read-only arrays). Both would land in the stored outputs with a path.
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", message="The given NumPy array is not writable")

# %% [markdown]
# ## 1. Tables as tensors
#
# *Deep Learning with PyTorch* (ch. 4) opens tabular data with a question a model cannot answer for us: **what kind
# of number is in each column?** Three kinds matter:
#
# - **continuous** (ratio or interval scale): the values are quantities, and differences mean something. A living
#   area of 2,000 ft² is 500 ft² more than 1,500 ft².
# - **ordinal**: the values have an order but no distance. "Good" condition beats "Average", but not by a number.
# - **nominal** (categorical): labels with no order at all, such as the neighbourhood. Coding `Neighborhood` as
#   0, 1, 2, … and feeding the codes to a linear model would invent an order and distances that do not exist.
#
# The Ames table: 2,930 houses sold in Ames, Iowa, between 2006 and 2010, with 73 facts about each, the price and a
# row number.

# %%
ames = data.table("ames")
print("Ames:", ames.shape)
print("column types:", ames.dtypes.astype(str).value_counts().to_dict())
ten = ["Gr_Liv_Area", "Lot_Area", "Year_Built", "Garage_Cars", "Overall_Cond", "Heating_QC", "Exter_Cond",
       "Neighborhood", "Bldg_Type", "Sale_Condition"]
ames[ten].head(4)

# %% [markdown]
# Sorting these ten columns into the three kinds takes reading, not code: `Gr_Liv_Area`, `Lot_Area`, `Year_Built`
# and `Garage_Cars` are continuous (a year is an interval scale: 1990 is 20 years after 1970, but "zero" is not a
# meaningful year); `Overall_Cond`, `Heating_QC` and `Exter_Cond` are ordinal (Poor < Fair < … < Excellent);
# `Neighborhood`, `Bldg_Type` and `Sale_Condition` are nominal. pandas only sees strings and integers:

# %%
kinds = {"continuous": ["Gr_Liv_Area", "Lot_Area", "Year_Built", "Garage_Cars"],
         "ordinal": ["Overall_Cond", "Heating_QC", "Exter_Cond"],
         "nominal": ["Neighborhood", "Bldg_Type", "Sale_Condition"]}
for kind, columns in kinds.items():
    print(f"{kind:>10}:", {c: str(ames[c].dtype) for c in columns})

# %% [markdown]
# **Continuous columns → a float tensor.** Standardise each column with its own mean and standard deviation
# (`dim=0`: down the rows), so that a living area in square feet and a year do not live on scales a thousand times
# apart.

# %%
cont = torch.tensor(ames[kinds["continuous"]].to_numpy(), dtype=torch.float32)
mean, std = cont.mean(dim=0), cont.var(dim=0).sqrt()
cont_std = (cont - mean) / std
print("tensor:", tuple(cont.shape), cont.dtype)
print("after standardising, means ≈ 0:", torch.allclose(cont_std.mean(0), torch.zeros(4), atol=1e-4),
      "| standard deviations ≈ 1:", torch.allclose(cont_std.std(0), torch.ones(4), atol=1e-4))

# %% [markdown]
# **Nominal columns → one-hot vectors.** A column with `k` levels becomes `k` columns of zeros with a single 1 in
# the level's column. By hand: turn the strings into codes 0..k-1, then write a 1 at `(row, code)` for every row.
# `scatter_(dim, index, value)` does exactly that: along dimension 1, at the column given by `index` for each row,
# write `value`.

# %%
bldg = ames["Bldg_Type"]
levels = sorted(bldg.unique())
codes = torch.tensor(bldg.map({level: i for i, level in enumerate(levels)}).to_numpy())
onehot = torch.zeros(len(codes), len(levels)).scatter_(1, codes.unsqueeze(1), 1.0)
print("levels:", levels)
print("codes of the first 6 houses:", codes[:6].tolist())
print(onehot[:6])
print("one 1 per row:", bool((onehot.sum(1) == 1).all()))

# %% [markdown]
# The library calls agree: `F.one_hot` on the codes, and pandas' `get_dummies` on the strings (its columns come out
# in sorted order, like our levels).

# %%
print("scatter_ == F.one_hot:", torch.equal(onehot, F.one_hot(codes, len(levels)).float()))
dummies = pd.get_dummies(bldg, dtype=np.float32)
print("get_dummies columns:", list(dummies.columns))
print("scatter_ == get_dummies:", torch.equal(onehot, torch.tensor(dummies.to_numpy())))

fig, ax = plt.subplots(figsize=(6, 2.6))
ax.imshow(onehot[:40].T, cmap="Greys", aspect="auto", interpolation="nearest")
ax.set(yticks=range(len(levels)), yticklabels=levels, xlabel="house (first 40 rows)",
       title="Bldg_Type one-hot: one dark cell per column")
plt.show()

# %% [markdown]
# **Boolean masks** answer questions about rows, in the style of the book's wine example ("how many of the wines
# our sulfur rule flags are good?"). Flag the houses with an above-median living area: how many of the flagged
# houses are expensive (above-median price), and how many of the expensive houses does the flag catch? Those are
# the two ratios chapter 08 will call precision and recall.

# %%
price = torch.tensor(ames["Sale_Price"].to_numpy(), dtype=torch.float64)
area = torch.tensor(ames["Gr_Liv_Area"].to_numpy(), dtype=torch.float64)
flagged = area > area.median()
expensive = price > price.median()
both = (flagged & expensive).sum().item()
print(f"flagged: {flagged.sum().item()} | expensive: {expensive.sum().item()} | both: {both}")
print(f"of the flagged houses, expensive: {both / flagged.sum().item():.3f}")
print(f"of the expensive houses, flagged: {both / expensive.sum().item():.3f}")

# %% [markdown]
# One more fact about one-hot vectors sets up the end of the chapter. Multiplying a one-hot matrix by a weight
# matrix `W` (one row per level) picks rows of `W`: row `i` of the product is row `codes[i]` of `W`. So a linear
# layer on one-hot inputs is a **lookup table**, and indexing is the cheap way to compute it. An *embedding* (§8)
# is exactly this, with `W` learned.

# %%
W = torch.randn(len(levels), 3, generator=torch.Generator().manual_seed(0))
torch.testing.assert_close(onehot @ W, W[codes])
print("one-hot @ W equals W[codes]: the assertion passed")

# %% [markdown]
# ## 2. The data and the metric
#
# **Ames stands in for Blue Book for Bulldozers.** The fastai book's tabular chapter predicts auction prices of
# 400,000 bulldozers from Kaggle (it needs a Kaggle account and download). Ames has the same structure on a smaller
# scale: a price, a sale date, dozens of continuous and categorical facts, a few missing values hidden in odd
# places. Online, `data.tabular_source("bulldozers", online=True)` downloads the original's `TrainAndValid.csv`
# (it needs a Kaggle account, its API token and the competition's rules accepted on Kaggle). Read it with
# `pd.read_csv(path, low_memory=False, parse_dates=["saledate"])`, take `log(SalePrice)` as the target, and the steps
# below apply, with the book's numbers instead of ours (and minutes of CPU instead of seconds).
#
# Prices are skewed: a few houses cost four times the median. We model `log(Sale_Price)` and score the **root mean
# squared error of the log**, which is Kaggle's RMSLE for this competition family. An RMSE of 0.1 in log units means
# predictions typically off by about 10%, whether the house costs 100,000 or 500,000 dollars.

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 2.6))
axes[0].hist(ames["Sale_Price"] / 1000, bins=50, color="#4c78a8")
axes[0].set(xlabel="Sale_Price (thousand $)", ylabel="houses", title="price: long right tail")
axes[1].hist(np.log(ames["Sale_Price"]), bins=50, color="#4c78a8")
axes[1].set(xlabel="log(Sale_Price)", title="log price: nearly symmetric")
plt.show()

# %% [markdown]
# **A time proxy.** The table's first column, `rownames`, numbers the rows. It is not a meaningless index: the rows
# are stored newest first, so the number runs against the sale date. We keep it as `Sale_Order`, just as the book
# keeps `SalesID`, and will meet it again in §7.

# %%
ames = ames.rename(columns={"rownames": "Sale_Order"})
month_index = ames["Year_Sold"] * 12 + ames["Mo_Sold"]
print(f"correlation of Sale_Order with the sale month: {np.corrcoef(ames['Sale_Order'], month_index)[0, 1]:.2f}")

# %% [markdown]
# **Dates become columns.** A date is one number to a model unless we spell out what might matter: the year, the
# month, the day of the week, whether it is a month end. fastai's `add_datepart` replaces a date column by 13 such
# columns. Ames records only the year and month of a sale, so we fix the day at the 15th.

# %%
from fastai.tabular.all import (Categorify, FillMissing, Normalize, TabularPandas,  # noqa: E402
                                add_datepart, cont_cat_split)

ames["saledate"] = pd.to_datetime(pd.DataFrame({"year": ames["Year_Sold"], "month": ames["Mo_Sold"], "day": 15}))
n_before = ames.shape[1]
ames = add_datepart(ames, "saledate")
new_columns = [c for c in ames.columns if c.startswith("sale") and c != "saleDate"]
print("add_datepart replaced saledate by", ames.shape[1] - n_before + 1, "columns:")
print(new_columns)

# %% [markdown]
# **Missing values in disguise.** This release of Ames (R's `modeldata`) has almost no `NaN`s: it recoded missing
# values as levels such as `No_Basement` or `No_Pool` (sensible: "no basement" is a fact), and an unknown lot
# frontage as `0`. A frontage of 0 feet is impossible for a house on a street, so those zeros are the analogue of the
# book's `YearMade == 1000`: a **sentinel**. Left as 0, it would tell a tree "tiny frontage". We make it `NaN` so
# that the pipeline fills it and flags it.

# %%
sentinel = ames["Lot_Frontage"] == 0
ames.loc[sentinel, "Lot_Frontage"] = np.nan
print("Lot_Frontage zeros set to NaN:", int(sentinel.sum()))
print("NaN counts:", {c: int(n) for c, n in ames.isna().sum().items() if n})
print("'No_' levels in Bsmt_Cond:", sorted(v for v in ames["Bsmt_Cond"].unique() if v.startswith("No_")))

# %% [markdown]
# Note also what this release lacks: the original data's quality ratings (`Overall_Qual`, the strongest single
# predictor of price in most analyses, and `Exter_Qual`, `Kitchen_Qual`, `Bsmt_Qual`...) are not in `modeldata`'s
# version, only the *condition* ratings. Our models will have to do without them.
#
# **Ordinal columns keep their order.** A category's levels are sorted alphabetically unless we say otherwise
# ("Average" < "Excellent" < "Fair" < "Good"...). An ordered `CategoricalDtype` fixes the order; its codes then
# follow it, so a tree can split "Good or better" with one threshold.

# %%
CONDITION = ["Very_Poor", "Poor", "Fair", "Below_Average", "Average", "Above_Average", "Good", "Very_Good",
             "Excellent"]
QUALITY = ["Poor", "Fair", "Typical", "Good", "Excellent"]
ames["Overall_Cond"] = ames["Overall_Cond"].astype(pd.CategoricalDtype(CONDITION, ordered=True))
for column in ("Heating_QC", "Exter_Cond"):
    ames[column] = ames[column].astype(pd.CategoricalDtype(QUALITY, ordered=True))
print("Overall_Cond levels:", list(ames["Overall_Cond"].cat.categories))
print("Heating_QC codes of 'Fair', 'Good', 'Excellent':",
      [QUALITY.index(v) for v in ("Fair", "Good", "Excellent")], "| unknown values:",
      int(ames[["Heating_QC", "Exter_Cond"]].isna().sum().sum()))

# %% [markdown]
# ## 3. Validation by time
#
# The model's job is to price houses that will sell *next*. So the validation rows must come after the training
# rows: train on 2006-2009, validate on 2010 (January to July, where the data stop). A random split would let the
# model see October 2009 and February 2010 sales while validating on January 2010: the market at that moment leaks
# in, and the score flatters the model. The book makes the same cut for the bulldozers (train before November 2011,
# validate after); Kaggle scored on the future, and so will the world.

# %%
is_valid = (ames["saleYear"] == 2010).to_numpy()
splits = (list(np.flatnonzero(~is_valid)), list(np.flatnonzero(is_valid)))
print("train:", len(splits[0]), "| valid:", len(splits[1]))
print("valid months:", sorted(ames.loc[is_valid, "Mo_Sold"].unique().tolist()))

per_month = ames.groupby(["Year_Sold", "Mo_Sold"]).size()
fig, ax = plt.subplots(figsize=(8, 2.6))
ax.bar(range(len(per_month)), per_month.to_numpy(), color=["#4c78a8" if y < 2010 else "#f58518" for y, _ in per_month.index])
cut = sum(y < 2010 for y, _ in per_month.index) - 0.5
ax.axvline(cut, color="black", ls="--", lw=1)
ax.text(cut - 0.5, per_month.max() * 0.95, "train | valid", ha="center", fontsize=9, backgroundcolor="white")
ticks = [i for i, (_, m) in enumerate(per_month.index) if m == 1]
ax.set(xticks=ticks, xticklabels=[per_month.index[i][0] for i in ticks], ylabel="sales per month",
       title="Ames sales per month: the busy summers, and the 2010 cut")
plt.show()

# %% [markdown]
# ## 4. `TabularPandas`: the preprocessing pipeline
#
# fastai's `TabularPandas` wraps the DataFrame, a list of **procs** (preprocessing steps fitted on the training rows
# and then applied to every row) and the split:
#
# - `cont_cat_split(df, max_card, dep_var)` sorts the columns: integer columns with more than `max_card` distinct
#   values (and every float column) are continuous, the rest categorical. With `max_card=1` every integer column is
#   continuous, which suits trees (they split numbers with thresholds and need no embedding).
# - `Categorify` replaces each categorical column by integer codes, with code 0 reserved for `#na#` (missing or
#   never seen in training). An ordered categorical keeps its order.
# - `FillMissing` fills each continuous column's `NaN`s with the training median and adds a boolean column
#   `<name>_na` that remembers which rows were filled: "the frontage was unknown" may itself predict the price.

# %%
dep_var = "Sale_Price"
ames[dep_var] = np.log(ames[dep_var])
cont_names, cat_names = cont_cat_split(ames, max_card=1, dep_var=dep_var)
to = TabularPandas(ames, procs=[Categorify, FillMissing], cat_names=cat_names, cont_names=cont_names,
                   y_names=dep_var, splits=splits)
print("continuous:", len(cont_names), "| categorical:", len(cat_names))
print("train rows:", len(to.train), "| valid rows:", len(to.valid))
print("Overall_Cond classes:", list(to.classes["Overall_Cond"]))
print("added by FillMissing:", [c for c in to.train.xs.columns if c.endswith("_na")])
print("and the flag is itself a category:", list(to.classes["Lot_Frontage_na"]))

# %% [markdown]
# `to.show` displays rows with the codes turned back into labels; `to.items` is the processed DataFrame itself, with
# codes (the flag's code 1 is `False`, 2 is `True`). The same rows, both ways:

# %%
to.show(max_n=2)
print(to.items[["Overall_Cond", "Heating_QC", "Neighborhood", "Lot_Frontage", "Lot_Frontage_na"]].head(2))

# %% [markdown]
# The fitted pipeline is a Python object; save it once and reload it instead of redoing the preprocessing, with
# fastcore's `save_pickle`/`load_pickle` (the book's `Path.save` is gone from fastcore):

# %%
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

from fastcore.xtras import load_pickle, save_pickle  # noqa: E402

with tempfile.TemporaryDirectory() as tmp:
    save_pickle(Path(tmp) / "to.pkl", to)
    to_again = load_pickle(Path(tmp) / "to.pkl")
print("reloaded pipeline gives the same training table:", to_again.train.xs.equals(to.train.xs))

xs, y = to.train.xs, to.train.y.to_numpy(np.float64)  # fastai stores the target as float32
valid_xs, valid_y = to.valid.xs, to.valid.y.to_numpy(np.float64)


def rmse(pred, target):
    """Root mean squared error; on log prices, the chapter's metric."""
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(target)) ** 2)))


print("features:", xs.shape[1], "| baseline, predict the training mean:", f"{rmse(y.mean(), valid_y):.3f}")

# %% [markdown]
# ## 5. Decision trees
#
# A decision tree prices a house by asking yes/no questions about it: "built after 1984?", then "living area above
# 1,500 ft²?", and so on, until it reaches a **leaf**, whose prediction is the mean log price of the training houses
# that ended there. Training chooses the questions, greedily, one node at a time:
#
# 1. for every column and every threshold, split the node's rows into `x <= threshold` and `x > threshold`;
# 2. score the split by the **sum of squared errors** (SSE) that remains if each side predicts its own mean;
# 3. keep the best split, and repeat on each side until a stopping rule (depth, leaf size) says stop.
#
# ### The split search, from scratch
#
# Trying every threshold naively costs a pass over the rows per threshold. Sorting once makes it one pass: with the
# rows sorted by `x`, the left side of the `k`-th cut holds the first `k` rows, and running sums give each side's
# SSE through $\text{SSE} = \sum y^2 - (\sum y)^2 / n$. Thresholds sit halfway between two *distinct* neighbouring
# values (a cut inside a run of equal values cannot separate them); that is also scikit-learn's convention.

# %%
def split_scores(x, y):
    """Every threshold of one column (midpoints between distinct sorted values) and the SSE of its split."""
    order = np.argsort(x, kind="stable")
    x, y = x[order], y[order] - y.mean()  # centring y keeps the sums of squares small: less round-off
    n, k = len(y), np.arange(1, len(y))
    left_sum, left_sq = np.cumsum(y)[:-1], np.cumsum(y**2)[:-1]
    sse = (left_sq - left_sum**2 / k) + ((y**2).sum() - left_sq) - (y.sum() - left_sum) ** 2 / (n - k)
    distinct = x[1:] > x[:-1]
    return (x[1:][distinct] + x[:-1][distinct]) / 2, sse[distinct]


# sklearn's trees work on a float32 copy of X: use the same values, in float64, so both see identical numbers
tree_cols = [c for c in cont_names if c != "Sale_Order"]
X_tree = xs[tree_cols].to_numpy(np.float32).astype(np.float64)
thresholds, sse = split_scores(X_tree[:, tree_cols.index("Year_Built")], y)
best = np.argmin(sse)
print(f"Year_Built: {len(thresholds)} candidate thresholds; the best is {thresholds[best]}")

fig, ax = plt.subplots(figsize=(6, 2.6))
ax.plot(thresholds, sse, ".-", ms=3)
ax.axvline(thresholds[best], color="#f58518", ls="--", lw=1)
ax.set(xlabel="threshold on Year_Built", ylabel="SSE after the split", title="one column, every cut")
plt.show()

# %% [markdown]
# The whole split search is this, for every column; the tree applies it recursively. A node stops splitting at the
# maximum depth, when its rows all have the same target, or when no column has two distinct values left.

# %%
def best_split(X, y):
    """(column, threshold, sse) of the best split over all columns, or None if no column can be split."""
    best = None
    for col in range(X.shape[1]):
        thresholds, sse = split_scores(X[:, col], y)
        if len(sse) and (best is None or sse.min() < best[2]):
            best = (col, thresholds[np.argmin(sse)], sse.min())
    return best


def grow_tree(X, y, max_depth):
    """A regression tree as nested dicts; a leaf is {"value": mean of its rows}."""
    split = best_split(X, y) if max_depth > 0 and np.ptp(y) > 0 else None
    if split is None:
        return {"value": y.mean()}
    col, threshold, _ = split
    left = X[:, col] <= threshold
    return {"col": col, "threshold": threshold,
            "left": grow_tree(X[left], y[left], max_depth - 1), "right": grow_tree(X[~left], y[~left], max_depth - 1)}


def tree_predict(tree, X):
    """Send every row down the tree at once: rows that go left and rows that go right, recursively."""
    if "value" in tree:
        return np.full(len(X), tree["value"])
    left = X[:, tree["col"]] <= tree["threshold"]
    out = np.empty(len(X))
    out[left], out[~left] = tree_predict(tree["left"], X[left]), tree_predict(tree["right"], X[~left])
    return out


scratch_tree = grow_tree(X_tree, y, max_depth=3)
print("root split of the scratch tree:", tree_cols[scratch_tree["col"]], "<=", scratch_tree["threshold"])

# %% [markdown]
# scikit-learn's `DecisionTreeRegressor` runs the same search (in Cython, with the same thresholds and the same
# `<=` rule). On the same columns it must find the same tree:

# %%
from sklearn.tree import DecisionTreeRegressor  # noqa: E402

TREE_SEED = 0
sk_tree = DecisionTreeRegressor(max_depth=3, random_state=TREE_SEED).fit(X_tree, y)
X_valid_tree = valid_xs[tree_cols].to_numpy(np.float32).astype(np.float64)
print("same root:", tree_cols[sk_tree.tree_.feature[0]], "<=", sk_tree.tree_.threshold[0])
for name, X_ in (("training", X_tree), ("validation", X_valid_tree)):
    np.testing.assert_allclose(tree_predict(scratch_tree, X_), sk_tree.predict(X_), rtol=0, atol=1e-9)
    print(f"scratch tree == sklearn's on every {name} row: the assertion passed")

# %% [markdown]
# ### A tree you can read
#
# Now on all the features (categorical codes included), stopped at four leaves. Each box shows the question, the
# SSE per row (`squared_error`), the number of training houses and their mean log price (`value`).

# %%
from course_utils.plots import draw_tree  # noqa: E402

small_tree = DecisionTreeRegressor(max_leaf_nodes=4, random_state=TREE_SEED).fit(xs, y)
print("root:", xs.columns[small_tree.tree_.feature[0]], "<=", small_tree.tree_.threshold[0])
fig, ax = plt.subplots(figsize=(10, 4))
draw_tree(small_tree, list(xs.columns), ax=ax)
plt.show()

# %% [markdown]
# Read it from the top. The first question splits houses built before 1985 from newer ones: the single most
# informative fact about a price here. Every split below is the best one *for the rows that reached that node*, so
# the old houses and the new ones get different second questions. The mean log price in a leaf, exponentiated, is
# the tree's price for every house in it.
#
# ### A tree left alone memorises
#
# Without a stopping rule, a tree keeps splitting until every leaf is pure: one house per leaf, or several houses
# with the same price. It then reproduces every training price exactly, and has learnt nothing that carries to new
# houses.

# %%
full_tree = DecisionTreeRegressor(random_state=TREE_SEED).fit(xs, y)
full_train_rmse, full_valid_rmse = rmse(full_tree.predict(xs), y), rmse(full_tree.predict(valid_xs), valid_y)
leaf_sizes = {}
for leaf in (1, 2, 5, 10, 25, 50, 100):
    tree = DecisionTreeRegressor(min_samples_leaf=leaf, random_state=TREE_SEED).fit(xs, y)
    leaf_sizes[leaf] = (rmse(tree.predict(xs), y), rmse(tree.predict(valid_xs), valid_y), tree.get_n_leaves())

# %% tags=["nbval-ignore-output"]
print(f"unrestricted tree: {full_tree.get_n_leaves()} leaves for {len(xs)} houses; "
      f"train RMSE {full_train_rmse:.3f}, valid RMSE {full_valid_rmse:.3f}")
print("min_samples_leaf   leaves   train RMSE   valid RMSE")
for leaf, (train_err, valid_err, n_leaves) in leaf_sizes.items():
    print(f"{leaf:16d} {n_leaves:8d} {train_err:12.3f} {valid_err:12.3f}")

# %%
print("claim: the unrestricted tree's train RMSE is 0:", full_train_rmse == 0.0)
print("claim: more leaves than 0.9 x the training houses:", full_tree.get_n_leaves() > 0.9 * len(xs))
# sweep: full tree - min_samples_leaf 25 valid RMSE 0.05653..0.07254 over 6 runs; claim > 0
print("claim: min_samples_leaf=25 beats the unrestricted tree on validation:", leaf_sizes[25][1] < full_valid_rmse)

fig, ax = plt.subplots(figsize=(6, 2.8))
sizes = list(leaf_sizes)
ax.plot(sizes, [leaf_sizes[s][0] for s in sizes], "o-", label="train")
ax.plot(sizes, [leaf_sizes[s][1] for s in sizes], "s-", label="valid (2010)")
ax.set(xscale="log", xlabel="min_samples_leaf (log scale)", ylabel="RMSE of log price", ylim=(0, None),
       title="bigger leaves: worse on train, better on new houses, up to a point")
ax.grid(True, alpha=0.3)
ax.legend()
plt.show()

# %% [markdown]
# With one house per leaf the validation error is about 0.29 (prices off by a third); requiring a few houses per
# leaf cuts it by a quarter; very large leaves lose detail again. `min_samples_leaf` is the knob a forest will keep.
#
# **Leaf-size explorer.** Move `min_samples_leaf` and watch the tree's size and its two errors; the drawing shows the
# top two levels of the fitted tree (which questions come first barely changes; the leaves do). The default view:

# %%
from course_utils.plots import draw_leaf_size, leaf_size_explorer  # noqa: E402

leaf_view = draw_leaf_size(xs, y, valid_xs, valid_y, min_samples_leaf=25, seed=TREE_SEED)
print("claim: the explorer's tree is the table's min_samples_leaf=25 tree:",
      leaf_view == (leaf_sizes[25][0], leaf_sizes[25][1], int(leaf_sizes[25][2])))

# %% tags=["nbval-ignore-output"]
leaf_size_explorer(xs, y, valid_xs, valid_y)

# %% [markdown]
# Notice what we did *not* do: one-hot encode the 48 categorical columns. A tree splits a column of codes with
# thresholds ("`Neighborhood` code ≤ 7"), which groups levels by their arbitrary numbering; but the tree can keep
# splitting, so any group of levels is reachable with enough splits, and in practice codes work about as well as
# one-hot columns while keeping the table narrow. (Ordered categoricals are better still: their codes follow the
# order, so one threshold means "Good or better".)

# %% [markdown]
# ## 6. Random forests
#
# One deep tree has low bias (it can fit anything) and high variance (change a few training rows and it changes a
# lot). **Bagging** (Breiman, 1994) averages many such trees, each trained on a *bootstrap sample*: `n` rows drawn
# with replacement from the `n` training rows, so each tree sees about 63% of the distinct rows, some twice. Their
# errors are partly independent, and averaging cancels the independent part. A **random forest** (Breiman, 2001)
# decorrelates the trees further: each split considers only a random subset of the columns (`max_features`).
#
# ### Bagging by hand

# %%
BAG_SEED = 0
bag_rng = np.random.default_rng(BAG_SEED)
n_rows = len(xs)
bagged_trees = []
for t in range(20):
    rows = bag_rng.integers(0, n_rows, size=n_rows)  # a bootstrap sample: n draws with replacement
    bagged_trees.append(DecisionTreeRegressor(min_samples_leaf=3, random_state=BAG_SEED + t).fit(xs.iloc[rows], y[rows]))
bag_valid = np.stack([tree.predict(valid_xs) for tree in bagged_trees])  # (trees, valid rows)
single_rmse = [rmse(p, valid_y) for p in bag_valid]
bag_rmse = rmse(bag_valid.mean(0), valid_y)
print("distinct rows in the last bootstrap sample:", f"{len(np.unique(rows)) / n_rows:.1%}")

# %% tags=["nbval-ignore-output"]
print(f"20 single trees: valid RMSE {min(single_rmse):.3f} to {max(single_rmse):.3f} (median "
      f"{np.median(single_rmse):.3f}); their average: {bag_rmse:.3f}")

# %%
# sweep: median single tree - bag of 20 valid RMSE 0.05465..0.0655 over 6 runs; claim > 0.03
print("claim: the bag of 20 trees beats its median tree by > 0.03:", bag_rmse < np.median(single_rmse) - 0.03)

# %% [markdown]
# The average of 20 trees is far better than the typical tree, and in most runs better than the best one (in the
# seed sweep the best tree came within 0.03 of the bag, never past it). Convexity alone guarantees less: the RMSE of
# an average is at most the *average* of the RMSEs (the triangle inequality). The rest is what the trees'
# disagreement buys: each overfits its own sample in its own way, and the average keeps what they share.
#
# ### The library's random forest
#
# `RandomForestRegressor` does the bootstrap, the random columns and the averaging, in parallel. The settings are the
# book's: 100 trees, half of the columns at each split, at least 3 houses per leaf. `oob_score=True` asks for the
# out-of-bag predictions explained below.

# %%
from sklearn.ensemble import RandomForestRegressor  # noqa: E402
from sklearn.linear_model import LinearRegression, Ridge  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

FOREST_SEED = 42


def forest(X, target, n_estimators=100, seed=FOREST_SEED, **kwargs):
    """The chapter's forest settings (fastai book ch. 9), fitted on all cores."""
    settings = dict(n_estimators=n_estimators, max_features=0.5, min_samples_leaf=3, oob_score=True, n_jobs=-1,
                    random_state=seed)
    return RandomForestRegressor(**{**settings, **kwargs}).fit(X, target)


rf = forest(xs, y)
rf_rmse, oob_rmse = rmse(rf.predict(valid_xs), valid_y), rmse(rf.oob_prediction_, y)
ridge = make_pipeline(StandardScaler(), Ridge(alpha=1.0)).fit(xs[cont_names], y)
ridge_rmse = rmse(ridge.predict(valid_xs[cont_names]), valid_y)
mean_rmse = rmse(np.full(len(valid_y), y.mean()), valid_y)

# %% tags=["nbval-ignore-output"]
print(f"valid RMSE: predict the mean {mean_rmse:.3f} | ridge on the continuous columns {ridge_rmse:.3f} | "
      f"random forest {rf_rmse:.3f}")
print(f"forest OOB RMSE (training rows): {oob_rmse:.3f}")

# %%
# sweep: forest valid RMSE 0.1723..0.1761 over 6 runs; claim > 0.15
# sweep: forest valid RMSE 0.1723..0.1761 over 6 runs; claim < 0.20
print("claim: 0.15 < forest valid RMSE < 0.20:", 0.15 < rf_rmse < 0.20)
# sweep: ridge - forest valid RMSE 0.0253..0.02915 over 6 runs; claim > 0
print("claim: the forest beats the ridge regression:", rf_rmse < ridge_rmse)
# sweep: mean - ridge valid RMSE 0.2165..0.2165 over 6 runs; claim > 0.1
print("claim: the ridge beats predicting the mean by > 0.1:", ridge_rmse < mean_rmse - 0.1)

# %% [markdown]
# Weidman's point from *Deep Learning from Scratch* holds here too: a linear model on standardised columns is a
# strong baseline (it already halves the mean's error), and it can only fit a weighted sum of the columns; the forest
# finds the thresholds and interactions a sum cannot express.
#
# ### How many trees?
#
# Each tree's predictions are available in `rf.estimators_`; stacking them gives a (trees, houses) array, and the
# forest's prediction is its mean over the first axis. The first `k` rows give a forest of `k` trees for free.

# %%
tree_preds = np.stack([tree.predict(valid_xs.to_numpy()) for tree in rf.estimators_])
print("stacked predictions:", tree_preds.shape)
np.testing.assert_allclose(tree_preds.mean(0), rf.predict(valid_xs), rtol=0, atol=1e-12)
print("their mean is rf.predict: the assertion passed")
n_trees = np.arange(1, 101)
rmse_by_trees = np.array([rmse(tree_preds[:k].mean(0), valid_y) for k in n_trees])

# %% tags=["nbval-ignore-output"]
print("valid RMSE with", {k: round(float(rmse_by_trees[k - 1]), 3) for k in (1, 10, 40, 100)}, "trees")

# %%
# sweep: 1 tree - 100 trees valid RMSE 0.05667..0.08295 over 6 runs; claim > 0
print("claim: 100 trees beat 1 tree:", rmse_by_trees[-1] < rmse_by_trees[0])
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.plot(n_trees, rmse_by_trees)
ax.set(xlabel="number of trees", ylabel="valid RMSE", ylim=(0, None), title="the error flattens after a few dozen trees")
ax.grid(True, alpha=0.3)
plt.show()

# %% [markdown]
# Adding trees never makes a forest overfit more: it only reduces the variance of the average, quickly at first,
# then hardly at all. Past 40 trees the curve is flat, so quick experiments can use 40 and the final model 100 or
# more.
#
# ### Out-of-bag error
#
# Each tree never saw about 37% of the training rows. Predicting each training row with only the trees that did not
# see it gives the **out-of-bag** (OOB) prediction: a validation score for free, without holding rows back
# (`rf.oob_prediction_`). Here it is lower than the validation RMSE, and that is expected: OOB rows are 2006-2009
# sales, drawn from the same period as the training rows, while the validation rows are 2010 sales. The gap between
# them measures how much harder the *future* is than a random held-out row. A forecaster reports the time-split
# score.

# %%
# sweep: valid - OOB RMSE 0.03715..0.04077 over 6 runs; claim > 0
print("claim: OOB RMSE < valid RMSE:", oob_rmse < rf_rmse)

# %% [markdown]
# Is the whole gap due to time? A control experiment answers it: hold out 341 *random* houses of 2006-2009 instead of
# the 2010 ones, train the same forest on the rest, and compare its validation RMSE with its OOB RMSE. Five such
# splits show how far the two move apart when the validation rows come from the same period.

# %%
CONTROL_SEED = 1
control_rng = np.random.default_rng(CONTROL_SEED)
control_gaps = []
for _ in range(5):
    held = np.zeros(len(xs), dtype=bool)
    held[control_rng.choice(len(xs), size=len(valid_xs), replace=False)] = True
    control = forest(xs[~held], y[~held])
    control_gaps.append(rmse(control.predict(xs[held]), y[held]) - rmse(control.oob_prediction_, y[~held]))
time_gap = rf_rmse - oob_rmse

# %% tags=["nbval-ignore-output"]
print(f"valid - OOB RMSE, 2010 as validation: {time_gap:+.3f}")
print("valid - OOB RMSE, 341 random 2006-2009 houses as validation:", [f"{g:+.3f}" for g in control_gaps],
      f"mean {np.mean(control_gaps):+.3f}")

# %%
# sweep: 2010 gap - mean random-split gap 0.03627..0.04649 over 6 runs; claim > 0
print("claim: the 2010 gap is larger than the mean gap of random splits:", time_gap > np.mean(control_gaps))

# %% [markdown]
# With random validation houses, the two scores agree on average, but a single split can land a few hundredths
# either way: 341 houses are few, and one unusual house weighs a lot. The 2010 gap sits at the top of that range. So
# the future *is* harder, but part of the gap is simply which houses sold in 2010; with one time split we cannot
# separate the two. That is the honest reading of any single validation score, and the reason to report its
# uncertainty when you can.

# %% [markdown]
# ## 7. Reading a forest
#
# A forest of 100 deep trees is not a model anyone reads node by node. Five questions can still be answered, and
# the fastai book argues they are often worth more than the predictions: *how sure is the model about this house?
# which columns matter? which are redundant? how does the price move with one column? why this price for this
# house?* A sixth question guards the rest: *is a column leaking the answer?*
#
# ### (a) How confident is the forest about a house?
#
# The trees' predictions for one house spread around their mean; a wide spread says the trees disagree, often
# because the house is unusual. The standard deviation over trees is a cheap confidence signal (not a calibrated
# interval).

# %%
spread = tree_preds.std(0)
show = np.argsort(spread)[[0, 85, 170, 255, -1]]  # the most certain house, three in between, the least certain
fig, ax = plt.subplots(figsize=(6, 2.8))
ax.errorbar(range(5), tree_preds.mean(0)[show], yerr=spread[show], fmt="o", capsize=4, label="forest: mean ± 1 sd over trees")
ax.plot(range(5), valid_y[show], "x", color="#f58518", ms=8, label="actual")
ax.set(xticks=range(5), xticklabels=[f"house {i}" for i in show], ylabel="log price",
       title="five 2010 houses, from most to least certain")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ### (b) Which columns matter? Feature importance
#
# Each split lowers the SSE of its node; adding up those decreases per column, over all trees, and normalising them to
# sum to 1 gives `feature_importances_` ("mean decrease in impurity"). It is computed on the training rows, so it
# can favour columns with many distinct values; treat it as a ranking to explore, not a measurement.

# %%
importance = pd.Series(rf.feature_importances_, index=xs.columns).sort_values(ascending=False)
print("top 3:", list(importance.index[:3]))
fig, ax = plt.subplots(figsize=(6, 4))
importance[:20][::-1].plot.barh(ax=ax, color="#4c78a8")
ax.set(xlabel="feature importance (mean decrease in SSE, sums to 1)", title="the 20 most important of 88 columns")
plt.show()

# %% [markdown]
# Age and living area dominate, then garage, basement and first-floor size. Most of the 88 columns contribute almost
# nothing. Dropping those makes the model simpler to study at a small price in accuracy:

# %%
keep = list(importance.index[importance > 0.005])
rf_keep = forest(xs[keep], y)
keep_rmse = rmse(rf_keep.predict(valid_xs[keep]), valid_y)

# %% tags=["nbval-ignore-output"]
print(f"{len(keep)} columns with importance > 0.005: valid RMSE {keep_rmse:.3f} (all 88: {rf_rmse:.3f})")

# %%
# sweep: Year_Built and Gr_Liv_Area in the top 3 (1 = yes) 1..1 over 6 runs; claim > 0.5
print("claim: Year_Built and Gr_Liv_Area are in the top 3:", {"Year_Built", "Gr_Liv_Area"} <= set(importance.index[:3]))
# sweep: columns with importance > 0.005 19..22 over 6 runs; claim >= 13
# sweep: columns with importance > 0.005 19..22 over 6 runs; claim <= 28
print("claim: 13 to 28 columns have importance > 0.005:", 13 <= len(keep) <= 28)
# sweep: abs(kept columns - all) valid RMSE 0.002193..0.006118 over 6 runs; claim < 0.015
print("claim: their forest is within 0.015 of the full one:", abs(keep_rmse - rf_rmse) < 0.015)

# %% [markdown]
# ### (c) Which columns say the same thing?
#
# Two columns that carry the same information split the importance between them and make both look weaker.
# Rank-correlation clustering finds them: compute the Spearman correlation of every pair (correlation of the *ranks*,
# so any monotone relation counts), and merge the most correlated columns first. `cluster_columns` draws the
# dendrogram (fastbook's helper, rebuilt on scipy in `course_utils.plots`); pairs that merge far to the right are
# near-duplicates.

# %%
from course_utils.plots import cluster_columns  # noqa: E402

fig, ax = plt.subplots(figsize=(7, 5))
corr = cluster_columns(xs[keep], ax=ax)
plt.show()
for a, b in (("Garage_Cars", "Garage_Area"), ("Total_Bsmt_SF", "First_Flr_SF"), ("Year_Built", "Year_Remod_Add")):
    print(f"Spearman({a}, {b}) = {corr.loc[a, b]:.2f}")

# %% [markdown]
# Garage capacity in cars and garage area in square feet measure one thing twice; so do basement and first-floor
# area (most houses have a basement under the whole first floor), and to a lesser degree the build year and the
# remodel year (they are equal for houses never remodelled). Is one of each pair redundant? Ask the model: refit
# without it and compare the OOB score (`oob_score_`, an R²: 1 is perfect, 0 is the mean). A quick forest of 40 trees
# on a sample of rows is enough for this comparison, as long as every variant uses the same settings and seed.

# %%
def get_oob(df):
    """OOB R² of a quick 40-tree forest (same seed for every call, so variants differ only by their columns)."""
    return forest(df, y, n_estimators=40, max_samples=0.5).oob_score_


base_oob = get_oob(xs[keep])
drop_oob = {c: get_oob(xs[keep].drop(columns=c)) for c in ("Garage_Cars", "Garage_Area", "First_Flr_SF",
                                                         "Total_Bsmt_SF", "Year_Remod_Add")}

# %% tags=["nbval-ignore-output"]
print(f"OOB R², all {len(keep)} columns: {base_oob:.4f}")
for column, score in drop_oob.items():
    print(f"  without {column:<15} {score:.4f} ({score - base_oob:+.4f})")

# %%
print("claim: Spearman(Garage_Cars, Garage_Area) > 0.8:", corr.loc["Garage_Cars", "Garage_Area"] > 0.8)
# sweep: abs(OOB R2 change) without Garage_Area 0.001056..0.003216 over 6 runs; claim < 0.01
print("claim: dropping Garage_Area changes the OOB R² by < 0.01:", abs(drop_oob["Garage_Area"] - base_oob) < 0.01)

# %% [markdown]
# ### (d) How does the price move with one column? Partial dependence
#
# Importance says *that* a column matters, not *how*. A **partial dependence plot** answers "all else equal": take
# every training house, set its `Year_Built` to 1900 and average the forest's predictions; then 1901; and so on. The
# curve is the model's price as a function of that column alone, with every other column kept as it is in the data.
# scikit-learn draws it with `PartialDependenceDisplay.from_estimator` (it refuses integer columns, hence the cast
# to float).

# %%
from sklearn.inspection import PartialDependenceDisplay, partial_dependence  # noqa: E402

xs_float = xs[keep].astype(float)
pdp = partial_dependence(rf_keep, xs_float, ["Year_Built"], grid_resolution=20)
pdp_rise = pdp["average"][0][-1] - pdp["average"][0][0]
fig, axes = plt.subplots(1, 2, figsize=(8, 2.8), sharey=True)
PartialDependenceDisplay.from_estimator(rf_keep, xs_float, ["Year_Built", "Gr_Liv_Area"], grid_resolution=20,
                                        ax=axes)
plt.show()

# %% tags=["nbval-ignore-output"]
print(f"partial dependence on Year_Built: {pdp_rise:+.3f} in log price from the bottom of the grid to the top "
      f"(x{np.exp(pdp_rise):.2f} in dollars)")

# %%
# sweep: Year_Built PDP rise 0.3597..0.4029 over 6 runs; claim > 0.2
print("claim: the Year_Built curve rises by > 0.2 log units over its grid:", pdp_rise > 0.2)

# %% [markdown]
# Newer houses sell for more, with a jump in the early 1980s (the root split of §5's tree); bigger houses too, almost
# steadily (the grid spans the 5th to the 95th percentile of each column, where the data are). Read these curves for what they are: the
# *model's* response, not a causal effect. Setting a 1900 house's `Year_Built` to 2005 while keeping its 1900 layout,
# heating and garage creates houses that do not exist; where columns are correlated, the curve averages over such
# impossible rows. Redundancy work (§7c) and domain knowledge come first.
#
# ### (e) Why this price for this house? Contributions
#
# For a single prediction, a tree gives its own explanation. The root predicts the mean of all training houses (the
# **bias**). Each split a house passes through moves the prediction from the parent node's mean to the child's mean;
# credit that move to the split's column. At the leaf, the bias plus the moves is exactly the prediction. This is
# what the `treeinterpreter` package computed (it no longer runs with current scikit-learn, so we write it). Here it
# is for one tree and one house, walking the tree's arrays: `feature[node]`, `threshold[node]`,
# `children_left/right[node]` and `value[node]` (the node's mean).

# %%
def tree_contributions(tree, row):
    """(bias, {column index: summed change of the node mean}) for one row of one fitted sklearn tree."""
    t = tree.tree_
    node, moves = 0, {}
    while t.children_left[node] != -1:  # -1 marks a leaf
        col = t.feature[node]
        child = t.children_left[node] if row[col] <= t.threshold[node] else t.children_right[node]
        moves[col] = moves.get(col, 0.0) + t.value[child, 0, 0] - t.value[node, 0, 0]
        node = child
    return t.value[0, 0, 0], moves


house = valid_xs[keep].to_numpy(np.float32)[0]  # sklearn compares float32 values with the thresholds
bias, moves = tree_contributions(rf_keep.estimators_[0], house)
tree_pred = rf_keep.estimators_[0].predict(house[None])[0]
print("tree 0: bias + the moves equals its prediction within 1e-12:", abs(bias + sum(moves.values()) - tree_pred) < 1e-12)

# %% tags=["nbval-ignore-output"]
print(f"tree 0: bias {bias:.4f} + the moves of {len(moves)} columns = {bias + sum(moves.values()):.4f}; "
      f"its prediction {tree_pred:.4f}")

# %% [markdown]
# The path that `tree_contributions` walks is also what `decision_path` reports (a sparse row per house with a 1 for
# every node it visits): the same nodes, from the library.

# %%
path_nodes = rf_keep.estimators_[0].decision_path(house[None]).indices
walked, node = [0], 0
t0 = rf_keep.estimators_[0].tree_
while t0.children_left[node] != -1:
    node = t0.children_left[node] if house[t0.feature[node]] <= t0.threshold[node] else t0.children_right[node]
    walked.append(node)
print("decision_path visits the nodes we walked:", list(path_nodes) == walked)

# %% [markdown]
# A forest's prediction is the mean of its trees', so its contributions are the mean of the trees' contributions,
# and its bias the mean of their root values. For the first 2010 house:

# %%
def forest_contributions(forest, row):
    """(bias, contributions per column) of one float32 row: the means over the forest's trees."""
    contrib = np.zeros(forest.n_features_in_)
    biases = []
    for tree in forest.estimators_:
        bias, moves = tree_contributions(tree, row)
        biases.append(bias)
        for col, move in moves.items():
            contrib[col] += move / len(forest.estimators_)
    return np.mean(biases), contrib


forest_bias, forest_contrib = forest_contributions(rf_keep, house)
forest_pred = rf_keep.predict(valid_xs[keep].iloc[:1])[0]
print("claim: |bias + sum of contributions - prediction| < 1e-6:", abs(forest_bias + forest_contrib.sum() - forest_pred) < 1e-6)

from course_utils.plots import waterfall  # noqa: E402

fig, ax = plt.subplots(figsize=(7, 3.6))
waterfall(forest_bias, forest_contrib, keep, ax=ax, top=8)
ax.set_title("why the forest prices the first 2010 house as it does (log price)")
plt.show()

# %% [markdown]
# Read it from the top: the average training house, then each column's push up (green) or down (red), the small
# ones grouped as "other", ending at this house's prediction. Such a chart is what you show a customer or a loan
# officer who asks "why?".
#
# **What-if explorer.** Pick a 2010 house, then change its year of construction, living area, garage size or
# neighbourhood, and watch the forest's price, the trees' disagreement and the waterfall move. It uses the forest on
# all 88 columns. (Try an old house moved to a new year: how much of the price follows? And a living area far beyond
# any training house?) First the first house as it is, the view the explorer opens with:

# %%
from course_utils.plots import draw_house, house_explorer  # noqa: E402

price, house_spread = draw_house(rf, valid_xs, forest_contributions, list(to.classes["Neighborhood"]), index=0)
print("claim: the explorer's price is exp(forest prediction):",
      np.isclose(price, np.exp(rf.predict(valid_xs.iloc[:1])[0]), rtol=1e-6))

# %% tags=["nbval-ignore-output"]
house_explorer(rf, valid_xs, forest_contributions, list(to.classes["Neighborhood"]))

# %% [markdown]
# ### (f) Is a column leaking the answer?
#
# **Leakage** is information in the training data that would not be available when the model is used. Jeremy Howard
# tells of a Kaggle competition on university grant applications where the winning signal was a set of columns
# filled in only *after* a grant was accepted: a model that scores brilliantly and is useless in practice. The
# symptoms are always the same: a score too good to be true, and one column carrying most of the importance.
#
# Here is a leak of the kind real tables carry. Property sites publish the *price per square foot* of every sold
# house; a scraped table of sales might well include it. It is computed from the price, so it will not exist for
# a house not yet sold:

# %%
leaky_xs, leaky_valid = xs[keep].copy(), valid_xs[keep].copy()
leaky_xs["Price_per_SqFt"] = np.exp(y) / xs["Gr_Liv_Area"]
leaky_valid["Price_per_SqFt"] = np.exp(valid_y) / valid_xs["Gr_Liv_Area"]
rf_leaky = forest(leaky_xs, y, n_estimators=40)
leaky_rmse = rmse(rf_leaky.predict(leaky_valid), valid_y)
leak_share = pd.Series(rf_leaky.feature_importances_, index=leaky_xs.columns)

# %% tags=["nbval-ignore-output"]
print(f"valid RMSE with the leaky column: {leaky_rmse:.3f} (without it: {keep_rmse:.3f})")
print("importance:", leak_share.sort_values(ascending=False).round(3)[:4].to_dict())

# %%
# sweep: leaky / honest valid RMSE 0.6102..0.6342 over 6 runs; claim < 0.8
print("claim: the leak cuts the valid RMSE by more than 20%:", leaky_rmse < 0.8 * keep_rmse)
# sweep: leaky column's importance rank 3..3 over 6 runs; claim < 4
leak_rank = list(leak_share.sort_values(ascending=False).index).index("Price_per_SqFt") + 1
print(f"claim: the leaky column jumps into the top 3 of {len(leak_share)}:", leak_rank < 4)

# %% [markdown]
# Both symptoms at once: an error far below any honest model's, and a new column jumping straight into the top
# three. (It would do even better in a model that can multiply: a tree needs many splits on both the ratio and
# the living area to rebuild a price from them.) The fix is not a modelling trick: find
# out when each column becomes known, and drop those known only after the event you predict. Exercise 06.7 hunts a
# leak in another real table.
#
# ## 8. Where trees fail: extrapolation and domain shift
#
# ### A tree cannot extrapolate
#
# A leaf predicts the mean of training targets, so a tree, and a forest of trees, can never predict a value outside
# the range of its training targets. On data with a trend that matters: 40 points on a line with noise, a forest
# trained on the first 30 and asked about the last 10.

# %%
line_rng = np.random.default_rng(42)
x_line = np.linspace(0, 20, 40)
y_line = x_line + line_rng.normal(size=40)
rf_line = RandomForestRegressor(n_estimators=40, random_state=FOREST_SEED).fit(x_line[:30, None], y_line[:30])
lin_line = LinearRegression().fit(x_line[:30, None], y_line[:30])
beyond = x_line > 15
rf_beyond = rf_line.predict(x_line[beyond, None])
print("highest training target:", round(float(y_line[:30].max()), 3))
print("claim: every forest prediction for x > 15 is <= the highest training target:",
      bool((rf_beyond <= y_line[:30].max() + 1e-9).all()))

fig, ax = plt.subplots(figsize=(6, 2.8))
ax.scatter(x_line[:30], y_line[:30], s=14, label="training points")
ax.scatter(x_line[30:], y_line[30:], s=14, color="gray", label="new points")
ax.plot(x_line, rf_line.predict(x_line[:, None]), color="#f58518", label="random forest")
ax.plot(x_line, lin_line.predict(x_line[:, None]), color="#54a24b", ls="--", label="linear model")
ax.axvline(x_line[29], color="black", lw=0.8, ls=":")
ax.set(xlabel="x", ylabel="y", title="past the training range, the forest goes flat")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# When prices trend over time, a forest trained on the past can only price the future at past levels. The book's
# bulldozer prices trend over 20 years, and this was a real source of error there. Ames's median price barely moved
# from 2006 to 2010 (159,500, 165,125, 161,000, 160,850 and 155,000 dollars), so here it matters less. A neural
# network, a smooth function of its inputs, can extrapolate a trend (well or badly), and an ensemble of the two
# hedges (§10).
#
# ### Are the validation rows from another domain?
#
# A direct test: label every row by the split it belongs to (`is_valid`) and train a forest to predict that label
# from the features. If the two sets were alike, the forest would have nothing to learn; the columns it finds most
# useful are the ones that *differ* between training and validation.

# %%
domain_x = pd.concat([xs, valid_xs])
domain_y = np.r_[np.zeros(len(xs)), np.ones(len(valid_xs))]
rf_domain = forest(domain_x, domain_y, n_estimators=40)
domain_top = pd.Series(rf_domain.feature_importances_, index=domain_x.columns).sort_values(ascending=False)
TIME_PROXIES = {"Sale_Order", "saleYear", "Year_Sold", "saleElapsed"}

# %% tags=["nbval-ignore-output"]
print("most useful columns for telling 2010 from earlier:", domain_top[:6].round(3).to_dict())

# %%
# sweep: domain top 4 are the time proxies (1 = yes) 1..1 over 6 runs; claim > 0.5
print("claim: the top 4 are the time proxies:", set(domain_top.index[:4]) <= TIME_PROXIES)

fig, ax = plt.subplots(figsize=(6, 2.8))
domain_top[:10][::-1].plot.barh(ax=ax, color="#4c78a8")
ax.set(xlabel="importance for predicting is_valid", title="what differs between the 2010 sales and the rest")
plt.show()

# %% [markdown]
# No surprise: the columns that tell 2010 apart are the ones that encode time, including `Sale_Order`, our row
# number that turned out to be a clock. In the bulldozers data the book found `SalesID` and `MachineID` there, and
# dropping them *improved* the validation error: the model had been leaning on them in ways that did not carry into
# the future. Does the same hold here? Drop all four:

# %%
no_time = sorted(TIME_PROXIES)
no_time_rmse = rmse(forest(xs.drop(columns=no_time), y).predict(valid_xs.drop(columns=no_time)), valid_y)

# %% tags=["nbval-ignore-output"]
print(f"valid RMSE: all columns {rf_rmse:.3f} | without the four time proxies {no_time_rmse:.3f}")

# %%
# sweep: abs(no time proxies - all) valid RMSE 0.0001475..0.005017 over 6 runs; claim < 0.015
print("claim: dropping the four time proxies moves the valid RMSE by < 0.015:", abs(no_time_rmse - rf_rmse) < 0.015)

# %% [markdown]
# Here it makes no real difference: in Ames the time columns carry little signal about the price (the town's median
# price moved little between 2006 and 2010, unlike bulldozer prices over 20 years), so removing them neither helps
# nor hurts. The lesson is the *method*: train a domain classifier, look at what it finds, and test
# whether removing it helps. It sometimes does, as for the bulldozers, and you cannot know in advance.

# %% [markdown]
# ## 9. A neural network with entity embeddings
#
# A network needs numbers in a common scale for its continuous columns and a learned vector per level for its
# categorical ones: the **entity embeddings** of Guo and Berkhahn (2016), who finished third in Kaggle's Rossmann
# sales competition with them and little feature engineering. §1 showed why this is natural: a linear layer on a
# one-hot column is a lookup of rows of its weight matrix, and an embedding is that lookup with the matrix learned.
#
# The preparation changes a little from the forest's:
#
# - `max_card=30`: integer columns with at most 30 distinct values (counts of rooms, months, ordinal codes) become
#   categories with their own embeddings; larger ones stay continuous. `saleElapsed` (dates as seconds) is forced
#   continuous, so that the network can extrapolate in time.
# - `Normalize` standardises the continuous columns with the training means and standard deviations (§1's
#   `(x - mean) / std`, fitted on the training rows only).

# %%
from fastai.tabular.all import (TabularModel, get_emb_sz, set_seed, tabular_config,  # noqa: E402
                                tabular_learner)

nn_cont, nn_cat = cont_cat_split(ames, max_card=30, dep_var=dep_var)
nn_cat = [c for c in nn_cat if c != "saleElapsed"]
nn_cont = [c for c in nn_cont if c != "saleElapsed"] + ["saleElapsed"]
to_nn = TabularPandas(ames, procs=[Categorify, FillMissing, Normalize], cat_names=nn_cat, cont_names=nn_cont,
                      y_names=dep_var, splits=splits)
dls = to_nn.dataloaders(bs=256, device=device)
emb_szs = get_emb_sz(to_nn)
print("continuous:", len(to_nn.cont_names), "| categorical:", len(to_nn.cat_names))
print("embedding sizes (levels incl. #na#, width), first six:", emb_szs[:6])
print("Neighborhood:", emb_szs[to_nn.cat_names.index("Neighborhood")], "| total embedding width:",
      sum(w for _, w in emb_szs))

# %% [markdown]
# `get_emb_sz` picks each width with fastai's rule of thumb, `min(600, round(1.6 * n_levels ** 0.56))`: 29
# neighbourhoods (with `#na#`) get 11 numbers each, a yes/no flag gets 3.
#
# The learner: two hidden layers of 200 and 100 units, mean squared error on the log price (so that the
# RMSE is its square root), and `y_range` slightly wider than the training targets, so the final sigmoid can reach
# them (§03's sigmoid range).

# %%
y_lo, y_hi = float(y.min()), float(y.max())
y_range = (y_lo - 0.05 * (y_hi - y_lo), y_hi + 0.05 * (y_hi - y_lo))
NN_SEED = 42
set_seed(NN_SEED, reproducible=True)
learn = tabular_learner(dls, layers=[200, 100], y_range=y_range, loss_func=F.mse_loss, n_out=1)
with learn.no_bar(), learn.no_logging():
    learn.fit_one_cycle(8, 1e-2)
epoch_table = [(i + 1, *map(float, v[:2])) for i, v in enumerate(learn.recorder.values)]
with learn.no_bar():
    nn_valid = learn.get_preds()[0].squeeze(1).numpy().astype(np.float64)
nn_rmse = rmse(nn_valid, valid_y)

# %% tags=["nbval-ignore-output"]
print("epoch  train loss  valid loss")
for epoch, train_loss, valid_loss in epoch_table:
    print(f"{epoch:5d} {train_loss:11.4f} {valid_loss:11.4f}")
print(f"network valid RMSE: {nn_rmse:.3f} (forest: {rf_rmse:.3f})")

# %%
# sweep: network valid RMSE 0.1595..0.1774 over 6 runs; claim < 0.22
print("claim: the network's valid RMSE < 0.22:", nn_rmse < 0.22)
fig, ax = plt.subplots(figsize=(6, 2.6))
learn.recorder.plot_loss(ax=ax, with_valid=True)
ax.set(ylim=(0, 0.2), xlabel="batch", ylabel="MSE of log price", title="tabular_learner, 8 epochs of one cycle")
plt.show()

# %% [markdown]
# Where did `1e-2` come from? fastai's learning-rate finder (chapter 04), run on a fresh copy of the learner. In the
# stored run the loss starts falling near 1e-5, keeps falling up to about 0.2 and then blows up. Any rate on the
# falling stretch trains; the "valley" marker is a cautious pick, and the book's `1e-2`, about a tenth of the rate at
# the minimum, a bolder one that one-cycle's warm-up makes safe. (`lr_find` saves and restores the weights, so it
# gets a temporary folder.)

# %% tags=["nbval-ignore-output"]
with tempfile.TemporaryDirectory() as tmp:
    set_seed(NN_SEED, reproducible=True)
    finder = tabular_learner(dls, layers=[200, 100], y_range=y_range, loss_func=F.mse_loss, n_out=1, path=tmp)
    with finder.no_bar(), finder.no_logging():
        suggestion = finder.lr_find()
plt.show()
print(f"lr_find's suggestion (valley): {suggestion.valley:.1e}")

# %% [markdown]
# ### What is inside `tabular_learner`
#
# Printing the model shows fastai's `TabularModel` (the fastai book walks its `forward` line by line in ch. 15). Its
# 66 embeddings make a long list; here are the count, one example and everything after them:

# %% tags=["nbval-ignore-output"]
model = learn.model
print(f"embeds: {len(model.embeds)} nn.Embedding layers, Neighborhood's is",
      model.embeds[to_nn.cat_names.index("Neighborhood")])
print("emb_drop:", model.emb_drop)
print("bn_cont:", model.bn_cont)
print("layers:", model.layers)

# %% [markdown]
# Its `forward(x_cat, x_cont)`:
#
# 1. `embeds`: one `nn.Embedding` per categorical column; each column's codes pick rows, and the rows are concatenated
#    into one vector per house; `emb_drop` applies dropout to it (0 by default);
# 2. `bn_cont`: a `BatchNorm1d` over the continuous columns (a second normalisation, learned);
# 3. the two are concatenated and go through `layers`: Linear → ReLU → BatchNorm per hidden layer, then the output
#    Linear, then `SigmoidRange(lo, hi)`.
#
# Written by hand, without the BatchNorms and dropout, the idea fits in twenty lines:

# %%
from torch import nn  # noqa: E402


class EmbeddingNet(nn.Module):
    """Embeddings for the categorical columns, concatenated with the continuous ones, then an MLP."""

    def __init__(self, emb_szs, n_cont, hidden, y_range):
        super().__init__()
        self.embeds = nn.ModuleList(nn.Embedding(n_levels, width) for n_levels, width in emb_szs)
        sizes = [sum(w for _, w in emb_szs) + n_cont, *hidden]
        layers = [m for a, b in zip(sizes, sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())]
        self.mlp = nn.Sequential(*layers, nn.Linear(sizes[-1], 1))
        self.lo, self.hi = y_range

    def forward(self, x_cat, x_cont):
        x = torch.cat([emb(x_cat[:, i]) for i, emb in enumerate(self.embeds)] + [x_cont], dim=1)
        return self.lo + (self.hi - self.lo) * torch.sigmoid(self.mlp(x))


def train_by_hand(model, dls, epochs, lr, seed):
    """A plain loop: Adam at a fixed rate, full passes over the training batches."""
    torch.manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        model.train()
        for x_cat, x_cont, target in dls.train:
            loss = F.mse_loss(model(x_cat, x_cont), target)
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return torch.cat([model(c, x).squeeze(1) for c, x, _ in dls.valid]).cpu().numpy().astype(np.float64)


torch.manual_seed(NN_SEED)
scratch_net = EmbeddingNet(emb_szs, len(to_nn.cont_names), [200, 100], y_range).to(dls.device)  # where the batches are
scratch_valid = train_by_hand(scratch_net, dls, epochs=8, lr=3e-3, seed=NN_SEED)
scratch_rmse = rmse(scratch_valid, valid_y)

# %% tags=["nbval-ignore-output"]
print(f"valid RMSE: EmbeddingNet by hand {scratch_rmse:.3f} | fastai's TabularModel {nn_rmse:.3f}")

# %%
# sweep: abs(EmbeddingNet - fastai) valid RMSE 0.001826..0.01517 over 6 runs; claim < 0.045
print("claim: the hand-written net lands within 0.045 of fastai's:", abs(scratch_rmse - nn_rmse) < 0.045)

# %% [markdown]
# ### What the embeddings learnt
#
# Each neighbourhood is now 11 numbers. Projected on their two principal components, neighbourhoods that the network
# treats alike sit close together, although nobody told it which is which: this is how an embedding turns a nominal
# column into something with a geometry.

# %%
hood_levels = list(to_nn.classes["Neighborhood"])
hood_emb = model.embeds[to_nn.cat_names.index("Neighborhood")].weight.detach().cpu().double()
centred = hood_emb - hood_emb.mean(0)
_, _, v = torch.linalg.svd(centred, full_matrices=False)
hood_2d = (centred @ v[:2].T).numpy()
hood_price = ames.loc[~is_valid].groupby("Neighborhood", observed=True)[dep_var].median()
fig, ax = plt.subplots(figsize=(8, 5))
colours = [hood_price.get(h, np.nan) for h in hood_levels]
points = ax.scatter(hood_2d[:, 0], hood_2d[:, 1], c=colours, cmap="viridis", s=30)
for (px, py), name in zip(hood_2d, hood_levels):
    ax.annotate(name.replace("_", " "), (px, py), fontsize=7, xytext=(3, 2), textcoords="offset points")
fig.colorbar(points, ax=ax, label="median log price (training)")
ax.margins(x=0.2)
ax.set(xlabel="first principal component", ylabel="second principal component", xticks=[], yticks=[],
       title="Neighborhood embedding (11-d), projected on 2 components")
plt.show()

# %% [markdown]
# The colour is each neighbourhood's median training price, which the embedding never saw as such. Do not expect a
# clean map: 11 dimensions are squeezed into 2, many neighbourhoods have only a few dozen houses, and an embedding
# only needs to be useful to the layers after it. Look for neighbours instead: which pricey neighbourhoods sit near
# each other in this run? (`#na#` and the rarest neighbourhoods barely moved from their random start: few houses, few
# gradient updates.) Guo and Berkhahn went one step further and fed such learned
# vectors to other models in place of the codes; Exercise 06.10 tries it with a forest.
#
# ## 10. Ensembles and boosting
#
# ### The forest and the network together
#
# The two models make different kinds of errors: the forest predicts piecewise constants and cannot extrapolate, the
# network is smooth. Averaging their predictions is the simplest ensemble. Its RMSE can never be worse than the mean
# of the two RMSEs: the RMSE is a norm, `‖(a + b)/2 − y‖ ≤ (‖a − y‖ + ‖b − y‖)/2` (the triangle inequality). Whether it
# beats the *better* model depends on how different their errors are.

# %%
assert np.array_equal(to_nn.valid.y.to_numpy(np.float64), valid_y), "both tables list the 2010 houses in one order"
rf_valid = rf.predict(valid_xs)
ensemble_rmse = rmse((rf_valid + nn_valid) / 2, valid_y)
error_corr = np.corrcoef(rf_valid - valid_y, nn_valid - valid_y)[0, 1]

# %% tags=["nbval-ignore-output"]
print(f"valid RMSE: forest {rf_rmse:.3f} | network {nn_rmse:.3f} | their average {ensemble_rmse:.3f}")
print(f"correlation of the two models' errors: {error_corr:.2f}")

# %%
print("claim: ensemble RMSE <= mean of the two RMSEs (always, by the triangle inequality):",
      ensemble_rmse <= (rf_rmse + nn_rmse) / 2)

# %% [markdown]
# ### Boosting, from scratch
#
# A forest averages *independent* trees. **Gradient boosting** builds trees *in sequence*, each one correcting the
# ones before:
#
# 1. start from a constant prediction: the mean of the targets;
# 2. compute the residuals, target minus current prediction (for squared error, these are the negative gradients of
#    the loss with respect to the predictions: hence "gradient" boosting);
# 3. fit a small tree (depth 3 here) to the residuals;
# 4. add the tree's predictions, scaled down by a learning rate (0.1), to the current prediction;
# 5. repeat from step 2.
#
# Each tree is weak, but each fixes part of what is still wrong. Unlike a forest, boosting *can* overfit as trees are
# added, so the number of rounds and the learning rate are tuned on validation data.

# %%
from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor  # noqa: E402

X_boost, X_boost_valid = xs.to_numpy(np.float32).astype(np.float64), valid_xs.to_numpy(np.float32).astype(np.float64)
BOOST_SEED = 0
boost_pred, boost_valid = np.full(len(y), y.mean()), np.full(len(valid_y), y.mean())
for round_ in range(100):
    step_tree = DecisionTreeRegressor(max_depth=3, random_state=BOOST_SEED + round_).fit(X_boost, y - boost_pred)
    boost_pred += 0.1 * step_tree.predict(X_boost)
    boost_valid += 0.1 * step_tree.predict(X_boost_valid)

sk_boost = GradientBoostingRegressor(n_estimators=100, learning_rate=0.1, max_depth=3, criterion="squared_error",
                                     random_state=BOOST_SEED).fit(X_boost, y)
print("boosting by hand == GradientBoostingRegressor on every training house (within 1e-9):",
      np.allclose(boost_pred, sk_boost.predict(X_boost), rtol=0, atol=1e-9))

# %% [markdown]
# (Why compare on the training houses? Some columns split the training houses identically, `Year_Sold` and
# `saleYear` for one; the two implementations may pick different ones of such a tie, which changes nothing on the
# training rows but can on new rows where the columns differ.)
#
# scikit-learn's `HistGradientBoostingRegressor` is the fast modern version (the idea of LightGBM): it bins each
# column into at most 255 values first, so each split search is a pass over a histogram, not over sorted rows; it also
# handles categorical columns and missing values natively, and stops early when a held-out part of the training data
# stops improving.

# %%
hgb = HistGradientBoostingRegressor(random_state=BOOST_SEED).fit(xs, y)
boost_rmse, hgb_rmse = rmse(boost_valid, valid_y), rmse(hgb.predict(valid_xs), valid_y)

# %% tags=["nbval-ignore-output"]
print(f"valid RMSE: boosting by hand {boost_rmse:.3f} | HistGradientBoosting {hgb_rmse:.3f} | forest {rf_rmse:.3f} "
      f"| network {nn_rmse:.3f} | forest + network {ensemble_rmse:.3f}")

# %%
# sweep: HistGradientBoosting valid RMSE 0.1628..0.1628 over 6 runs; claim < 0.20
print("claim: HistGradientBoosting's valid RMSE < 0.20:", hgb_rmse < 0.20)

# %% [markdown]
# ## 11. Classification with missing values: credit scoring
#
# The same tools work for a yes/no target. The fastai book's quick start predicts whether an adult earns more than
# 50,000 dollars from census data; our stand-in is a real credit-scoring table (R's `modeldata`): 4,454 loan
# applications, each labelled `good` or `bad` (did the customer repay?), with income, assets, debts, the loan
# amount, home ownership, job type. Unlike Ames, it has real gaps: incomes that were never reported.

# %%
from fastai.tabular.all import CategoryBlock, RandomSplitter, accuracy, range_of  # noqa: E402
from sklearn.ensemble import RandomForestClassifier  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay, confusion_matrix, roc_auc_score  # noqa: E402

credit = data.table("credit").drop(columns="rownames")
print("credit:", credit.shape, "| Status:", credit["Status"].value_counts().to_dict())
print("missing values:", {c: int(n) for c, n in credit.isna().sum().items() if n})

CREDIT_SPLIT = 42  # fixed, not a training seed: Exercise 06.11's check rebuilds this split
credit_splits = RandomSplitter(valid_pct=0.2, seed=CREDIT_SPLIT)(range_of(credit))
credit_cont, credit_cat = cont_cat_split(credit, max_card=1, dep_var="Status")
to_credit = TabularPandas(credit, procs=[Categorify, FillMissing, Normalize], cat_names=credit_cat,
                          cont_names=credit_cont, y_names="Status", y_block=CategoryBlock(), splits=credit_splits)
print("train:", len(to_credit.train), "| valid:", len(to_credit.valid), "| classes:", list(to_credit.vocab))
print("added by FillMissing:", [c for c in to_credit.cat_names if c.endswith("_na")])
print("categorical gaps become #na#, code 0: Home levels", list(to_credit.classes["Home"]))

# %% [markdown]
# There is no time order to respect here (the question is about applicants like these, not about the future), so a
# random 20% validates. `FillMissing` added a flag for each continuous column with gaps; whether an applicant left
# the income blank may itself say something.
#
# A forest and a network, both scored on the validation applications by accuracy and by the **AUC** (the area under
# the ROC curve: the probability that a random bad loan gets a higher P(bad) than a random good one; 0.5 is guessing,
# 1 is perfect). The majority guess, "every loan is good", is the baseline.

# %%
credit_xs, credit_y = to_credit.train.xs, to_credit.train.y.to_numpy()
credit_valid_xs, credit_valid_y = to_credit.valid.xs, to_credit.valid.y.to_numpy()
BAD = list(to_credit.vocab).index("bad")
rf_credit = RandomForestClassifier(n_estimators=100, min_samples_leaf=3, max_features=0.5, n_jobs=-1,
                                   random_state=FOREST_SEED).fit(credit_xs, credit_y)
rf_credit_p = rf_credit.predict_proba(credit_valid_xs)[:, list(rf_credit.classes_).index(BAD)]

set_seed(NN_SEED, reproducible=True)
learn_credit = tabular_learner(to_credit.dataloaders(bs=128, device=device), layers=[200, 100], metrics=accuracy)
with learn_credit.no_bar(), learn_credit.no_logging():
    learn_credit.fit_one_cycle(5, 1e-2)
with learn_credit.no_bar():
    nn_credit_p = learn_credit.get_preds()[0][:, BAD].numpy().astype(np.float64)

is_bad = credit_valid_y == BAD
majority = max(is_bad.mean(), 1 - is_bad.mean())
credit_scores = {name: (((p >= 0.5) == is_bad).mean(), roc_auc_score(is_bad, p))
                 for name, p in (("forest", rf_credit_p), ("network", nn_credit_p))}
print(f"majority guess ('good') on the validation loans: {majority:.3f}")

# %% tags=["nbval-ignore-output"]
for name, (acc, auc) in credit_scores.items():
    print(f"{name:>8}: accuracy {acc:.3f} | AUC {auc:.3f}")

# %%
# sweep: credit: worse accuracy - majority 0.07303..0.07753 over 6 runs; claim > 0.05
print("claim: forest and network both beat the majority guess by > 0.05:",
      all(acc > majority + 0.05 for acc, _ in credit_scores.values()))
# sweep: credit: worse AUC 0.8336..0.8385 over 6 runs; claim > 0.80
print("claim: both have AUC > 0.80:", all(auc > 0.80 for _, auc in credit_scores.values()))

# %% [markdown]
# Accuracy hides what kind of mistakes a model makes. The confusion matrix of the forest at the default threshold,
# "flag as bad when P(bad) ≥ 0.5":

# %%
fig, ax = plt.subplots(figsize=(3.6, 3.2))
matrix = confusion_matrix(is_bad, rf_credit_p >= 0.5, labels=[False, True])
ConfusionMatrixDisplay(matrix, display_labels=["good", "bad"]).plot(ax=ax, colorbar=False, cmap="Blues")
ax.set(xlabel="predicted", ylabel="actual", title="forest, threshold 0.5")
plt.show()

# %% [markdown]
# Most good loans are recognised, but a large share of the bad ones slip through as "good". For a lender the two
# errors have very different costs: a missed bad loan loses the amount lent, a refused good one loses some interest.
# Nothing forces the threshold to be 0.5. Lowering it flags more applicants as bad: more of the bad loans are caught
# (higher **recall**), at the price of refusing more good customers (lower **precision** among the flagged). Which
# threshold is right is a business decision, made on validation data with the costs in hand; Exercise 06.11 makes one.
# Chapter 08 returns to precision, recall and thresholds at length.
#
# ## Summary
#
# - A table's columns come in kinds: continuous (floats, standardised), ordinal (ordered codes) and nominal (one-hot
#   vectors, or codes for trees, or learned embeddings for networks). A linear layer on one-hot inputs *is* a lookup.
# - Prepare once, reproducibly: dates to parts, sentinels to `NaN`, ordered categoricals, then `TabularPandas` with
#   `Categorify`, `FillMissing` (+ `_na` flags) and, for networks, `Normalize`. Split by time when you forecast.
# - A decision tree is a greedy search for the split that most reduces the squared error; left alone it memorises.
#   Bagging averages trees trained on bootstrap samples; a random forest adds random columns per split. OOB error is
#   free validation on training-period rows.
# - Read the forest: per-tree spread for confidence, importances to rank columns, Spearman clustering for
#   redundancy, partial dependence for shape (not causes), contributions for one prediction; look for leaks.
# - Trees cannot extrapolate; a domain classifier tells you what differs between training and validation.
# - Start with a forest; then try gradient boosting and a network with embeddings, and average what you have.
#   Embeddings pay most for high-cardinality columns.

# %% [markdown]
# ## Exercises
#
# Each exercise ends with a `check(...)` cell that prints ✅ or ❌ with a hint. Write your code where it says
# `# your code here`; the checks run your functions on inputs of their own. The difficulty runs from 1 (a few
# lines) to 3 (a small project).

# %% [markdown]
# ### Exercise 06.1 · Multi-hot with `scatter_` (difficulty 1, about 10 minutes)
#
# A house can be near two things at once: Ames records `Condition_1` and `Condition_2` (near a railroad, an arterial
# road, a park...). One-hot encoding one column puts a single 1 per row; a set of categories per row needs a
# **multi-hot** vector, with a 1 at every listed category. Write `multi_hot(codes, n)`:
#
# - `codes` is an int64 tensor of shape `(rows, m)`: each row lists `m` category codes in `0..n-1`, possibly the same
#   code twice (a house whose two conditions are both "Norm");
# - return a float32 tensor of shape `(rows, n)` with 1.0 at every listed code and 0.0 elsewhere (a code listed twice
#   still gives 1.0);
# - use `scatter_` (or `scatter`), as in §1; `F.one_hot` is not allowed, and `codes` must not change.

# %%
def multi_hot(codes, n):
    # BEGIN SOLUTION
    return torch.zeros(codes.shape[0], n).scatter(1, codes, 1.0)
    # END SOLUTION


# %%
check("06.1", multi_hot)

# %% [markdown]
# ### Exercise 06.2 · The best split for a yes/no target (difficulty 2, about 20 minutes)
#
# §5 scored regression splits by their squared error. A classification tree scores a split by the **Gini impurity**
# of its two sides: a node whose rows are a fraction `p` of 1s has $G = 1 - p^2 - (1 - p)^2$ (0 when pure, 0.5 at
# worst). Write `best_split_gini(x, y, min_leaf=1)` for one numeric column `x` (a 1-D NumPy array, unsorted) and
# labels `y` (0/1, int64):
#
# - the score of a split is $n_\text{left} G_\text{left} + n_\text{right} G_\text{right}$ (lower is better; not divided
#   by `n`);
# - thresholds are midpoints between neighbouring *distinct* sorted values, and `x <= threshold` goes left;
# - each side must hold at least `min_leaf` rows;
# - return `(threshold, score)` of the best split, or `None` when no split exists.

# %%
def best_split_gini(x, y, min_leaf=1):
    # BEGIN SOLUTION
    order = np.argsort(x, kind="stable")
    xs_sorted, ys_sorted = x[order], y[order]
    n = len(ys_sorted)
    n_left = np.arange(1, n)
    ones_left = np.cumsum(ys_sorted)[:-1]
    n_right, ones_right = n - n_left, ys_sorted.sum() - ones_left

    def weighted_gini(count, ones):
        p = ones / count
        return count * (1 - p**2 - (1 - p) ** 2)

    score = weighted_gini(n_left, ones_left) + weighted_gini(n_right, ones_right)
    allowed = (xs_sorted[1:] > xs_sorted[:-1]) & (n_left >= min_leaf) & (n_right >= min_leaf)
    if not allowed.any():
        return None
    i = np.flatnonzero(allowed)[np.argmin(score[allowed])]
    return (xs_sorted[i] + xs_sorted[i + 1]) / 2, score[i]
    # END SOLUTION


# %%
check("06.2", best_split_gini)

# %% [markdown]
# ### Exercise 06.3 · A classification tree (difficulty 2, about 25 minutes)
#
# Build a classification tree on your Gini split, as §5 built a regression tree on the squared error. Write
# `fit_tree_clf(X, y, max_depth)` (X a float64 array `(n, p)`, y 0/1) and `predict_proba_tree(tree, X)`:
#
# - at each node, take the split with the lowest score over all columns; a node becomes a leaf when `max_depth` is
#   reached (`max_depth=1` is a single split), when it is pure, or when no column can be split;
# - a leaf predicts the **fraction of 1s** among its training rows (a probability, not a class);
# - `predict_proba_tree` returns P(y = 1) for every row of X, sending `x <= threshold` left.
#
# The check compares your probabilities with scikit-learn's `DecisionTreeClassifier(max_depth=d)` on its own data.

# %%
def fit_tree_clf(X, y, max_depth):
    # BEGIN SOLUTION
    best = None
    if max_depth > 0 and 0 < y.sum() < len(y):
        for col in range(X.shape[1]):
            split = best_split_gini(X[:, col], y)
            if split is not None and (best is None or split[1] < best[2]):
                best = (col, split[0], split[1])
    if best is None:
        return {"p": y.mean()}
    col, thr, _ = best
    go_left = X[:, col] <= thr
    return {"col": col, "thr": thr, "left": fit_tree_clf(X[go_left], y[go_left], max_depth - 1),
            "right": fit_tree_clf(X[~go_left], y[~go_left], max_depth - 1)}
    # END SOLUTION


def predict_proba_tree(tree, X):
    # BEGIN SOLUTION
    probs = []
    for row in X:
        node = tree
        while "p" not in node:
            node = node["left"] if row[node["col"]] <= node["thr"] else node["right"]
        probs.append(node["p"])
    return np.array(probs)
    # END SOLUTION


# %%
check("06.3", fit_tree_clf, predict_proba_tree)

# %% [markdown]
# ### Exercise 06.4 · Predict: the training error of a forest (difficulty 1, about 10 minutes)
#
# §5 showed that one unpruned tree reproduces its training prices exactly (train RMSE 0). Now take a forest of 40
# unpruned trees (`min_samples_leaf=1`), each on a bootstrap sample, half of the columns at each split, fitted on the
# Ames training rows. **Before running anything**, predict its RMSE on its own *training* rows:
#
# - `"a"`: 0, like a single unpruned tree;
# - `"b"`: above 0 but well below the OOB RMSE;
# - `"c"`: about equal to the OOB RMSE;
# - `"d"`: above the OOB RMSE.
#
# and the main reason, one of `"bootstrap"` (each tree never saw about a third of the training rows, and their
# predictions enter every row's average), `"columns"` (each split only looks at half of the columns), `"leaves"`
# (the leaves are too large to fit every row) or `"average"` (averaging always adds error). Then check it with code.

# %%
answer = ...  # "a", "b", "c" or "d"
reason = ...  # "bootstrap", "columns", "leaves" or "average"
# BEGIN SOLUTION
answer, reason = "b", "bootstrap"
unpruned = forest(xs, y, n_estimators=40, min_samples_leaf=1)
train_error, oob_error = rmse(unpruned.predict(xs), y), rmse(unpruned.oob_prediction_, y)
print("confirmed: 0 < train RMSE < 0.7 x OOB RMSE:", 0 < train_error < 0.7 * oob_error)
# END SOLUTION

# %%
check("06.4", answer, reason)

# %% [markdown]
# ### Exercise 06.5 · Bagging with out-of-bag predictions (difficulty 2, about 20 minutes)
#
# §6 bagged trees by hand but took its OOB score from scikit-learn. Write `bag(X, y, k, seed)` that fits `k`
# unpruned `DecisionTreeRegressor`s on bootstrap samples and returns `(trees, indices, oob)`:
#
# - `indices[t]`: the `n` row indices tree `t` was fitted on, drawn with replacement from a generator made once from
#   `seed`;
# - `oob[i]`: the mean prediction for row `i` of the trees whose sample does *not* contain `i` (`NaN` if there is
#   none).
#
# The check recomputes every OOB value from your trees and indices, and compares your OOB RMSE with scikit-learn's
# forest on the same data.

# %%
def bag(X, y, k, seed):
    # BEGIN SOLUTION
    rng = np.random.default_rng(seed)
    n = len(X)
    trees, indices = [], []
    oob_total, oob_count = np.zeros(n), np.zeros(n)
    for _ in range(k):
        sample = rng.integers(0, n, size=n)
        tree = DecisionTreeRegressor(random_state=int(rng.integers(2**31))).fit(X[sample], y[sample])
        unseen = np.setdiff1d(np.arange(n), sample)
        oob_total[unseen] += tree.predict(X[unseen])
        oob_count[unseen] += 1
        trees.append(tree)
        indices.append(sample)
    with np.errstate(invalid="ignore", divide="ignore"):
        return trees, indices, oob_total / oob_count
    # END SOLUTION


# %%
check("06.5", bag)

# %% [markdown]
# ### Exercise 06.6 · Contributions of a boosted model (difficulty 2, about 20 minutes)
#
# §7e explained a forest's prediction as a bias plus one contribution per column; §10 built gradient boosting. Do the
# same for boosting: write `boosting_contributions(gbr, X)` for a fitted `GradientBoostingRegressor` (squared error)
# and an array of rows `X`, returning `(bias, contrib)`:
#
# - the bias is the model's starting prediction (`gbr.init_`, the training mean), one number or one per row;
# - `contrib` has one row per row of `X` and one column per feature: every tree `gbr.estimators_[k, 0]` credits each
#   split on the row's path to the split's column, as in §7e, but a boosted tree's step is scaled (a node's `value`
#   is a mean *residual*: what does the model add to its prediction per tree?);
# - so that `bias + contrib.sum(1)` equals `gbr.predict(X)`.
#
# `tree_contributions` from §7e may help.

# %%
def boosting_contributions(gbr, X):
    # BEGIN SOLUTION
    X = np.asarray(X, dtype=np.float32)  # the trees compare float32 values with their thresholds
    contrib = np.zeros(X.shape)
    for stage in gbr.estimators_[:, 0]:
        for i, row in enumerate(X):
            _, moves = tree_contributions(stage, row)
            for col, move in moves.items():
                contrib[i, col] += gbr.learning_rate * move
    return gbr.init_.predict(X), contrib
    # END SOLUTION


# %%
check("06.6", boosting_contributions)

# %% [markdown]
# ### Exercise 06.7 · Find the leak (difficulty 1, about 10 minutes)
#
# The ISLR `Wage` table describes 3,000 workers of the US Mid-Atlantic region. The pipeline below predicts whether a
# worker earns more than 100 (thousand dollars a year) from every column except `wage` itself, and scores a
# suspicious 100% on held-out workers. Find the leak (§7f shows the symptoms to look for), remove it, and set
# `clean_columns` (the feature columns you keep, in the table's order) and `accuracy` (`wage_accuracy` on them).

# %%
from sklearn.model_selection import train_test_split  # noqa: E402

wage = data.table("wage")
for column in wage.columns:
    if wage[column].dtype.kind not in "biuf":
        wage[column] = wage[column].astype("category").cat.codes  # text columns as category codes


def wage_accuracy(columns):
    """The provided pipeline: a forest on `columns`, target wage > 100, 20% held out; (accuracy, fitted forest)."""
    X_train, X_valid, y_train, y_valid = train_test_split(wage[columns], wage["wage"] > 100, test_size=0.2,
                                                          random_state=42)
    model = RandomForestClassifier(n_estimators=60, min_samples_leaf=5, random_state=42, n_jobs=-1)
    model.fit(X_train, y_train)
    return (model.predict(X_valid) == y_valid).mean(), model


all_columns = [c for c in wage.columns if c not in ("rownames", "wage")]
print("held-out accuracy with every column:", wage_accuracy(all_columns)[0])

# %%
clean_columns = ...  # the columns you keep
accuracy = ...  # wage_accuracy on them
# BEGIN SOLUTION
_, leaky_model = wage_accuracy(all_columns)
share = pd.Series(leaky_model.feature_importances_, index=all_columns).sort_values(ascending=False)
clean_columns = [c for c in all_columns if c != share.index[0]]  # logwage: the log of the target's own column
accuracy = wage_accuracy(clean_columns)[0]
# END SOLUTION

# %%
check("06.7", clean_columns, accuracy)

# %% [markdown]
# ### Exercise 06.8 · Domain shift in space (difficulty 2, about 25 minutes)
#
# §8's domain classifier found what separates *2010* from the earlier years. Shifts also happen in space: a model
# trained on one part of town and used in another. Make that split and look for the shift:
#
# - validation: the 341 northernmost houses (largest `Latitude`), all years; training: the other 2,589;
# - rebuild the tables with `TabularPandas(ames, procs=[Categorify, FillMissing], cat_names=cat_names,
#   cont_names=cont_names, y_names=dep_var, splits=...)` (§4's columns; `Latitude` stays a feature);
# - fit an `is_valid` forest on both sets together (`forest(..., n_estimators=40)`, as in §8) and take its three most
#   important columns, `top3`;
# - refit the price forest on the training rows without those three columns (`forest(..., n_estimators=40)`) and
#   report its validation RMSE, `valid_rmse`.
#
# Pass `top3, valid_rmse` and your four tables `xs, y, valid_xs, valid_y` (log price). Which columns give the north
# away, and does dropping them help, as it did for the bulldozers, or hurt?

# %%
top3, valid_rmse, north_xs, north_y, north_valid_xs, north_valid_y = ..., ..., ..., ..., ..., ...
# BEGIN SOLUTION
northernmost = np.argsort(ames["Latitude"].to_numpy(), kind="stable")[-len(valid_xs):]
in_north = np.zeros(len(ames), dtype=bool)
in_north[northernmost] = True
to_north = TabularPandas(ames, procs=[Categorify, FillMissing], cat_names=cat_names, cont_names=cont_names,
                         y_names=dep_var, splits=(list(np.flatnonzero(~in_north)), list(np.flatnonzero(in_north))))
north_xs, north_y = to_north.train.xs, to_north.train.y.to_numpy(np.float64)
north_valid_xs, north_valid_y = to_north.valid.xs, to_north.valid.y.to_numpy(np.float64)
where = forest(pd.concat([north_xs, north_valid_xs]), np.r_[np.zeros(len(north_xs)), np.ones(len(north_valid_xs))],
               n_estimators=40)
top3 = list(pd.Series(where.feature_importances_, index=north_xs.columns).nlargest(3).index)
refit = forest(north_xs.drop(columns=top3), north_y, n_estimators=40)
valid_rmse = rmse(refit.predict(north_valid_xs.drop(columns=top3)), north_valid_y)
# END SOLUTION

# %%
check("06.8", top3, valid_rmse, north_xs, north_y, north_valid_xs, north_valid_y)

# %% [markdown]
# ### Exercise 06.9 · fastai's `TabularModel`, by hand (difficulty 2, about 25 minutes)
#
# §9's `EmbeddingNet` left out what fastai adds to the idea. Write `MiniTabular(emb_szs, n_cont, layers, y_range)`,
# an `nn.Module` called as `model(x_cat, x_cont)`, with `TabularModel`'s layout (its printout in §9 is the blueprint):
#
# - one `nn.Embedding(n_levels, width)` per `(n_levels, width)` in `emb_szs`, registered (in an `nn.ModuleList`);
#   their outputs concatenated (`emb_drop` may be left out: its rate is 0 here);
# - a `BatchNorm1d` over the `n_cont` continuous inputs, concatenated after the embeddings;
# - for each width in `layers`: `Linear` (no bias: the BatchNorm after it has one), `ReLU`, `BatchNorm1d`;
# - a final `Linear` to one output, then `lo + (hi - lo) * sigmoid(...)` with `(lo, hi) = y_range`.
#
# The check builds it on hidden sizes and compares its parameter count and shapes with fastai's.

# %%
class MiniTabular(nn.Module):
    # BEGIN SOLUTION
    def __init__(self, emb_szs, n_cont, layers, y_range):
        super().__init__()
        self.embeds = nn.ModuleList(nn.Embedding(n_levels, width) for n_levels, width in emb_szs)
        self.bn_cont = nn.BatchNorm1d(n_cont)
        widths = [sum(width for _, width in emb_szs) + n_cont, *layers]
        blocks = []
        for n_in, n_out in zip(widths[:-1], widths[1:]):
            blocks += [nn.Linear(n_in, n_out, bias=False), nn.ReLU(), nn.BatchNorm1d(n_out)]
        self.body = nn.Sequential(*blocks, nn.Linear(widths[-1], 1))
        self.y_range = y_range

    def forward(self, x_cat, x_cont):
        looked_up = [table(x_cat[:, j]) for j, table in enumerate(self.embeds)]
        h = self.body(torch.cat([*looked_up, self.bn_cont(x_cont)], dim=1))
        lo, hi = self.y_range
        return torch.sigmoid(h) * (hi - lo) + lo
    # END SOLUTION


# %%
check("06.9", MiniTabular)

# %% [markdown]
# ### Exercise 06.10 · Embeddings as forest features (difficulty 3, about 30 minutes)
#
# Guo and Berkhahn fed the embeddings a network learnt to other models. Try it: in the forest's tables `xs` and
# `valid_xs`, replace each categorical column that the network of §9 embedded by its embedding vectors (columns named
# `f"{column}_{j}"` for `j = 0..width-1`, taken from `model.embeds[to_nn.cat_names.index(column)]`; row 0 is
# `#na#`, code 0, in both tables), fit a forest with the chapter's settings and 40 trees (`forest(..., n_estimators=40)`),
# and report its validation RMSE. Return `emb_xs`, `emb_valid_xs`, `valid_rmse` and `embeddings` (a dict
# {column: the embedding weight matrix you used}). Does it beat §7b's forest? (The check refits your forest; it
# does not expect a gain.)

# %%
emb_xs, emb_valid_xs, valid_rmse, embeddings = ..., ..., ..., ...
# BEGIN SOLUTION
shared = [c for c in to.cat_names if c in to_nn.cat_names]
assert all(list(to.classes[c]) == list(to_nn.classes[c]) for c in shared), "same codes in both tables"
embeddings = {c: model.embeds[to_nn.cat_names.index(c)].weight.detach().cpu().numpy() for c in shared}


def embed_columns(frame):
    parts = []
    for column in frame.columns:
        if column in embeddings:
            vectors = embeddings[column][frame[column].to_numpy()]
            parts.append(pd.DataFrame(vectors, index=frame.index,
                                      columns=[f"{column}_{j}" for j in range(vectors.shape[1])]))
        else:
            parts.append(frame[[column]])
    return pd.concat(parts, axis=1)


emb_xs, emb_valid_xs = embed_columns(xs), embed_columns(valid_xs)
valid_rmse = rmse(forest(emb_xs, y, n_estimators=40).predict(emb_valid_xs), valid_y)
# END SOLUTION

# %%
check("06.10", emb_xs, emb_valid_xs, valid_rmse, embeddings, xs, y, valid_xs, valid_y)

# %% [markdown]
# ### Exercise 06.11 · A decision threshold for credit (difficulty 2, about 15 minutes)
#
# The lender of §11 wants to catch at least 80% of the bad loans. Among the thresholds 0.00, 0.01, ..., 1.00 on
# P(bad) (an applicant is flagged when P(bad) ≥ threshold), find the one with the best **precision** (the share of
# flagged applicants who are in fact bad) among those with **recall** ≥ 0.80 (the share of bad loans flagged), using
# the forest's validation probabilities `rf_credit_p`. Return `thr`, `precision`, `recall` and `probs` (the
# probabilities you used). How many good customers does that policy refuse, against the 0.5 threshold?

# %%
thr, precision, recall, probs = ..., ..., ..., ...
# BEGIN SOLUTION
probs = rf_credit_p
best = None
for t in np.round(np.arange(0, 1.001, 0.01), 2):
    flagged = probs >= t
    caught = (flagged & is_bad).sum()
    if flagged.any() and caught / is_bad.sum() >= 0.80:
        if best is None or caught / flagged.sum() > best[1]:
            best = (t, caught / flagged.sum(), caught / is_bad.sum())
thr, precision, recall = best
# END SOLUTION

# %%
check("06.11", thr, precision, recall, probs)

# %% [markdown]
# ## Further reading
#
# - Howard & Gugger, *Deep Learning for Coders with fastai and PyTorch*, ch. 9 (this chapter's spine) and ch. 15
#   (`TabularModel` line by line).
# - Breiman, *Random Forests* (Machine Learning, 2001), and *Statistical Modeling: The Two Cultures* (2001).
# - Guo & Berkhahn, *Entity Embeddings of Categorical Variables* (2016).
# - Friedman, *Greedy Function Approximation: A Gradient Boosting Machine* (2001); the scikit-learn user guide's
#   chapters on ensembles and on partial dependence.
# - Grinsztajn, Oyallon & Varoquaux, *Why do tree-based models still outperform deep learning on tabular data?*
#   (NeurIPS 2022).
# - De Cock, *Ames, Iowa: Alternative to the Boston Housing Data* (J. Stat. Educ., 2011).
