"""Judging the nodule classifier beyond one threshold (*Deep Learning with PyTorch* ch. 12 and 14). Used in 08_ct.

    predict_dataset        (labels, P(nodule)) for every sample of a dataset (eval mode, no gradients)
    load_model             a LunaModel back from a LunaTrainingApp checkpoint
    safe_div               division that gives 0.0 where a class is empty, for numbers and tensors
    threshold_table        confusion counts, precision, recall, F1 and F2 at each of several thresholds
    pr_curve_points        precision and recall at every distinct score (the PR curve)
    roc_curve_points       false- and true-positive rates at every distinct score (the ROC curve)
    auc_trapezoid          the area under a curve by the trapezoid rule
    center_hu              the one-number baseline: mean HU of the central 3 x 3 x 3 voxels of each crop
    hard_subset_mask       the positives plus the negatives that look dense at their centre (HU > -400)
    run_dirs               the trn/val TensorBoard folders of one LunaTrainingApp run
    read_scalars           a TensorBoard folder's scalars as {tag: (steps, values)}

The counts and ratios at one threshold come from the training app's own `metric_sums` and
`metrics_from_sums` (F-beta is its `f_beta`), so the numbers here are the numbers the app logs. The
curves are written from scratch: sort by score, count down the list, and keep one point per distinct
score, so that tied scores make one diagonal step (what `sklearn.metrics.roc_auc_score` does too).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from course_utils.ct.model import LunaModel
from course_utils.ct.training import LunaTrainingApp, metric_sums, metrics_from_sums

__all__ = [
    "CENTER_WIDTH", "HARD_HU", "auc_trapezoid", "center_hu", "hard_subset_mask", "load_model", "pr_curve_points",
    "predict_dataset", "read_scalars", "roc_curve_points", "run_dirs", "safe_div", "threshold_table",
]

CENTER_WIDTH = 3  # the baseline averages the central CENTER_WIDTH^3 voxels of a crop
HARD_HU = -400.0  # a negative whose centre is denser than this looks like a nodule to the baseline


# ---------------------------------------------------------------- predictions
def predict_dataset(model: torch.nn.Module, dataset, batch_size: int = 256, device="cpu"):
    """(labels (N,) long, probs (N,) float P(nodule)) for every sample of a dataset, in its order. Used in 08_ct.

    Row i is the dataset's sample i (for a LunaDataset, `dataset.candidateInfo_list[i]`, with its series
    and centre), so the two tensors line up with anything else computed over the dataset. The model runs
    in eval mode (BatchNorm uses its running statistics) under `torch.no_grad()`; its train/eval mode is
    restored afterwards. A model that returns (logits, probabilities), as LunaModel does, gives its
    probabilities; one that returns logits alone is softmaxed.
    """
    was_training = model.training
    model.eval()
    labels, probs = [], []
    with torch.no_grad():
        for crops, label_t, *_ in DataLoader(dataset, batch_size=batch_size, num_workers=0):  # in order
            output = model(crops.to(device))
            prob_t = output[1] if isinstance(output, tuple) else output.softmax(dim=1)
            labels.append(label_t.long())
            probs.append(prob_t[:, 1].float().cpu())
    model.train(was_training)
    return torch.cat(labels), torch.cat(probs)


def load_model(checkpoint, device="cpu") -> torch.nn.Module:
    """The LunaModel saved in a LunaTrainingApp checkpoint (a `.state` file), in eval mode. Used in 08_ct.

    The checkpoint keeps the command line of its run, so the model gets that run's --channels and --crop.
    """
    state = torch.load(checkpoint, map_location=device, weights_only=True)
    args = LunaTrainingApp(state["argv"]).args  # parses the saved flags; nothing runs
    model = LunaModel(conv_channels=args.channels, crop=args.crop)
    model.load_state_dict(state["model_state"])
    return model.to(device).eval()


# ---------------------------------------------------------------- one threshold
def safe_div(numerator, denominator):
    """numerator / denominator, but 0.0 where the denominator is 0 (no nan, no warning). Taught in 08_ct.

    An empty denominator means an empty class: no predicted positives (precision), no positives at all
    (recall). Works on numbers and on tensors (element by element).
    """
    if isinstance(numerator, torch.Tensor) or isinstance(denominator, torch.Tensor):
        numerator = torch.as_tensor(numerator, dtype=torch.float64)
        denominator = torch.as_tensor(denominator, dtype=torch.float64)
        empty = denominator == 0
        return torch.where(empty, 0.0, numerator / torch.where(empty, 1.0, denominator))
    return numerator / denominator if denominator else 0.0


def threshold_table(labels, probs, thresholds):
    """One row per threshold: tp, fp, fn, tn, precision, recall, F1 and F2 (a pandas DataFrame). Taught in 08_ct.

    A sample counts as predicted positive when its probability is >= the threshold. The counts come from
    the training app's `metric_sums` and the ratios from its `metrics_from_sums` (0.0 for an empty class),
    so a row at 0.5 shows the numbers the app logged.
    """
    import pandas as pd

    labels_t, probs_t = torch.as_tensor(labels), torch.as_tensor(probs)
    no_loss = torch.zeros(len(labels_t))
    metrics_t = torch.stack([labels_t.float(), probs_t.float(), no_loss])  # the app's (METRICS_SIZE, N) layout
    rows = []
    for threshold in thresholds:
        sums = metric_sums(metrics_t, float(threshold))
        metrics = metrics_from_sums(sums)
        tp, fp, fn, tn = (int(v) for v in sums[:4].tolist())
        rows.append({"threshold": float(threshold), "tp": tp, "fp": fp, "fn": fn, "tn": tn,
                     "precision": metrics["pr/precision"], "recall": metrics["pr/recall"],
                     "f1": metrics["pr/f1_score"], "f2": metrics["pr/f2_score"]})
    return pd.DataFrame(rows, columns=["threshold", "tp", "fp", "fn", "tn", "precision", "recall", "f1", "f2"])


# ---------------------------------------------------------------- curves over all thresholds
def _counts_by_score(labels, scores):
    """Distinct scores, high to low, with the tp and fp counts of the threshold `score >= s` at each."""
    labels_t = torch.as_tensor(labels).reshape(-1).double()
    scores_t = torch.as_tensor(scores).reshape(-1).double()
    if labels_t.shape != scores_t.shape:
        raise ValueError(f"labels {tuple(labels_t.shape)} and scores {tuple(scores_t.shape)} differ in length")
    order = torch.argsort(scores_t, descending=True, stable=True)
    sorted_scores, sorted_labels = scores_t[order], labels_t[order]
    tp = torch.cumsum(sorted_labels, 0)
    fp = torch.cumsum(1 - sorted_labels, 0)
    last_of_group = torch.ones_like(sorted_scores, dtype=torch.bool)  # tied scores pass a threshold together
    last_of_group[:-1] = sorted_scores[1:] != sorted_scores[:-1]
    return sorted_scores[last_of_group], tp[last_of_group], fp[last_of_group]


def roc_curve_points(labels, scores):
    """(fpr, tpr, thresholds) of the ROC curve, from scratch, float64 tensors. Taught in 08_ct.

    Sort by score, high first; at each distinct score s, predict "nodule" for every score >= s and count.
    The curve starts at (0, 0) with threshold +inf. Tied scores are one point, so a tie between a
    positive and a negative is a diagonal step (half credit), as in sklearn. Raises ValueError when
    `labels` hold only one class (the rates would divide by zero; the AUC is undefined).
    """
    thresholds, tp, fp = _counts_by_score(labels, scores)
    positives, negatives = (tp[-1], fp[-1]) if len(tp) else (0, 0)
    if positives == 0 or negatives == 0:
        raise ValueError("a ROC curve needs both positives and negatives among the labels")
    zero = torch.zeros(1, dtype=torch.float64)
    fpr, tpr = torch.cat([zero, fp / negatives]), torch.cat([zero, tp / positives])
    return fpr, tpr, torch.cat([torch.tensor([float("inf")], dtype=torch.float64), thresholds])


def pr_curve_points(labels, scores):
    """(precision, recall, thresholds) at every distinct score, from the highest score down. Used in 08_ct.

    Recall grows along the curve; precision is tp / (tp + fp), which is never 0 / 0 here because every
    threshold predicts at least the samples with the highest score.
    """
    thresholds, tp, fp = _counts_by_score(labels, scores)
    return safe_div(tp, tp + fp), safe_div(tp, tp[-1] if len(tp) else 0), thresholds


def auc_trapezoid(x, y) -> float:
    """Area under the polyline through (x, y) by the trapezoid rule: sum of dx (y_left + y_right) / 2. Taught in 08_ct.

    With `roc_curve_points`' (fpr, tpr) this is the ROC AUC: the chance that a random positive scores
    higher than a random negative (ties count one half).
    """
    x_t, y_t = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    return float(((x_t[1:] - x_t[:-1]) * (y_t[1:] + y_t[:-1]) / 2).sum())


# ---------------------------------------------------------------- the HU baseline
def center_hu(source, width: int = CENTER_WIDTH, batch_size: int = 256) -> torch.Tensor:
    """The one-number baseline: the mean HU of the central width^3 voxels of each crop, (N,) float. Taught in 08_ct.

    `source` is a batch of crops, (N, 1, D, H, W) or (N, D, H, W), or a LunaDataset (its crops are float32
    HU clipped to [-1000, 1000]). A crop of even side 2k is centred on voxel k (`getRawCandidate` starts
    it at centre - k), so the central cube spans k - 1 .. k + 1 for width 3.
    """
    if not isinstance(source, torch.Tensor):
        loader = DataLoader(source, batch_size=batch_size, num_workers=0)
        return torch.cat([center_hu(batch[0], width) for batch in loader])
    crops = source.reshape(-1, *source.shape[-3:]).float()
    starts = [side // 2 - (width - 1) // 2 for side in crops.shape[1:]]
    cube = crops[:, starts[0]:starts[0] + width, starts[1]:starts[1] + width, starts[2]:starts[2] + width]
    return cube.mean(dim=(1, 2, 3))


def hard_subset_mask(labels, center_hu_t, hu_threshold: float = HARD_HU) -> torch.Tensor:
    """True for every positive and for the negatives whose centre HU is above `hu_threshold`. Taught in 08_ct.

    The easy negatives are lung points (about -850 HU), which the baseline rejects at once; the hard
    ones sit on vessels, as dense as a nodule. Evaluating on this subset asks what the model adds.
    """
    labels_t = torch.as_tensor(labels).reshape(-1)
    return (labels_t == 1) | (torch.as_tensor(center_hu_t).reshape(-1) > hu_threshold)


# ---------------------------------------------------------------- TensorBoard files
def run_dirs(runs_dir, comment: str = "*", tb_prefix: str = "luna") -> dict[str, Path]:
    """{"trn": folder, "val": folder}: the TensorBoard folders of one LunaTrainingApp run. Used in 08_ct.

    The app writes `<runs-dir>/<tb-prefix>/<time>-trn_cls-<comment>` and `...-val_cls-<comment>`; pass the
    same --runs-dir, comment and --tb-prefix. The folders are found by their ending, not by the time in
    their names; when several runs share a comment, the newest wins (the names start with the time).
    """
    tb_dir = Path(runs_dir) / tb_prefix
    found = sorted(p for p in tb_dir.glob(f"*-trn_cls-{comment}") if p.is_dir())
    if not found:
        raise FileNotFoundError(f"no '*-trn_cls-{comment}' folder in {tb_dir}. Fix: pass the run's --runs-dir, "
                                "its comment and its --tb-prefix.")
    trn = found[-1]
    val = trn.with_name(trn.name.replace("-trn_cls-", "-val_cls-", 1))
    if not val.is_dir():
        raise FileNotFoundError(f"{trn} has no {val.name} beside it. Fix: the run stopped before validating.")
    return {"trn": trn, "val": val}


def read_scalars(run_dir) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every scalar of one TensorBoard folder as {tag: (steps, values)}, read with EventAccumulator. Taught in 08_ct.

    Reads all events (no sampling: `size_guidance` 0 keeps every point); steps are the app's samples seen.
    """
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    accumulator = EventAccumulator(str(run_dir), size_guidance={SCALARS: 0})
    accumulator.Reload()
    scalars = {}
    for tag in accumulator.Tags()[SCALARS]:
        events = accumulator.Scalars(tag)
        scalars[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    return scalars
