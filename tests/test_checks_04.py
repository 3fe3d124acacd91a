"""Tests of the 04_cnns checks: other correct answers pass, planted wrong answers, stubs and crashing
answers fail, and no check ever raises.

The full notebook under nbval already proves that the chapter's reference solutions pass, so the
correct answers here are other ways to write them (einsum over sliding windows and F.conv2d instead
of loops, F.unfold, a backward receptive-field recursion, F.batch_norm, a ResBlock without conv_bn,
a hook removed in `finally`, ...). tests/test_checks_independent.py keeps chapter code out, except
fixtures marked `# planted: copied from the chapter`.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from check_helpers import Planted, crash, fails, passes, planted_test, returns_none
from course_utils.data import fashion_mnist, sky_shapes
from course_utils.models import ResBlock, conv_bn, tiny_resnet
from course_utils.pretrained import fmnist8_body


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


# 04.1 / 04.2 ------------------------------------------------------------------------------------


def conv_torch(x, w, b, stride=1, padding=0):  # a correct answer through torch
    return F.conv2d(torch.as_tensor(x), torch.as_tensor(w), torch.as_tensor(b), stride=stride, padding=padding).numpy()


def conv_no_bias(x, w, b, stride=1, padding=0):
    return F.conv2d(torch.as_tensor(x), torch.as_tensor(w), None, stride=stride, padding=padding).numpy()


def conv_ignores_stride(x, w, b, stride=1, padding=0):
    return conv_torch(x, w, b, 1, padding)


def conv_flipped(x, w, b, stride=1, padding=0):  # true convolution instead of cross-correlation
    return conv_torch(x, np.flip(w, (2, 3)).copy(), b, stride, padding)


def conv_einsum(x, w, b, stride=1, padding=0):
    x = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    kh, kw = w.shape[2:]
    oh, ow = (x.shape[2] - kh) // stride + 1, (x.shape[3] - kw) // stride + 1
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride][:, :, :oh, :ow]
    return np.einsum("ncijkl,ockl->noij", win, w) + b[None, :, None, None]


def test_04_1():
    passes("04.1", conv_einsum)
    passes("04.1", conv_torch)
    for wrong in (crash, returns_none, None, ..., 3):
        fails("04.1", wrong)


def im2col_torch(x, kh, kw, stride=1, padding=0):
    return F.unfold(torch.as_tensor(x), (kh, kw), stride=stride, padding=padding).numpy()


def im2col_wrong_order(x, kh, kw, stride=1, padding=0):  # kernel position first, channel second
    cols = im2col_torch(x, kh, kw, stride, padding)
    n, _, L = cols.shape
    c = x.shape[1]
    return cols.reshape(n, c, kh * kw, L).transpose(0, 2, 1, 3).reshape(n, -1, L)


def im2col_no_padding(x, kh, kw, stride=1, padding=0):  # forgets to pad
    return im2col_torch(x, kh, kw, stride, 0)


def test_04_2():
    passes("04.2", im2col_torch, conv_einsum)
    fails("04.2", crash, conv_einsum)
    fails("04.2", None, None)
    fails("04.2", ..., ...)


# 04.3 -------------------------------------------------------------------------------------------


CNN_SHAPES = [(1, 8, 14, 14), (1, 16, 7, 7), (1, 32, 4, 4), (1, 64, 2, 2), (1, 10, 1, 1)]
CNN_PARAMS = [208, 1168, 4640, 18496, 5770]


def test_04_3():
    shapes, params = CNN_SHAPES, CNN_PARAMS
    passes("04.3", shapes, params, 30282)
    passes("04.3", [list(s) for s in shapes], np.array(params).tolist(), np.int64(30282))
    fails("04.3", ..., ..., ...)
    fails("04.3", None, params, 1)


# 04.4 -------------------------------------------------------------------------------------------


def rf_backwards(layers):  # from the output back to the input, a dilated kernel as its span
    size = 1
    for k, st, d in reversed(layers):
        size = (size - 1) * st + d * (k - 1) + 1
    jump = int(np.prod([st for _, st, _ in layers]))
    return size, jump


def rf_ignores_dilation(layers):  # §3's formula, the third number dropped
    return rf_backwards([(k, st, 1) for k, st, _ in layers])


def rf_dilation_in_jump(layers):  # dilation taken for a stride
    size = rf_backwards(layers)[0]
    return size, int(np.prod([st * d for _, st, d in layers]))


def rf_span_d_times_k(layers):  # a dilated kernel spans d * k pixels
    return rf_backwards([(d * k, st, 1) for k, st, d in layers])


def rf_no_jump(layers):  # sizes add up, strides forgotten
    return 1 + sum(d * (k - 1) for k, _, d in layers), int(np.prod([st for _, st, _ in layers]))


def test_04_4():
    passes("04.4", rf_backwards)
    passes("04.4", lambda layers: tuple(np.int64(v) for v in rf_backwards(layers)))
    fails("04.4", lambda layers: rf_backwards(layers)[0])
    fails("04.4", crash)
    fails("04.4", returns_none)
    fails("04.4", ...)


# 04.5 -------------------------------------------------------------------------------------------


class DLResBlock(nn.Module):
    """§6's block as the exercise hands it over (the check looks for `conv` and `bn`), in other words."""

    def __init__(self, n_chans):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(n_chans, n_chans, kernel_size=3, padding=1, bias=False), nn.BatchNorm2d(n_chans)

    def forward(self, x):
        return x + F.relu(self.bn(self.conv(x)))


class Buggy(nn.Module):  # planted: copied from the chapter (BuggyNetResDeep: ten references to one block)
    def __init__(self, n_chans1=16, n_blocks=10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, n_chans1, 3, padding=1)
        self.resblocks = nn.Sequential(*(n_blocks * [DLResBlock(n_chans1)]))
        self.fc1 = nn.Linear(7 * 7 * n_chans1, 32)
        self.fc2 = nn.Linear(32, 2)

    def forward(self, x):
        out = F.max_pool2d(torch.relu(self.conv1(x)), 2)
        out = F.max_pool2d(self.resblocks(out), 2)
        return self.fc2(torch.relu(self.fc1(out.flatten(1))))


class FixedModuleList(Buggy):
    def __init__(self, n_chans1=16, n_blocks=10):
        super().__init__(n_chans1, n_blocks)
        self.resblocks = nn.Sequential(*nn.ModuleList(DLResBlock(n_chans1) for _ in range(n_blocks)))


class FixedIgnoresArgs(Buggy):
    def __init__(self, n_chans1=16, n_blocks=10):
        super().__init__(16, 10)
        self.resblocks = nn.Sequential(*[DLResBlock(16) for _ in range(10)])


class FixedSharedConv(Buggy):  # ten blocks, one conv: the weights are still shared
    def __init__(self, n_chans1=16, n_blocks=10):
        super().__init__(n_chans1, n_blocks)
        blocks = [DLResBlock(n_chans1) for _ in range(n_blocks)]
        for blk in blocks[1:]:
            blk.conv = blocks[0].conv
        self.resblocks = nn.Sequential(*blocks)


def test_04_5():
    passes("04.5", FixedModuleList)
    fails("04.5", crash)
    fails("04.5", None)


# 04.6 -------------------------------------------------------------------------------------------


def test_04_6():
    passes("04.6", lambda model, lam: lam * torch.cat([p.flatten() for p in model.parameters()]).square().sum())
    fails("04.6", crash)
    fails("04.6", returns_none)


# 04.7 -------------------------------------------------------------------------------------------


class BNViaFunctional(nn.Module):
    def __init__(self, nf, eps=1e-5, momentum=0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight, self.bias = nn.Parameter(torch.ones(nf)), nn.Parameter(torch.zeros(nf))
        self.register_buffer("running_mean", torch.zeros(nf))
        self.register_buffer("running_var", torch.ones(nf))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, self.eps)


class BNBiasedRunning(BNViaFunctional):
    def forward(self, x):
        if self.training:
            mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(var, self.momentum)  # biased: wrong
        else:
            mean, var = self.running_mean, self.running_var
        return self.weight[:, None, None] * (x - mean[:, None, None]) / (var[:, None, None] + self.eps).sqrt() + self.bias[:, None, None]


class BNAlwaysBatch(BNViaFunctional):
    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, True, self.momentum, self.eps)


class BNFixedEps(BNViaFunctional):  # takes eps but normalizes with 1e-5
    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training, self.momentum, 1e-5)


class BNFixedMomentum(BNViaFunctional):  # takes momentum but averages with 0.1
    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training, 0.1, self.eps)


class BNMomentumOnOld(BNViaFunctional):  # Keras' convention: momentum weighs the old running value
    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, self.training,
                            1 - self.momentum, self.eps)


def test_04_7():
    passes("04.7", BNViaFunctional)
    fails("04.7", crash)
    fails("04.7", None)


# 04.8 -------------------------------------------------------------------------------------------


class BlockNoZero(ResBlock):
    def __init__(self, ni, nf, stride=1):
        super().__init__(ni, nf, stride)
        nn.init.ones_(self.convs[1][1].weight)


class BlockFloorPool(ResBlock):
    def __init__(self, ni, nf, stride=1):
        super().__init__(ni, nf, stride)
        if stride == 2:
            self.pool = nn.AvgPool2d(2)


class BlockWritten(nn.Module):  # written out without the course's classes
    def __init__(self, ni, nf, stride=1):
        super().__init__()
        self.c1 = nn.Conv2d(ni, nf, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(nf)
        self.c2 = nn.Conv2d(nf, nf, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(nf)
        nn.init.zeros_(self.b2.weight)
        self.idconv = nn.Identity() if ni == nf else nn.Sequential(nn.Conv2d(ni, nf, 1, bias=False), nn.BatchNorm2d(nf))
        self.pool = nn.Identity() if stride == 1 else nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, x):
        return F.relu(self.b2(self.c2(F.relu(self.b1(self.c1(x))))) + self.idconv(self.pool(x)))


class BlockIdFirst(nn.Module):  # another correct spelling: identity path registered and run first, other names
    def __init__(self, ni, nf, stride=1):
        super().__init__()
        self.shortcut = nn.Sequential(nn.AvgPool2d(2, ceil_mode=True) if stride == 2 else nn.Identity())
        if ni != nf:
            self.shortcut.extend([nn.Conv2d(ni, nf, 1, bias=False), nn.BatchNorm2d(nf)])
        self.branch = nn.Sequential(nn.Conv2d(ni, nf, 3, stride, 1, bias=False), nn.BatchNorm2d(nf), nn.ReLU(),
                                    nn.Conv2d(nf, nf, 3, 1, 1, bias=False), nn.BatchNorm2d(nf))
        self.branch[-1].weight.data.zero_()

    def forward(self, x):
        skip = self.shortcut(x)
        return (self.branch(x) + skip).clamp_min(0)


# Planted mistakes that the zero γ hides at initialization: each is ResBlock with one thing changed.


class BlockZeroFirst(ResBlock):  # zero γ on the first BN instead of the last
    def __init__(self, ni, nf, stride=1):
        super().__init__(ni, nf, stride)
        nn.init.ones_(self.convs[1][1].weight)
        nn.init.zeros_(self.convs[0][1].weight)


class BlockZeroBoth(ResBlock):  # zero γ on both BNs of the conv path
    def __init__(self, ni, nf, stride=1):
        super().__init__(ni, nf, stride)
        nn.init.zeros_(self.convs[0][1].weight)


class BlockNoInnerReLU(ResBlock):
    def __init__(self, ni, nf, stride=1):
        super().__init__(ni, nf, stride)
        self.convs[0] = self.convs[0][:2]


class BlockStrideSecond(ResBlock):  # same shapes and parameter count, stride on the wrong conv
    def __init__(self, ni, nf, stride=1):
        super().__init__(ni, nf, stride)
        self.convs[0][0].stride, self.convs[1][0].stride = (1, 1), (stride, stride)


class BlockConvsNeverRun(ResBlock):
    def forward(self, x):
        return F.relu(self.idconv(self.pool(x)))


class BlockConvsDropped(ResBlock):  # the conv path runs, but its result is overwritten
    def forward(self, x):
        out = self.convs(x)
        out = self.idconv(self.pool(x))
        return F.relu(out)


class BlockReLUAfterLastBN(ResBlock):
    def __init__(self, ni, nf, stride=1):
        super().__init__(ni, nf, stride)
        self.convs[1].append(nn.ReLU())


class BlockNoFinalReLU(ResBlock):
    def forward(self, x):
        return self.convs(x) + self.idconv(self.pool(x))


def test_04_8():
    passes("04.8", BlockWritten)
    passes("04.8", BlockIdFirst)
    passes("04.8", ResBlock)
    fails("04.8", crash)
    fails("04.8", ...)


# 04.9 -------------------------------------------------------------------------------------------


class KNet(nn.Module):  # the architecture the exercise asks for (its parameter counts are checked)
    def __init__(self, k=3, pad=True):
        super().__init__()
        p = k // 2 if pad else 0
        self.conv1, self.conv2 = nn.Conv2d(1, 16, k, padding=p), nn.Conv2d(16, 8, k, padding=p)
        side = 7 if pad else ((28 - k + 1) // 2 - k + 1) // 2
        self.fc1, self.fc2 = nn.Linear(side * side * 8, 32), nn.Linear(32, 2)

    def forward(self, x):
        out = F.max_pool2d(torch.tanh(self.conv1(x)), 2)
        out = F.max_pool2d(torch.tanh(self.conv2(out)), 2)
        return self.fc2(torch.tanh(self.fc1(out.flatten(1))))


class KNetCrashes(KNet):
    def forward(self, x):
        raise RuntimeError("boom")


def pair_sets():
    x, y = fashion_mnist(train=True)
    xt, yt = fashion_mnist(train=False)
    keep, keep_t = (y == 2) | (y == 4), (yt == 2) | (yt == 4)
    mean, std = (x[keep].float() / 255).mean().item(), (x[keep].float() / 255).std().item()
    norm = lambda a: ((a.float() / 255 - mean) / std).unsqueeze(1)  # noqa: E731
    return norm(x[keep][:3000]), (y[keep][:3000] == 4).long(), norm(xt[keep_t]), (yt[keep_t] == 4).long()


def acc(model, x, y):
    model.eval()
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


def train_knet(k, seed, xs, ys):
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(100 * seed + k)
        model = KNet(k)
    opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for _ in range(3):
        model.train()
        for b in torch.randperm(3000, generator=g).split(64):
            loss = F.cross_entropy(model(xs[b]), ys[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def kernel_row(model, sets):
    xs, ys, xte, yte = sets
    return {"params": sum(p.numel() for p in model.parameters()), "train": acc(model, xs[:1000], ys[:1000]), "val": acc(model, xte, yte)}


@cache
def kernel_answer():
    """Two seeds per kernel size: (report, models, a conclusion the check accepts, one it rejects)."""
    sets = pair_sets()
    models = {(k, seed): train_knet(k, seed, *sets[:2]) for k in (3, 5) for seed in (0, 1)}
    report = {run: kernel_row(m, sets) for run, m in models.items()}
    gap = {run: r["train"] - r["val"] for run, r in report.items()}
    larger = {seed: 5 if gap[(5, seed)] > gap[(3, seed)] else 3 for seed in (0, 1)}
    if larger[0] == larger[1]:
        return report, models, larger[0], 8 - larger[0]
    return report, models, "can't tell", larger[0]


def with_row(report, run, **changes):
    out = {key: dict(row) for key, row in report.items()}
    out[run].update(changes)
    return out


def kernel_one_seed():
    """Both "seeds" trained from one seed (the seed never reaches seeded(...) or train(...))."""
    report, models, *_ = kernel_answer()
    copies = dict(models)
    for k in (3, 5):
        twin = KNet(k)
        twin.load_state_dict(models[(k, 0)].state_dict())
        copies[(k, 1)] = twin
    rows = dict(report)
    rows[(3, 1)], rows[(5, 1)] = report[(3, 0)], report[(5, 0)]
    return rows, copies, kernel_answer()[2]


def kernel_untrained():
    report, models, ok, _ = kernel_answer()
    sets = pair_sets()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = KNet(5)
    return {**report, (5, 1): kernel_row(untrained, sets)}, {**models, (5, 1): untrained}, ok


def test_04_9():
    report, models, ok, wrong = kernel_answer()
    assert report[(3, 0)]["params"] == 13962 and report[(5, 0)]["params"] == 16266
    assert all(r["val"] > 0.8 for r in report.values())
    passes("04.9", report, models, ok)
    passes("04.9", report, models, "can't tell")  # always allowed: two seeds are little evidence
    passes("04.9", {(np.int64(k), s): {kk: (np.float64(v) if kk != "params" else v) for kk, v in r.items()} for (k, s), r in report.items()},
           models, np.int64(ok) if ok != "can't tell" else "Can't tell")
    fails("04.9", report, {**models, (5, 1): models[(5, 0)]}, ok, mentions="same object")
    fails("04.9", report, {**models, (5, 1): KNetCrashes(5)}, ok, mentions="raised")
    fails("04.9", report, models, "five")
    fails("04.9", {run: r for run, r in report.items() if run[1] == 0}, models, ok)
    fails("04.9", ..., ..., ...)
    fails("04.9", None, models, ok)
    fails("04.9", report, crash, ok)


# 04.10 ------------------------------------------------------------------------------------------


class CamNet(nn.Module):
    """A fully convolutional body and a linear head on the average-pooled features (the check needs .body and .fc)."""

    def __init__(self, widths=(1, 16, 32, 64), strides=(1, 2, 2)):
        super().__init__()
        self.body = nn.Sequential(*(conv_bn(ni, nf, stride=s) for ni, nf, s in zip(widths, widths[1:], strides)))
        self.fc = nn.Linear(widths[-1], 2)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


@cache
def trained_cam_net():
    x, y, _ = sky_shapes(1500, seed=0)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = CamNet()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(2):
        for b in torch.randperm(len(x), generator=g).split(64):
            loss = F.cross_entropy(model(x[b]), y[b])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def cam_model():
    return trained_cam_net()


def cam_ok(model, x, body, fc):
    store = []
    handle = body.register_forward_hook(lambda m, i, o: store.append(o.detach()))
    try:
        with torch.no_grad():
            model.eval()(x)
    finally:
        handle.remove()
    maps = (fc.weight.detach()[None, :, :, None, None] * store[0][:, None]).sum(2)
    return F.interpolate(maps, size=x.shape[-2:], mode="bilinear")


def cam_leaks_on_error(model, x, body, fc):
    store = []
    handle = body.register_forward_hook(lambda m, i, o: store.append(o.detach()))
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    maps = torch.einsum("ck,bkij->bcij", fc.weight.detach(), store[0])
    return F.interpolate(maps, size=x.shape[-2:], mode="bilinear")


def cam_not_upsampled(model, x, body, fc):
    return cam_ok(model, x, body, fc)[..., ::4, ::4]


def cam_wrong_class(model, x, body, fc):
    return cam_ok(model, x, body, fc).flip(1)


class StoreBody:  # a hook as a context manager, written here (the learner may write their own)
    def __init__(self, body):
        self.body, self.stored = body, None

    def __enter__(self):
        self.handle = self.body.register_forward_hook(lambda m, i, o: setattr(self, "stored", o.detach()))
        return self

    def __exit__(self, *exc):
        self.handle.remove()


def cam_no_eval(model, x, body, fc):  # forgets eval(): BatchNorm uses the batch's statistics
    with StoreBody(body) as h, torch.no_grad():
        model(x)
    return F.interpolate(torch.einsum("ck,bkij->bcij", fc.weight.detach(), h.stored), size=x.shape[-2:], mode="bilinear")


def cam_eval_not_called(model, x, body, fc):  # `model.eval` without the parentheses
    model.eval
    return cam_no_eval(model, x, body, fc)


def cam_inference_mode(model, x, body, fc):  # takes inference_mode for evaluation mode
    with StoreBody(body) as h, torch.inference_mode():
        model(x)
    maps = torch.einsum("ck,bkij->bcij", fc.weight.detach(), h.stored.clone())
    return F.interpolate(maps, size=x.shape[-2:], mode="bilinear")


def test_04_10(cam_model):
    passes("04.10", cam_ok, cam_model)
    stats = [b.clone() for b in cam_model.buffers()]
    fails("04.10", cam_no_eval, cam_model, mentions="evaluation mode")
    assert not cam_model.training and all(torch.equal(a, b) for a, b in zip(stats, cam_model.buffers()))  # put back
    cam_model.train()
    try:  # a model handed over in training mode is handed back in training mode
        passes("04.10", cam_ok, cam_model)
        assert all(m.training for m in cam_model.modules())
    finally:
        cam_model.eval()
    fails("04.10", cam_leaks_on_error, cam_model)
    assert len(cam_model.body._forward_hooks) == 0  # the check cleans up after a leaking answer
    fails("04.10", crash, cam_model)
    fails("04.10", cam_ok, None)
    fails("04.10", None, cam_model)


# 04.11 ------------------------------------------------------------------------------------------


def smooth(y, n, eps):
    t = torch.full((len(y), n), eps / n)
    t[torch.arange(len(y)), y] = 1 - eps + eps / n
    return t


def mix(x, y1h, lam, perm):
    return torch.lerp(x[perm], x, lam), torch.lerp(y1h[perm], y1h, lam)


def ls_ce(logits, y, eps):
    logp = logits.log_softmax(1)
    return (1 - eps) * F.nll_loss(logp, y) - eps * logp.mean(1).mean()


def test_04_11():
    passes("04.11", smooth, mix, ls_ce)
    fails("04.11", crash, mix, ls_ce)
    fails("04.11", None, None, None)


# 04.12 ------------------------------------------------------------------------------------------


def to_dev(batch, device):
    """Structural pattern matching instead of an isinstance chain."""
    match batch:
        case torch.Tensor():
            return batch.to(device)
        case dict():
            return dict(zip(batch, (to_dev(v, device) for v in batch.values())))
        case tuple():
            return tuple(map(to_dev, batch, [device] * len(batch)))
        case list():
            return [to_dev(v, device) for v in batch]
        case _:
            return batch


def step(model, batch, opt, loss_fn, device):
    x, y = to_dev(batch, next(model.parameters()).device)
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return float(loss)


def step_moves_if_needed(model, batch, opt, loss_fn, device):  # correct: moves only what is not there yet
    x, y = (t if t.device == device else t.to(device, non_blocking=True) for t in batch)
    opt.zero_grad(set_to_none=True)
    out = model(x)
    loss = loss_fn(out, y)
    loss.backward()
    opt.step()
    return float(loss.detach())


def step_never_moves(model, batch, opt, loss_fn, device):
    x, y = batch
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss.item()


def step_moves_x_only(model, batch, opt, loss_fn, device):
    x, y = batch
    return step_never_moves(model, (x.to(device), y), opt, loss_fn, device)


def step_to_not_kept(model, batch, opt, loss_fn, device):  # .to is not in place
    x, y = batch
    x.to(device)
    y.to(device)
    return step_never_moves(model, (x, y), opt, loss_fn, device)


def step_to_cuda(model, batch, opt, loss_fn, device):  # hard-codes the GPU
    return step_never_moves(model, [t.cuda() for t in batch], opt, loss_fn, device)


def test_04_12():
    passes("04.12", to_dev, step)
    passes("04.12", to_dev, step_moves_if_needed)
    fails("04.12", lambda b, d: b, step)
    fails("04.12", to_dev, lambda model, batch, opt, loss_fn, device: loss_fn(model(batch[0]), batch[1]))  # no step, a tensor
    fails("04.12", to_dev, crash)
    fails("04.12", None, ...)


# 04.13 ------------------------------------------------------------------------------------------

CASES = [("fashion", 5), ("fashion", 25)]
ARMS = ("scratch", "probe", "fine-tune")


@cache
def transfer_sets():
    """(train pool, test) of T-shirt/top vs Shirt, normalized with the pretraining statistics, as §11 builds them."""
    _, info = fmnist8_body()
    norm = lambda a: ((a.float() / 255 - info["mean"]) / info["std"]).unsqueeze(1)  # noqa: E731
    x, y = fashion_mnist(train=True)
    xt, yt = fashion_mnist(train=False)
    keep, keep_t = (y == 0) | (y == 6), (yt == 0) | (yt == 6)
    return {"fashion": ((norm(x[keep]), (y[keep] == 6).long()), (norm(xt[keep_t]), (yt[keep_t] == 6).long()))}


def first_per_class(x, y, n):
    idx = torch.cat([torch.nonzero(y == c).flatten()[:n] for c in y.unique()])
    return x[idx], y[idx]


def fit_steps(model, params, x, y, steps, lr, seed, frozen_body=False):
    """Adam on random batches of 32; a frozen body keeps its BatchNorm in eval mode."""
    opt = torch.optim.Adam(params, lr=lr)
    g = torch.Generator().manual_seed(seed)
    model.train()
    if frozen_body:
        model[:5].eval()
    for _ in range(steps):
        b = torch.randint(0, len(x), (32,), generator=g)
        loss = F.cross_entropy(model(x[b]), y[b])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def pretrained_with_head(n_out, seed):
    model, _ = fmnist8_body()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model[-1] = nn.Linear(model[-1].in_features, n_out)
    return model


def three_arms(x, y, n_out, seed):
    scratch = fit_steps_all(tiny_resnet(16, n_out=n_out, seed=50 + seed), None, x, y, 60, 3e-3, seed)
    probe = pretrained_with_head(n_out, seed)
    probe[:5].requires_grad_(False)
    fit_steps(probe, probe[-1].parameters(), x, y, 40, 1e-2, seed, frozen_body=True)
    ft = pretrained_with_head(n_out, seed)
    ft[:5].requires_grad_(False)
    fit_steps(ft, ft[-1].parameters(), x, y, 20, 1e-2, seed, frozen_body=True)
    ft.requires_grad_(True)
    fit_steps(ft, ft.parameters(), x, y, 40, 1e-3, seed + 1)
    return {"scratch": scratch, "probe": probe, "fine-tune": ft}


def fit_steps_all(model, params, *args, **kwargs):
    return fit_steps(model, model.parameters() if params is None else params, *args, **kwargs)


@cache
def transfer_answer():
    sets = transfer_sets()
    report, models = {}, {}
    for i, (task, labels) in enumerate(CASES):
        (x, y), (xt, yt) = sets[task]
        xs, ys = first_per_class(x, y, labels)
        models[(task, labels)] = three_arms(xs, ys, 2, seed=i)
        report[(task, labels)] = {arm: acc(m, xt, yt) for arm, m in models[(task, labels)].items()}
    helped = {case: r["fine-tune"] > r["scratch"] for case, r in report.items()}
    gain = {n: report[("fashion", n)]["fine-tune"] - report[("fashion", n)]["scratch"] for n in (5, 25)}
    failed = [case + (arm,) for case, r in report.items() for arm, a in r.items() if a <= 0.6]
    return report, models, helped, gain[5] > gain[25], failed


def changed(report, case, arm, value):
    out = {c: dict(r) for c, r in report.items()}
    out[case][arm] = value
    return out


def transfer_with(models_change=None, report_change=None, **answer_change):
    """The right answer with one thing changed (models: {case: {arm: model}}, report: (case, arm, value))."""
    report, models, helped, more, failed = transfer_answer()
    models = {c: dict(m) for c, m in models.items()}
    for case, arms in (models_change or {}).items():
        models[case].update(arms)
    if report_change:
        report = changed(report, *report_change)
    out = {"report": report, "models": models, "helped": helped, "more": more, "failed": failed, **answer_change}
    return out["report"], out["models"], out["helped"], out["more"], out["failed"]


def transfer_reused_50():
    """The 25-label models reused for 5 labels, as the old exercise invited (its 10-label case reused §11's runs)."""
    _, models, *_ = transfer_answer()
    return transfer_with(models_change={("fashion", 5): models[("fashion", 25)]},
                         report_change=None)


def transfer_all_scratch():
    """Every arm trained from random weights: no pretrained body anywhere."""
    sets = transfer_sets()
    (x, y), _ = sets["fashion"]
    xs, ys = first_per_class(x, y, 5)
    fake = {"probe": fit_steps_all(tiny_resnet(16, n_out=2, seed=7), None, xs, ys, 30, 3e-3, 7),
            "fine-tune": fit_steps_all(tiny_resnet(16, n_out=2, seed=8), None, xs, ys, 30, 3e-3, 8)}
    return transfer_with(models_change={("fashion", 5): fake})


def transfer_never_unfrozen():
    """fine-tune whose body was never unfrozen: it is a second probe."""
    sets = transfer_sets()
    (x, y), _ = sets["fashion"]
    xs, ys = first_per_class(x, y, 25)
    frozen = pretrained_with_head(2, 9)
    frozen[:5].requires_grad_(False)
    fit_steps(frozen, frozen[-1].parameters(), xs, ys, 40, 1e-2, 9, frozen_body=True)
    return transfer_with(models_change={("fashion", 25): {"fine-tune": frozen}})


def transfer_probe_bn_trained():
    """A probe whose BatchNorm layers kept training (fastai's train_bn=True): the body moved."""
    sets = transfer_sets()
    (x, y), _ = sets["fashion"]
    xs, ys = first_per_class(x, y, 5)
    probe = pretrained_with_head(2, 3)
    probe[:5].requires_grad_(False)
    for m in probe[:5].modules():
        if isinstance(m, nn.BatchNorm2d):
            m.requires_grad_(True)
    fit_steps(probe, [p for p in probe.parameters() if p.requires_grad], xs, ys, 40, 1e-2, 3)
    return transfer_with(models_change={("fashion", 5): {"probe": probe}})


def test_04_13():
    report, models, helped, more_gain, failed = transfer_answer()
    passes("04.13", report, models, helped, more_gain, failed)
    passes("04.13", {c: {a: np.float32(v) for a, v in r.items()} for c, r in report.items()}, models,
           {c: np.bool_(v) for c, v in helped.items()}, np.bool_(more_gain), tuple(failed))
    fails("04.13", report, models, {c: "yes" for c in helped}, more_gain, failed, mentions="True or False")
    fails("04.13", {c: r for c, r in report.items() if c != ("fashion", 25)}, models, helped, more_gain, failed)
    shared = {c: dict(m) for c, m in models.items()}
    shared[("fashion", 25)]["probe"] = shared[("fashion", 25)]["scratch"]
    fails("04.13", report, shared, helped, more_gain, failed, mentions="same model")
    broken = {c: dict(m) for c, m in models.items()}
    broken[("fashion", 5)]["scratch"] = KNetCrashes(3)
    fails("04.13", report, broken, helped, more_gain, failed, mentions="tiny_resnet")
    fails("04.13", report, models, helped, more_gain, ...)
    fails("04.13", ..., ..., ..., ..., ...)
    fails("04.13", report, crash, helped, more_gain, failed)


def transfer_inflated():
    report, *_ = transfer_answer()
    return transfer_with(report_change=(("fashion", 5), "fine-tune", report[("fashion", 5)]["fine-tune"] + 0.03))


def transfer_flipped_helped():
    _, _, helped, *_ = transfer_answer()
    return transfer_with(helped={**helped, ("fashion", 25): not helped[("fashion", 25)]})


def transfer_dud_unflagged():
    """A run near chance, reported honestly but not flagged as failed."""
    (_, _), (xt, yt) = transfer_sets()["fashion"]
    dud = pretrained_with_head(2, 0)
    dud[-1].weight.data.zero_()
    dud[-1].bias.data.copy_(torch.tensor([0.0, 1.0]))  # always says Shirt: 0.5 on the balanced test set
    report, models, helped, more, failed = transfer_with(models_change={("fashion", 25): {"probe": dud}},
                                                         report_change=(("fashion", 25), "probe", acc(dud, xt, yt)))
    return report, models, helped, more, [f for f in failed if f != ("fashion", 25, "probe")]


# Plausible learner mistakes, each rejected with a hint that names it (run at the end of this module) ---------

PLANTED = [
    Planted("04.1", "no bias added", lambda: (conv_no_bias,), mentions="add the bias"),
    Planted("04.1", "the window never moves by the stride", lambda: (conv_ignores_stride,), mentions="output side"),
    Planted("04.1", "a true convolution (kernel flipped)", lambda: (conv_flipped,), mentions="differs from F.conv2d"),
    Planted("04.2", "rows in kernel-position-then-channel order", lambda: (im2col_wrong_order, conv_einsum), mentions="channel first"),
    Planted("04.2", "im2col forgets the padding", lambda: (im2col_no_padding, conv_einsum), mentions="output side"),
    Planted("04.2", "conv2d_im2col forgets the bias", lambda: (im2col_torch, conv_no_bias), mentions="add the bias"),
    Planted("04.3", "forgot the padding of the 5x5 conv", lambda: ([(1, 8, 12, 12), *CNN_SHAPES[1:]], CNN_PARAMS, 30282),
            mentions="side ="),
    Planted("04.3", "forgot the biases", lambda: (CNN_SHAPES, [200, 1152, 4608, 18432, 5760], 30152), mentions="biases"),
    Planted("04.3", "a total that is not the sum", lambda: (CNN_SHAPES, CNN_PARAMS, 30000), mentions="sum"),
    Planted("04.4", "§3's formula, dilation ignored", lambda: (rf_ignores_dilation,), mentions="dilated"),
    Planted("04.4", "dilation multiplied into the jump", lambda: (rf_dilation_in_jump,), mentions="product of the strides"),
    Planted("04.4", "a dilated kernel taken to span d * k pixels", lambda: (rf_span_d_times_k,), mentions="dilated"),
    Planted("04.4", "sizes added without the jump", lambda: (rf_no_jump,), mentions="jump of the layers"),
    Planted("04.5", "the buggy n * [block] list kept", lambda: (Buggy,), mentions="own weights"),
    Planted("04.5", "n_chans1 and n_blocks ignored", lambda: (FixedIgnoresArgs,), mentions="n_chans1 and n_blocks"),
    Planted("04.5", "ten blocks sharing one conv", lambda: (FixedSharedConv,), mentions="own weights"),
    Planted("04.6", "lam / 2 (the gradient's convention)", lambda: (lambda model, lam: lam / 2 * sum(p.pow(2).sum() for p in model.parameters()),),
            mentions="no 1/2"),
    Planted("04.6", "biases left out", lambda: (lambda model, lam: lam * sum(p.pow(2).sum() for n, p in model.named_parameters() if "bias" not in n),),
            mentions="biases"),
    Planted("04.6", "a Python float (.item())", lambda: (lambda model, lam: float(lam * sum(p.pow(2).sum() for p in model.parameters())),),
            mentions="tensor"),
    Planted("04.6", "detached parameters", lambda: (lambda model, lam: lam * sum(p.detach().pow(2).sum() for p in model.parameters()),),
            mentions="SGD"),
    Planted("04.7", "biased variance in the running average", lambda: (BNBiasedRunning,), mentions="unbiased"),
    Planted("04.7", "batch statistics in eval mode too", lambda: (BNAlwaysBatch,), mentions="eval"),
    Planted("04.7", "eps hard-coded to 1e-5", lambda: (BNFixedEps,), mentions="eps"),
    Planted("04.7", "momentum hard-coded to 0.1", lambda: (BNFixedMomentum,), mentions="momentum"),
    Planted("04.7", "momentum weighing the old running value", lambda: (BNMomentumOnOld,), mentions="momentum"),
    Planted("04.8", "last BN's γ left at 1", lambda: (BlockNoZero,), mentions="zero-initialise the last BatchNorm"),
    Planted("04.8", "AvgPool2d without ceil_mode", lambda: (BlockFloorPool,), mentions="ceil_mode=True"),
    Planted("04.8", "zero γ on the first BN", lambda: (BlockZeroFirst,), mentions="zero-initialises another BatchNorm instead"),
    Planted("04.8", "zero γ on both BNs", lambda: (BlockZeroBoth,), mentions="only the conv path's last BatchNorm starts with γ = 0"),
    Planted("04.8", "no inner ReLU", lambda: (BlockNoInnerReLU,), mentions="no ReLU between its two conv-BN layers"),
    Planted("04.8", "stride on the second conv", lambda: (BlockStrideSecond,), mentions="downsamples in the second conv"),
    Planted("04.8", "conv path never run", lambda: (BlockConvsNeverRun,), mentions="the conv path never runs"),
    Planted("04.8", "conv path overwritten", lambda: (BlockConvsDropped,), mentions="does not depend on the conv path"),
    Planted("04.8", "ReLU after the last BN", lambda: (BlockReLUAfterLastBN,), mentions="a ReLU after the second BN"),
    Planted("04.8", "no ReLU after the sum", lambda: (BlockNoFinalReLU,), mentions="without the ReLU after it"),
    Planted("04.9", "one seed twice (the seed never reaches seeded or train)", kernel_one_seed, mentions="seed"),
    Planted("04.9", "a conclusion the two seeds' gaps contradict", lambda: kernel_answer()[:2] + (kernel_answer()[3],),
            mentions="gaps"),
    Planted("04.9", "an inflated val accuracy", lambda: (with_row(kernel_answer()[0], (5, 0), val=kernel_answer()[0][(5, 0)]["val"] + 0.02),
                                                         kernel_answer()[1], kernel_answer()[2]), mentions="scores"),
    Planted("04.9", "train accuracy made up", lambda: (with_row(kernel_answer()[0], (3, 1), train=1.0), kernel_answer()[1], kernel_answer()[2]),
            mentions="scores"),
    Planted("04.9", "a parameter count for k = 3 reported for k = 5", lambda: (with_row(kernel_answer()[0], (5, 1), params=13962),
                                                                             kernel_answer()[1], kernel_answer()[2]), mentions="16,266"),
    Planted("04.9", "a 5x5 net without padding", lambda: (kernel_answer()[0], {**kernel_answer()[1], (5, 0): KNet(5, pad=False)},
                                                          kernel_answer()[2]), mentions="parameters"),
    Planted("04.9", "an untrained model, reported honestly", kernel_untrained, mentions="0.78"),
    Planted("04.10", "forgets eval()", lambda: (cam_no_eval, trained_cam_net()), mentions="evaluation mode"),
    Planted("04.10", "model.eval without the parentheses", lambda: (cam_eval_not_called, trained_cam_net()), mentions="evaluation mode"),
    Planted("04.10", "inference_mode taken for eval mode", lambda: (cam_inference_mode, trained_cam_net()), mentions="evaluation mode"),
    Planted("04.10", "the hook is not removed when forward raises", lambda: (cam_leaks_on_error, trained_cam_net()), mentions="hook"),
    Planted("04.10", "maps not upsampled", lambda: (cam_not_upsampled, trained_cam_net()), mentions="(100, 2, 32, 32)"),
    Planted("04.10", "class maps in the wrong order", lambda: (cam_wrong_class, trained_cam_net()), mentions="einsum"),
    Planted("04.11", "eps / (n - 1) on the other classes", lambda: (lambda y, n, eps: F.one_hot(y, n).float() * (1 - eps) + eps / (n - 1), mix, ls_ce),
            mentions="eps/n"),
    Planted("04.11", "mixup mixes the images only", lambda: (smooth, lambda x, y1h, lam, perm: (lam * x + (1 - lam) * x[perm], y1h), ls_ce),
            mentions="mixed targets"),
    Planted("04.11", "mixup weights swapped", lambda: (smooth, lambda x, y1h, lam, perm: (torch.lerp(x, x[perm], lam), torch.lerp(y1h, y1h[perm], lam)), ls_ce),
            mentions="lam * x"),
    Planted("04.11", "plain cross-entropy", lambda: (smooth, mix, lambda logits, y, eps: F.cross_entropy(logits, y)), mentions="smoothed target"),
    Planted("04.12", "the batch never moved", lambda: (to_dev, step_never_moves), mentions="used x without moving it to the model's device"),
    Planted("04.12", "only x moved", lambda: (to_dev, step_moves_x_only), mentions="used y without moving it"),
    Planted("04.12", ".to taken to work in place", lambda: (to_dev, step_to_not_kept), mentions="does not move a tensor in place"),
    Planted("04.12", "the GPU hard-coded", lambda: (to_dev, step_to_cuda), mentions="the model is on the CPU here"),
    Planted("04.12", "to_device handles dicts only", lambda: (lambda b, d: {k: (v.to(d) if isinstance(v, torch.Tensor) else v) for k, v in b.items()}, step),
            mentions="tuples"),
    Planted("04.13", "the 25-label models reused for 5 labels", transfer_reused_50, mentions="same object"),
    Planted("04.13", "every arm trained from scratch", transfer_all_scratch, mentions="probe's body"),
    Planted("04.13", "fine-tune never unfrozen", transfer_never_unfrozen, mentions="unfreezes"),
    Planted("04.13", "a probe whose BatchNorm kept training", transfer_probe_bn_trained, mentions="BatchNorm included"),
    Planted("04.13", "an inflated accuracy", transfer_inflated, mentions="scores"),
    Planted("04.13", "transfer_helped contradicts the numbers", transfer_flipped_helped, mentions="transfer_helped"),
    Planted("04.13", "more_gain_with_fewer_labels contradicts the numbers",
            lambda: transfer_with(more=not transfer_answer()[3]), mentions="more_gain_with_fewer_labels"),
    Planted("04.13", "a run at chance not flagged", transfer_dud_unflagged, mentions="chance"),
]

test_planted_mistake_is_rejected_with_a_hint = planted_test(PLANTED)  # tests/test_planted.py checks it is here
