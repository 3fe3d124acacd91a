"""Synthetic data a chapter generates on demand (milliseconds): no file, no registry entry.

`sky_shapes` stands in for the Pets images of 04_cnns's CAM section: each image holds one object at a
known box, so a class activation map can be scored against it (`course_utils.hooks.peak_in_box`).
`synthetic_ratings` gives 07_collab ratings whose user/item factors and biases are planted, so a trained
recommender can be scored against the truth (and the chapter's checks get hidden frames).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

__all__ = ["sky_shapes", "synthetic_ratings"]


def _cross(size: int, r: int) -> np.ndarray:
    """A 'plane': a bright cross (wings and fuselage) of half-size r, in a (2r+1)^2 patch."""
    patch = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    patch[r, :] = 1.0
    patch[:, r] = 1.0
    patch[r - 1 : r + 2, r] = 1.0
    return patch


def _chevron(size: int, r: int) -> np.ndarray:
    """A 'bird': a bright V (two wings meeting at the bottom centre) of half-size r."""
    patch = np.zeros((2 * r + 1, 2 * r + 1), np.float32)
    for k in range(r + 1):
        row = 2 * k if 2 * k <= 2 * r else 2 * r
        patch[row, k] = 1.0
        patch[row, 2 * r - k] = 1.0
        if row + 1 <= 2 * r:
            patch[row + 1, k] = 1.0
            patch[row + 1, 2 * r - k] = 1.0
    return patch


def sky_shapes(n: int, size: int = 32, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Synthetic 'planes' (crosses, label 0) and 'birds' (chevrons, label 1) on a sky. Taught in 04_cnns.

    Each image is a vertical sky gradient plus Gaussian noise (sigma 0.15) with one bright shape of
    half-size 3-5 px at a uniform random position. Returns (images float32 (n, 1, size, size),
    labels int64 (n,), boxes int64 (n, 4) as (row0, col0, row1, col1) inclusive). Made on the CPU
    from a generator seeded with `seed`, so every device and run gets the same set.
    """
    gen = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=gen)
    radii = torch.randint(3, 6, (n,), generator=gen)
    images = torch.empty(n, 1, size, size)
    boxes = torch.empty(n, 4, dtype=torch.long)
    top = torch.rand(n, generator=gen) * 0.3 + 0.2
    sky = torch.linspace(0, 1, size).view(1, size, 1)
    noise = torch.randn(n, 1, size, size, generator=gen) * 0.15
    u = torch.rand(n, 2, generator=gen)
    for i in range(n):
        r = int(radii[i])
        r0 = int(u[i, 0] * (size - 2 * r))
        c0 = int(u[i, 1] * (size - 2 * r))
        img = (top[i] + 0.3 * sky).expand(1, size, size).clone()
        patch = torch.from_numpy((_cross if labels[i] == 0 else _chevron)(size, r))
        region = img[0, r0 : r0 + 2 * r + 1, c0 : c0 + 2 * r + 1]
        img[0, r0 : r0 + 2 * r + 1, c0 : c0 + 2 * r + 1] = torch.where(patch > 0, torch.ones_like(region), region)
        images[i] = img
        boxes[i] = torch.tensor([r0, c0, r0 + 2 * r, c0 + 2 * r])
    return images + noise, labels, boxes


def synthetic_ratings(n_users: int = 500, n_items: int = 400, k: int = 4, density: float = 0.12, noise: float = 0.4,
                      seed: int = 0, half_stars: bool = True) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Ratings with planted user/item factors and biases: (frame, truth). Taught in 07_collab, section 16.

    rating = 3.5 + user bias + item bias + user factors . item factors + N(0, noise), rounded to half stars
    (unless `half_stars=False`) and clipped to [0.5, 5]. Factors are N(0, 0.6) in each of `k` dimensions,
    biases N(0, 0.5); each (user, item) cell is rated with probability `density`, and every user and every
    item gets at least one rating.

    frame: columns userId, movieId (ids shuffled, not 0..n-1 in row order), rating, timestamp (int).
    truth: float64 arrays user_factors (n_users, k), item_factors (n_items, k), user_bias, item_bias, and
    user_ids / item_ids (position -> id).
    """
    rng = np.random.default_rng(seed)
    user_factors = rng.normal(0, 0.6, (n_users, k))
    item_factors = rng.normal(0, 0.6, (n_items, k))
    user_bias = rng.normal(0, 0.5, n_users)
    item_bias = rng.normal(0, 0.5, n_items)
    rated = rng.random((n_users, n_items)) < density
    rated[np.arange(n_users), rng.integers(0, n_items, n_users)] = True
    rated[rng.integers(0, n_users, n_items), np.arange(n_items)] = True
    u, i = np.nonzero(rated)
    raw = 3.5 + user_bias[u] + item_bias[i] + (user_factors[u] * item_factors[i]).sum(1) + rng.normal(0, noise, len(u))
    rating = np.clip(np.round(raw * 2) / 2 if half_stars else raw, 0.5, 5.0)
    user_ids = rng.permutation(np.arange(1, 10 * n_users))[:n_users]
    item_ids = rng.permutation(np.arange(1, 10 * n_items))[:n_items]
    order = rng.permutation(len(u))
    frame = pd.DataFrame({
        "userId": user_ids[u][order], "movieId": item_ids[i][order], "rating": rating[order],
        "timestamp": 1_000_000_000 + rng.integers(0, 10**8, len(u)),
    })
    truth = dict(user_factors=user_factors, item_factors=item_factors, user_bias=user_bias, item_bias=item_bias,
                 user_ids=user_ids, item_ids=item_ids)
    return frame, truth
