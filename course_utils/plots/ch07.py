"""Figures and the recommendation explorer of 07_collab.

`draw_spreadsheet` is the book's Excel view of matrix factorisation as three heat-maps; `cosine_neighbours`,
`draw_neighbours` and `draw_recommendations` read a trained model's factor tables; `recommendation_explorer`
puts the last two behind a movie picker and a user picker with a popularity slider.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.plots.widgets import explorer, explorer_box, pyplot

__all__ = ["cosine_neighbours", "draw_neighbours", "draw_recommendations", "draw_spreadsheet", "recommendation_scores",
           "recommendation_explorer"]


def draw_spreadsheet(U, M, Y, mask, users, movies):
    """Three heat-maps: user factors U, movie factors M, and the predictions U @ M.T with observed cells outlined.

    Taught in 07_collab, section 3 (the book's spreadsheet figure). `Y` (users x movies) holds the true ratings
    where `mask` is True; each outlined cell is labelled with its true rating, so the fit can be read by eye.
    """
    plt = pyplot()
    U, M = torch.as_tensor(U).detach().cpu(), torch.as_tensor(M).detach().cpu()
    pred, Y, mask = (U @ M.T).numpy(), torch.as_tensor(Y).cpu().numpy(), torch.as_tensor(mask).cpu().numpy()
    fig, axes = plt.subplots(1, 3, figsize=(13, 4.6), gridspec_kw={"width_ratios": [U.shape[1], M.shape[1], len(movies)]})
    for ax, values, title in ((axes[0], U.numpy(), "user factors U"), (axes[1], M.numpy(), "movie factors M")):
        ax.imshow(values, cmap="coolwarm", vmin=-abs(values).max(), vmax=abs(values).max(), aspect="auto")
        ax.set_title(title, fontsize=10)
        ax.set_xticks(range(values.shape[1]))
        ax.set_xlabel("factor")
    axes[0].set_yticks(range(len(users)), [str(u) for u in users], fontsize=7)
    axes[0].set_ylabel("userId")
    axes[1].set_yticks(range(len(movies)), [str(m)[:22] for m in movies], fontsize=7)
    image = axes[2].imshow(pred, cmap="viridis", vmin=0.5, vmax=5, aspect="auto")
    for r, c in zip(*np.nonzero(mask)):
        axes[2].add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, edgecolor="white", linewidth=0.8))
        axes[2].text(c, r, f"{Y[r, c]:g}", ha="center", va="center", fontsize=6, color="white")
    axes[2].set_title("U @ M.T (white boxes: observed, with the true rating)", fontsize=10)
    axes[2].set_xticks(range(len(movies)), [str(m)[:18] for m in movies], rotation=90, fontsize=7)
    axes[2].set_yticks([])
    fig.colorbar(image, ax=axes[2], fraction=0.04)
    plt.tight_layout()
    plt.show()


def cosine_neighbours(factors, index: int, k: int = 10, skip=(0,)) -> list[tuple[int, float]]:
    """The k rows of `factors` most cosine-similar to row `index`: [(row, similarity)], best first.

    Used in 07_collab (section 13 writes it from scratch first), by `draw_neighbours`. The row itself and the rows
    in `skip` (by default row 0, fastai's `#na#`) are left out; equal similarities go to the smaller row.
    """
    factors = torch.as_tensor(factors).detach().float().cpu()
    sims = F.cosine_similarity(factors[index][None], factors, dim=1).double()
    sims[[index, *skip]] = -np.inf
    order = torch.argsort(-sims, stable=True)[:k]
    return [(int(j), float(sims[j])) for j in order if sims[j] > -np.inf]


def draw_neighbours(item_factors, titles, title: str, k: int = 10) -> list[str]:
    """Bar chart of the k movies nearest to `title` by cosine similarity of their factors; return their titles.

    Taught in 07_collab, section 13. `titles` lists the model's items in index order (`#na#` first).
    """
    plt = pyplot()
    titles = list(titles)
    found = cosine_neighbours(item_factors, titles.index(title), k)
    names = [titles[j] for j, _ in found]
    fig, ax = plt.subplots(figsize=(7, 0.28 * k + 1))
    ax.barh(range(k)[::-1], [s for _, s in found], color="#4c72b0")
    ax.set_yticks(range(k)[::-1], [n[:45] for n in names], fontsize=8)
    ax.set_xlabel("cosine similarity of the movie factors")
    ax.set_title(f"nearest to {title}", fontsize=10)
    plt.tight_layout()
    plt.show()
    return names


def recommendation_scores(item_factors, item_bias, user_vector, user_bias: float, bias_weight: float = 1.0):
    """Scores before the sigmoid: user . item + user bias + bias_weight x item bias, one per item.

    Used in 07_collab, section 14, by `draw_recommendations`. `bias_weight` 1 is the model's own score; 0 ranks by
    taste alone, larger values push popular (high-bias) movies up.
    """
    item_factors = torch.as_tensor(item_factors).detach().float().cpu()
    item_bias = torch.as_tensor(item_bias).detach().float().cpu().reshape(-1)
    user_vector = torch.as_tensor(user_vector).detach().float().cpu().reshape(-1)
    return item_factors @ user_vector + float(user_bias) + bias_weight * item_bias


def draw_recommendations(item_factors, item_bias, user_factors, user_bias, titles, seen, user: int = 1,
                         bias_weight: float = 1.0, k: int = 10) -> list[str]:
    """Bar chart of user `user`'s top k unseen movies, scored by `recommendation_scores`; return their titles.

    Taught in 07_collab, section 14. `user` is a row of `user_factors` (fastai's index, 0 is `#na#`), `seen` maps
    a user row to the item rows that user already rated, which are left out, as is item 0 (`#na#`).
    """
    plt = pyplot()
    titles = list(titles)
    user_bias = torch.as_tensor(user_bias).detach().float().cpu().reshape(-1)
    scores = recommendation_scores(item_factors, item_bias, torch.as_tensor(user_factors)[user], user_bias[user],
                                   bias_weight).double()
    scores[[0, *seen.get(user, ())]] = -np.inf
    order = [int(j) for j in torch.argsort(-scores, stable=True)[:k]]
    names = [titles[j] for j in order]
    fig, ax = plt.subplots(figsize=(7, 0.28 * k + 1))
    ax.barh(range(k)[::-1], [float(scores[j]) for j in order], color="#dd8452")
    ax.set_yticks(range(k)[::-1], [n[:45] for n in names], fontsize=8)
    ax.set_xlabel(f"score = taste + {bias_weight:g} x movie bias (+ user bias)")
    ax.set_title(f"user row {user}: top {k} unseen movies", fontsize=10)
    plt.tight_layout()
    plt.show()
    return names


def recommendation_explorer(item_factors, item_bias, user_factors, user_bias, titles, seen):
    """Widget with two tabs: a movie picker showing its nearest movies, and a user picker with a bias slider.

    Taught in 07_collab, section 14. The arguments are `draw_recommendations`'s; the first tab draws
    `draw_neighbours`. Nothing is drawn until a control moves (see `explorer`).
    """
    import ipywidgets as widgets

    titles = list(titles)
    movie_tab = explorer(
        lambda title: draw_neighbours(item_factors, titles, title) if title in titles else None,
        title=widgets.Combobox(options=titles[1:], placeholder="type a title", ensure_option=True,
                               description="movie", continuous_update=False),
        note="Type a title and pick it from the list.",
    )
    user_tab = explorer(
        lambda user, bias_weight: draw_recommendations(item_factors, item_bias, user_factors, user_bias, titles, seen,
                                                       user=user, bias_weight=bias_weight),
        user=widgets.BoundedIntText(value=1, min=1, max=len(user_factors) - 1, description="user row"),
        bias_weight=widgets.FloatSlider(value=1.0, min=0.0, max=3.0, step=0.25, description="bias weight",
                                        continuous_update=False),
    )
    tabs = widgets.Tab(children=[movie_tab, user_tab])
    for position, name in enumerate(("similar movies", "recommendations")):
        tabs.set_title(position, name)
    return explorer_box([tabs])
