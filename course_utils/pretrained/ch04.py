"""04_cnns's cached training step: the course's own pretrained body, the dataset `fmnist8_body`.

No pretrained weights can be downloaded in this course, so transfer learning is staged with a body
the course pretrains itself: `tiny_resnet(w=16)` trained on Fashion-MNIST *without* T-shirt/top and
Shirt (8 classes, 3,000 images each, 4 epochs, seed 0, on the CPU). `course data` prepares it once as the
dataset `fmnist8_body` (models/fmnist8_tiny_resnet_w16.pth plus a .json with the normalization
statistics and the class list); `fmnist8_body()` loads it, training it first if the cache lacks it.
Because it is always trained on the CPU, the CPU and GPU kernels start from identical weights.
The registry names `build_fmnist8_body` and `fmnist8_body` as the dataset's builder and loader.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from course_utils.data import ensure
from course_utils.data.prepare import training_bar
from course_utils.data.images import FASHION_CLASSES, read_idx
from course_utils.models import tiny_resnet

__all__ = [
    "INFO_FILE",
    "PRETRAIN_CLASSES",
    "PRETRAIN_EPOCHS",
    "PRETRAIN_PER_CLASS",
    "PRETRAIN_WIDTH",
    "WEIGHTS_FILE",
    "accuracy_on",
    "build_fmnist8_body",
    "fmnist8_body",
    "pretrain",
    "pretrain_set",
    "train_one_cycle",
]

PRETRAIN_CLASSES = (1, 2, 3, 4, 5, 7, 8, 9)  # Fashion-MNIST without T-shirt/top (0) and Shirt (6)
PRETRAIN_PER_CLASS = 3000
PRETRAIN_WIDTH = 16
PRETRAIN_EPOCHS = 4  # about 55 s on one CPU thread; 8-class test accuracy 0.95
WEIGHTS_FILE = "models/fmnist8_tiny_resnet_w16.pth"
INFO_FILE = "models/fmnist8_tiny_resnet_w16.json"


def pretrain_set(x: torch.Tensor, y: torch.Tensor, per_class: int = PRETRAIN_PER_CLASS) -> tuple[torch.Tensor, torch.Tensor]:
    """The first `per_class` images of each of the 8 pretraining classes, labels renumbered 0..7. Used in 04_cnns."""
    keep = []
    for c in PRETRAIN_CLASSES:
        keep.append(torch.nonzero(y == c).flatten()[:per_class])
    idx = torch.sort(torch.cat(keep)).values
    remap = torch.full((10,), -1, dtype=torch.long)
    remap[list(PRETRAIN_CLASSES)] = torch.arange(len(PRETRAIN_CLASSES))
    return x[idx], remap[y[idx]]


def train_one_cycle(model: nn.Module, xs: torch.Tensor, ys: torch.Tensor, epochs: int, batch_size: int = 64,
                  lr: float = 3e-3, seed: int = 0, progress=None) -> nn.Module:
    """Train `model` on (xs, ys) with Adam and a one-cycle schedule on the CPU; return it in eval mode.

    Shuffles from a generator seeded with `seed`; cross-entropy loss. `progress`, a tqdm bar or None,
    is told the number of steps and advanced once per step. Used in 04_cnns and 09_deploy (through the
    cached training steps fmnist8_body, fashion_cnn and fashion_mlp).
    """
    gen = torch.Generator().manual_seed(seed)
    steps = epochs * ((len(xs) + batch_size - 1) // batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps)
    if progress is not None:
        progress.reset(total=steps)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(xs), generator=gen)
        for i in range(0, len(xs), batch_size):
            b = order[i : i + batch_size]
            loss = F.cross_entropy(model(xs[b]), ys[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if progress is not None:
                progress.update(1)
    return model.eval()


def pretrain(x: torch.Tensor, y: torch.Tensor, w: int = PRETRAIN_WIDTH, epochs: int = PRETRAIN_EPOCHS,
             per_class: int = PRETRAIN_PER_CLASS, batch_size: int = 64, lr: float = 3e-3, seed: int = 0,
             progress=None) -> tuple[nn.Sequential, dict]:
    """Train tiny_resnet(w) on the 8 pretraining classes of (x uint8, y) on the CPU. Used in 04_cnns.

    Adam with a one-cycle schedule (torch's OneCycleLR), shuffling from a generator seeded with
    `seed`. Returns (model in eval mode, info) with info = {'mean', 'std', 'classes', 'w', ...}.
    `progress`, a tqdm bar or None, is told the number of steps and advanced once per step.
    """
    xs, ys = pretrain_set(x, y, per_class)
    xs = xs.float().div(255).unsqueeze(1)
    mean, std = xs.mean().item(), xs.std().item()
    xs = (xs - mean) / std
    model = tiny_resnet(w, n_out=len(PRETRAIN_CLASSES), seed=seed)
    train_one_cycle(model, xs, ys, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, progress=progress)
    info = {
        "mean": round(mean, 6),
        "std": round(std, 6),
        "classes": [FASHION_CLASSES[c] for c in PRETRAIN_CLASSES],
        "fashion_ids": list(PRETRAIN_CLASSES),
        "w": w,
        "epochs": epochs,
        "per_class": per_class,
        "seed": seed,
    }
    return model, info


@torch.no_grad()
def accuracy_on(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Accuracy of `model` (eval mode) on normalised float images x (N,1,H,W) and labels y. Used in 04_cnns and 09_deploy."""
    model.eval()
    first = next(model.parameters(), None)  # a dynamically quantised model has no parameters: it runs on the CPU
    dev = first.device if first is not None else torch.device("cpu")
    hits = 0
    for i in range(0, len(x), batch_size):
        hits += (model(x[i : i + batch_size].to(dev)).argmax(1).cpu() == y[i : i + batch_size]).sum().item()
    return hits / len(x)


def build_fmnist8_body(source: tuple[Path, ...], out: Path) -> None:
    """Builder of the `fmnist8_body` dataset: pretrain on the CPU with one thread, write weights + info.

    `source` holds the main file of its one input, the prepared fashion_mnist folder. One torch
    thread makes the weights repeatable on one machine; another CPU (other SIMD kernels, ARM) sums in
    another order and trains slightly different weights, so 04_cnns treats what it measures with them
    as training-dependent. Used in 04_cnns (through `course data`).
    """
    folder = Path(source[0])
    x = torch.from_numpy(read_idx(folder / "train-images-idx3-ubyte.gz"))
    y = torch.from_numpy(read_idx(folder / "train-labels-idx1-ubyte.gz").astype("int64"))
    xt = torch.from_numpy(read_idx(folder / "t10k-images-idx3-ubyte.gz"))
    yt = torch.from_numpy(read_idx(folder / "t10k-labels-idx1-ubyte.gz").astype("int64"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with training_bar("fmnist8_body") as bar:
            model, info = pretrain(x, y, progress=bar)
        xs, ys = pretrain_set(xt, yt, per_class=1000)
        info["test_accuracy"] = round(accuracy_on(model, (xs.float().div(255).unsqueeze(1) - info["mean"]) / info["std"], ys), 4)
    finally:
        torch.set_num_threads(threads)
    (out / "models").mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), out / WEIGHTS_FILE)
    (out / INFO_FILE).write_text(json.dumps(info, indent=1))


def fmnist8_body(online: bool = False) -> tuple[nn.Sequential, dict]:
    """The course-pretrained tiny_resnet(w=16) (8-class head) and its info dict. Taught in 04_cnns.

    Loads models/fmnist8_tiny_resnet_w16.pth from the cache, pretraining it first (about a minute on
    one CPU thread, with a note and a progress bar) when `course data` has not prepared it. info holds 'mean', 'std' (the
    normalization the body was trained with: use them on new data), 'classes' and 'test_accuracy'.
    The model is on the CPU in eval mode; `model[:5]` is the body.
    """
    root = ensure("fmnist8_body", online)
    info = json.loads((root / INFO_FILE).read_text())
    model = tiny_resnet(info["w"], n_out=len(info["classes"]))
    model.load_state_dict(torch.load(root / WEIGHTS_FILE, map_location="cpu", weights_only=True))
    return model.eval(), info
