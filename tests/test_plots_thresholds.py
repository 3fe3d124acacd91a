"""course_utils.plots.thresholds: every figure draws on small inputs, and the threshold explorer builds and redraws."""

import matplotlib
import pytest
import torch

from course_utils import plots
from course_utils.plots import thresholds

matplotlib.use("Agg")
pytestmark = pytest.mark.usefixtures("one_thread")


def _scores(n: int = 80):
    g = torch.Generator().manual_seed(0)
    labels = (torch.rand(n, generator=g) < 0.2).long()
    labels[:2] = torch.tensor([0, 1])
    probs = (0.35 * labels + 0.65 * torch.rand(n, generator=g)).clamp(0, 1)
    return labels, probs


def test_f_heatmaps_draw_f1_mean_min_and_product():
    thresholds.draw_f_heatmaps(steps=11, mark=(0.03, 1.0))
    fig = plots.pyplot().gcf()
    titles = [ax.get_title() for ax in fig.axes[:4]]
    assert titles == ["F1 = harmonic mean", "arithmetic mean", "min", "product"]
    f1 = fig.axes[0].get_images()[0].get_array()
    assert f1[10, 10] == 1.0 and f1[0, 10] == 0.0 and f1[5, 5] == pytest.approx(0.5)  # [precision, recall]
    assert fig.axes[1].get_images()[0].get_array()[0, 10] == 0.5  # the mean rewards recall alone


def test_pr_curve_f1_versus_threshold_and_confusion_draw():
    labels, probs = _scores()
    thresholds.draw_pr_curve(labels, probs, threshold=0.5)
    best = thresholds.draw_f1_vs_threshold(labels, probs, steps=21)
    table = thresholds.evaluate.threshold_table(labels, probs, [i / 20 for i in range(21)])
    assert best == pytest.approx(table.threshold[table.f1.idxmax()])
    thresholds.draw_confusion({"tp": 3, "fp": 1, "fn": 2, "tn": 40})
    texts = [t.get_text() for t in plots.pyplot().gca().texts]
    assert texts == ["TN\n40", "FP\n1", "FN\n2", "TP\n3"]
    thresholds.draw_confusion([[40, 1], [2, 3]])
    assert [t.get_text() for t in plots.pyplot().gca().texts] == texts


def test_roc_with_a_baseline_and_the_hard_subset_reports_each_auc():
    from sklearn.metrics import roc_auc_score

    labels, probs = _scores()
    baseline = torch.rand(len(labels), generator=torch.Generator().manual_seed(1))
    hard = baseline > 0.3
    hard[:2] = True
    aucs = thresholds.draw_roc(labels, probs, baseline=baseline, hard=hard)
    assert set(aucs) == {"all", "hard"} and set(aucs["hard"]) == {"model", "HU baseline"}
    assert aucs["all"]["model"] == pytest.approx(roc_auc_score(labels, probs), abs=1e-6)
    assert aucs["hard"]["HU baseline"] == pytest.approx(roc_auc_score(labels[hard], baseline[hard]), abs=1e-6)
    assert len(plots.pyplot().gcf().axes) == 2
    assert "AUC" in plots.pyplot().gcf().axes[0].get_legend().get_texts()[0].get_text()
    assert set(thresholds.draw_roc(labels, probs)) == {"all"}


def test_training_scalars_draw_one_column_per_run(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    runs = {}
    for name in ("trap", "balanced"):
        for mode in ("trn", "val"):
            writer = SummaryWriter(log_dir=str(tmp_path / "luna" / f"2024-01-01_00.00.00-{mode}_cls-{name}"))
            for step in (2000, 4000):
                for tag in ("loss/pos", "loss/neg", "pr/precision", "pr/recall", "pr/f1_score"):
                    writer.add_scalar(tag, step / 8000, step)
            writer.close()
        runs[name] = thresholds.evaluate.run_dirs(tmp_path, name)
    read = thresholds.draw_training_scalars(runs)
    assert set(read) == {"trap", "balanced"} and read["trap"]["val"]["loss/pos"][0].tolist() == [2000, 4000]
    fig = plots.pyplot().gcf()
    assert len(fig.axes) == 4 and fig.axes[0].get_title() == "trap"
    assert len(fig.axes[0].get_lines()) == 4  # pos and neg loss, train and validation
    pair = {"one": (runs["trap"]["trn"], runs["trap"]["val"])}
    assert set(thresholds.draw_training_scalars(pair, rows=(("loss/pos",),))) == {"one"}


def test_threshold_explorer_builds_without_drawing_and_redraws_the_static_view(monkeypatch):
    pytest.importorskip("ipywidgets")
    labels, probs = _scores()
    plt = plots.pyplot()
    box = thresholds.threshold_explorer(labels, probs)
    assert plt.get_fignums() == []  # nothing drawn while the widget is built
    assert repr(box) == plots.STATIC_TEXT
    slider = box.children[0].children[0]
    assert slider.description == "threshold" and slider.value == 0.5
    box.redraw()  # the callback, once, with the default value
    explored = plt.gcf()._suptitle.get_text()
    plt.close("all")
    thresholds.draw_threshold_explorer(labels, probs)
    assert plt.gcf()._suptitle.get_text() == explored and "F2" in explored
    assert len(plt.gcf().axes) == 2
    slider.value = 0.8  # moving the slider draws again
    assert plt.gcf()._suptitle.get_text() != explored
