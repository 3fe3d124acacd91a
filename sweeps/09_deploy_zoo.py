"""Retrain 09_deploy's cached models with other seeds: the spread behind the chapter's model claims.

`course sweep 09` shifts the chapter's seed literals, but the CNN and the MLP come trained from the cache
(course_utils.pretrained.ch09), so the sweep cannot move them. This script retrains both with seeds 0-5 (the
training subset, the initial weights and the shuffling all follow the seed), on one CPU thread, and measures
every quantity a model claim of the chapter rests on. It writes sweeps/09_deploy_zoo.results.md; the chapter's
comments quote its min..max. About 2 minutes: `.venv/bin/python sweeps/09_deploy_zoo.py`.
"""

from __future__ import annotations

import copy
import logging
import statistics
import warnings
from pathlib import Path

import torch
from torch import nn

from course_utils.data.loaders import fashion_mnist
from course_utils.models import preprocess
from course_utils.pretrained import CNN_FILE, MLP_FILE, accuracy_on, train_fashion_model, train_subset

SEEDS = range(6)
OUT = Path(__file__).with_name("09_deploy_zoo.results.md")


def measure(seed: int, x, y, xt, yt) -> dict[str, float]:
    xs, ys = train_subset(x, y, seed=seed)
    xs = xs.float().div(255)
    images = xt.float().div(255)
    cnn, meta = train_fashion_model(CNN_FILE, xs, ys, seed=seed)
    mlp, mlp_meta = train_fashion_model(MLP_FILE, xs, ys, seed=seed)
    acc_cnn = accuracy_on(cnn, preprocess(images, meta), yt)
    x_mlp = preprocess(images, mlp_meta)
    acc_mlp = accuracy_on(mlp, x_mlp, yt)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlp_int8 = torch.ao.quantization.quantize_dynamic(mlp, {nn.Linear}, dtype=torch.qint8)
    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    mlp_ao = copy.deepcopy(mlp)
    quantize_(mlp_ao, Int8DynamicActivationInt8WeightConfig())
    return {
        "CNN test accuracy": acc_cnn,
        "MLP test accuracy": acc_mlp,
        "CNN correct - forgot normalisation": acc_cnn - accuracy_on(cnn, images.unsqueeze(1), yt),
        "MLP int8 - fp32 accuracy, absolute": abs(accuracy_on(mlp_int8, x_mlp, yt) - acc_mlp),
        "MLP torchao - fp32 accuracy, absolute": abs(accuracy_on(mlp_ao, x_mlp, yt) - acc_mlp),
    }


def main() -> None:
    torch.set_num_threads(1)
    x, y = fashion_mnist(train=True)
    xt, yt = fashion_mnist(train=False)
    runs = [measure(seed, x, y, xt, yt) for seed in SEEDS]
    lines = [
        "# Retrained zoo models of 09_deploy (sweeps/09_deploy_zoo.py, seeds 0-5, one CPU thread)",
        "",
        "| quantity | " + " | ".join(f"seed {s}" for s in SEEDS) + " | min | max | spread | mean |",
        "|---|" + "---|" * (len(SEEDS) + 4),
    ]
    for name in runs[0]:
        values = [run[name] for run in runs]
        cells = [f"{v:.4g}" for v in values]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {min(values):.4g} | {max(values):.4g} | "
                     f"{max(values) - min(values):.4g} | {statistics.mean(values):.4g} |")
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
