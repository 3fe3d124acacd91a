"""Figures and widget explorers of 04_cnns: kernels on images and CAM overlays.

`kernel_explorer` runs a preset or typed 3x3 kernel over an image (`KERNELS` holds the presets);
`draw_cam` and `cam_explorer` lay a class activation map (from `course_utils.hooks`) over an image.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.plots.widgets import explorer, pyplot

__all__ = [
    "KERNELS",
    "apply_kernel_map",
    "cam_explorer",
    "draw_cam",
    "draw_cam_explorer",
    "draw_kernel",
    "draw_kernel_explorer",
    "kernel_explorer",
    "parse_kernel",
]

KERNELS = {
    "top edge": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    "left edge": [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]],
    "diagonal 1": [[0, -1, 1], [-1, 1, 0], [1, 0, 0]],
    "diagonal 2": [[1, -1, 0], [0, 1, -1], [0, 0, 1]],
    "box blur": [[1 / 9] * 3] * 3,
    "sharpen": [[0, -1, 0], [-1, 5, -1], [0, -1, 0]],
    "identity": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
}


def parse_kernel(text: str) -> torch.Tensor:
    """A 3x3 kernel typed as 9 numbers ("-1 0 1 -1 0 1 -1 0 1", commas or spaces). Used in 04_cnns."""
    values = [float(v) for v in text.replace(",", " ").split()]
    if len(values) != 9:
        raise ValueError(f"a 3x3 kernel needs 9 numbers, got {len(values)}")
    return torch.tensor(values).reshape(3, 3)


def apply_kernel_map(image: torch.Tensor, kernel) -> torch.Tensor:
    """Cross-correlate a (H, W) image with a (kh, kw) kernel, no padding: (H-kh+1, W-kw+1). Used in 04_cnns."""
    k = torch.as_tensor(kernel, dtype=torch.float32)
    return F.conv2d(image.float()[None, None], k[None, None])[0, 0]


def draw_kernel(image: torch.Tensor, kernel, title: str = ""):
    """Image, kernel (with its numbers) and output map side by side, with the map's value range. Used in 04_cnns."""
    plt = pyplot()
    k = torch.as_tensor(kernel, dtype=torch.float32)
    out = apply_kernel_map(image, k)
    fig, axes = plt.subplots(1, 3, figsize=(8.4, 3.0), gridspec_kw={"width_ratios": [3, 1.4, 3]})
    axes[0].imshow(image, cmap="gray")
    axes[0].set_title("input")
    axes[1].imshow(k, cmap="coolwarm", vmin=-k.abs().max().item(), vmax=k.abs().max().item())
    for (i, j), v in np.ndenumerate(k.numpy()):
        axes[1].text(j, i, f"{v:.2g}", ha="center", va="center", fontsize=8)
    axes[1].set_title(title or "kernel")
    lim = out.abs().max().item() or 1.0
    im = axes[2].imshow(out, cmap="coolwarm", vmin=-lim, vmax=lim)
    axes[2].set_title(f"output: {out.min().item():.3g} .. {out.max().item():.3g}")
    fig.colorbar(im, ax=axes[2], fraction=0.046)
    for ax in axes:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    fig.tight_layout()
    return fig


def draw_kernel_explorer(images, index: int = 0, preset: str = "top edge", custom: str = ""):
    """Draw one image of `images` (N, H, W) under a preset kernel, or under `custom` if it is filled in. Taught in 04_cnns."""
    if custom.strip():
        try:
            kernel, title = parse_kernel(custom), "your kernel"
        except ValueError as err:
            print(err)
            kernel, title = torch.tensor(KERNELS[preset]), preset
    else:
        kernel, title = torch.tensor(KERNELS[preset]), preset
    return draw_kernel(torch.as_tensor(images[index]).float(), kernel, title)


def kernel_explorer(images):
    """Widget: pick an image, a preset kernel or type your own 3x3 kernel; see the output map and its range. Taught in 04_cnns."""
    import ipywidgets as widgets

    def draw(index, preset, custom):
        draw_kernel_explorer(images, index, preset, custom)
        pyplot().show()

    return explorer(
        draw,
        index=widgets.IntSlider(0, 0, len(images) - 1, description="image"),
        preset=widgets.Dropdown(options=list(KERNELS), value="top edge", description="kernel"),
        custom=widgets.Text("", placeholder="9 numbers, e.g. -1 0 1 -2 0 2 -1 0 1", description="or type"),
    )


def draw_cam(image: torch.Tensor, cam: torch.Tensor, box=None, alpha: float = 0.6, ax=None, title: str = ""):
    """One CAM overlay: the image in grey, the map in magma on top, the true box outlined. Taught in 04_cnns."""
    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(2.6, 2.6))
    ax.imshow(image.squeeze().cpu(), cmap="gray")
    ax.imshow(cam.detach().cpu(), cmap="magma", alpha=alpha)
    if box is not None:
        r0, c0, r1, c1 = (int(v) for v in box)
        ax.add_patch(plt.Rectangle((c0 - 0.5, r0 - 0.5), c1 - c0 + 1, r1 - r0 + 1, fill=False, ec="lime", lw=1.5))
    peak = divmod(int(cam.argmax()), cam.shape[-1])
    ax.plot(peak[1], peak[0], "c+", ms=10, mew=2)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    return ax


def draw_cam_explorer(images, maps, boxes, labels, names=("plane", "bird"), index: int = 0, cls: int | None = None,
                      alpha: float = 0.6):
    """Draw the CAM of class `cls` (default: the true class) for test image `index`. Taught in 04_cnns.

    maps: (N, n_classes, H, W) from `course_utils.hooks.class_activation_map`.
    """
    cls = int(labels[index]) if cls is None else cls
    fig, ax = pyplot().subplots(figsize=(3.0, 3.0))
    draw_cam(images[index], maps[index, cls], boxes[index], alpha, ax,
             f"#{index}: a {names[int(labels[index])]}, map of '{names[cls]}'")
    return fig


def cam_explorer(images, maps, boxes, labels, names=("plane", "bird")):
    """Widget: slider over test images, class toggle, overlay opacity. Taught in 04_cnns."""
    import ipywidgets as widgets

    def draw(index, cls, alpha):
        draw_cam_explorer(images, maps, boxes, labels, names, index, None if cls == "true class" else names.index(cls), alpha)
        pyplot().show()

    return explorer(
        draw,
        index=widgets.IntSlider(0, 0, len(images) - 1, description="image"),
        cls=widgets.ToggleButtons(options=["true class", *names], description="class"),
        alpha=widgets.FloatSlider(0.6, min=0.0, max=1.0, step=0.1, description="opacity"),
    )
