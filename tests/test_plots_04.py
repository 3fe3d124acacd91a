"""The 04_cnns figures in course_utils.plots.ch04: kernels on images, CAM overlays and their explorers."""

import ipywidgets
import matplotlib.pyplot as plt
import pytest
import torch

from course_utils.plots import ch04


def test_parse_kernel_reads_nine_numbers():
    k = ch04.parse_kernel("1 0 -1, 1 0 -1, 1 0 -1")
    assert k.shape == (3, 3) and k[0].tolist() == [1.0, 0.0, -1.0]
    with pytest.raises(ValueError, match="9 numbers"):
        ch04.parse_kernel("1 2 3")


def test_apply_kernel_map_is_a_cross_correlation_without_padding():
    image = torch.rand(10, 10, generator=torch.Generator().manual_seed(0))
    kernel = torch.tensor(ch04.KERNELS["top edge"], dtype=torch.float32)
    out = ch04.apply_kernel_map(image, ch04.KERNELS["top edge"])
    assert out.shape == (8, 8)
    assert torch.isclose(out[2, 5], (image[2:5, 5:8] * kernel).sum())


def test_draw_kernel_explorer_presets_and_a_typed_kernel(capsys):
    imgs = torch.rand(3, 10, 10)
    assert ch04.draw_kernel_explorer(imgs, 1, "box blur") is not None
    fig = ch04.draw_kernel_explorer(imgs, 0, "top edge", "0 0 0 0 1 0 0 0 0")
    assert fig.axes[1].get_title() == "your kernel"
    fig = ch04.draw_kernel_explorer(imgs, 0, "sharpen", "1 2 3")  # too few numbers: the preset, and why
    assert fig.axes[1].get_title() == "sharpen"
    assert "9 numbers" in capsys.readouterr().out


def test_draw_cam_outlines_the_box_and_marks_the_peak():
    cam = torch.zeros(10, 10)
    cam[3, 7] = 1.0
    ax = ch04.draw_cam(torch.rand(1, 10, 10), cam, box=(1, 1, 4, 4), title="t")
    assert len(ax.patches) == 1 and ax.get_title() == "t"
    (peak,) = ax.lines
    assert list(peak.get_xdata()) == [7] and list(peak.get_ydata()) == [3]


def test_cam_explorer_draws_the_true_class_by_default():
    imgs, maps = torch.rand(3, 1, 10, 10), torch.rand(3, 2, 10, 10)
    boxes, labels = torch.tensor([[1, 1, 4, 4]] * 3), torch.tensor([0, 1, 0])
    fig = ch04.draw_cam_explorer(imgs, maps, boxes, labels, index=1)
    assert fig.axes[0].get_title() == "#1: a bird, map of 'bird'"
    fig = ch04.draw_cam_explorer(imgs, maps, boxes, labels, index=1, cls=0)
    assert fig.axes[0].get_title() == "#1: a bird, map of 'plane'"


def test_the_explorers_build_and_draw_only_when_a_control_moves():
    imgs, maps = torch.rand(3, 10, 10), torch.rand(3, 2, 10, 10)
    kernels = ch04.kernel_explorer(imgs)
    cams = ch04.cam_explorer(imgs[:, None], maps, torch.tensor([[1, 1, 4, 4]] * 3), torch.tensor([0, 1, 0]))
    assert isinstance(kernels, ipywidgets.VBox) and isinstance(cams, ipywidgets.VBox)
    assert plt.get_fignums() == [], "building an explorer draws nothing"
    kernels.redraw()
    cams.redraw()
    assert len(plt.get_fignums()) == 2
