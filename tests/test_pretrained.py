"""Unit tests of the 04_cnns helpers: tiny_resnet, ResBlock, pretraining, PNG export, sky_shapes, hooks, vision plots."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import hooks, pretrained, vision
from course_utils.data import box_area_fraction, export_png_folders, sky_shapes
from course_utils.data.registry import DATASETS


def test_resblock_shapes_and_identity_at_init():
    for ni, nf, stride, side in ((4, 4, 1, 8), (4, 8, 2, 7), (8, 8, 2, 6)):
        block = pretrained.ResBlock(ni, nf, stride)
        x = torch.randn(2, ni, side, side)
        out = block(x)
        assert out.shape == (2, nf, math.ceil(side / stride), math.ceil(side / stride))
        assert torch.equal(out, F.relu(block.idconv(block.pool(x))))


def test_tiny_resnet_is_seeded_and_size_agnostic():
    a, b = pretrained.tiny_resnet(8, seed=3), pretrained.tiny_resnet(8, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))
    state = torch.random.get_rng_state()
    pretrained.tiny_resnet(8)
    assert torch.equal(state, torch.random.get_rng_state())  # the global RNG is untouched
    assert a(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    assert a(torch.zeros(2, 1, 40, 40)).shape == (2, 10)
    assert pretrained.tiny_resnet(4, n_in=3, n_out=2)(torch.zeros(1, 3, 28, 28)).shape == (1, 2)
    with pytest.raises(ValueError):
        pretrained.tiny_resnet(pretrained=True)


def test_pretrain_tiny_is_deterministic_and_learns():
    g = torch.Generator().manual_seed(0)
    y = torch.arange(10).repeat(20)
    x = (torch.rand(200, 28, 28, generator=g) * 60).to(torch.uint8)
    x[:, :4, :] += (y * 19).to(torch.uint8)[:, None, None]  # a class-dependent stripe
    m1, info1 = pretrained.pretrain(x, y, w=4, epochs=1, per_class=10, batch_size=16)
    m2, info2 = pretrained.pretrain(x, y, w=4, epochs=1, per_class=10, batch_size=16)
    assert info1 == info2 and info1["classes"][0] == "Trouser" and len(info1["classes"]) == 8
    assert all(torch.equal(p, q) for p, q in zip(m1.state_dict().values(), m2.state_dict().values()))
    xs, ys = pretrained.pretrain_set(x, y, per_class=10)
    assert len(xs) == 80 and set(ys.tolist()) == set(range(8))


def test_registry_has_the_cached_steps():
    assert DATASETS["fmnist8_body"].files[0].endswith(".pth")
    assert DATASETS["fmnist_png"].chapters == ("04_cnns",)


def test_export_png_folders(tmp_path):
    from PIL import Image

    g = torch.Generator().manual_seed(1)
    x = (torch.rand(40, 28, 28, generator=g) * 255).to(torch.uint8).numpy()
    y = np.arange(40) % 10
    root = export_png_folders(x, y, x, y, tmp_path / "png", n_train=3, n_valid=1)
    assert len(list((root / "train" / "T-shirt_top").glob("*.png"))) == 3
    assert len(list((root / "valid" / "Ankle_boot").glob("*.png"))) == 1
    img = np.asarray(Image.open(root / "train" / "Trouser" / "00001.png"))
    assert img.shape == (28, 28, 3) and np.array_equal(img[..., 0], x[1])
    again = export_png_folders(x, y, x, y, tmp_path / "png2", n_train=3, n_valid=1)
    assert (root / "train/Bag/00008.png").read_bytes() == (again / "train/Bag/00008.png").read_bytes()


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
    assert 0.05 < box_area_fraction(boxes) < 0.5


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


def test_vision_plots():
    import matplotlib

    matplotlib.use("Agg")
    imgs = torch.rand(3, 10, 10)
    assert vision.parse_kernel("1 0 -1, 1 0 -1, 1 0 -1").shape == (3, 3)
    with pytest.raises(ValueError):
        vision.parse_kernel("1 2 3")
    assert vision.apply_kernel_map(imgs[0], vision.KERNELS["top edge"]).shape == (8, 8)
    assert vision.draw_kernel_explorer(imgs, 1, "box blur") is not None
    assert vision.draw_kernel_explorer(imgs, 0, "top edge", "0 0 0 0 1 0 0 0 0") is not None
    maps = torch.rand(3, 2, 10, 10)
    assert vision.draw_cam_explorer(imgs[:, None], maps, torch.tensor([[1, 1, 4, 4]] * 3), torch.tensor([0, 1, 0])) is not None
    assert vision.kernel_explorer(imgs) is not None
    assert vision.cam_explorer(imgs[:, None], maps, torch.tensor([[1, 1, 4, 4]] * 3), torch.tensor([0, 1, 0])) is not None
