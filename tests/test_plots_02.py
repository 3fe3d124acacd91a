"""The 02_autograd figures in course_utils.plots: descent.gd_run, ch02.draw_gd_explorer and the gd_explorer widget."""

import matplotlib.pyplot as plt
import pytest
import torch

from course_utils.data import thermometer
from course_utils.plots import ch02, descent


@pytest.fixture
def data():
    t_c, t_u = thermometer()
    return t_u, t_c


def _line(n=30, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, generator=g) * 4 - 2
    y = 3 * x - 1 + 0.01 * torch.randn(n, generator=g)
    return x, y


def test_gd_run_converges_on_a_well_scaled_line():
    x, y = _line()
    run = descent.gd_run(x, y, lr=0.1, epochs=2000)
    assert run["status"] == "converged"
    assert run["path"].shape == (2001, 2) and run["losses"].shape == (2001,)
    assert torch.allclose(run["path"][-1], torch.tensor([3.0, -1.0]), atol=0.02)
    assert torch.equal(run["path"][0], torch.tensor([1.0, 0.0]))
    assert bool((run["losses"][1:] <= run["losses"][:-1] + 1e-6).all())


def test_gd_run_critical_lr_is_two_over_lambda_max():
    x, y = _line()
    xd = x.double()
    hessian = (2 / len(x)) * torch.tensor([[(xd * xd).sum(), xd.sum()], [xd.sum(), float(len(x))]], dtype=torch.float64)
    expected = 2 / torch.linalg.eigvalsh(hessian)[-1].item()
    run = descent.gd_run(x, y, lr=0.1, epochs=1)
    assert run["critical_lr"] == pytest.approx(expected, rel=1e-6)
    # just below the limit plain GD converges (slowly, bouncing); just above it blows up
    assert descent.gd_run(x, y, lr=0.95 * expected, epochs=400)["status"] != "diverged"
    assert descent.gd_run(x, y, lr=1.05 * expected, epochs=400)["status"] == "diverged"


def test_gd_run_stops_at_the_first_non_finite_loss(data):
    t_u, t_c = data
    run = descent.gd_run(t_u, t_c, lr=1e-2, epochs=100)   # Run A of the chapter
    assert run["status"] == "diverged"
    assert len(run["losses"]) < 101
    assert torch.isfinite(run["losses"]).all() and torch.isfinite(run["path"]).all()
    assert len(run["path"]) == len(run["losses"])


def test_gd_run_still_improving_and_optimizers(data):
    t_u, t_c = data
    assert descent.gd_run(t_u, t_c, lr=1e-4, epochs=100)["status"] == "still improving"   # Run B
    adam = descent.gd_run(t_u, t_c, lr=0.1, optimizer="Adam", epochs=2000)
    momentum = descent.gd_run(0.1 * t_u, t_c, lr=1e-2, optimizer="SGD+momentum", epochs=1000)
    assert adam["status"] == "converged" and momentum["status"] == "converged"
    assert adam["losses"][-1].item() == pytest.approx(momentum["losses"][-1].item(), rel=1e-3)   # the same best line
    with pytest.raises(ValueError, match="optimizer must be one of"):
        descent.gd_run(t_u, t_c, lr=1e-2, optimizer="LBFGS")


def test_gd_run_is_deterministic(data):
    t_u, t_c = data
    a = descent.gd_run(0.1 * t_u, t_c, lr=1e-2, optimizer="Adam", epochs=50)
    b = descent.gd_run(0.1 * t_u, t_c, lr=1e-2, optimizer="Adam", epochs=50)
    assert torch.equal(a["path"], b["path"]) and torch.equal(a["losses"], b["losses"])


@pytest.mark.parametrize("lr, scale, optimizer, epochs, verdict", [
    (3e-2, 0.1, "SGD", 2000, "converged"),
    (5e-2, 0.1, "SGD", 100, "diverged: the loss overflowed"),
    (1e-4, 1.0, "SGD", 100, "still improving"),
    (1e-1, 1.0, "Adam", 2000, "converged"),
    (1e-2, 0.1, "SGD+momentum", 1000, "converged"),
])
def test_draw_gd_explorer_prints_a_verdict(data, capsys, lr, scale, optimizer, epochs, verdict):
    t_u, t_c = data
    run = ch02.draw_gd_explorer(t_u, t_c, lr=lr, scale=scale, optimizer=optimizer, epochs=epochs)
    line = capsys.readouterr().out.strip()
    assert line.startswith(verdict), line
    assert "\n" not in line
    assert run["status"] in ("converged", "diverged", "still improving")
    assert plt.get_fignums(), "a figure was drawn"


def test_gd_box_is_square_and_contains_start_and_optimum():
    path = torch.tensor([[1.0, 0.0], [0.8, -0.5], [0.6, -1.0]])
    optimum = torch.tensor([0.54, -17.3], dtype=torch.float64)
    (w_lo, w_hi), (b_lo, b_hi) = ch02._gd_box(path, optimum)
    assert w_hi - w_lo == pytest.approx(b_hi - b_lo)
    assert w_lo < 0.54 < w_hi and b_lo < -17.3 < b_hi and w_lo < 1.0 < w_hi and b_lo < 0.0 < b_hi
    # a path that runs off to infinity does not stretch the window without bound
    wild = torch.tensor([[1.0, 0.0], [1e6, -1e6]])
    (w_lo, w_hi), _ = ch02._gd_box(wild, optimum)
    assert w_hi < 100


def test_gd_explorer_builds_the_four_controls_and_draws_only_on_request(data, monkeypatch):
    widgets = pytest.importorskip("ipywidgets")
    t_u, t_c = data
    calls = []
    monkeypatch.setattr(ch02, "draw_gd_explorer", lambda *args, **kwargs: calls.append(kwargs))
    box = ch02.gd_explorer(t_u, t_c)
    assert isinstance(box, widgets.Box)
    assert calls == [], "nothing is computed while the widget is built"

    def flatten(widget):
        yield widget
        for child in getattr(widget, "children", ()):
            yield from flatten(child)

    controls = {w.description: w for w in flatten(box) if getattr(w, "description", "")}
    assert {"lr", "input", "optimizer", "epochs", "draw"} <= set(controls)
    assert controls["lr"].min == -6 and controls["lr"].max == 0   # log10 range 1e-6 ... 1
    assert controls["epochs"].min == 10 and controls["epochs"].max == 5000
    assert set(controls["optimizer"].options) == {"SGD", "SGD+momentum", "Adam"}
    assert [v for _, v in controls["input"].options] == [1.0, 0.1]

    box.redraw()
    assert calls == [dict(lr=1e-2, scale=0.1, optimizer="SGD", epochs=5000)]   # the defaults
    controls["optimizer"].value = "Adam"                                          # a change redraws
    assert calls[-1]["optimizer"] == "Adam" and len(calls) == 2
    controls["draw"].click()
    assert len(calls) == 3
