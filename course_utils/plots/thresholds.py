"""Figures for judging a classifier (08_ct): F-score heat-maps, training curves, PR and ROC, a threshold explorer.

    draw_f_heatmaps          F1 (harmonic mean) of precision and recall next to their mean, min and product
    draw_training_scalars    per-class loss and P/R/F1 read back from TensorBoard files, one column per run
    draw_pr_curve            precision against recall over every threshold
    draw_f1_vs_threshold     precision, recall, F1 and F2 against the threshold
    draw_roc                 ROC curves of the model and of a baseline, AUC in the legend, optionally a subset
    draw_confusion           the 2 x 2 confusion matrix
    threshold_explorer       a threshold slider over the PR curve, the confusion matrix and P/R/F1/F2

The numbers come from `course_utils.ct.evaluate`. Like 07_collab's figures, each function shows its figure
(`plt.show()`) and returns numbers the chapter may print, never the figure (a notebook would draw it twice).
A function that takes `ax` draws into it and shows nothing, so figures can be combined.
"""

from __future__ import annotations

import torch

from course_utils.ct import evaluate
from course_utils.plots.widgets import explorer, pyplot

__all__ = ["draw_confusion", "draw_f1_vs_threshold", "draw_f_heatmaps", "draw_pr_curve", "draw_roc",
           "draw_threshold_explorer", "draw_training_scalars", "threshold_explorer"]

COLOURS = {"loss/pos": "tab:red", "loss/neg": "tab:blue", "loss/all": "tab:grey", "pr/precision": "tab:blue",
           "pr/recall": "tab:red", "pr/f1_score": "black"}
SCALAR_ROWS = (("loss/pos", "loss/neg"), ("pr/precision", "pr/recall", "pr/f1_score"))


def draw_f_heatmaps(steps: int = 101, mark=None) -> None:
    """Heat-maps over precision x recall in [0, 1]: F1, the arithmetic mean, the min and the product. Taught in 08_ct.

    F1 is the harmonic mean: like the min it stays low unless both are high, unlike the mean, which gives
    0.5 to a model that flags everything (recall 1, precision near 0). `mark=(precision, recall)` puts a
    point on every map with its value, e.g. the "always nodule" model at the data's positive share.
    """
    plt = pyplot()
    grid = torch.linspace(0, 1, steps, dtype=torch.float64)
    precision, recall = grid[:, None], grid[None, :]  # rows: precision, columns: recall
    scores = {"F1 = harmonic mean": lambda p, r: evaluate.safe_div(2 * p * r, p + r),
              "arithmetic mean": lambda p, r: (p + r) / 2,
              "min": lambda p, r: torch.minimum(torch.as_tensor(p), torch.as_tensor(r)),
              "product": lambda p, r: p * r}
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6), sharey=True)
    for ax, (title, score) in zip(axes, scores.items()):
        values = torch.as_tensor(score(precision, recall)).expand(steps, steps)
        image = ax.imshow(values.numpy(), origin="lower", extent=(0, 1, 0, 1), vmin=0, vmax=1, cmap="viridis")
        lines = ax.contour(grid.numpy(), grid.numpy(), values.numpy(), levels=[0.2, 0.4, 0.6, 0.8], colors="white",
                           linewidths=0.6)
        ax.clabel(lines, fontsize=7)
        if mark is not None:
            p, r = (float(v) for v in mark)
            ax.plot(r, p, "o", color="tab:red", ms=7, clip_on=False, zorder=3)
            value = float(score(torch.tensor(p, dtype=torch.float64), torch.tensor(r, dtype=torch.float64)))
            ax.annotate(f"{value:.2f}", (r, p), xytext=(-28, 8), textcoords="offset points", color="white", fontsize=9)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("recall")
    axes[0].set_ylabel("precision")
    fig.colorbar(image, ax=list(axes), fraction=0.015, pad=0.02)
    plt.show()


def draw_training_scalars(runs: dict, rows=SCALAR_ROWS) -> dict:
    """Per-class loss, then P/R/F1, train dashed and validation solid, one column per run. Taught in 08_ct.

    The chapter's columns are its three runs: the trap, balanced, and balanced + augmented.
    `runs` maps a name to the run's TensorBoard folders, {"trn": ..., "val": ...} as `evaluate.run_dirs`
    gives them, or a (trn, val) pair. `rows` groups the tags drawn
    in each row. The x axis is the app's global step, training samples seen. Overfitting shows as the
    positive training loss falling towards 0 while the positive validation loss rises. Returns
    {name: {"trn": scalars, "val": scalars}} as `evaluate.read_scalars` reads them.
    """
    plt = pyplot()
    read = {}
    for name, dirs in runs.items():
        trn, val = (dirs["trn"], dirs["val"]) if isinstance(dirs, dict) else dirs
        read[name] = {"trn": evaluate.read_scalars(trn), "val": evaluate.read_scalars(val)}
    fig, axes = plt.subplots(len(rows), len(runs), figsize=(3.8 * len(runs), 2.9 * len(rows)), sharex="col",
                             sharey="row", squeeze=False)
    for column, (name, scalars) in enumerate(read.items()):
        for row, tags in enumerate(rows):
            ax = axes[row, column]
            for tag in tags:
                for mode, style in (("trn", "--"), ("val", "-")):
                    if tag in scalars[mode]:
                        steps, values = scalars[mode][tag]
                        ax.plot(steps, values, style, marker="o", ms=3, color=COLOURS.get(tag),
                                label=f"{tag.split('/')[-1]} {mode}")
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(name, fontsize=10)
            if row == len(rows) - 1:
                ax.set_xlabel("training samples seen")
    for row, tags in enumerate(rows):
        axes[row, 0].set_ylim(bottom=0)  # after every column is drawn: the rows share their y axis
        axes[row, 0].set_ylabel(", ".join(sorted({tag.split("/")[0] for tag in tags})))
        axes[row, -1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    fig.tight_layout()
    plt.show()
    return read


def draw_pr_curve(labels, probs, threshold: float | None = None, ax=None) -> None:
    """Precision against recall, one point per distinct probability; a marker at `threshold`. Taught in 08_ct.

    The dotted line is the positives' share: the precision of flagging everything.
    """
    plt = pyplot()
    show = ax is None
    if ax is None:
        _, ax = plt.subplots(figsize=(4.2, 3.6))
    precision, recall, _ = evaluate.pr_curve_points(labels, probs)
    ax.plot(torch.cat([torch.zeros(1, dtype=torch.float64), recall]), torch.cat([precision[:1], precision]),
            color="tab:blue", lw=1.5)
    share = float(torch.as_tensor(labels).float().mean())
    ax.axhline(share, color="grey", ls=":", lw=1, label=f"flag everything ({share:.3f})")
    if threshold is not None:
        row = evaluate.threshold_table(labels, probs, [threshold]).iloc[0]
        ax.plot(row.recall, row.precision, "o", color="tab:red", ms=8, label=f"threshold {threshold:.2f}")
    ax.set(xlim=(0, 1.02), ylim=(0, 1.02), xlabel="recall", ylabel="precision", title="precision-recall curve")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    if show:
        plt.show()


def draw_f1_vs_threshold(labels, probs, steps: int = 101) -> float:
    """Precision, recall, F1 and F2 at `steps` thresholds in [0, 1]; marks the best F1. Taught in 08_ct.

    Returns the threshold with the highest F1 (the lowest such threshold when several tie).
    """
    plt = pyplot()
    table = evaluate.threshold_table(labels, probs, [i / (steps - 1) for i in range(steps)])
    best = table.loc[table.f1.idxmax()]
    fig, ax = plt.subplots(figsize=(5.6, 3.6))
    for column, colour, style in (("precision", "tab:blue", "-"), ("recall", "tab:red", "-"), ("f1", "black", "-"),
                                  ("f2", "black", "--")):
        label = column.upper() if column.startswith("f") else column
        ax.plot(table.threshold, table[column], style, color=colour, label=label)
    ax.axvline(best.threshold, color="grey", ls=":", lw=1)
    ax.annotate(f"best F1 {best.f1:.2f}\nat {best.threshold:.2f}", (best.threshold, best.f1), xytext=(6, 6),
                textcoords="offset points", fontsize=8)
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="threshold on P(nodule)", ylabel="score")
    ax.legend(fontsize=8, loc="lower left")
    ax.grid(alpha=0.3)
    plt.show()
    return float(best.threshold)


def _roc_panel(ax, labels, curves: dict, title: str) -> dict:
    """ROC curves of several scores for the same labels on one axes; returns their AUCs."""
    aucs = {}
    for (name, scores), colour in zip(curves.items(), ("tab:blue", "tab:orange", "tab:green", "tab:purple")):
        fpr, tpr, _ = evaluate.roc_curve_points(labels, scores)
        aucs[name] = evaluate.auc_trapezoid(fpr, tpr)
        ax.plot(fpr, tpr, color=colour, lw=1.5, label=f"{name} (AUC {aucs[name]:.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey", lw=1, label="chance (AUC 0.5)")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false-positive rate", ylabel="true-positive rate (recall)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return aucs


def draw_roc(labels, scores, baseline=None, hard=None, names=("model", "HU baseline")) -> dict:
    """ROC curves of the model and (optionally) a baseline score, AUC in the legend. Taught in 08_ct.

    `baseline` holds a second score per sample (e.g. `evaluate.center_hu`); `hard`, a boolean mask (e.g.
    `evaluate.hard_subset_mask`), adds a second panel with the same curves on that subset only. Returns
    {"all": {name: AUC}, "hard": {name: AUC}} (the "hard" entry only with `hard`).
    """
    plt = pyplot()
    labels = torch.as_tensor(labels).reshape(-1)
    curves = {names[0]: torch.as_tensor(scores).reshape(-1)}
    if baseline is not None:
        curves[names[1]] = torch.as_tensor(baseline).reshape(-1)
    panels = {"all": (labels, curves, f"all samples ({int(labels.sum())} positive of {len(labels)})")}
    if hard is not None:
        keep = torch.as_tensor(hard, dtype=torch.bool).reshape(-1)
        panels["hard"] = (labels[keep], {name: s[keep] for name, s in curves.items()},
                          f"hard subset ({int(labels[keep].sum())} positive of {int(keep.sum())})")
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), squeeze=False)
    aucs = {key: _roc_panel(ax, *panel) for ax, (key, panel) in zip(axes[0], panels.items())}
    fig.tight_layout()
    plt.show()
    return aucs


def draw_confusion(counts, ax=None, title: str = "confusion matrix") -> None:
    """The 2 x 2 confusion matrix: rows the truth, columns the prediction, each cell its count. Used in 08_ct.

    `counts` is a mapping with tp, fp, fn and tn (e.g. a row of `evaluate.threshold_table`) or a 2 x 2
    array [[tn, fp], [fn, tp]] (sklearn's layout). A cell's colour is its share of its true class, so
    the few nodules' row is as readable as the many negatives'.
    """
    plt = pyplot()
    if hasattr(counts, "keys"):
        tn, fp, fn, tp = (int(counts[key]) for key in ("tn", "fp", "fn", "tp"))
    else:
        (tn, fp), (fn, tp) = torch.as_tensor(counts).int().tolist()
    table = torch.tensor([[tn, fp], [fn, tp]], dtype=torch.float64)
    share = evaluate.safe_div(table, table.sum(dim=1, keepdim=True))
    show = ax is None
    if ax is None:
        _, ax = plt.subplots(figsize=(3.6, 3.2))
    ax.imshow(share.numpy(), cmap="Blues", vmin=0, vmax=1)
    for (r, c), name in zip(((0, 0), (0, 1), (1, 0), (1, 1)), ("TN", "FP", "FN", "TP")):
        ax.text(c, r, f"{name}\n{int(table[r, c])}", ha="center", va="center", fontsize=11,
                color="white" if share[r, c] > 0.6 else "black")
    ax.set_xticks([0, 1], ["not nodule", "nodule"])
    ax.set_yticks([0, 1], ["not nodule", "nodule"])
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title(title, fontsize=10)
    ax.grid(False)
    if show:
        plt.show()


def draw_threshold_explorer(labels, probs, threshold: float = 0.5) -> None:
    """The threshold explorer's picture: PR curve and point, confusion matrix, P/R/F1/F2. Taught in 08_ct."""
    plt = pyplot()
    row = evaluate.threshold_table(labels, probs, [threshold]).iloc[0]
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6))
    draw_pr_curve(labels, probs, threshold, ax=axes[0])
    draw_confusion(row, ax=axes[1], title=f"at threshold {threshold:.2f}")
    fig.suptitle(f"precision {row.precision:.3f}   recall {row.recall:.3f}   F1 {row.f1:.3f}   F2 {row.f2:.3f}",
                 fontsize=10)
    fig.tight_layout()
    plt.show()


def threshold_explorer(labels, probs, threshold: float = 0.5):
    """Widget: a threshold slider over `draw_threshold_explorer` (PR point, confusion, P/R/F1/F2). Taught in 08_ct.

    Nothing is drawn until the slider moves (see `explorer`); draw the first picture with
    `draw_threshold_explorer(labels, probs)` in the cell beside it.
    """
    import ipywidgets as widgets

    labels, probs = torch.as_tensor(labels).reshape(-1), torch.as_tensor(probs).reshape(-1)
    return explorer(
        lambda threshold: draw_threshold_explorer(labels, probs, threshold),
        threshold=widgets.FloatSlider(value=threshold, min=0.0, max=1.0, step=0.01, description="threshold",
                                      continuous_update=False, readout_format=".2f"),
        note="Move the threshold: every sample with P(nodule) >= threshold is flagged.",
    )
