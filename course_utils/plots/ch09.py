"""Figures and the inference playground of 09_deploy (from notebook to service).

Inference hygiene: repeated calls in train and eval mode, accuracy with and without the training
normalisation, a softmax bar chart beside its image (the out-of-domain cat). Export: the traced and the
scripted TorchScript graphs side by side. Measurements: latency per backend and batch size, the
micro-batcher's batch sizes, model sizes. Then the inference playground: one image (a test image or the
cat, with noise or inverted) through a chosen backend, called directly or over the localhost server.
Every figure function returns its figure (the chapter calls `plt.show()`); the playground's draw callback
shows its own. Nothing here imports `course_utils.deploy`: backends and servers come in as arguments.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from course_utils.models import preprocess
from course_utils.plots.widgets import explorer, pyplot

__all__ = [
    "draw_playground", "inference_playground", "playground_predict", "plot_accuracy_bars", "plot_batch_sizes",
    "plot_confidence_histograms", "plot_graphs_side_by_side", "plot_latency_bars", "plot_model_sizes", "plot_probabilities", "plot_train_vs_eval",
]

_GOOD, _BAD, _TRUE = "#2ca02c", "#d62728", "#2ca02c"  # green: reference / equal, red: differs / degraded


def _numpy(values) -> np.ndarray:
    """A float numpy array of a tensor (detached, on the CPU), an array or a nested list."""
    if isinstance(values, torch.Tensor):
        values = values.detach().cpu().float().numpy()
    return np.asarray(values, dtype=float)


# ================================================================================================
# Inference hygiene
# ================================================================================================


def plot_train_vs_eval(train_outs, eval_outs):
    """Two scatter panels: a model's outputs on its second call against its first, in train mode and in eval mode.
    Taught in 09_deploy.

    `train_outs` and `eval_outs` are sequences of the outputs of repeated calls on the same input (two or more
    tensors of one shape); every later call is plotted against the first. In train mode Dropout and BatchNorm's
    batch statistics move the points off the diagonal; in eval mode they sit on it. Each title says whether the
    calls are equal and their largest difference. Returns the figure.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 4.0))
    for ax, outs, mode in ((axes[0], train_outs, "train"), (axes[1], eval_outs, "eval")):
        outs = [_numpy(out).ravel() for out in outs]
        if len(outs) < 2:
            raise ValueError(f"{mode}_outs: need the outputs of at least two calls, got {len(outs)}")
        first = outs[0]
        gap = max(float(np.max(np.abs(out - first))) if out.size else 0.0 for out in outs[1:])
        equal = all(np.array_equal(out, first) for out in outs[1:])
        colour = _GOOD if equal else _BAD
        for k, out in enumerate(outs[1:], start=2):
            ax.scatter(first, out, s=12, alpha=0.7, color=colour, label=f"call {k}" if len(outs) > 2 else None)
        low = min(float(np.min(out)) for out in outs)
        high = max(float(np.max(out)) for out in outs)
        pad = 0.05 * (high - low or 1.0)
        ax.plot([low - pad, high + pad], [low - pad, high + pad], color="0.5", linewidth=1, linestyle="--",
                label="y = x")
        ax.set_xlim(low - pad, high + pad)
        ax.set_ylim(low - pad, high + pad)
        ax.set_aspect("equal")
        ax.set_xlabel("output, first call")
        ax.set_ylabel("output, second call" if len(outs) == 2 else "output, later calls")
        verdict = "calls equal" if equal else "calls differ"
        ax.set_title(f"{mode} mode: {verdict} (max |Δ| {gap:.3g})", fontsize=10)
        ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def plot_accuracy_bars(accs: Mapping[str, float], ylabel: str = "test accuracy"):
    """Test accuracy per preprocessing (e.g. {"normalised as in training": 0.83, "normalisation forgotten": 0.73}).
    Taught in 09_deploy.

    The first entry is the reference (green); every other bar is labelled with its accuracy and its difference
    from the reference. A forgotten normalisation raises no error: only this drop shows it. Returns the figure.
    """
    plt = pyplot()
    names, values = list(accs), [float(v) for v in accs.values()]
    if not names:
        raise ValueError("accs is empty: pass {name: accuracy}")
    fig, ax = plt.subplots(figsize=(1.6 + 1.9 * len(names), 3.8))
    bars = ax.bar(range(len(names)), values, color=[_GOOD] + ["#ff7f0e"] * (len(names) - 1), width=0.6)
    labels = [f"{values[0]:.3f}"] + [f"{v:.3f}\n({v - values[0]:+.3f})" for v in values[1:]]
    ax.bar_label(bars, labels=labels, fontsize=9)
    ax.set_xticks(range(len(names)), names, fontsize=9)
    ax.set_ylim(0, 1.15)
    ax.set_ylabel(ylabel)
    ax.set_title("same model, same images: only the preprocessing differs", fontsize=10)
    fig.tight_layout()
    return fig


def _image_01(image) -> np.ndarray:
    """A picture as a 2-D (or H, W, 3) float array: channels of one squeezed away, uint8 scaled to 0..1."""
    is_uint8 = (image.dtype == torch.uint8) if isinstance(image, torch.Tensor) else np.asarray(image).dtype == np.uint8
    array = _numpy(image).squeeze()
    return array / 255.0 if is_uint8 else array


def _draw_probability_bars(ax, probs: np.ndarray, classes: Sequence[str], true: int | None = None) -> int | None:
    """Horizontal softmax bars, one per class, the top bar's probability written. Returns the top class (None if
    no probability is known)."""
    known = ~np.isnan(probs)
    top = int(np.nanargmax(probs)) if known.any() else None
    colours = ["C0"] * len(probs)
    if true is not None:
        colours[int(true)] = _TRUE
    ax.barh(range(len(probs)), np.nan_to_num(probs), color=colours)
    ax.set_yticks(range(len(probs)), [str(c) for c in classes], fontsize=9)
    ax.invert_yaxis()  # class 0 at the top
    ax.set_xlim(0, 1.12)
    ax.set_xlabel("probability")
    if top is not None:
        ax.text(probs[top] + 0.01, top, f"{probs[top]:.1%}", va="center", fontsize=9)
    for k in np.flatnonzero(~known):
        ax.text(0.01, k, "not sent", va="center", fontsize=7, color="0.5")
    return top


def plot_probabilities(image, probs, classes: Sequence[str], title: str | None = None, true: int | None = None):
    """An image beside the model's softmax bar chart over `classes` (the out-of-domain cat, a test image).
    Taught in 09_deploy.

    `image`: (H, W), (1, H, W) or (H, W, 3), floats in 0..1 or uint8; `probs`: the 10 probabilities (tensor or
    array; NaN where unknown, e.g. a server that sends only its top class). `true`, when given, colours that
    class's bar green. The default title names the predicted class and its probability: a model trained on
    clothes answers "Bag" for a cat, and sounds sure. Returns the figure.
    """
    plt = pyplot()
    probs = _numpy(probs).ravel()
    if len(probs) != len(classes):
        raise ValueError(f"{len(probs)} probabilities for {len(classes)} classes")
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(8.4, 3.4), gridspec_kw={"width_ratios": [1, 1.8]})
    picture = _image_01(image)
    in_01 = picture.size and picture.min() >= 0 and picture.max() <= 1
    ax_img.imshow(picture, cmap="gray", vmin=0 if in_01 else None, vmax=1 if in_01 else None, interpolation="nearest")
    ax_img.set_axis_off()
    top = _draw_probability_bars(ax_bar, probs, classes, true)
    if title is None:
        title = "no prediction" if top is None else f"predicted {classes[top]} ({probs[top]:.1%})"
    if true is not None:
        ax_img.set_title(f"true class: {classes[int(true)]}", fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


# ================================================================================================
# TorchScript graphs
# ================================================================================================

_HIGHLIGHT = {"aten::add": "#d62728", "prim::Loop": "#1f77b4", "prim::If": "#9467bd"}
_SOURCE_COMMENT = re.compile(r"\s+# \S+:\d+:\d+\s*$")  # TorchScript's " # /path/file.py:12:4" after a node


def _text_panel(ax, text: str, title: str, max_lines: int, width: int, highlight: Mapping[str, str],
                rows: int = 0) -> None:
    lines = [_SOURCE_COMMENT.sub("", line) for line in str(text).rstrip("\n").splitlines()] or [""]
    shown = lines[:max_lines]
    if len(lines) > max_lines:
        shown.append(f"... ({len(lines) - max_lines} more lines)")
    counts = ", ".join(f"{str(text).count(op)} × {op}" for op in highlight)
    ax.set_axis_off()
    ax.set_title(f"{title}\n{counts}" if counts else title, fontsize=9, loc="left")
    step = 1.0 / max(len(shown), rows, 1)  # the same line height in both panels
    for i, line in enumerate(shown):
        line = line if len(line) <= width else line[: width - 1] + "…"
        colour = next((c for op, c in highlight.items() if op in line), "0.1")
        ax.text(0.0, 1.0 - (i + 0.5) * step, line, family="monospace", fontsize=7, color=colour, va="center",
                ha="left", transform=ax.transAxes)


def plot_graphs_side_by_side(traced_text, scripted_text, titles: Sequence[str] = ("traced (torch.jit.trace)",
                             "scripted (torch.jit.script)"), max_lines: int = 40, width: int = 100,
                             highlight: Mapping[str, str] | None = None):
    """Two TorchScript graphs as monospace text panels, traced left and scripted right. Taught in 09_deploy.

    `traced_text` and `scripted_text` are the graphs (`traced.graph` or its str). Lines holding `aten::add`
    (red), `prim::Loop` (blue) or `prim::If` (purple) are coloured and each title counts them: the trace
    unrolled the loop into one add per example row, the script kept one `prim::Loop`. The source-location
    comments TorchScript appends to each node (" # /path/file.py:12:4") are left out; longer graphs are cut at
    `max_lines` lines of `width` characters. `highlight` {op: colour} replaces the three defaults. Returns the
    figure.
    """
    plt = pyplot()
    highlight = _HIGHLIGHT if highlight is None else highlight
    texts = (str(traced_text), str(scripted_text))
    n_lines = max(min(len(t.splitlines()), max_lines + 1) for t in texts)
    fig, axes = plt.subplots(1, 2, figsize=(14, 0.9 + 0.17 * max(n_lines, 4)))
    for ax, text, title in zip(axes, texts, titles):
        _text_panel(ax, text, title, max_lines, width, highlight, rows=n_lines)
    fig.tight_layout()
    return fig


# ================================================================================================
# Measurements: latency, batching, size
# ================================================================================================


def plot_latency_bars(table: Mapping[str, Mapping[int, float]], ylabel: str = "median ms per call"):
    """Latency per backend, one panel per batch size: {backend: {batch_size: ms}}. Taught in 09_deploy.

    E.g. {"eager": {1: 0.4, 64: 13}, "compiled": {...}, "ONNX Runtime": {...}, "int8": {...}}. Each panel has its
    own scale (batch 64 takes far longer than batch 1), each backend keeps its colour across panels, and every
    bar is labelled; a backend missing a batch size gets no bar there. The numbers are this machine's, measured
    in an ignored cell: another CPU orders them differently. Returns the figure.
    """
    plt = pyplot()
    backends = list(table)
    batches = sorted({int(b) for row in table.values() for b in row})
    if not batches:
        raise ValueError("the table holds no timings: pass {backend: {batch_size: ms}}")
    fig, axes = plt.subplots(1, len(batches), figsize=(1.0 + (0.9 + 0.85 * len(backends)) * len(batches), 3.8),
                             squeeze=False)
    colours = {name: f"C{k % 10}" for k, name in enumerate(backends)}
    for ax, batch in zip(axes[0], batches):
        values = [float(table[name].get(batch, math.nan)) for name in backends]
        bars = ax.bar(range(len(backends)), values, color=[colours[name] for name in backends])
        ax.bar_label(bars, labels=["" if math.isnan(v) else f"{v:.3g}" for v in values], fontsize=8)
        ax.set_xticks(range(len(backends)), backends, rotation=30, ha="right", fontsize=9)
        ax.set_title(f"batch of {batch}", fontsize=10)
        ax.set_ylabel(ylabel)
        ax.margins(y=0.15)
    fig.suptitle("latency (median; lower is faster)", fontsize=10)
    fig.tight_layout()
    return fig


def plot_batch_sizes(batch_sizes: Sequence[int], max_batch: int):
    """Histogram of the batch sizes a micro-batcher ran (its `batch_sizes`), up to `max_batch`. Taught in 09_deploy.

    The title counts model calls against requests and names the largest batch; a dashed line marks `max_batch`,
    which no batch may pass. Returns the figure.
    """
    plt = pyplot()
    sizes = [int(s) for s in batch_sizes]
    top = max(sizes + [int(max_batch)])
    fig, ax = plt.subplots(figsize=(7.0, 3.4))
    ax.hist(sizes, bins=np.arange(0.5, top + 1.5), color="C0", edgecolor="white")
    ax.axvline(max_batch + 0.5, color=_BAD, linestyle="--", linewidth=1.2, label=f"max_batch = {max_batch}")
    ax.set_xticks(range(1, top + 1) if top <= 32 else np.linspace(1, top, 9).round().astype(int))
    ax.set_xlim(0.5, top + 1.5)
    ax.set_xlabel("requests in one model call (batch size)")
    ax.set_ylabel("model calls")
    ax.yaxis.get_major_locator().set_params(integer=True)
    largest = max(sizes) if sizes else 0
    ax.set_title(f"{len(sizes)} model calls for {sum(sizes)} requests; largest batch {largest}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_model_sizes(sizes: Mapping[str, int]):
    """Model sizes in MB (10^6 bytes), one bar per form: {"fp32 state_dict": bytes, "int8": ..., ".pt2": ...,
    ".onnx": ...}. Taught in 09_deploy.

    Each bar is labelled with its size and its ratio to the first entry (the reference). Returns the figure.
    """
    plt = pyplot()
    names, values = list(sizes), [int(v) for v in sizes.values()]
    if not names:
        raise ValueError("sizes is empty: pass {name: bytes}")
    fig, ax = plt.subplots(figsize=(7.6, 0.9 + 0.55 * len(names)))
    mb = [v / 1e6 for v in values]
    bars = ax.barh(range(len(names)), mb, color=[f"C{k % 10}" for k in range(len(names))])

    def label(k: int) -> str:
        if k == 0 or values[k] == 0:
            return f"{mb[k]:.3g} MB"
        ratio = values[0] / values[k]
        return f"{mb[k]:.3g} MB ({ratio:.2f}× smaller)" if ratio >= 1 else f"{mb[k]:.3g} MB ({1 / ratio:.2f}× larger)"

    ax.bar_label(bars, labels=[label(k) for k in range(len(names))], fontsize=8, padding=3)
    ax.set_yticks(range(len(names)), names, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, max(mb) * 1.45 or 1)
    ax.set_xlabel("size (MB)")
    ax.set_title(f"model size (first bar: {names[0]})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_confidence_histograms(confidence: Mapping[str, Sequence[float]], bins: int = 20):
    """Histograms of the top softmax probability per image, one per input set ({"test images": ..., "with noise":
    ...}): what a service logs to notice domain shift. Taught in 09_deploy.

    Each set is drawn as a step histogram of the share of its images per bin, on the range 0..1, with its median
    in the legend. Returns the figure.
    """
    plt = pyplot()
    if not confidence:
        raise ValueError("confidence is empty: pass {name: top probabilities}")
    fig, ax = plt.subplots(figsize=(7.6, 3.4))
    edges = np.linspace(0, 1, bins + 1)
    for k, (name, values) in enumerate(confidence.items()):
        v = np.asarray(torch.as_tensor(values, dtype=torch.float64))
        ax.hist(v, bins=edges, weights=np.full(len(v), 1 / max(len(v), 1)), histtype="step", linewidth=2,
                color=f"C{k % 10}", label=f"{name} (median {np.median(v):.2f})")
    ax.set_xlabel("top softmax probability (the model's confidence)")
    ax.set_ylabel("share of images")
    ax.set_title("confidence drifts when the inputs do", fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# ================================================================================================
# The inference playground
# ================================================================================================


def _server_for(server_url: str | Mapping[str, str] | None, backend: str) -> str | None:
    if server_url is None or isinstance(server_url, str):
        return server_url
    return server_url[backend]


def playground_predict(backends: Mapping[str, Callable], image_01, meta: Mapping, backend: str,
                       server_url: str | Mapping[str, str] | None = None) -> tuple[np.ndarray, str]:
    """One image through one backend: returns (probabilities, predicted label). Taught in 09_deploy.

    `image_01` is one (28, 28) image (or (1, 28, 28)), floats in 0..1; `meta` holds the preprocessing contract
    ('mean', 'std') and the 'classes'. Without `server_url`, the image is normalised here and
    `backends[backend]` (normalised (1, 1, 28, 28) float32 batch -> logits, a tensor or an array) runs under
    `torch.inference_mode()`; the probabilities are its softmax. With `server_url` ("http://127.0.0.1:PORT", or
    {backend: url} for one server per backend), the raw image is POSTed as JSON to `/predict` with httpx and the
    server normalises it; its answer names the top class and its probability only, so the other classes' entries
    are NaN (unless the server also sends "probabilities"). A refused request raises RuntimeError with the
    server's message. The playground calls this; a checked cell can run it for one image through each backend.
    """
    classes = list(meta["classes"])
    image = torch.as_tensor(_numpy(image_01), dtype=torch.float32).reshape(28, 28)
    url = _server_for(server_url, backend)
    if url is None:
        if backend not in backends:
            raise KeyError(f"no backend {backend!r}: choose one of {sorted(backends)}")
        batch = preprocess(image[None], meta)
        with torch.inference_mode():
            logits = torch.as_tensor(_numpy(backends[backend](batch)))
        probs = torch.softmax(logits.reshape(1, -1).double(), dim=1)[0].numpy()
        return probs, classes[int(np.argmax(probs))]
    return _predict_over_http(url, image, classes)


def _predict_over_http(url: str, image: torch.Tensor, classes: list[str]) -> tuple[np.ndarray, str]:
    import httpx

    endpoint = url.rstrip("/") + "/predict"
    try:
        response = httpx.post(endpoint, json={"pixels": image.tolist()}, timeout=10.0)
    except httpx.HTTPError as err:
        raise RuntimeError(f"no answer from {endpoint}: {type(err).__name__}: {err}") from err
    if response.status_code != 200:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise RuntimeError(f"{endpoint} answered {response.status_code}: {detail}")
    answer = response.json()["predictions"][0]
    probs = np.full(len(classes), np.nan)
    if "probabilities" in answer:
        probs[:] = answer["probabilities"]
    probs[int(answer["class"])] = float(answer["probability"])
    return probs, str(answer["label"])


def _playground_image(images_uint8, index: int, noise: float, invert: bool, cat=None, show_cat: bool = False,
                      seed: int = 0) -> np.ndarray:
    """The playground's input: test image `index` (or the cat), plus Gaussian noise of std `noise` (seeded by
    `seed` and the index, so a picture repeats), clipped to 0..1, then inverted (1 - x) if asked."""
    if show_cat:
        if cat is None:
            raise ValueError("no cat image was given to the playground")
        image = _image_01(cat)
    else:
        image = _image_01(images_uint8[int(index)])
    image = np.asarray(image, dtype=np.float32).reshape(28, 28)
    if noise > 0:
        rng = np.random.default_rng([seed, int(index), int(show_cat)])
        image = np.clip(image + rng.normal(0.0, noise, image.shape).astype(np.float32), 0.0, 1.0)
    return 1.0 - image if invert else image


def draw_playground(backends: Mapping[str, Callable], images_uint8, meta: Mapping, index: int = 0,
                    noise: float = 0.0, invert: bool = False, show_cat: bool = False, backend: str | None = None,
                    via_server: bool = False, server_url: str | Mapping[str, str] | None = None, cat=None,
                    labels=None, seed: int = 0):
    """The inference playground's picture: the input image beside its probability bars and the latency.
    Taught in 09_deploy.

    The image is test image `index` of `images_uint8` ((N, 28, 28) uint8), or the out-of-domain `cat` (28 x 28,
    uint8 or 0..1) when `show_cat`; Gaussian noise of std `noise` (clipped to 0..1) and `invert` (1 - x) change
    it. It goes through `backend` (default: the first of `backends`) by `playground_predict`, over `server_url`
    when `via_server`. `labels`, when given, colours the test image's true class green. The title names the
    prediction, the route and the wall-clock latency of that one call. Returns the figure.
    """
    backend = next(iter(backends)) if backend is None else backend
    image = _playground_image(images_uint8, index, noise, invert, cat, show_cat, seed)
    url = server_url if via_server else None
    if via_server and server_url is None:
        raise ValueError("via_server needs a server_url")
    start = time.perf_counter()
    probs, label = playground_predict(backends, image, meta, backend, url)
    ms = 1000 * (time.perf_counter() - start)
    if via_server:
        where = _server_for(server_url, backend)
        route = f"POST {where}/predict" + ("" if isinstance(server_url, Mapping) else " (the server's own model)")
    else:
        route = f"{backend}, called directly"
    top = int(np.nanargmax(probs))
    true = None if show_cat or labels is None else int(labels[int(index)])
    changes = ", ".join(c for c in (f"noise σ={noise:g}" if noise > 0 else "", "inverted" if invert else "") if c)
    source = "the cat (out of domain)" if show_cat else f"test image #{int(index)}"
    fig = plot_probabilities(image, probs, meta["classes"], true=true,
                             title=f"{label} ({probs[top]:.1%}) via {route}: {ms:.2f} ms")
    fig.axes[0].set_title(source + (f"\n{changes}" if changes else "")
                          + (f"\ntrue class: {meta['classes'][true]}" if true is not None else ""), fontsize=9)
    fig.tight_layout()
    return fig


def inference_playground(backends: Mapping[str, Callable], images_uint8, meta: Mapping,
                         server_url: str | Mapping[str, str] | None = None, cat=None, labels=None):
    """Widget "inference playground" of 09_deploy: an image through a backend, directly or over the localhost server.
    Taught in 09_deploy.

    Controls: test image (index slider), Gaussian noise (std), invert, the cat (disabled without `cat`),
    backend (the keys of `backends`: name -> callable taking a normalised (N, 1, 28, 28) batch, returning
    logits), and "via localhost server" (disabled without `server_url`; POSTs `/predict` with httpx). The
    arguments are `draw_playground`'s, which draws the default view for a static page; a refused request or a
    stopped server is printed in the widget, not raised. Returns the ipywidgets box; nothing is computed until
    a control moves (see `explorer`).
    """
    import ipywidgets as widgets

    def draw(index, noise, invert, show_cat, backend, via_server):
        try:
            draw_playground(backends, images_uint8, meta, index=index, noise=noise, invert=invert, show_cat=show_cat,
                            backend=backend, via_server=via_server, server_url=server_url, cat=cat, labels=labels)
        except RuntimeError as err:
            print(err)
            return
        pyplot().show()

    controls = {
        "index": widgets.IntSlider(value=0, min=0, max=len(images_uint8) - 1, continuous_update=False,
                                   description="test image"),
        "noise": widgets.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.05, continuous_update=False,
                                     description="noise σ"),
        "invert": widgets.Checkbox(value=False, description="invert (1 - x)"),
        "show_cat": widgets.Checkbox(value=False, description="the cat instead", disabled=cat is None),
        "backend": widgets.Dropdown(options=list(backends), value=next(iter(backends)), description="backend"),
        "via_server": widgets.Checkbox(value=False, description="via localhost server", disabled=server_url is None),
    }
    layout = widgets.VBox([widgets.HBox([controls["index"], controls["noise"]]),
                           widgets.HBox([controls["invert"], controls["show_cat"]]),
                           widgets.HBox([controls["backend"], controls["via_server"]])])
    return explorer(draw, layout=layout, **controls)
