"""The gradient-descent explorer of 02_autograd: loss curve and path over the loss contours.

`draw_gd_explorer` draws one run of `descent.gd_run` (fitting y ≈ w·x + b); `gd_explorer` is its
widget, with the learning rate, input scale, optimizer and epochs as controls.
"""

from __future__ import annotations

import numpy as np
import torch

from course_utils.plots.descent import GD_OPTIMIZERS, gd_run
from course_utils.plots.widgets import explorer_box, pyplot

__all__ = ["draw_gd_explorer", "gd_explorer"]


def _gd_box(path: torch.Tensor, optimum: torch.Tensor) -> tuple[tuple[float, float], tuple[float, float]]:
    """A square window (same span for w and b) around the start, the optimum and the path.

    The path is followed at most 1.5 spans beyond the start and the optimum, so a run that blows
    up does not shrink the picture to a dot.
    """
    start = path[0].double()
    corners = torch.stack([start, optimum])
    span = (corners.max(0).values - corners.min(0).values).max().clamp_min(1e-3)
    lo = corners.min(0).values - 0.25 * span
    hi = corners.max(0).values + 0.25 * span
    pts = path.double()
    lo = torch.maximum(torch.minimum(lo, pts.min(0).values), corners.min(0).values - 1.5 * span)
    hi = torch.minimum(torch.maximum(hi, pts.max(0).values), corners.max(0).values + 1.5 * span)
    centre, half = (lo + hi) / 2, (hi - lo).max() / 2 * 1.05
    return (centre[0].item() - half.item(), centre[0].item() + half.item()), \
           (centre[1].item() - half.item(), centre[1].item() + half.item())


def draw_gd_explorer(x, y, lr: float = 1e-2, scale: float = 0.1, optimizer: str = "SGD", epochs: int = 5000,
                     init=(1.0, 0.0)) -> dict:
    """Run gradient descent on y ≈ w·(scale·x) + b and draw what happened. Taught in 02_autograd.

    Left: the loss per epoch (log scale, cut at the first inf/nan). Right: the loss contours over
    (w, b), drawn at the same scale on both axes (the geometry gradient descent sees), with the path
    the optimizer took, the start (o) and the least-squares optimum (*).
    Prints one line with the verdict ("diverged", "converged" or "still improving") and the
    critical learning rate 2/λ_max of plain gradient descent on this input. Returns `gd_run`'s dict.
    This is the draw function of `gd_explorer`.
    """
    plt = pyplot()
    xs = torch.as_tensor(x, dtype=torch.float32).detach().cpu() * float(scale)
    ys = torch.as_tensor(y, dtype=torch.float32).detach().cpu()
    run = gd_run(xs, ys, lr, optimizer=optimizer, epochs=epochs, init=init)

    design = torch.stack([xs.double(), torch.ones_like(xs, dtype=torch.float64)], dim=1)
    optimum = torch.linalg.lstsq(design, ys.double().unsqueeze(1)).solution.squeeze(1)
    (w_lo, w_hi), (b_lo, b_hi) = _gd_box(run["path"], optimum)
    ws = torch.linspace(w_lo, w_hi, 161, dtype=torch.float64)
    bs = torch.linspace(b_lo, b_hi, 161, dtype=torch.float64)
    grid_w, grid_b = torch.meshgrid(ws, bs, indexing="xy")
    surface = ((grid_w[..., None] * xs.double() + grid_b[..., None] - ys.double()) ** 2).mean(-1)
    best = ((design @ optimum - ys.double()) ** 2).mean().item()
    levels = np.geomspace(max(best * 1.02, 1e-6), surface.max().item(), 14)

    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(10.0, 4.2))
    losses = run["losses"]
    ax_loss.semilogy(range(len(losses)), losses.numpy(), color="C0")
    ax_loss.axhline(best, color="gray", ls=":", label="best possible")
    ax_loss.set(xlabel="epoch", ylabel="MSE loss", title=f"{optimizer}, lr={lr:.2g}, input × {scale:g}")
    ax_loss.legend(loc="upper right")

    ax_map.contour(ws.numpy(), bs.numpy(), surface.numpy(), levels=levels, cmap="viridis", linewidths=0.8)
    path = run["path"].numpy()
    ax_map.plot(path[:, 0], path[:, 1], ".-", color="C3", ms=2, lw=0.8)
    ax_map.plot(path[0, 0], path[0, 1], "o", color="C3", mfc="none", ms=8)
    ax_map.plot(optimum[0].item(), optimum[1].item(), "*", color="k", ms=10)
    ax_map.set(xlim=(w_lo, w_hi), ylim=(b_lo, b_hi), aspect="equal", xlabel="w", ylabel="b",
               title="path over the loss contours")
    fig.tight_layout()
    plt.show()

    crit = run["critical_lr"]
    if optimizer == "SGD":
        note = f"plain GD diverges above lr = {crit:.3g} on this input"
    elif optimizer == "SGD+momentum":
        note = f"with momentum 0.9 the limit is 1.9 × 2/λ_max = {1.9 * crit:.3g} (plain GD: {crit:.3g})"
    else:
        note = f"Adam scales each step to about lr per parameter (plain GD would diverge above {crit:.3g})"
    steps = len(losses) - 1
    if steps < int(epochs):
        verdict = f"diverged: the loss overflowed after {steps} of {int(epochs)} epochs"
    else:
        verdict = f"{run['status']} after {int(epochs)} epochs, final loss {losses[-1].item():.4g}"
    print(f"{verdict}; {note}")
    return run


def gd_explorer(x, y):
    """Widget: learning rate, input scale, optimizer and epochs for fitting y ≈ w·x + b. Taught in 02_autograd.

    Each change of a control (or a press of "draw") reruns `draw_gd_explorer`: the loss curve, the
    path over the loss contours, and a diverged/converged verdict with the critical learning rate.
    Nothing is computed while the widget is built, only when a control is used: a notebook shows the
    default picture with a plain `draw_gd_explorer(...)` call. (Drawing a figure into an Output
    widget while a cell executes can leave a scripted run, nbclient or nbval, waiting forever for a
    reply that the kernel has sent.) Returns the ipywidgets box (a notebook displays it).
    """
    import ipywidgets as widgets

    lr = widgets.FloatLogSlider(value=1e-2, base=10, min=-6, max=0, step=0.1, readout_format=".1e",
                                continuous_update=False, description="lr")
    scale = widgets.ToggleButtons(options=[("× 1 (raw)", 1.0), ("× 0.1 (scaled)", 0.1)], value=0.1,
                                  description="input")
    optimizer = widgets.ToggleButtons(options=list(GD_OPTIMIZERS), value="SGD", description="optimizer")
    epochs = widgets.IntSlider(value=5000, min=10, max=5000, step=10, continuous_update=False,
                               description="epochs")
    button = widgets.Button(description="draw")
    out = widgets.Output()
    out.append_stdout("Press draw, or move a control, to run gradient descent with these settings.\n")

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            draw_gd_explorer(x, y, lr=lr.value, scale=scale.value, optimizer=optimizer.value, epochs=epochs.value)

    for control in (lr, scale, optimizer, epochs):
        control.observe(redraw, names="value")
    button.on_click(redraw)
    box = explorer_box([widgets.HBox([lr, epochs]), scale, optimizer, button, out])
    box.redraw = redraw  # for tests and scripts: draw with the current settings
    return box
