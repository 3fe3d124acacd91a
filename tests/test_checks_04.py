"""Tests of the 04_cnns checks: other correct answers pass, planted wrong answers, stubs and crashing
answers fail, and no check ever raises.

The full notebook under nbval already proves that the chapter's reference solutions pass, so the
correct answers here are other ways to write them (einsum over sliding windows and F.conv2d instead
of loops, F.unfold, a backward receptive-field recursion, F.batch_norm, a ResBlock without conv_bn,
a hook removed in `finally`, ...). tests/test_checks_independent.py keeps chapter code out, except
fixtures marked `# planted: copied from the chapter`.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from check_helpers import crash, fails, passes, returns_none
from course_utils.data import fashion_mnist, mnist5k, sky_shapes
from course_utils.models import ResBlock, conv_bn
from course_utils.pretrained import fmnist8_body


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
    for wrong in (conv_no_bias, conv_ignores_stride, conv_flipped, crash, returns_none, None, ..., 3):
        fails("04.1", wrong)


def im2col_torch(x, kh, kw, stride=1, padding=0):
    return F.unfold(torch.as_tensor(x), (kh, kw), stride=stride, padding=padding).numpy()


def im2col_wrong_order(x, kh, kw, stride=1, padding=0):  # kernel position first, channel second
    cols = im2col_torch(x, kh, kw, stride, padding)
    n, _, L = cols.shape
    c = x.shape[1]
    return cols.reshape(n, c, kh * kw, L).transpose(0, 2, 1, 3).reshape(n, -1, L)


def test_04_2():
    passes("04.2", im2col_torch, conv_einsum)
    fails("04.2", im2col_wrong_order, conv_einsum)
    fails("04.2", im2col_torch, conv_no_bias)
    fails("04.2", crash, conv_einsum)
    fails("04.2", None, None)
    fails("04.2", ..., ...)


# 04.3 -------------------------------------------------------------------------------------------


def test_04_3():
    shapes = [(1, 8, 14, 14), (1, 16, 7, 7), (1, 32, 4, 4), (1, 64, 2, 2), (1, 10, 1, 1)]
    params = [208, 1168, 4640, 18496, 5770]
    passes("04.3", shapes, params, 30282)
    passes("04.3", [list(s) for s in shapes], np.array(params).tolist(), np.int64(30282))
    fails("04.3", [(1, 8, 12, 12), *shapes[1:]], params, 30282)  # forgot the padding
    fails("04.3", shapes, [200, 1152, 4608, 18432, 5760], 30152)  # forgot the biases
    fails("04.3", shapes, params, 30000)
    fails("04.3", ..., ..., ...)
    fails("04.3", None, params, 1)


# 04.4 -------------------------------------------------------------------------------------------


def rf_backwards(layers):  # from the output back to the input
    size = 1
    for k, s in reversed(layers):
        size = (size - 1) * s + k
    jump = int(np.prod([s for _, s in layers]))
    return size, jump


def test_04_4():
    passes("04.4", rf_backwards)
    fails("04.4", lambda layers: (1 + sum(k - 1 for k, _ in layers), int(np.prod([s for _, s in layers]))))
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


def test_04_5():
    passes("04.5", FixedModuleList)
    fails("04.5", Buggy)
    fails("04.5", FixedIgnoresArgs)
    fails("04.5", crash)
    fails("04.5", None)


# 04.6 -------------------------------------------------------------------------------------------


def test_04_6():
    passes("04.6", lambda model, lam: lam * torch.cat([p.flatten() for p in model.parameters()]).square().sum())
    fails("04.6", lambda model, lam: lam / 2 * sum(p.pow(2).sum() for p in model.parameters()))
    fails("04.6", lambda model, lam: lam * sum(p.pow(2).sum() for n, p in model.named_parameters() if "bias" not in n))
    fails("04.6", lambda model, lam: float(lam * sum(p.pow(2).sum() for p in model.parameters())))
    fails("04.6", lambda model, lam: lam * sum(p.detach().pow(2).sum() for p in model.parameters()))
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


def test_04_7():
    passes("04.7", BNViaFunctional)
    fails("04.7", BNBiasedRunning)
    fails("04.7", BNAlwaysBatch)
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
    fails("04.8", BlockNoZero, mentions="zero-initialise the last BatchNorm")
    fails("04.8", BlockFloorPool, mentions="ceil_mode=True")
    fails("04.8", BlockZeroFirst, mentions="zero-initialises another BatchNorm instead")
    fails("04.8", BlockZeroBoth, mentions="only the conv path's last BatchNorm starts with γ = 0")
    fails("04.8", BlockNoInnerReLU, mentions="no ReLU between its two conv-BN layers")
    fails("04.8", BlockStrideSecond, mentions="downsamples in the second conv")
    fails("04.8", BlockConvsNeverRun, mentions="the conv path never runs")
    fails("04.8", BlockConvsDropped, mentions="does not depend on the conv path")
    fails("04.8", BlockReLUAfterLastBN, mentions="a ReLU after the second BN")
    fails("04.8", BlockNoFinalReLU, mentions="without the ReLU after it")
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


@pytest.fixture(scope="module")
def kernel_answer():
    xs, ys, xte, yte = pair_sets()
    models, report = {}, {}
    for k in (3, 5):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(k)
            model = KNet(k)
        opt = torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
        g = torch.Generator().manual_seed(0)
        for _ in range(3):
            model.train()
            for b in torch.randperm(3000, generator=g).split(64):
                loss = F.cross_entropy(model(xs[b]), ys[b])
                opt.zero_grad()
                loss.backward()
                opt.step()
        models[k] = model
        report[k] = {"params": sum(p.numel() for p in model.parameters()), "train": acc(model, xs[:1000], ys[:1000]),
                     "val": acc(model, xte, yte)}
    gaps = {k: r["train"] - r["val"] for k, r in report.items()}
    return report, models, max(gaps, key=gaps.get), min(gaps, key=gaps.get)


def with_row(report, k, **changes):
    out = {key: dict(row) for key, row in report.items()}
    out[k].update(changes)
    return out


def test_04_9(kernel_answer):
    report, models, more, less = kernel_answer
    assert report[3]["params"] == 13962 and report[5]["params"] == 16266
    assert report[3]["val"] > 0.8 and report[5]["val"] > 0.8
    passes("04.9", report, models, more)
    passes("04.9", {np.int64(k): {kk: (np.float64(v) if kk != "params" else v) for kk, v in r.items()} for k, r in report.items()},
           models, np.int64(more))
    fails("04.9", report, models, less, mentions="overfits more")  # contradicts the reported gaps
    fails("04.9", with_row(report, 5, params=13962), models, more, mentions="16,266")  # a wrong parameter count
    fails("04.9", with_row(report, 5, val=report[5]["val"] + 0.02), models, more, mentions="scores")  # inflated
    fails("04.9", with_row(report, 3, train=1.0), models, more, mentions="scores")
    fails("04.9", report, {3: models[3], 5: KNet(5, pad=False)}, more, mentions="parameters")  # no padding
    xs, ys, xte, yte = pair_sets()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        untrained = KNet(5)
    honest = with_row(report, 5, train=acc(untrained, xs[:1000], ys[:1000]), val=acc(untrained, xte, yte))
    fails("04.9", honest, {3: models[3], 5: untrained}, more, mentions="0.78")  # reported honestly, but not trained
    fails("04.9", report, {3: models[3], 5: models[3]}, more)
    crashing = KNetCrashes(5)
    fails("04.9", report, {3: models[3], 5: crashing}, more, mentions="raised")
    fails("04.9", report, models, "five")
    fails("04.9", {3: report[3]}, models, more)
    fails("04.9", ..., ..., ...)
    fails("04.9", None, models, more)
    fails("04.9", report, crash, more)


# 04.10 ------------------------------------------------------------------------------------------


class CamNet(nn.Module):
    """A fully convolutional body and a linear head on the average-pooled features (the check needs .body and .fc)."""

    def __init__(self, widths=(1, 16, 32, 64), strides=(1, 2, 2)):
        super().__init__()
        self.body = nn.Sequential(*(conv_bn(ni, nf, stride=s) for ni, nf, s in zip(widths, widths[1:], strides)))
        self.fc = nn.Linear(widths[-1], 2)

    def forward(self, x):
        return self.fc(F.adaptive_avg_pool2d(self.body(x), 1).flatten(1))


@pytest.fixture(scope="module")
def cam_model():
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
    for wrong in (cam_no_eval, cam_eval_not_called, cam_inference_mode):
        fails("04.10", wrong, cam_model, mentions="evaluation mode")
    assert not cam_model.training and all(torch.equal(a, b) for a, b in zip(stats, cam_model.buffers()))  # put back
    cam_model.train()
    try:  # a model handed over in training mode is handed back in training mode
        passes("04.10", cam_ok, cam_model)
        assert all(m.training for m in cam_model.modules())
    finally:
        cam_model.eval()
    fails("04.10", cam_leaks_on_error, cam_model)
    assert len(cam_model.body._forward_hooks) == 0  # the check cleans up after a leaking answer
    fails("04.10", cam_not_upsampled, cam_model)
    fails("04.10", cam_wrong_class, cam_model)
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
    fails("04.11", lambda y, n, eps: F.one_hot(y, n).float() * (1 - eps) + eps / (n - 1), mix, ls_ce)
    fails("04.11", smooth, lambda x, y1h, lam, perm: (lam * x + (1 - lam) * x[perm], y1h), ls_ce)
    fails("04.11", smooth, mix, lambda logits, y, eps: F.cross_entropy(logits, y))
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
    fails("04.12", to_dev, step_never_moves, mentions="used x without moving it to the model's device")
    fails("04.12", to_dev, step_moves_x_only, mentions="used y without moving it")
    fails("04.12", to_dev, step_to_not_kept, mentions="does not move a tensor in place")
    fails("04.12", to_dev, step_to_cuda, mentions="the model is on the CPU here")
    fails("04.12", lambda b, d: {k: (v.to(d) if isinstance(v, torch.Tensor) else v) for k, v in b.items()}, step)
    fails("04.12", lambda b, d: b, step)
    fails("04.12", to_dev, lambda model, batch, opt, loss_fn, device: loss_fn(model(batch[0]), batch[1]))  # no step, a tensor
    fails("04.12", to_dev, crash)
    fails("04.12", None, ...)


# 04.13 ------------------------------------------------------------------------------------------

CASES = [("fashion", 10), ("fashion", 50), ("mnist", 50)]
ARMS = ("scratch", "probe", "fine-tune")


def transfer_sets():
    """(train, test) per task, normalized with the pretraining statistics, as §11 builds them."""
    _, info = fmnist8_body()
    norm = lambda a: ((a.float() / 255 - info["mean"]) / info["std"]).unsqueeze(1)  # noqa: E731
    x, y = fashion_mnist(train=True)
    xt, yt = fashion_mnist(train=False)
    keep, keep_t = (y == 0) | (y == 6), (yt == 0) | (yt == 6)
    xm, ym = mnist5k()
    idx_tr = torch.cat([torch.nonzero(ym == d).flatten()[:400] for d in range(10)])
    idx_va = torch.cat([torch.nonzero(ym == d).flatten()[400:] for d in range(10)])
    return {"fashion": ((norm(x[keep][:2000]), (y[keep][:2000] == 6).long()), (norm(xt[keep_t]), (yt[keep_t] == 6).long())),
            "mnist": ((norm(xm[idx_tr]), ym[idx_tr]), (norm(xm[idx_va]), ym[idx_va]))}


def linear_model(x, y, n_out, steps, seed):  # cheap stand-ins for the three arms: the check does not care how they were trained
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, n_out))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model


@pytest.fixture(scope="module")
def transfer_answer():
    sets = transfer_sets()
    report, models = {}, {}
    for i, (task, labels) in enumerate(CASES):
        (x, y), (xt, yt) = sets[task]
        n_out = 2 if task == "fashion" else 10
        models[(task, labels)] = {arm: linear_model(x, y, n_out, 20 + 15 * j + 5 * i, seed=j) for j, arm in enumerate(ARMS)}
        report[(task, labels)] = {arm: acc(m, xt, yt) for arm, m in models[(task, labels)].items()}
    helped = {case: r["fine-tune"] > r["scratch"] for case, r in report.items()}
    gain = {n: report[("fashion", n)]["fine-tune"] - report[("fashion", n)]["scratch"] for n in (10, 50)}
    return report, models, helped, gain[10] > gain[50], sets


def changed(report, case, arm, value):
    out = {c: dict(r) for c, r in report.items()}
    out[case][arm] = value
    return out


def test_04_13(transfer_answer):
    report, models, helped, more_gain, sets = transfer_answer
    assert all(a > (0.6 if c[0] == "fashion" else 0.2) for c, r in report.items() for a in r.values())
    passes("04.13", report, models, helped, more_gain, [])
    passes("04.13", {c: {a: np.float32(v) for a, v in r.items()} for c, r in report.items()}, models,
           {c: np.bool_(v) for c, v in helped.items()}, np.bool_(more_gain), ())
    # an inflated accuracy, a conclusion that contradicts the numbers
    fails("04.13", changed(report, ("fashion", 10), "fine-tune", report[("fashion", 10)]["fine-tune"] + 0.03), models, helped,
          more_gain, [], mentions="scores")
    flipped = dict(helped)
    flipped[("mnist", 50)] = not flipped[("mnist", 50)]
    fails("04.13", report, models, flipped, more_gain, [], mentions="transfer_helped")
    fails("04.13", report, models, helped, not more_gain, [], mentions="more_gain_with_fewer_labels")
    fails("04.13", report, models, {c: "yes" for c in helped}, more_gain, [], mentions="True or False")
    # a run near chance passes only when it is flagged as failed
    (_, _), (xt, yt) = sets["mnist"]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        dud = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    weak_models = {c: dict(m) for c, m in models.items()}
    weak_models[("mnist", 50)]["probe"] = dud
    weak = changed(report, ("mnist", 50), "probe", acc(dud, xt, yt))
    assert weak[("mnist", 50)]["probe"] < 0.2
    fails("04.13", weak, weak_models, helped, more_gain, [], mentions="chance")
    passes("04.13", weak, weak_models, helped, more_gain, [("mnist", 50, "probe")])
    fails("04.13", weak, weak_models, helped, more_gain, [("mnist", 50, "linear")], mentions="failed")
    # structure: missing case, one model under two arms, wrong output size, crashing model, stubs
    fails("04.13", {c: r for c, r in report.items() if c != ("mnist", 50)}, models, helped, more_gain, [])
    shared = {c: dict(m) for c, m in models.items()}
    shared[("fashion", 50)]["probe"] = shared[("fashion", 50)]["scratch"]
    fails("04.13", report, shared, helped, more_gain, [], mentions="same model")
    wide = {c: dict(m) for c, m in models.items()}
    wide[("fashion", 10)]["probe"] = models[("mnist", 50)]["probe"]
    fails("04.13", report, wide, helped, more_gain, [], mentions="logits")
    broken = {c: dict(m) for c, m in models.items()}
    broken[("fashion", 10)]["scratch"] = KNetCrashes(3)
    fails("04.13", report, broken, helped, more_gain, [], mentions="raised")
    fails("04.13", report, models, helped, more_gain, ...)
    fails("04.13", ..., ..., ..., ..., ...)
    fails("04.13", report, crash, helped, more_gain, [])
