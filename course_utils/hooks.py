"""Hooks and class activation maps: looking inside a trained CNN. Taught in 04_cnns.

`Hook` stores what a module outputs on the forward pass and `HookBwd` the gradient flowing into its
output on the backward pass; both are context managers that remove themselves. `class_activation_map`
and `grad_cam` build heat maps from them; `peak_in_box` tells whether a map's maximum lies on the object,
and `box_area_fraction` how often a peak at a random pixel would (the chance rate).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Hook", "HookBwd", "box_area_fraction", "class_activation_map", "grad_cam", "peak_in_box"]


class Hook:
    """Forward hook that keeps the module's latest output (detached) in `.stored`. Taught in 04_cnns.

    Use it as a context manager (`with Hook(body) as h: model(x)`) so that it is removed even when
    the forward pass raises; otherwise call `.remove()` yourself.
    """

    def __init__(self, module: nn.Module):
        self.stored = None
        self.handle = module.register_forward_hook(self.hook_fn)

    def hook_fn(self, module, inputs, output):
        self.stored = output.detach().clone()

    def remove(self) -> None:
        self.handle.remove()

    def __enter__(self) -> "Hook":
        return self

    def __exit__(self, *exc) -> None:
        self.remove()


class HookBwd(Hook):
    """Backward hook (register_full_backward_hook) that keeps the gradient of the loss w.r.t. the module's output. Used in 04_cnns."""

    def __init__(self, module: nn.Module):
        self.stored = None
        self.handle = module.register_full_backward_hook(self.hook_fn)

    def hook_fn(self, module, grad_input, grad_output):
        self.stored = grad_output[0].detach().clone()


def class_activation_map(model: nn.Module, x: torch.Tensor, body: nn.Module, fc: nn.Linear,
                         size: tuple[int, int] | None = None) -> torch.Tensor:
    """CAM of every class for a batch: (B, n_classes, H, W). Taught in 04_cnns.

    The model must end in global average pooling + `fc`. A forward hook on `body` stores its feature
    map A (B, K, h, w); the map of class c is sum_k fc.weight[c, k] * A[:, k], i.e.
    einsum('ck,bkij->bcij'), upsampled bilinearly to `size` (default: x's own height and width).
    """
    model.eval()
    with Hook(body) as hook, torch.no_grad():
        model(x)
    maps = torch.einsum("ck,bkij->bcij", fc.weight.detach(), hook.stored)
    size = size or tuple(x.shape[-2:])
    return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)


def grad_cam(model: nn.Module, x: torch.Tensor, layer: nn.Module, cls: int, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Grad-CAM of class `cls` for one image x (1, C, H, W) at any inner `layer`: (H, W). Taught in 04_cnns.

    Weights each channel of the layer's activation by the mean gradient of the class score
    (a scalar: backward needs one) with respect to it, sums, applies ReLU and upsamples.
    """
    model.eval()
    with HookBwd(layer) as hb, Hook(layer) as hf:
        out = model(x)
        model.zero_grad()
        out[0, cls].backward()
    weights = hb.stored[0].mean((1, 2))
    cam = F.relu(torch.einsum("k,kij->ij", weights, hf.stored[0]))
    size = size or tuple(x.shape[-2:])
    return F.interpolate(cam[None, None], size=size, mode="bilinear", align_corners=False)[0, 0]


def peak_in_box(maps: torch.Tensor, boxes: torch.Tensor, dilate: int = 3) -> torch.Tensor:
    """Bool (B,): does the argmax of each map (B, H, W) lie inside its box dilated by `dilate` px? Taught in 04_cnns.

    boxes are (row0, col0, row1, col1), inclusive, as `course_utils.data.sky_shapes` returns them.
    """
    b, h, w = maps.shape
    flat = maps.reshape(b, -1).argmax(1).cpu()
    rows, cols = flat // w, flat % w
    boxes = boxes.cpu()
    return (
        (rows >= boxes[:, 0] - dilate) & (rows <= boxes[:, 2] + dilate)
        & (cols >= boxes[:, 1] - dilate) & (cols <= boxes[:, 3] + dilate)
    )


def box_area_fraction(boxes: torch.Tensor, size: int = 32, dilate: int = 3) -> float:
    """Mean fraction of the image covered by the (dilated) boxes: the chance rate of a random peak. Taught in 04_cnns.

    The baseline of `peak_in_box`: boxes (B, 4) as (row0, col0, row1, col1), inclusive, each dilated by
    `dilate` px and clipped to a size x size image.
    """
    b = boxes.clone()
    b[:, :2] = (b[:, :2] - dilate).clamp(min=0)
    b[:, 2:] = (b[:, 2:] + dilate).clamp(max=size - 1)
    areas = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    return float(areas.float().mean() / size**2)
