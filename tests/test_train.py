"""course_utils.train: the fixed splits of 03_nn, the seeded loader, and the small training loop."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from course_utils import train


# ----------------------------------------------------------------------------------------------
# splits
# ----------------------------------------------------------------------------------------------


def test_mnist_split_ten_classes():
    tx, ty, vx, vy = train.mnist_split()
    assert tx.shape == (4000, 784) and vx.shape == (1000, 784)
    assert tx.dtype == torch.float32 and ty.dtype == torch.int64
    assert 0.0 <= tx.min().item() and tx.max().item() <= 1.0
    assert torch.bincount(ty).tolist() == [400] * 10
    assert torch.bincount(vy).tolist() == [100] * 10
    assert torch.equal(ty, torch.arange(10).repeat_interleave(400))   # grouped by class, no shuffling


def test_mnist_split_is_the_first_400_and_last_100_per_class():
    from course_utils.data import mnist5k

    x, y = mnist5k()
    tx, ty, vx, vy = train.mnist_split((7, 3), flat=False)
    assert tx.shape == (800, 28, 28) and vx.shape == (200, 28, 28)
    assert ty[:400].eq(7).all() and ty[400:].eq(3).all()
    sevens = torch.nonzero(y == 7).flatten()
    assert torch.equal(tx[0], x[sevens[0]].float() / 255)
    assert torch.equal(vx[99], x[sevens[-1]].float() / 255)
    assert torch.equal(vx[100], x[torch.nonzero(y == 3).flatten()[400]].float() / 255)


def test_mnist_split_rejects_bad_arguments():
    with pytest.raises(ValueError):
        train.mnist_split((3, 3))
    with pytest.raises(ValueError):
        train.mnist_split((10,))
    with pytest.raises(ValueError):
        train.mnist_split(n_train=500)


def test_diamonds_split():
    X_train, y_train, X_test, y_test = train.diamonds_split()
    assert X_train.shape == (5000, 6) and X_test.shape == (1000, 6)
    assert y_train.shape == (5000, 1) and y_test.shape == (1000, 1)
    assert X_train.dtype == np.float64
    assert np.allclose(X_train.mean(0), 0, atol=1e-9) and np.allclose(X_train.std(0), 1)
    raw_train, raw_y, raw_test, _ = train.diamonds_split(standardize=False)
    assert np.array_equal(raw_y, y_train)
    mean, std = raw_train.mean(0), raw_train.std(0)
    assert np.allclose((raw_test - mean) / std, X_test)
    assert 0.2 < raw_train[:, 0].min() and raw_train[:, 0].max() < 6     # carat
    assert 0.3 < y_train.min() and y_train.max() < 19                      # price in k$


def test_diamonds_split_rows():
    from course_utils.data import table

    frame = table("diamonds")
    rows = np.random.RandomState(0).permutation(len(frame))[:6000]
    _, y_train, _, y_test = train.diamonds_split()
    assert y_train[0, 0] == frame["price"].iloc[rows[0]] / 1000
    assert y_test[-1, 0] == frame["price"].iloc[rows[-1]] / 1000


# ----------------------------------------------------------------------------------------------
# loader, metrics
# ----------------------------------------------------------------------------------------------


def _data(n=50, d=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=gen)
    y = (x.sum(1) > 0).long()
    return x, y


def test_seeded_loader_is_repeatable_and_matches_dataloader():
    x, y = _data()
    a = [yb.tolist() for _, yb in train.seeded_loader(x, y, 8, seed=3)]
    b = [yb.tolist() for _, yb in train.seeded_loader(x, y, 8, seed=3)]
    assert a == b
    assert a != [yb.tolist() for _, yb in train.seeded_loader(x, y, 8, seed=4)]
    reference = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=True,
                                            generator=torch.Generator().manual_seed(3))
    loader = train.seeded_loader(x, y, 8, seed=3)
    for _ in range(2):   # the second epoch too
        assert [t.tolist() for _, t in loader] == [t.tolist() for _, t in reference]
    assert [len(xb) for xb, _ in loader] == [8] * 6 + [2]
    assert len(loader) == 7


def test_seeded_loader_leaves_the_global_generator_alone():
    x, y = _data()
    state = torch.random.get_rng_state()
    list(train.seeded_loader(x, y, 8, seed=1))
    assert torch.equal(state, torch.random.get_rng_state())


def test_seeded_loader_without_shuffle_keeps_the_order():
    x, y = _data(10)
    batches = list(train.seeded_loader(x, y, 4, shuffle=False))
    assert torch.equal(torch.cat([xb for xb, _ in batches]), x)


def test_accuracy_and_count_parameters():
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert train.accuracy(logits, torch.tensor([0, 1, 1])).item() == pytest.approx(2 / 3)
    assert train.accuracy(torch.tensor([[1.5], [-0.5]]), torch.tensor([[1.0], [1.0]])).item() == 0.5
    assert train.count_parameters(nn.Sequential(nn.Linear(784, 89), nn.Tanh(), nn.Linear(89, 10))) == 70765
    frozen = nn.Linear(3, 2)
    frozen.bias.requires_grad_(False)
    assert train.count_parameters(frozen) == 6


# ----------------------------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------------------------


def test_train_epoch_is_plain_sgd():
    x, y = _data()
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    ref_w, ref_b = model.weight.detach().clone(), model.bias.detach().clone()
    loader = train.seeded_loader(x, y, 16, shuffle=False)
    losses = []
    for xb, yb in loader:
        w, b = ref_w.requires_grad_(True), ref_b.requires_grad_(True)
        loss = nn.functional.cross_entropy(xb @ w.T + b, yb)
        gw, gb = torch.autograd.grad(loss, (w, b))
        ref_w, ref_b = (w - 0.1 * gw).detach(), (b - 0.1 * gb).detach()
        losses.append(loss.item() * len(xb))
    mean_loss = train.train_epoch(model, loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1))
    assert torch.allclose(model.weight, ref_w, atol=1e-6) and torch.allclose(model.bias, ref_b, atol=1e-6)
    assert mean_loss == pytest.approx(sum(losses) / len(x), rel=1e-6)


def test_evaluate_uses_eval_mode_and_no_grad():
    x, y = _data()
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(3, 2)

        def forward(self, xb):
            seen.append((self.training, torch.is_grad_enabled()))
            return self.lin(xb)

    model = Probe()
    loss, acc = train.evaluate(model, train.seeded_loader(x, y, 20, shuffle=False), nn.CrossEntropyLoss())
    assert seen and all(not training and not grad for training, grad in seen)
    with torch.no_grad():
        assert loss == pytest.approx(nn.functional.cross_entropy(model(x), y).item(), rel=1e-6)
        assert acc == pytest.approx(train.accuracy(model(x), y).item())
    assert math.isnan(train.evaluate(model, train.seeded_loader(x, y, 20), None, None)[0])


def test_fit_learns_and_reports():
    x, y = _data(200)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 8), nn.ReLU(), nn.Dropout(0.1), nn.Linear(8, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    history = train.fit(model, train.seeded_loader(x, y, 32, seed=0), train.seeded_loader(x, y, 100, shuffle=False),
                        nn.CrossEntropyLoss(), opt, epochs=5, scheduler=sched, train_metric=True)
    assert [row["epoch"] for row in history] == [1, 2, 3, 4, 5]
    assert set(history[0]) == {"epoch", "train_loss", "valid_loss", "valid_metric", "train_metric"}
    assert history[-1]["valid_metric"] > 0.9
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.5 * 0.5 ** 5)
    assert not model.training   # left in eval mode by the last evaluation


def test_fit_is_repeatable():
    x, y = _data(100)

    def run():
        torch.manual_seed(1)
        model = nn.Linear(3, 2)
        return train.fit(model, train.seeded_loader(x, y, 16, seed=2), train.seeded_loader(x, y, 50, shuffle=False),
                         nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1), epochs=3)

    assert run() == run()
