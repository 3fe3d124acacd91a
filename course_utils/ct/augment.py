"""3D augmentation of candidate crops by a random affine map (*Deep Learning with PyTorch* ch. 12). Used in 08_ct.

Per sample, a 4 x 4 matrix in `F.affine_grid`'s normalised (x, y, z) = (col, row, index) coordinates:
a flip of each axis with p = 0.5, an offset of up to +-`offset` and a scale of 1 +- `scale` per axis, and
a rotation about the index (head-foot) axis only, because the voxels are not cubic; then Gaussian noise in
HU. Applied after the crop cache, with `grid_sample(padding_mode="border", align_corners=False)`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["AUGMENTATIONS", "augment_crop", "augmentation_matrix"]

# The book's full set, each on its own flag of the training app.
AUGMENTATIONS = {"flip": True, "offset": 0.1, "scale": 0.2, "rotate": True, "noise": 25.0}


def augmentation_matrix(augmentation: dict, generator: torch.Generator) -> torch.Tensor:
    """A random (4, 4) float64 affine matrix for the augmentations named in `augmentation`. Used in 08_ct."""
    def uniform():  # in [-1, 1)
        return float(torch.rand((), generator=generator, dtype=torch.float64)) * 2 - 1

    transform = torch.eye(4, dtype=torch.float64)
    for axis in range(3):
        if augmentation.get("flip") and float(torch.rand((), generator=generator)) > 0.5:
            transform[axis, axis] *= -1
        if augmentation.get("offset"):
            transform[axis, 3] = augmentation["offset"] * uniform()
        if augmentation.get("scale"):
            transform[axis, axis] *= 1.0 + augmentation["scale"] * uniform()
    if augmentation.get("rotate"):
        angle = float(torch.rand((), generator=generator, dtype=torch.float64)) * 2 * math.pi
        c, s = math.cos(angle), math.sin(angle)
        rotation = torch.tensor([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
        transform = transform @ rotation  # x and y turn, z (the index axis) stays
    return transform


def augment_crop(crop: torch.Tensor, augmentation: dict, generator: torch.Generator) -> torch.Tensor:
    """Resample a (C, D, H, W) crop through `augmentation_matrix`, then add N(0, noise) HU. Used in 08_ct."""
    transform = augmentation_matrix(augmentation, generator)
    grid = F.affine_grid(transform[:3].unsqueeze(0).float(), [1, *crop.shape], align_corners=False)
    out = F.grid_sample(crop.unsqueeze(0).float(), grid, padding_mode="border", align_corners=False)[0]
    if augmentation.get("noise"):
        out = out + torch.randn(out.shape, generator=generator) * augmentation["noise"]
    return out
