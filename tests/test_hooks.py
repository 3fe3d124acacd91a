"""course_utils.hooks and the CAM data of 04_cnns: hooks, CAM, Grad-CAM, peak_in_box, sky_shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from course_utils import hooks
from course_utils.data import sky_shapes


def test_sky_shapes():
    x, y, boxes = sky_shapes(50, seed=0)
    x2, y2, b2 = sky_shapes(50, seed=0)
    assert torch.equal(x, x2) and torch.equal(y, y2) and torch.equal(boxes, b2)
    assert x.shape == (50, 1, 32, 32) and y.dtype == torch.int64 and boxes.shape == (50, 4)
    assert set(y.tolist()) == {0, 1}
    assert (boxes[:, 2] - boxes[:, 0]).ge(6).all() and (boxes[:, 2:] <= 31).all() and (boxes[:, :2] >= 0).all()
    for i in range(5):  # the object is the brightest thing in its box
        r0, c0, r1, c1 = boxes[i].tolist()
        assert x[i, 0, r0:r1 + 1, c0:c1 + 1].max() > 0.9
    assert 0.05 < hooks.box_area_fraction(boxes) < 0.5


def test_hooks_cam_and_gradcam():
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
    fc = nn.Linear(4, 2)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.body, self.fc = body, fc

        def forward(self, x):
            return self.fc(self.body(x).mean((2, 3)))

    model = M()
    x = torch.randn(3, 1, 8, 8)
    maps = hooks.class_activation_map(model, x, body, fc)
    assert maps.shape == (3, 2, 8, 8) and not body._forward_hooks
    # the CAM averages to the logit minus the bias (no upsampling when sizes match)
    assert torch.allclose(maps.mean((2, 3)) + fc.bias, model(x), atol=1e-5)
    with pytest.raises(RuntimeError):
        with hooks.Hook(body):
            model(torch.zeros(1, 3, 8, 8))
    assert not body._forward_hooks
    gc = hooks.grad_cam(model, x[:1], body[0], 1)
    assert gc.shape == (8, 8) and (gc >= 0).all()
    assert not body[0]._forward_hooks and not body[0]._backward_hooks
    m = torch.zeros(2, 10, 10)
    m[0, 2, 3] = 1
    m[1, 9, 9] = 1
    inside = hooks.peak_in_box(m, torch.tensor([[1, 1, 3, 3], [0, 0, 2, 2]]), dilate=1)
    assert inside.tolist() == [True, False]
