"""CT slice views and the slicer: a (D, H, W) volume in Hounsfield units under a display window.

Serves 01_tensors (a CT volume as a 3-D tensor); the CT chapters to come reuse them.
"""

from __future__ import annotations

import numpy as np
import torch

from course_utils.plots.widgets import explorer, pyplot

__all__ = ["ct_slicer", "draw_ct_slice", "show_ct_planes"]


def draw_ct_slice(volume, spacing=(1.0, 1.0, 1.0), axis: int = 0, index: int | None = None,
                  level: float = 40.0, width: float = 400.0, ax=None, title: str | None = None):
    """One slice of a (D, H, W) volume under a display window, at its true aspect. Taught in 01_tensors.

    axis 0 is axial, 1 coronal, 2 sagittal; `spacing` is (z, y, x) in mm. The window maps
    level - width/2 ... level + width/2 HU onto black ... white. Returns the axes.
    """
    plt = pyplot()
    vol = volume.detach().cpu().numpy() if isinstance(volume, torch.Tensor) else np.asarray(volume)
    axis = int(axis)
    index = vol.shape[axis] // 2 if index is None else int(index)
    image = np.take(vol, index, axis=axis)
    dz, dy, dx = (float(s) for s in spacing)
    row_mm, col_mm = {0: (dy, dx), 1: (dz, dx), 2: (dz, dy)}[axis]
    image = image[::-1]  # rows flipped: the face up in the axial view, the head up in the others
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.imshow(image, cmap="gray", vmin=level - width / 2, vmax=level + width / 2, aspect=row_mm / col_mm,
              interpolation="nearest")
    ax.set_axis_off()
    name = ("axial", "coronal", "sagittal")[axis]
    ax.set_title(title or f"{name} {index}, window {level:g}/{width:g}", fontsize=9)
    return ax


def show_ct_planes(volume, spacing=(1.0, 1.0, 1.0), level: float = 40.0, width: float = 400.0):
    """Axial, coronal and sagittal middle slices side by side at the correct aspect. Taught in 01_tensors.

    Returns the figure.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3.6))
    for axis, ax in enumerate(axes):
        draw_ct_slice(volume, spacing, axis=axis, level=level, width=width, ax=ax)
    fig.tight_layout()
    return fig


def ct_slicer(volume, spacing=(1.0, 1.0, 1.0)):
    """Widget: sliders for axis, slice index, window level and window width. Taught in 01_tensors.

    Returns the ipywidgets object (a notebook displays it).
    """
    import ipywidgets as widgets

    plt = pyplot()
    shape = tuple(volume.shape)

    def draw(axis=0, position=0.5, level=40, width=400):
        index = min(int(position * shape[axis]), shape[axis] - 1)
        draw_ct_slice(volume, spacing, axis=axis, index=index, level=level, width=width)
        plt.show()

    return explorer(
        draw,
        axis=widgets.Dropdown(options=[("axial", 0), ("coronal", 1), ("sagittal", 2)], value=0, description="axis"),
        position=widgets.FloatSlider(min=0.0, max=1.0, step=0.01, value=0.5, continuous_update=False, description="position"),
        level=widgets.IntSlider(min=-1000, max=1500, step=10, value=40, continuous_update=False, description="level"),
        width=widgets.IntSlider(min=10, max=4000, step=10, value=400, continuous_update=False, description="width"),
    )
