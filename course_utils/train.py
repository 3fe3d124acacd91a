"""Small training helpers: the fixed splits of 03_nn, a seeded DataLoader, and the loop used before fastai.

Chapter 03_nn shows what each of these does before importing it: it writes the multi-class loop by
hand in section 5 (model.train(), model.eval(), torch.no_grad(), accuracy over a validation loader)
and shows that `fit` then gives the same weights and accuracies bit for bit; it builds a seeded
DataLoader by hand before `seeded_loader`, counts parameters with `numel` before `count_parameters`,
and describes the two fixed splits. Later chapters import them instead of repeating the code. Everything here runs on whatever device the model's parameters live on, and takes its
randomness from explicit seeds, never from the global generators.

    mnist_split      the 5,000 MNIST digits split per class, 400 train / 100 valid (no RNG)
    diamonds_split   the 6,000-row diamonds subset, 5,000 train / 1,000 test, standardized
    seeded_loader    a DataLoader whose shuffling comes from its own seeded torch.Generator
    accuracy, count_parameters
    train_epoch, evaluate, fit   one epoch, one evaluation pass, and the loop over epochs
"""

from __future__ import annotations

import math
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler, TensorDataset

__all__ = [
    "accuracy", "count_parameters", "DIAMOND_FEATURES", "diamonds_split", "DIAMONDS_SUBSET_SEED",
    "evaluate", "fit", "MNIST_PER_CLASS", "mnist_split", "seeded_loader", "train_epoch",
]

MNIST_PER_CLASS = 500
DIAMOND_FEATURES = ("carat", "depth", "table", "x", "y", "z")
DIAMONDS_SUBSET_SEED = 0
DIAMONDS_N_TRAIN, DIAMONDS_N_TEST = 5000, 1000


# ----------------------------------------------------------------------------------------------
# The chapter's fixed splits
# ----------------------------------------------------------------------------------------------


def mnist_split(digits: Iterable[int] | None = None, n_train: int = 400, flat: bool = True):
    """The offline MNIST subset split per class: `(train_x, train_y, valid_x, valid_y)`. Taught in 03_nn.

    The 5,000 digits of `course_utils.data.mnist5k` hold 500 images per class, sorted by label. The
    split uses no random numbers: for each class, its first `n_train` images train and the remaining
    `500 - n_train` validate, so the 10-class split is 4,000 / 1,000 and 3-vs-7 is 800 / 200.
    `digits` keeps only those classes (in the order given); the labels stay the digit values.

    Images are float32 in [0, 1] (pixels / 255), shaped (N, 784) when `flat`, else (N, 28, 28);
    labels are int64 of shape (N,). Rows are grouped by class, in the order of `digits`.
    """
    from course_utils.data import mnist5k

    x, y = mnist5k()
    classes = list(range(10)) if digits is None else [int(d) for d in digits]
    if not 0 < n_train < MNIST_PER_CLASS:
        raise ValueError(f"n_train must be between 1 and {MNIST_PER_CLASS - 1}, got {n_train}")
    if not classes or any(d < 0 or d > 9 for d in classes) or len(set(classes)) != len(classes):
        raise ValueError(f"digits must be distinct digits 0-9, got {digits!r}")
    train_idx, valid_idx = [], []
    for digit in classes:
        rows = torch.nonzero(y == digit).flatten()
        train_idx.append(rows[:n_train])
        valid_idx.append(rows[n_train:])
    train_idx, valid_idx = torch.cat(train_idx), torch.cat(valid_idx)
    images = x.float() / 255.0
    if flat:
        images = images.reshape(len(images), -1)
    return images[train_idx], y[train_idx], images[valid_idx], y[valid_idx]


def diamonds_split(standardize: bool = True):
    """The diamonds regression split: `(X_train, y_train, X_test, y_test)` as float64 NumPy arrays. Taught in 03_nn.

    Rows `np.random.RandomState(0).permutation(53940)[:6000]` of the diamonds table: the first
    5,000 train, the last 1,000 test. X has the columns DIAMOND_FEATURES (carat, depth, table, x, y,
    z), standardized with the *training* mean and standard deviation when `standardize` (else raw);
    y is the price in thousands of dollars, shaped (N, 1).
    """
    from course_utils.data import table

    frame = table("diamonds")
    rows = np.random.RandomState(DIAMONDS_SUBSET_SEED).permutation(len(frame))[: DIAMONDS_N_TRAIN + DIAMONDS_N_TEST]
    features = frame.loc[:, list(DIAMOND_FEATURES)].to_numpy(dtype=np.float64)[rows]
    price = frame["price"].to_numpy(dtype=np.float64)[rows].reshape(-1, 1) / 1000.0
    X_train, X_test = features[:DIAMONDS_N_TRAIN], features[DIAMONDS_N_TRAIN:]
    y_train, y_test = price[:DIAMONDS_N_TRAIN], price[DIAMONDS_N_TRAIN:]
    if standardize:
        mean, std = X_train.mean(axis=0), X_train.std(axis=0)
        X_train, X_test = (X_train - mean) / std, (X_test - mean) / std
    return X_train, y_train, X_test, y_test


# ----------------------------------------------------------------------------------------------
# Data loading and metrics
# ----------------------------------------------------------------------------------------------


def seeded_loader(x: torch.Tensor, y: torch.Tensor, batch_size: int = 64, shuffle: bool = True,
                  seed: int = 0) -> DataLoader:
    """A DataLoader over `TensorDataset(x, y)` whose shuffling is seeded. Taught in 03_nn.

    The loader owns a `torch.Generator` seeded with `seed`, so its order of batches is the same on
    every run and every machine, and independent of the global random state; iterating it again
    gives a new order (the generator moves on), as with the global generator. The batches are the
    ones `DataLoader(TensorDataset(x, y), batch_size, shuffle=True, generator=...)` would give, but
    each is fetched with one indexing operation instead of `batch_size` single-item reads, which
    makes small models several times faster on the CPU.
    """
    dataset = TensorDataset(x, y)
    generator = torch.Generator().manual_seed(seed)
    order = RandomSampler(dataset, generator=generator) if shuffle else SequentialSampler(dataset)
    return DataLoader(dataset, sampler=BatchSampler(order, batch_size, drop_last=False), batch_size=None,
                      generator=generator)


def accuracy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Fraction of rows whose largest logit is at the target class, as a 0-d tensor. Taught in 03_nn.

    `logits` is (N, C) and `targets` holds class indices, shape (N,). For a single output column
    (N, 1) the prediction is "logit > 0" and `targets` holds 0/1 (any shape with N elements).
    """
    if logits.ndim == 2 and logits.shape[1] > 1:
        return (logits.argmax(dim=1) == targets.reshape(-1)).float().mean()
    return ((logits.reshape(-1) > 0).long() == targets.reshape(-1).long()).float().mean()


def count_parameters(model: nn.Module) -> int:
    """Number of trainable numbers in a model: the sum of `numel` over parameters that require grad. Taught in 03_nn."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


# ----------------------------------------------------------------------------------------------
# The training loop
# ----------------------------------------------------------------------------------------------


def _device_of(model: nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def train_epoch(model: nn.Module, dl: Iterable, loss_fn: Callable, opt: torch.optim.Optimizer) -> float:
    """One pass over `dl` in training mode: forward, loss, backward, step. Used in 03_nn, by `fit`.

    Returns the epoch's mean training loss, each batch weighted by its size (so it is the average
    over examples, as if the epoch were one batch evaluated with the changing weights).
    """
    model.train()
    device = _device_of(model)
    total, count = 0.0, 0
    for xb, yb in dl:
        xb, yb = xb.to(device), yb.to(device)
        loss = loss_fn(model(xb), yb)
        opt.zero_grad()
        loss.backward()
        opt.step()
        total += loss.item() * len(xb)
        count += len(xb)
    return total / max(count, 1)


def evaluate(model: nn.Module, dl: Iterable, loss_fn: Callable | None = None,
             metric: Callable | None = accuracy) -> tuple[float, float]:
    """Mean loss and mean metric over `dl`, in eval mode and without recording a graph. Taught in 03_nn.

    Returns `(loss, metric)` as floats, both averaged over examples (batches weighted by size);
    either is nan when its function is None. The model is left in eval mode.
    """
    model.eval()
    device = _device_of(model)
    loss_total, metric_total, count = 0.0, 0.0, 0
    with torch.no_grad():
        for xb, yb in dl:
            xb, yb = xb.to(device), yb.to(device)
            out = model(xb)
            if loss_fn is not None:
                loss_total += float(loss_fn(out, yb)) * len(xb)
            if metric is not None:
                metric_total += float(metric(out, yb)) * len(xb)
            count += len(xb)
    count = max(count, 1)
    return (loss_total / count if loss_fn is not None else math.nan,
            metric_total / count if metric is not None else math.nan)


def fit(model: nn.Module, train_dl: Iterable, valid_dl: Iterable, loss_fn: Callable,
        opt: torch.optim.Optimizer, epochs: int, metric: Callable | None = accuracy,
        scheduler=None, train_metric: bool = False) -> list[dict]:
    """Train for `epochs` epochs, evaluating after each; return one dict per epoch. Taught in 03_nn.

    Each epoch runs `train_epoch`, then `evaluate` on `valid_dl` (eval mode, no grad), then steps
    the learning-rate `scheduler` if one is given (once per epoch, like `ExponentialLR`). The dicts
    hold `epoch` (from 1), `train_loss`, `valid_loss`, `valid_metric`, and, with `train_metric=True`,
    `train_metric`: the metric over `train_dl` re-evaluated in eval mode after the epoch (dropout
    off), which is the number to compare with `valid_metric` when looking for overfitting.
    Nothing is printed; the caller decides what to show.
    """
    history = []
    for epoch in range(1, int(epochs) + 1):
        train_loss = train_epoch(model, train_dl, loss_fn, opt)
        valid_loss, valid_metric = evaluate(model, valid_dl, loss_fn, metric)
        row = {"epoch": epoch, "train_loss": train_loss, "valid_loss": valid_loss, "valid_metric": valid_metric}
        if train_metric:
            row["train_metric"] = evaluate(model, train_dl, None, metric)[1]
        if scheduler is not None:
            scheduler.step()
        history.append(row)
    return history
