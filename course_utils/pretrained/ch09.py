"""09_deploy's cached training steps, the model zoo the chapter serves: `fashion_cnn` and `fashion_mlp`.

09_deploy serves "a model trained earlier in the course". Both models are trained here, on the CPU with
one thread, from a seeded 12,000-image subset of the Fashion-MNIST training set, and written as checkpoint
dictionaries (`course_utils.checkpoints.save_checkpoint`: weights, the normalisation statistics, the class
names, the architecture's config as plain types, and a sha256 sidecar). `course data` prepares them as
the dataset `fashion_models`; the loaders here train them first when the cache lacks them, so the
notebook never depends on another chapter having run.

    fashion_cnn   tiny_resnet(w=16), 04_cnns's final architecture, 10 classes, 3 epochs
    fashion_mlp   784-512-256-10 MLP (03_nn's family), where Linear layers dominate: for quantisation
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from course_utils.data import ensure
from course_utils.data.images import FASHION_CLASSES, read_idx
from course_utils.data.loaders import fashion_mnist
from course_utils.data.prepare import training_bar
from course_utils.checkpoints import load_checkpoint, save_checkpoint
from course_utils.models import preprocess, tiny_resnet
from course_utils.pretrained.ch04 import accuracy_on, train_one_cycle

__all__ = [
    "CNN_FILE",
    "MLP_FILE",
    "TRAIN_SUBSET",
    "build_fashion_models",
    "build_model",
    "fashion_cnn",
    "fashion_mlp",
    "fashion_test",
    "train_fashion_model",
    "train_subset",
]

TRAIN_SUBSET = 12_000  # seeded subset of the 60,000 training images
CNN_FILE = "models/fashion_cnn.pt"
MLP_FILE = "models/fashion_mlp.pt"
_RECIPES = {
    # file: (arch, config, epochs, lr)
    CNN_FILE: ("tiny_resnet", {"w": 16, "n_in": 1, "n_out": 10}, 3, 3e-3),
    MLP_FILE: ("mlp", {"sizes": [784, 512, 256, 10]}, 4, 1e-3),
}


def build_model(arch: str, config: dict) -> nn.Module:
    """Rebuild an architecture from its plain-typed config (as stored in a checkpoint). Taught in 09_deploy.

    "tiny_resnet": `course_utils.models.tiny_resnet(**config)`; "mlp": Flatten, then Linear + ReLU
    between consecutive `config["sizes"]`, no ReLU after the last Linear.
    """
    if arch == "tiny_resnet":
        return tiny_resnet(**config)
    if arch == "mlp":
        sizes = config["sizes"]
        layers: list[nn.Module] = [nn.Flatten()]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(n_in, n_out))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)
    raise ValueError(f"unknown architecture {arch!r}: expected 'tiny_resnet' or 'mlp'")


def train_subset(x: torch.Tensor, y: torch.Tensor, n: int = TRAIN_SUBSET, seed: int = 0):
    """A seeded subset of n training images (uint8) and their labels. Used in 09_deploy."""
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def train_fashion_model(file: str, xs: torch.Tensor, ys: torch.Tensor, seed: int = 0, progress=None):
    """Train the zoo model stored as `file` (CNN_FILE or MLP_FILE) on images xs in 0..1 (N, 28, 28) and labels ys.

    The normalisation statistics are those of xs; `seed` seeds the initial weights and the shuffling. Returns
    (model in eval mode, meta). Used in 09_deploy (through `course data`, and by sweeps/09_deploy_zoo.py, which
    retrains the models with other seeds).
    """
    arch, config, epochs, lr = _RECIPES[file]
    mean, std = round(xs.mean().item(), 6), round(xs.std().item(), 6)
    meta = {"arch": arch, "config": config, "mean": mean, "std": std, "classes": list(FASHION_CLASSES),
            "train_images": len(xs), "epochs": epochs, "lr": lr, "seed": seed}
    with torch.random.fork_rng(devices=[]):  # the MLP draws its weights from torch's generator
        torch.manual_seed(seed)
        model = build_model(arch, {**config, "seed": seed} if arch == "tiny_resnet" else config)
    train_one_cycle(model, preprocess(xs, meta), ys, epochs=epochs, lr=lr, seed=seed, progress=progress)
    return model, meta


def build_fashion_models(source: tuple[Path, ...], out: Path) -> None:
    """Builder of the `fashion_models` dataset: train the CNN and the MLP, write their checkpoints.

    One torch thread and seeded generators make the weights repeatable on one machine (another CPU sums
    in another order, so 09_deploy treats accuracies as training-dependent). Used in 09_deploy.
    """
    folder = Path(source[0])
    x = torch.from_numpy(read_idx(folder / "train-images-idx3-ubyte.gz"))
    y = torch.from_numpy(read_idx(folder / "train-labels-idx1-ubyte.gz").astype("int64"))
    xt = torch.from_numpy(read_idx(folder / "t10k-images-idx3-ubyte.gz"))
    yt = torch.from_numpy(read_idx(folder / "t10k-labels-idx1-ubyte.gz").astype("int64"))
    xs, ys = train_subset(x, y)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for file in _RECIPES:
            with training_bar(Path(file).stem) as bar:
                model, meta = train_fashion_model(file, xs.float().div(255), ys, progress=bar)
            meta["test_accuracy"] = round(accuracy_on(model, preprocess(xt.float().div(255), meta), yt), 4)
            (out / file).parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(out / file, model, epoch=meta["epochs"], meta=meta)
    finally:
        torch.set_num_threads(threads)


def _load(file: str, online: bool) -> tuple[nn.Module, dict]:
    root = ensure("fashion_models", online)
    checkpoint = load_checkpoint(root / file)
    meta = checkpoint["meta"]
    model = build_model(meta["arch"], meta["config"])
    model.load_state_dict(checkpoint["model_state"])
    return model.eval(), meta


def fashion_cnn(online: bool = False) -> tuple[nn.Module, dict]:
    """The Fashion-MNIST CNN the chapter serves, and its meta dict. Taught in 09_deploy.

    tiny_resnet(w=16), in eval mode on the CPU, loaded (sha256-verified, weights only) from the cache,
    trained first (about half a minute) when `course data` has not prepared it. meta holds 'arch' and
    'config' (to rebuild it), 'mean' and 'std' (the preprocessing contract), 'classes', 'test_accuracy'.
    """
    return _load(CNN_FILE, online)


def fashion_mlp(online: bool = False) -> tuple[nn.Module, dict]:
    """The Fashion-MNIST MLP 784-512-256-10 (for quantisation) and its meta dict. Taught in 09_deploy."""
    return _load(MLP_FILE, online)


def fashion_test(n: int | None = None, online: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """The first n (default all 10,000) Fashion-MNIST test images (uint8, n x 28 x 28) and labels.

    Taught in 09_deploy.
    """
    x, y = fashion_mnist(train=False, online=online)
    return (x, y) if n is None else (x[:n], y[:n])
