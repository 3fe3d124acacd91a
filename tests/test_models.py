"""course_utils.models: the ResBlock and the small ResNet that 04_cnns and its cached body share."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from course_utils import models


def test_resblock_shapes_and_identity_at_init():
    for ni, nf, stride, side in ((4, 4, 1, 8), (4, 8, 2, 7), (8, 8, 2, 6)):
        block = models.ResBlock(ni, nf, stride)
        x = torch.randn(2, ni, side, side)
        out = block(x)
        assert out.shape == (2, nf, math.ceil(side / stride), math.ceil(side / stride))
        assert torch.equal(out, F.relu(block.idconv(block.pool(x))))


def test_tiny_resnet_is_seeded_and_size_agnostic():
    a, b = models.tiny_resnet(8, seed=3), models.tiny_resnet(8, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    state = torch.random.get_rng_state()
    models.tiny_resnet(8)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched
    assert a(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert a(torch.zeros(2, 1, 40, 40)).shape == (2, 10)
    assert models.tiny_resnet(4, n_in=3, n_out=2)(torch.zeros(1, 3, 28, 28)).shape == (1, 2)
    with pytest.raises(ValueError):
        models.tiny_resnet(pretrained=True)
