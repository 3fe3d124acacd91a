"""The thermometer readings of 02_autograd: literals, no file, no registry entry."""

from __future__ import annotations

import torch

__all__ = ["thermometer"]

# Deep Learning with PyTorch (Stevens, Antiga, Viehmann), ch. 5: eleven readings of a thermometer
# in unknown units (t_u) next to the same moments measured in degrees Celsius (t_c).
_THERMOMETER_C = [0.5, 14.0, 15.0, 28.0, 11.0, 8.0, 3.0, -4.0, 6.0, 13.0, 21.0]
_THERMOMETER_U = [35.7, 55.9, 58.2, 81.9, 56.3, 48.9, 33.9, 21.8, 48.4, 60.4, 68.4]


def thermometer() -> tuple[torch.Tensor, torch.Tensor]:
    """The 11 thermometer readings as float32 tensors `(t_c, t_u)`. Taught in 02_autograd.

    t_c is in degrees Celsius, t_u in the thermometer's unknown units. The values are the book's
    literals; there is no file and no online variant.
    """
    t_c = torch.tensor(_THERMOMETER_C, dtype=torch.float32)
    t_u = torch.tensor(_THERMOMETER_U, dtype=torch.float32)
    return t_c, t_u
