"""The 07_collab pieces outside its checks: the planted-ratings generator (course_utils.data.synthetic_ratings) and
the figures and explorer of course_utils.plots.ch07 (neighbours, recommendation scores, the spreadsheet view)."""

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils.data import synthetic_ratings
from course_utils.plots import ch07

matplotlib.use("Agg")


def test_synthetic_ratings_follow_the_planted_model():
    frame, truth = synthetic_ratings(200, 150, k=3, density=0.2, noise=0.0, seed=1, half_stars=False)
    again, _ = synthetic_ratings(200, 150, k=3, density=0.2, noise=0.0, seed=1, half_stars=False)
    assert frame.equals(again)
    assert list(frame.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert frame["userId"].nunique() == 200 and frame["movieId"].nunique() == 150  # everyone rates, everything is rated
    assert not frame.duplicated(["userId", "movieId"]).any()
    u = {int(i): j for j, i in enumerate(truth["user_ids"])}
    m = {int(i): j for j, i in enumerate(truth["item_ids"])}
    rows, cols = frame["userId"].map(u).to_numpy(), frame["movieId"].map(m).to_numpy()
    clean = 3.5 + truth["user_bias"][rows] + truth["item_bias"][cols] + (
        truth["user_factors"][rows] * truth["item_factors"][cols]).sum(1)
    np.testing.assert_allclose(frame["rating"], np.clip(clean, 0.5, 5.0))  # noise 0: exactly the formula, clipped


def test_synthetic_ratings_round_to_half_stars_and_hit_the_density():
    frame, truth = synthetic_ratings(seed=0)
    assert set(np.unique(frame["rating"] * 2)) <= set(range(1, 11))
    assert 0.11 < len(frame) / (500 * 400) < 0.13
    assert truth["item_factors"].shape == (400, 4)


def test_cosine_neighbours_rank_by_angle_not_length_and_skip_row_zero_and_itself():
    factors = torch.tensor([[5.0, 5.0], [1.0, 0.0], [10.0, 0.5], [0.0, 1.0], [2.0, 0.0]])
    found = ch07.cosine_neighbours(factors, 1, k=3)
    assert [j for j, _ in found] == [4, 2, 3]  # row 4 is parallel (tie with nothing), row 2 long but close in angle
    assert found[0][1] == pytest.approx(1.0)
    assert [j for j, _ in ch07.cosine_neighbours(factors, 4, k=10)] == [1, 2, 3]  # never row 0 nor itself


def test_recommendation_scores_are_the_dot_product_model_with_a_weighted_bias():
    g = torch.Generator().manual_seed(0)
    items, bias, user = torch.randn(6, 3, generator=g), torch.randn(6, 1, generator=g), torch.randn(3, generator=g)
    got = ch07.recommendation_scores(items, bias, user, 0.25, bias_weight=2.0)
    assert torch.allclose(got, items @ user + 0.25 + 2.0 * bias.squeeze(1))


def test_draw_recommendations_leaves_out_seen_films_and_na():
    g = torch.Generator().manual_seed(1)
    items, item_bias = torch.randn(8, 2, generator=g), torch.zeros(8)
    users, user_bias = torch.randn(3, 2, generator=g), torch.zeros(3)
    titles = ["#na#"] + [f"film {j}" for j in range(1, 8)]
    scores = F.pad(items[1:] @ users[2], (1, 0), value=-np.inf)
    best = int(scores.argmax())
    names = ch07.draw_recommendations(items, item_bias, users, user_bias, titles, {2: [best]}, user=2, k=7 - 1)
    assert "#na#" not in names and titles[best] not in names and len(names) == 6


def test_draw_neighbours_and_spreadsheet_draw():
    factors = torch.randn(6, 3, generator=torch.Generator().manual_seed(2))
    titles = ["#na#"] + [f"film {j}" for j in range(1, 6)]
    assert len(ch07.draw_neighbours(factors, titles, "film 1", k=3)) == 3
    U, M = torch.randn(4, 2), torch.randn(5, 2)
    Y, mask = torch.rand(4, 5) * 5, torch.rand(4, 5) > 0.3
    ch07.draw_spreadsheet(U, M, Y, mask, [1, 2, 3, 4], [f"m{j}" for j in range(5)])


def test_recommendation_explorer_builds_two_tabs_without_drawing():
    pytest.importorskip("ipywidgets")
    factors = torch.randn(6, 3)
    box = ch07.recommendation_explorer(factors, torch.zeros(6), torch.randn(3, 3), torch.zeros(3),
                                       ["#na#"] + [f"film {j}" for j in range(1, 6)], {})
    tabs = box.children[0]
    assert len(tabs.children) == 2
