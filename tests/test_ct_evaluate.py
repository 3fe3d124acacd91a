"""course_utils.ct.evaluate: predictions, the scratch ROC/AUC against sklearn, safe division, the threshold
table, the HU baseline and its hard subset, and TensorBoard files read back."""

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from course_utils.ct import evaluate
from course_utils.ct.model import LunaModel
from course_utils.ct.training import classification_metrics

pytestmark = pytest.mark.usefixtures("one_thread")


def _tied_scores(seed: int, n: int):
    """Labels with both classes and scores on a coarse grid (many ties, also across the classes)."""
    g = torch.Generator().manual_seed(seed)
    labels = (torch.rand(n, generator=g) < 0.3).long()
    labels[:2] = torch.tensor([0, 1])
    scores = torch.randint(0, 8, (n,), generator=g).float() / 8 + 0.2 * labels
    return labels, scores


@pytest.mark.parametrize("seed, n", [(0, 6), (1, 40), (2, 500), (3, 2000)])
def test_scratch_auc_equals_sklearn_with_ties(seed, n):
    from sklearn.metrics import roc_auc_score

    labels, scores = _tied_scores(seed, n)
    fpr, tpr, thresholds = evaluate.roc_curve_points(labels, scores)
    assert len(thresholds) == len(torch.unique(scores)) + 1  # one point per distinct score, plus (0, 0)
    assert fpr[0] == tpr[0] == 0 and fpr[-1] == tpr[-1] == 1
    assert evaluate.auc_trapezoid(fpr, tpr) == pytest.approx(roc_auc_score(labels.numpy(), scores.numpy()), abs=1e-6)


def test_auc_of_perfect_reversed_and_all_tied_scores():
    labels = torch.tensor([0, 0, 1, 1])
    assert evaluate.auc_trapezoid(*evaluate.roc_curve_points(labels, torch.tensor([0.1, 0.2, 0.8, 0.9]))[:2]) == 1.0
    assert evaluate.auc_trapezoid(*evaluate.roc_curve_points(labels, torch.tensor([0.9, 0.8, 0.2, 0.1]))[:2]) == 0.0
    assert evaluate.auc_trapezoid(*evaluate.roc_curve_points(labels, torch.full((4,), 0.5))[:2]) == 0.5  # the diagonal
    with pytest.raises(ValueError, match="both positives and negatives"):
        evaluate.roc_curve_points(torch.zeros(3), torch.rand(3))


def test_pr_curve_points_match_the_threshold_table_at_every_score():
    labels, scores = _tied_scores(4, 60)
    precision, recall, thresholds = evaluate.pr_curve_points(labels, scores)
    table = evaluate.threshold_table(labels, scores, thresholds.tolist())
    np.testing.assert_allclose(precision.numpy(), table.precision, atol=1e-12)
    np.testing.assert_allclose(recall.numpy(), table.recall, atol=1e-12)
    assert recall[-1] == 1 and bool((recall[1:] >= recall[:-1]).all())


def test_safe_division_gives_zero_for_an_empty_class_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert evaluate.safe_div(3, 4) == 0.75 and evaluate.safe_div(3, 0) == 0.0
        got = evaluate.safe_div(torch.tensor([1.0, 0.0, 2.0]), torch.tensor([2.0, 0.0, 0.0]))
        assert got.tolist() == [0.5, 0.0, 0.0]
        nothing_flagged = evaluate.threshold_table(torch.tensor([1, 0, 0]), torch.tensor([0.2, 0.1, 0.3]), [0.9])
        no_positives = evaluate.threshold_table(torch.tensor([0, 0]), torch.tensor([0.2, 0.7]), [0.5])
    assert nothing_flagged.loc[0, ["precision", "recall", "f1", "f2"]].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert no_positives.loc[0, ["tp", "fp", "fn", "tn", "recall", "f1"]].tolist() == [0, 1, 0, 1, 0.0, 0.0]


def test_threshold_table_counts_a_hand_worked_case_and_matches_the_app():
    labels = torch.tensor([1, 1, 0, 0, 1, 0])
    probs = torch.tensor([0.9, 0.4, 0.6, 0.2, 0.7, 0.5])
    table = evaluate.threshold_table(labels, probs, [0.0, 0.5, 0.95])
    assert list(table.columns) == ["threshold", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "f2"]
    assert table[["tp", "fp", "fn", "tn"]].values.tolist() == [[3, 3, 0, 0], [2, 2, 1, 1], [0, 0, 3, 3]]
    row = table.iloc[1]  # >= 0.5 flags 0.9, 0.7 (nodules) and 0.6, 0.5 (not): P 2/4, R 2/3
    assert row.precision == 0.5 and row.recall == pytest.approx(2 / 3)
    assert row.f1 == pytest.approx(2 * 0.5 * (2 / 3) / (0.5 + 2 / 3))
    assert row.f2 == pytest.approx(5 * 0.5 * (2 / 3) / (4 * 0.5 + 2 / 3))  # 0.625
    app = classification_metrics(torch.stack([labels.float(), probs, torch.zeros(6)]), 0.5)
    assert (row.precision, row.recall, row.f1) == (app["pr/precision"], app["pr/recall"], app["pr/f1_score"])


class _Logits(nn.Module):
    """A model that returns logits only: P(nodule) rises with the crop's mean; BatchNorm tells eval from train."""

    def __init__(self):
        super().__init__()
        self.norm = nn.BatchNorm1d(1)

    def forward(self, x):
        mean = self.norm(x.flatten(1).mean(1, keepdim=True))
        return torch.cat([-mean, mean], dim=1)


def _dataset(n: int = 5, shape=(16, 24, 24)):
    crops = torch.randn(n, 1, *shape, generator=torch.Generator().manual_seed(0))
    return [(crops[i], torch.tensor(i % 2), f"uid{i}", torch.tensor([i, 2 * i, 3 * i])) for i in range(n)]


def test_predict_dataset_runs_in_eval_mode_without_gradients_and_restores_the_mode():
    data = _dataset()
    model = _Logits()
    model.norm.running_mean.fill_(1.0)
    labels, probs = evaluate.predict_dataset(model, data, batch_size=2)
    assert labels.dtype == torch.long and labels.tolist() == [0, 1, 0, 1, 0]  # in the dataset's order
    assert not probs.requires_grad and probs.shape == (5,)
    means = torch.stack([c.mean() for c, *_ in data])
    expected = torch.sigmoid(2 * (means - 1.0) / torch.sqrt(torch.tensor(1.0 + 1e-5)))  # running stats: eval mode
    torch.testing.assert_close(probs, expected, rtol=1e-4, atol=1e-5)
    assert model.training and model.norm.running_mean.item() == 1.0  # mode restored, statistics untouched


def test_predict_dataset_uses_luna_model_probabilities_and_load_model_restores_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    model = LunaModel(conv_channels=2).eval()
    path = tmp_path / "run.state"
    torch.save({"model_state": model.state_dict(), "argv": ["--data-root", "nowhere", "--channels", "2"]}, path)
    loaded = evaluate.load_model(path)
    assert not loaded.training
    data = _dataset(3)
    with torch.no_grad():
        expected = model(torch.stack([c for c, *_ in data]))[1][:, 1]
    torch.testing.assert_close(evaluate.predict_dataset(loaded, data)[1], expected)


def test_center_hu_averages_the_central_cube_of_each_crop():
    crops = torch.full((2, 1, 16, 24, 24), -1000.0)
    crops[0, 0, 7:10, 11:14, 11:14] = 100.0  # the 3^3 cube around voxel (8, 12, 12)
    crops[1, 0, 8, 12, 12] = 1000.0         # one bright voxel in an empty cube
    torch.testing.assert_close(evaluate.center_hu(crops), torch.tensor([100.0, (26 * -1000.0 + 1000.0) / 27]))
    odd = torch.zeros(1, 5, 5, 5)
    odd[0, 1:4, 1:4, 1:4] = 7.0
    assert evaluate.center_hu(odd).tolist() == [7.0]
    dataset = [(crops[i], torch.tensor(0), "uid", torch.zeros(3)) for i in range(2)]
    torch.testing.assert_close(evaluate.center_hu(dataset, batch_size=1), evaluate.center_hu(crops))


def test_hard_subset_keeps_positives_and_dense_negatives():
    labels = torch.tensor([1, 1, 0, 0, 0])
    hu = torch.tensor([-900.0, 50.0, -850.0, -400.0, -399.0])
    assert evaluate.hard_subset_mask(labels, hu).tolist() == [True, True, False, False, True]


def _write_run(runs_dir, time_str: str, comment: str, values):
    """Event files where and as LunaTrainingApp writes them (--runs-dir runs_dir, --tb-prefix luna)."""
    from torch.utils.tensorboard import SummaryWriter

    for mode in ("trn", "val"):
        writer = SummaryWriter(log_dir=str(runs_dir / "luna" / f"{time_str}-{mode}_cls-{comment}"))
        for step, value in values:
            writer.add_scalar("loss/pos", value, step)
            writer.add_scalar("pr/f1_score", 1 - value, step)
        writer.close()


def test_run_dirs_pairs_the_newest_run_and_read_scalars_reads_every_point(tmp_path):
    _write_run(tmp_path, "2024-01-01_10.00.00", "old", [(10, 0.9)])
    _write_run(tmp_path, "2024-01-02_09.00.00", "new", [(2000, 0.5), (4000, 0.25), (6000, 0.125)])
    dirs = evaluate.run_dirs(tmp_path)
    assert dirs["trn"].name == "2024-01-02_09.00.00-trn_cls-new" and dirs["val"].name.endswith("-val_cls-new")
    assert evaluate.run_dirs(tmp_path, "old")["trn"].name.endswith("trn_cls-old")
    scalars = evaluate.read_scalars(dirs["val"])
    assert set(scalars) == {"loss/pos", "pr/f1_score"}
    steps, values = scalars["loss/pos"]
    assert steps.tolist() == [2000, 4000, 6000] and values.tolist() == [0.5, 0.25, 0.125]
    with pytest.raises(FileNotFoundError, match="trn_cls-missing"):
        evaluate.run_dirs(tmp_path, "missing")
