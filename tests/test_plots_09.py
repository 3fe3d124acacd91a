"""course_utils.plots.ch09: every figure of 09_deploy draws on small inputs and says what it shows, the playground's
prediction agrees across backends and over HTTP (a small FastAPI app behind TestClient), and the inference
playground builds without drawing and draws once when its callback is called."""

import math

import matplotlib
import numpy as np
import pytest
import torch
from torch import nn

from course_utils.plots import ch09, widgets

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
META = {"arch": "tiny", "mean": 0.286, "std": 0.353, "classes": CLASSES}


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).eval()


@pytest.fixture(scope="module")
def images():
    return torch.randint(0, 256, (5, 28, 28), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def _backends(model):
    return {"eager": model, "as numpy": lambda x: model(x).numpy()}  # an ONNX-Runtime-like backend returns arrays


def _texts(fig):
    return [t.get_text() for ax in fig.axes for t in ax.texts]


def test_train_vs_eval_titles_say_which_calls_differ():
    a = torch.randn(8, 10)
    fig = ch09.plot_train_vs_eval((a, a + 0.1 * torch.randn(8, 10)), [a.clone(), a.clone(), a.clone()])
    train, evaluation = fig.axes
    assert train.get_title().startswith("train mode: calls differ")
    assert evaluation.get_title() == "eval mode: calls equal (max |Δ| 0)"
    assert len(train.collections) == 1 and len(evaluation.collections) == 2  # one scatter per later call
    assert train.get_xlabel() == "output, first call"
    with pytest.raises(ValueError, match="at least two calls"):
        ch09.plot_train_vs_eval([a], [a, a])


def test_accuracy_bars_label_the_drop_from_the_reference():
    fig = ch09.plot_accuracy_bars({"normalised as in training": 0.83, "normalisation forgotten": 0.73})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["normalised as in training", "normalisation forgotten"]
    assert "0.730\n(-0.100)" in _texts(fig) and "0.830" in _texts(fig) and ax.get_ylabel() == "test accuracy"


def test_probabilities_name_classes_and_the_prediction():
    probs = torch.softmax(torch.arange(10.0), 0)
    fig = ch09.plot_probabilities(torch.rand(1, 28, 28), probs, CLASSES, true=2)
    image_ax, bars = fig.axes
    assert [t.get_text() for t in bars.get_yticklabels()] == CLASSES
    assert fig._suptitle.get_text() == f"predicted Ankle boot ({probs[9]:.1%})"
    assert image_ax.get_title() == "true class: Pullover" and image_ax.images[0].get_clim() == (0, 1)
    assert bars.patches[2].get_facecolor() != bars.patches[0].get_facecolor()  # the true class is green
    top_only = np.full(10, np.nan)
    top_only[8] = 0.97  # a server that sends only its top class
    fig = ch09.plot_probabilities(np.full((28, 28), 200, np.uint8), top_only, CLASSES, title="the cat")
    assert fig._suptitle.get_text() == "the cat" and _texts(fig).count("not sent") == 9
    with pytest.raises(ValueError, match="3 probabilities for 10 classes"):
        ch09.plot_probabilities(torch.rand(28, 28), [0.2, 0.3, 0.5], CLASSES)


def test_graphs_side_by_side_count_adds_and_loops_and_cut_long_graphs():
    traced = "graph(%x : Float(5, 4)):\n" + "\n".join(f"  %{k} : Tensor = aten::add(%a, %b, %c) # /w/ch.py:3:4"
                                                      for k in range(4))
    scripted = ("graph(%x : Tensor):\n  %s : Tensor = prim::Loop(%n, %true)\n    %t = aten::add(%s, %row, %1)\n"
                + "  %z\n" * 60)
    fig = ch09.plot_graphs_side_by_side(traced, scripted, max_lines=20)
    left, right = fig.axes
    assert left.get_title(loc="left") == "traced (torch.jit.trace)\n4 × aten::add, 0 × prim::Loop, 0 × prim::If"
    assert right.get_title(loc="left").endswith("1 × aten::add, 1 × prim::Loop, 0 × prim::If")
    assert len(left.texts) == 5 and len(right.texts) == 21 and right.texts[-1].get_text() == "... (43 more lines)"
    assert left.texts[1].get_color() != left.texts[0].get_color()  # the add lines are coloured
    assert left.texts[1].get_text() == "  %0 : Tensor = aten::add(%a, %b, %c)"  # without the source location
    long = ch09.plot_graphs_side_by_side("x" * 200, "y", width=30)
    assert long.axes[0].texts[0].get_text() == "x" * 29 + "…"


def test_latency_bars_one_panel_per_batch_size():
    table = {"eager": {1: 0.41, 64: 13.0}, "compiled": {1: 0.62, 64: 19.0}, "ONNX Runtime": {64: 7.5}}
    fig = ch09.plot_latency_bars(table)
    assert [ax.get_title() for ax in fig.axes] == ["batch of 1", "batch of 64"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["eager", "compiled", "ONNX Runtime"]
    assert "7.5" in [t.get_text() for t in fig.axes[1].texts] and math.isnan(fig.axes[0].patches[2].get_height())
    with pytest.raises(ValueError, match="no timings"):
        ch09.plot_latency_bars({"eager": {}})


def test_batch_sizes_histogram_counts_calls_and_requests():
    sizes = [1, 4, 11, 16, 16, 8, 8]
    fig = ch09.plot_batch_sizes(sizes, max_batch=16)
    ax = fig.axes[0]
    assert ax.get_title() == "7 model calls for 64 requests; largest batch 16"
    assert sum(p.get_height() for p in ax.patches) == 7 and max(p.get_height() for p in ax.patches) == 2
    assert ax.get_xlabel() == "requests in one model call (batch size)" and ax.get_ylabel() == "model calls"


def test_model_sizes_in_mb_with_ratios():
    fig = ch09.plot_model_sizes({"fp32 state_dict": 2_150_000, "int8": 544_000, ".onnx": 2_300_000})
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert texts == ["2.15 MB", "0.544 MB (3.95× smaller)", "2.3 MB (1.07× larger)"]
    assert fig.axes[0].get_xlabel() == "size (MB)"


def test_playground_predict_agrees_across_backends(model, images):
    image = images[0].float() / 255
    expected = torch.softmax(model(((image - 0.286) / 0.353).reshape(1, 1, 28, 28)), 1)[0].detach().numpy()
    for backend in ("eager", "as numpy"):
        probs, label = ch09.playground_predict(_backends(model), image, META, backend)
        assert np.allclose(probs, expected, atol=1e-6) and label == CLASSES[int(expected.argmax())]
    with pytest.raises(KeyError, match="choose one of"):
        ch09.playground_predict(_backends(model), image, META, "int8")


def _app(model, meta):
    """A minimal /predict with the chapter's contract (course_utils.deploy's is tested with deploy)."""
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel

    class Body(BaseModel):
        pixels: list

    app = FastAPI()

    @app.post("/predict")
    def predict(body: Body):
        x = torch.tensor(body.pixels, dtype=torch.float32)
        if x.shape[-2:] != (28, 28) or x.min() < 0 or x.max() > 1:
            raise HTTPException(400, f"expected values in [0, 1] of shape (28, 28), got {tuple(x.shape)}")
        with torch.inference_mode():
            probs = torch.softmax(model(((x - meta["mean"]) / meta["std"]).reshape(-1, 1, 28, 28)), 1)
        p, k = probs.max(1)
        return {"predictions": [{"class": int(c), "label": meta["classes"][int(c)], "probability": round(float(q), 4)}
                                for q, c in zip(p, k)]}

    return app


@pytest.fixture
def server(model, monkeypatch):
    """httpx.post routed into the small app (TestClient is an httpx client), so no socket is opened."""
    import httpx
    from fastapi.testclient import TestClient

    client = TestClient(_app(model, META))
    monkeypatch.setattr(httpx, "post", lambda url, timeout=None, **kwargs: client.post(url, **kwargs))
    yield "http://127.0.0.1:8765"
    client.close()


def test_playground_predict_over_http_matches_a_direct_call(model, images, server):
    image = images[1].float() / 255
    direct, label = ch09.playground_predict(_backends(model), image, META, "eager")
    probs, served = ch09.playground_predict(_backends(model), image, META, "eager", server_url=server + "/")
    k = int(np.nanargmax(probs))
    assert served == label and probs[k] == pytest.approx(direct[k], abs=1e-4) and np.isnan(probs).sum() == 9
    per_backend = {"eager": server, "as numpy": server}
    assert ch09.playground_predict(_backends(model), image, META, "as numpy", server_url=per_backend)[1] == label
    with pytest.raises(RuntimeError, match="answered 400: expected values in"):
        ch09.playground_predict(_backends(model), image * 2, META, "eager", server_url=server)


def test_a_stopped_server_is_a_runtime_error(model, images, monkeypatch):
    import httpx

    def refuse(url, **kwargs):
        raise httpx.ConnectError("connection refused")

    monkeypatch.setattr(httpx, "post", refuse)
    with pytest.raises(RuntimeError, match="no answer from http://127.0.0.1:1/predict: ConnectError"):
        ch09.playground_predict(_backends(model), images[0] / 255, META, "eager", server_url="http://127.0.0.1:1")


def test_draw_playground_titles_the_route_and_changes(model, images, server):
    labels = torch.tensor([3, 1, 4, 1, 5])
    fig = ch09.draw_playground(_backends(model), images, META, labels=labels)
    image_ax, bars = fig.axes
    title = fig._suptitle.get_text()
    assert image_ax.get_title() == "test image #0\ntrue class: Dress" and "eager, called directly" in title
    assert title.endswith(" ms") and bars.patches[3].get_facecolor() != bars.patches[0].get_facecolor()
    cat = np.full((28, 28), 0.5)
    fig = ch09.draw_playground(_backends(model), images, META, noise=0.3, invert=True, show_cat=True, cat=cat,
                               backend="as numpy", via_server=True, server_url=server)
    assert fig.axes[0].get_title() == "the cat (out of domain)\nnoise σ=0.3, inverted"
    assert f"via POST {server}/predict (the server's own model)" in fig._suptitle.get_text()
    shown = fig.axes[0].images[0].get_array()
    assert shown.min() >= 0 and shown.max() <= 1 and not np.allclose(shown, 0.5)  # noisy, clipped, inverted
    again = ch09.draw_playground(_backends(model), images, META, noise=0.3, invert=True, show_cat=True, cat=cat)
    assert np.array_equal(again.axes[0].images[0].get_array(), shown)  # seeded noise: the picture repeats
    with pytest.raises(ValueError, match="needs a server_url"):
        ch09.draw_playground(_backends(model), images, META, via_server=True)
    with pytest.raises(ValueError, match="no cat"):
        ch09.draw_playground(_backends(model), images, META, show_cat=True)


def test_the_playground_builds_without_drawing_and_its_callback_draws_once(model, images, monkeypatch):
    import httpx

    box = ch09.inference_playground(_backends(model), images, META)
    assert repr(box) == widgets.STATIC_TEXT and plt.get_fignums() == []  # nothing drawn while the cell runs
    (index, noise), (invert, cat), (backend, via_server) = (row.children for row in box.children[0].children)
    assert index.max == 4 and list(backend.options) == ["eager", "as numpy"] and cat.disabled and via_server.disabled
    shows = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shows.append(1))
    box.redraw()
    assert shows == [1] and len(plt.get_fignums()) == 1
    backend.value = "as numpy"  # moving a control draws again
    assert shows == [1, 1]

    monkeypatch.setattr(httpx, "post", lambda url, **kwargs: (_ for _ in ()).throw(httpx.ConnectError("refused")))
    served = ch09.inference_playground(_backends(model), images, META, server_url="http://127.0.0.1:1",
                                       cat=np.zeros((28, 28)))
    via = served.children[0].children[2].children[1]
    assert not via.disabled and not served.children[0].children[1].children[1].disabled
    printed = []
    monkeypatch.setattr("builtins.print", lambda *a, **k: printed.append(" ".join(map(str, a))))
    via.value = True  # a stopped server is printed in the widget, not raised
    assert shows == [1, 1] and printed[-1].startswith("no answer from http://127.0.0.1:1/predict: ConnectError")


def test_confidence_histograms_draw_one_step_histogram_per_set_with_its_median():
    fig = ch09.plot_confidence_histograms({"clean": [0.9, 0.95, 0.99], "noisy": [0.3, 0.5, 0.6]})
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["clean (median 0.95)", "noisy (median 0.50)"]
    assert len(ax.patches) == 2
    with pytest.raises(ValueError, match="empty"):
        ch09.plot_confidence_histograms({})
