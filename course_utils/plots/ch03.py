"""The neuron composer and the digit explorer of 03_nn.

`neuron_composer` sums tanh units into a bump (DLwPT fig. 6.6, live); `digit_explorer` shows a
model's class probabilities for a digit shifted sideways.
"""

from __future__ import annotations

import numpy as np
import torch

from course_utils.plots.widgets import explorer, pyplot

__all__ = [
    "NEURON_DEFAULTS",
    "digit_explorer",
    "draw_digit_explorer",
    "draw_neuron_composer",
    "neuron_composer",
    "neuron_sum",
]

# Two tanh steps of opposite sign make a bump; units 3 and 4 start switched off (output weight 0).
NEURON_DEFAULTS = {
    "w": (3.0, 3.0, 1.0, 1.0),
    "b": (3.0, -3.0, 0.0, 0.0),
    "v": (1.0, -1.0, 0.0, 0.0),
    "c": 0.0,
}


def neuron_sum(x, w, b, v, c: float = 0.0):
    """The output of one hidden layer of tanh units and a linear output. Used in 03_nn (by `draw_neuron_composer`).

    `x` is a 1-D array of inputs; unit i computes `v[i] * tanh(w[i] * x + b[i])` and the network
    outputs their sum plus `c`. Returns `(units, total)`: an array (len(w), len(x)) with each unit's
    contribution, and the (len(x),) output.
    """
    x = np.asarray(x, dtype=np.float64)
    w, b, v = (np.asarray(t, dtype=np.float64).reshape(-1, 1) for t in (w, b, v))
    if not (w.shape == b.shape == v.shape):
        raise ValueError(f"w, b and v need one entry per unit, got {len(w)}, {len(b)} and {len(v)}")
    units = v * np.tanh(w * x + b)
    return units, units.sum(axis=0) + float(c)


def draw_neuron_composer(w=NEURON_DEFAULTS["w"], b=NEURON_DEFAULTS["b"], v=NEURON_DEFAULTS["v"],
                         c: float = NEURON_DEFAULTS["c"], n_units: int = 2, x_range=(-5.0, 5.0)):
    """Draw each tanh unit's contribution and their sum (DLwPT fig. 6.6, live). Taught in 03_nn.

    Uses the first `n_units` (2-4) entries of `w`, `b` and `v`. Left: unit i's curve
    `v[i] * tanh(w[i] x + b[i])`, each a step whose position is -b/w, whose steepness is w and whose
    height is 2 v. Right: the network's output, their sum plus `c`. Returns that output as an array
    over 401 points of `x_range`. This is the draw function of `neuron_composer`.
    """
    plt = pyplot()
    n = int(n_units)
    if not 1 <= n <= len(w):
        raise ValueError(f"n_units must be between 1 and {len(w)}, got {n_units}")
    x = np.linspace(float(x_range[0]), float(x_range[1]), 401)
    units, total = neuron_sum(x, w[:n], b[:n], v[:n], c)
    fig, (ax_units, ax_sum) = plt.subplots(1, 2, figsize=(10.0, 3.4), sharey=True)
    for i, curve in enumerate(units):
        ax_units.plot(x, curve, label=f"unit {i + 1}: {v[i]:+.1f}·tanh({w[i]:.1f}x {b[i]:+.1f})")
    ax_units.set(xlabel="x", ylabel="contribution", title="each hidden unit, scaled by its output weight")
    ax_units.legend(fontsize=7, loc="lower right")
    ax_sum.plot(x, total, color="k", lw=2)
    ax_sum.set(xlabel="x", title=f"network output: the sum{' + c' if c else ''}")
    fig.tight_layout()
    plt.show()
    return total


def neuron_composer(n_max: int = 4):
    """Widget: sliders for the weights and biases of up to four tanh units and their output weights. Taught in 03_nn.

    Each change redraws `draw_neuron_composer`. Returns the ipywidgets object (a notebook shows it).
    """
    import ipywidgets as widgets

    def slider(value, lo, hi, description):
        return widgets.FloatSlider(value=value, min=lo, max=hi, step=0.1, description=description,
                                   continuous_update=False, readout_format=".1f",
                                   layout=widgets.Layout(width="250px"))

    controls = {"n_units": widgets.IntSlider(value=2, min=2, max=n_max, description="units",
                                             continuous_update=False)}
    for i in range(n_max):
        controls[f"w{i + 1}"] = slider(NEURON_DEFAULTS["w"][i], -6.0, 6.0, f"w{i + 1}")
        controls[f"b{i + 1}"] = slider(NEURON_DEFAULTS["b"][i], -6.0, 6.0, f"b{i + 1}")
        controls[f"v{i + 1}"] = slider(NEURON_DEFAULTS["v"][i], -2.0, 2.0, f"v{i + 1}")
    controls["c"] = slider(NEURON_DEFAULTS["c"], -2.0, 2.0, "c")

    def draw(**values):
        k = range(1, n_max + 1)
        draw_neuron_composer(w=[values[f"w{i}"] for i in k], b=[values[f"b{i}"] for i in k],
                             v=[values[f"v{i}"] for i in k], c=values["c"], n_units=values["n_units"])

    rows = [widgets.HBox([controls[f"{p}{i + 1}"] for p in "wbv"]) for i in range(n_max)]
    layout = widgets.VBox([widgets.HBox([controls["n_units"], controls["c"]]), *rows])
    return explorer(draw, layout=layout, **controls)


def draw_digit_explorer(model, images, labels, index: int = 0, shift: int = 0):
    """Show one digit, shifted right by `shift` pixels, and a model's class probabilities. Taught in 03_nn.

    `images` is (N, 28, 28) in [0, 1] and `labels` (N,) class indices; `model` maps a (B, 784)
    float32 batch to (B, 10) logits (it is put in eval mode and run on its own device, without
    grad). The shift is `torch.roll` along the width, so pixels leaving on the right come back on
    the left (the digits' borders are blank). Returns the 10 probabilities as a tensor.
    """
    plt = pyplot()
    image = torch.roll(torch.as_tensor(images[int(index)], dtype=torch.float32), int(shift), dims=-1)
    first = next(model.parameters(), None)
    device = first.device if first is not None else torch.device("cpu")
    model.eval()
    with torch.no_grad():
        probs = torch.softmax(model(image.reshape(1, -1).to(device)), dim=1)[0].cpu()
    label = int(labels[int(index)])
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(8.0, 3.0), gridspec_kw={"width_ratios": [1, 2]})
    ax_img.imshow(image.numpy(), cmap="gray_r")
    ax_img.set_title(f"digit {label}, shifted {int(shift)} px")
    ax_img.axis("off")
    colours = ["C2" if k == label else "C0" for k in range(len(probs))]
    ax_bar.bar(range(len(probs)), probs.numpy(), color=colours)
    ax_bar.set(xticks=range(len(probs)), ylim=(0, 1), xlabel="class", ylabel="probability",
               title=f"predicted {int(probs.argmax())} (true class in green)")
    fig.tight_layout()
    plt.show()
    return probs


def digit_explorer(model, images, labels):
    """Widget: pick a validation digit and a shift; see the image and the model's probabilities. Taught in 03_nn.

    Each change redraws `draw_digit_explorer`. Returns the ipywidgets object (a notebook shows it).
    """
    import ipywidgets as widgets

    def draw(index=0, shift=3):
        draw_digit_explorer(model, images, labels, index=index, shift=shift)

    return explorer(
        draw,
        index=widgets.IntSlider(value=0, min=0, max=len(images) - 1, description="digit",
                                continuous_update=False),
        shift=widgets.IntSlider(value=3, min=-6, max=6, description="shift (px)", continuous_update=False),
    )

