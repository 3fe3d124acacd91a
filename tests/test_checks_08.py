"""Tests of the 08_ct checks: other correct answers pass, planted wrong answers, stubs and crashing answers fail
(naming what is wrong), and no check ever raises.

The correct answers here are written other ways than the obvious ones: the window by np.interp or torch.lerp-free
arithmetic on tensors, the DICOM series sorted by SliceLocation and rescaled with pydicom's apply_rescale, XYZ <-> IRC
by solving the linear system, the join with pandas-free dict lookups keyed per axis, the crop by np.take with
clipped index ranges, P/R/F by torch counts, the balanced index by a generator, the augmentation matrix by
torch.block_diag, the Dice loss by flattening. The shipped Cranium masks come from `course_utils.data.ct_masks()`;
until that loader exists the tests put in a stand-in (HU in [226, 3071], which equals mask_0 exactly).
"""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from check_helpers import Planted, crash, fails, passes, planted_test, returns_none


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def _ensure_masks():
    """data.ct_masks as the check reads it: the real loader when there is one, else a stand-in equal to mask_0
    (HU in [226, 3071]) and mask_1 (HU in [-142, 2986]), cropped as the loader crops them."""
    from course_utils import data

    if hasattr(data, "ct_masks"):
        return
    vol, _ = data.ct_volume()
    data.ct_masks = lambda: {"mask_0": (vol >= 226) & (vol <= 3071), "mask_1": (vol >= -142) & (vol <= 2986)}


def _bone(lo=226, hi=3071, strict=False, pad=False):
    from course_utils import data

    _ensure_masks()
    vol, _ = data.ct_volume()
    mask = ((vol > lo) if strict else (vol >= lo)) & (vol <= hi)
    return np.pad(mask, ((1, 0), (1, 0), (1, 0))) if pad else mask


# 08.1 -------------------------------------------------------------------------------------------


def window_by_interp(hu, level, width, clip=True, lower="edge"):
    """np.interp between the two edges (clips by itself); flags plant mistakes (defaults are right)."""
    values = hu.double().numpy() if isinstance(hu, torch.Tensor) else np.asarray(hu, dtype=float)
    lo = {"edge": level - width / 2, "level": level}[lower]
    if not clip:
        return (values - lo) / width
    return np.interp(values, [lo, lo + width], [0.0, 1.0])


def window_in_torch(hu, level, width):
    """Always a float64 tensor: min/max of a ramp."""
    t = torch.as_tensor(np.asarray(hu, dtype=np.float64)) if not isinstance(hu, torch.Tensor) else hu.double()
    return torch.minimum(torch.maximum((t - level) / width + 0.5, torch.zeros(())), torch.ones(()))


def window_in_place(hu, level, width):
    if isinstance(hu, np.ndarray) and hu.dtype == np.float64:
        hu -= level - width / 2
        hu /= width
        return np.clip(hu, 0, 1)
    return window_in_torch(hu, level, width)


def test_08_1():
    _ensure_masks()
    passes("08.1", window_by_interp, _bone())
    passes("08.1", window_in_torch, torch.from_numpy(_bone().astype(np.uint8)))
    fails("08.1", window_in_place, _bone(), mentions="changed the array")
    fails("08.1", window_by_interp, _bone(pad=True), mentions="drop index 0")
    fails("08.1", window_by_interp, _bone()[:, :, :100], mentions="shape")
    fails("08.1", window_by_interp, ..., mentions="not answered")
    fails("08.1", crash, _bone(), mentions="raised")
    fails("08.1", returns_none, _bone(), mentions="None")
    fails("08.1", ..., _bone(), mentions="not answered")


# 08.2 -------------------------------------------------------------------------------------------


def read_series_by_location(folder, order="position", rescale="both", spacing="right"):
    """pydicom, sorted by SliceLocation, apply_rescale; flags plant mistakes (defaults are right)."""
    from pathlib import Path

    import pydicom
    from pydicom.pixels import apply_rescale

    files = sorted(Path(folder).iterdir())
    sets = [pydicom.dcmread(f) for f in files]
    if order == "position":
        sets = sorted(sets, key=lambda d: float(d.SliceLocation))
    elif order == "instance":
        sets = sorted(sets, key=lambda d: int(d.InstanceNumber))
    if rescale == "both":
        planes = [apply_rescale(d.pixel_array, d) for d in sets]
    elif rescale == "no intercept":
        planes = [d.pixel_array * float(d.RescaleSlope) for d in sets]
    else:
        planes = [d.pixel_array + float(d.RescaleIntercept) for d in sets]
    row_mm, col_mm = map(float, sets[0].PixelSpacing)
    zs = [float(d.ImagePositionPatient[2]) for d in sets]
    step = float(np.median(np.abs(np.diff(zs))))
    out = {"right": (col_mm, row_mm, step), "swap": (row_mm, col_mm, step),
           "thickness": (col_mm, row_mm, float(sets[0].SliceThickness))}[spacing]
    return np.stack(planes), out


def read_series_as_tensor(folder):
    """A dict keyed by z, an int64 tensor volume, and the spacing as a NumPy array."""
    import glob
    import os

    import pydicom

    by_z = {}
    for name in glob.glob(os.path.join(folder, "*")):
        ds = pydicom.dcmread(name)
        by_z[float(ds.ImagePositionPatient[-1])] = ds
    zs = sorted(by_z)
    vol = torch.stack([torch.from_numpy(by_z[z].pixel_array.astype(np.int64)) * int(by_z[z].RescaleSlope)
                       + int(by_z[z].RescaleIntercept) for z in zs])
    first = by_z[zs[0]]
    return vol, np.array([first.PixelSpacing[1], first.PixelSpacing[0], zs[1] - zs[0]], dtype=float)


def test_08_2():
    passes("08.2", read_series_by_location)
    passes("08.2", read_series_as_tensor)
    fails("08.2", lambda f: read_series_by_location(f)[0], mentions="pair")
    fails("08.2", lambda f: (read_series_by_location(f)[0].transpose(1, 2, 0), (1, 1, 1)), mentions="shape")
    fails("08.2", crash, mentions="raised")
    fails("08.2", returns_none, mentions="None")
    fails("08.2", ..., mentions="not answered")


# 08.3 -------------------------------------------------------------------------------------------


def xyz2irc_by_solve(coord_xyz, origin_xyz, vxSize_xyz, direction_a, rounding="round", direction=True, order="irc"):
    """Solve direction @ (cri * spacing) = xyz - origin; flags plant mistakes (defaults are right)."""
    d = np.asarray(direction_a, dtype=float) if direction else np.eye(3)
    cri = np.linalg.solve(d, np.subtract(coord_xyz, origin_xyz)) / np.asarray(vxSize_xyz)
    ints = {"round": np.rint, "floor": np.floor}[rounding](cri).astype(np.int64)
    return ints[::-1] if order == "irc" else ints


def irc2xyz_by_einsum(coord_irc, origin_xyz, vxSize_xyz, direction_a, direction=True):
    d = torch.as_tensor(np.asarray(direction_a, dtype=float)) if direction else torch.eye(3, dtype=torch.float64)
    cri = torch.tensor(list(reversed(list(coord_irc))), dtype=torch.float64) * torch.tensor(vxSize_xyz)
    return torch.einsum("ij,j->i", d, cri) + torch.tensor(origin_xyz)


def xyz2irc_float(*args):
    return tuple(float(v) for v in xyz2irc_by_solve(*args))


def test_08_3():
    passes("08.3", xyz2irc_by_solve, irc2xyz_by_einsum)
    passes("08.3", lambda *a: [int(v) for v in xyz2irc_by_solve(*a)], lambda *a: irc2xyz_by_einsum(*a).numpy())
    fails("08.3", xyz2irc_float, irc2xyz_by_einsum, mentions="ints")
    fails("08.3", xyz2irc_by_solve, lambda *a: irc2xyz_by_einsum(*a)[:2], mentions="three coordinates")
    fails("08.3", xyz2irc_by_solve, lambda irc, o, s, d: irc2xyz_by_einsum(irc, o, s, d, direction=False),
          mentions="direction")
    fails("08.3", crash, irc2xyz_by_einsum, mentions="raised")
    fails("08.3", xyz2irc_by_solve, returns_none, mentions="None")
    fails("08.3", xyz2irc_by_solve, ..., mentions="not answered")


# 08.4 -------------------------------------------------------------------------------------------


def join_by_axes(candidates, annotations, cmp="le", tolerance=4, largest=True):
    """Annotations grouped per series, every axis compared with numpy; flags plant mistakes (defaults are right)."""
    groups = {}
    for row in annotations:
        groups.setdefault(row[0], []).append(np.array(row[1:], dtype=float))
    result = np.zeros(len(candidates))
    for n, (uid, *xyz, _cls) in enumerate(candidates):
        for ann in groups.get(uid, []):
            close = np.abs(np.array(xyz) - ann[:3])
            ok = (close <= ann[3] / tolerance).all() if cmp == "le" else (close < ann[3] / tolerance).all()
            if ok:
                if largest:
                    result[n] = max(result[n], ann[3])
                elif result[n] == 0:
                    result[n] = ann[3]
    return result


def join_positives_only(candidates, annotations):
    out = join_by_axes(candidates, annotations)
    return [d if row[4] else 0.0 for d, row in zip(out, candidates)]


def join_by_distance(candidates, annotations):
    out = []
    for uid, x, y, z, _ in candidates:
        hits = [d for u, ax, ay, az, d in annotations if u == uid and math.dist((x, y, z), (ax, ay, az)) <= d / 4]
        out.append(max(hits, default=0.0))
    return out


def test_08_4():
    passes("08.4", join_by_axes)
    passes("08.4", lambda c, a: torch.tensor(join_by_axes(c, a)).tolist())
    fails("08.4", lambda c, a: join_by_axes(c, a)[:-1], mentions="one diameter per row")
    fails("08.4", lambda c, a: (c.append(c[0]), join_by_axes(c[:-1], a))[1], mentions="changed the rows")
    fails("08.4", crash, mentions="raised")
    fails("08.4", returns_none, mentions="None")
    fails("08.4", ..., mentions="not answered")


# 08.5 -------------------------------------------------------------------------------------------


def crop_by_take(vol, center_irc, width_irc, clamp="right"):
    """np.take with clipped index ranges per axis; flags plant mistakes (defaults are right)."""
    out = vol
    for axis, (c, w) in enumerate(zip(center_irc, width_irc)):
        size = vol.shape[axis]
        first = c - w // 2
        if clamp == "right":
            first = min(max(first, 0), size - w)
        elif clamp == "off by one":
            first = min(max(first, 0), size - w - 1) if first + w >= size else max(first, 0)
        elif clamp == "none":
            idx = np.arange(max(first, 0), min(first + w, size))
            out = np.take(out, idx, axis=axis)
            continue
        out = np.take(out, np.arange(first, first + w), axis=axis)
    return out


def crop_padded(vol, center_irc, width_irc):
    """Zero padding around the volume, then the centred block: the padding mistake."""
    w = np.array(width_irc)
    padded = np.pad(vol, [(x, x) for x in w])
    start = np.array(center_irc) - w // 2 + w
    return padded[tuple(slice(a, a + b) for a, b in zip(start, w))]


def crop_as_tensor(vol, center_irc, width_irc):
    t = torch.from_numpy(vol)
    for axis, (c, w) in enumerate(zip(center_irc, width_irc)):
        start = int(np.clip(c - w / 2, 0, t.shape[axis] - w))
        t = t.narrow(axis, start, w)
    return t


def test_08_5():
    passes("08.5", crop_by_take)
    passes("08.5", crop_as_tensor)
    fails("08.5", lambda v, c, w: crop_by_take(v, c, w)[..., :-1], mentions="shape")
    fails("08.5", lambda v, c, w: (v.fill(0), crop_by_take(v, c, w))[1], mentions="changed the volume")
    fails("08.5", crash, mentions="raised")
    fails("08.5", returns_none, mentions="None")
    fails("08.5", ..., mentions="not answered")


# 08.6 -------------------------------------------------------------------------------------------


def _imbalance_answer(rows="training", batch_draws="with replacement"):
    """The three numbers recomputed from the chapter's mini-LUNA (counts by Counter); flags plant mistakes."""
    from collections import Counter

    from course_utils.ct import getCandidateInfoList
    from course_utils.data import mini_luna

    cands = list(getCandidateInfoList(str(mini_luna())))
    chosen = cands if rows == "all" else [c for i, c in enumerate(cands) if i % 10 != 0]
    counts = Counter(c.isNodule_bool for c in chosen)
    share = counts[False] / len(chosen)
    luna = 494743 / (494743 + 1215)
    here = share ** 32
    if batch_draws == "at least one":
        here, luna32 = 1 - share ** 32, 1 - luna ** 32
    else:
        luna32 = luna ** 32
    return share, here, luna32


def test_08_6():
    passes("08.6", *_imbalance_answer())
    passes("08.6", *(torch.tensor(v) for v in _imbalance_answer()))
    fails("08.6", 97.57, 0.46, 0.92, mentions="percentages")
    fails("08.6", *_imbalance_answer()[:2], "0.92", mentions="number")
    fails("08.6", ..., 0.4, 0.9, mentions="not answered")


# 08.7 -------------------------------------------------------------------------------------------


def prf_by_counts(labels, probs, thr, beta, empty="zero", beta_power=2, swap=False):
    """Torch counts and a safe division; flags plant mistakes (defaults are right)."""
    pred = (probs >= thr).long()
    tp = int((pred * labels).sum())
    predicted, actual = int(pred.sum()), int(labels.sum())

    def div(a, b):
        if b:
            return a / b
        return 0.0 if empty == "zero" else float(np.float64(a) / np.float64(b))

    precision, recall = div(tp, predicted), div(tp, actual)
    if swap:
        precision, recall = recall, precision
    b = beta ** beta_power
    return precision, recall, div((1 + b) * precision * recall, b * precision + recall)


def prf_harmonic(labels, probs, thr, beta):
    """F-beta as a weighted harmonic mean, on tensors; all three returned as 0-d tensors."""
    pos, pred = labels == 1, probs >= thr
    tp = (pos & pred).sum().double()
    p = tp / pred.sum() if pred.any() else torch.zeros((), dtype=torch.float64)
    r = tp / pos.sum() if pos.any() else torch.zeros((), dtype=torch.float64)
    if p == 0 or r == 0:
        return p, r, torch.zeros((), dtype=torch.float64)
    w = beta ** 2 / (1 + beta ** 2)
    return p, r, 1 / (w / r + (1 - w) / p)


def test_08_7():
    passes("08.7", prf_by_counts)
    passes("08.7", prf_harmonic)
    fails("08.7", lambda *a: prf_by_counts(*a)[:2], mentions="three numbers")
    fails("08.7", crash, mentions="raised")
    fails("08.7", returns_none, mentions="None")
    fails("08.7", ..., mentions="not answered")


# 08.8 -------------------------------------------------------------------------------------------


def balanced_by_counting(ndx, ratio, n_pos, n_neg, first="pos", neg_from="count", wrap=True, shift=0):
    """Counts the positives and negatives before ndx in closed form; flags plant mistakes (defaults are right)."""
    group, slot = ndx // (ratio + 1), ndx % (ratio + 1)
    is_pos = slot == 0 if first == "pos" else slot == ratio
    if is_pos:
        return "pos", group % n_pos
    negs_before = group * ratio + (slot - 1 if first == "pos" else slot) + shift
    raw = negs_before if neg_from == "count" else ndx
    return "neg", raw % n_neg if wrap else raw


def balanced_by_generator(ndx, ratio, n_pos, n_neg):
    """Walks a generator of the pattern (slow but plain), as NumPy ints."""
    def pattern():
        k_pos = k_neg = 0
        while True:
            yield "pos", np.int64(k_pos % n_pos)
            k_pos += 1
            for _ in range(ratio):
                yield "neg", np.int64(k_neg % n_neg)
                k_neg += 1

    key = (ratio, n_pos, n_neg)
    cache = balanced_by_generator.__dict__.setdefault("cache", {})
    if key not in cache:
        gen = pattern()
        cache[key] = [next(gen) for _ in range(10_000)]
    return cache[key][ndx]


def test_08_8():
    passes("08.8", balanced_by_counting)
    passes("08.8", balanced_by_generator)
    fails("08.8", lambda *a: balanced_by_counting(*a)[0], mentions="pair")
    fails("08.8", lambda *a: ("positive", 0), mentions="pair")
    fails("08.8", crash, mentions="raised")
    fails("08.8", returns_none, mentions="None")
    fails("08.8", ..., mentions="not answered")


# 08.9 -------------------------------------------------------------------------------------------


def augment_by_blocks(flip, offset, scale, angle, axis="z", order="TR", sign=1, dtype=torch.float32):
    """torch.block_diag of a 2 x 2 rotation and 1s; diag and offsets built as tensors; flags plant mistakes."""
    c, s = math.cos(angle), sign * math.sin(angle)
    turn = torch.tensor([[c, -s], [s, c]])
    if axis == "z":
        rot = torch.block_diag(turn, torch.eye(2))
    else:  # about x: y and z turn
        rot = torch.block_diag(torch.eye(1), turn, torch.eye(1))
    diag = torch.tensor([(-1.0 if f else 1.0) * k for f, k in zip(flip, scale)] + [1.0])
    t = torch.diag(diag)
    t[:3, 3] = torch.tensor(offset)
    out = t @ rot if order == "TR" else rot @ t
    return out.to(dtype)


def augment_numpy(flip, offset, scale, angle):
    """A NumPy float64 4 x 4 from its rows, by hand."""
    c, s = np.cos(angle), np.sin(angle)
    a = [(-1 if f else 1) * k for f, k in zip(flip, scale)]
    return np.array([[a[0] * c, -a[0] * s, 0, offset[0]], [a[1] * s, a[1] * c, 0, offset[1]],
                     [0, 0, a[2], offset[2]], [0, 0, 0, 1]])


def test_08_9():
    passes("08.9", augment_by_blocks)
    passes("08.9", augment_numpy)
    fails("08.9", lambda *a: augment_numpy(*a)[:3], mentions="(4, 4)")
    fails("08.9", lambda *a: augment_by_blocks(*a) * 0, mentions="determinant")
    fails("08.9", crash, mentions="raised")
    fails("08.9", returns_none, mentions="None")
    fails("08.9", ..., mentions="not answered")


# 08.10 ------------------------------------------------------------------------------------------


def loss_by_log_softmax(model, batch, softmax_first=False, keep_grad=True):
    """-log_softmax gathered at the label; flags plant mistakes (defaults are right)."""
    x, y, *_ = batch
    logits, probs = model(x)
    scores = probs if softmax_first else logits
    loss = -F.log_softmax(scores, dim=1).gather(1, y[:, None])[:, 0]
    return (loss if keep_grad else loss.detach()), probs


def validate_inference_mode(model, batches, eval_mode=True, no_grad=True, restore=True):
    """inference_mode instead of no_grad, and the model's mode restored afterwards; flags plant mistakes."""
    was_training = model.training
    if eval_mode:
        model.eval()
    losses, probs = [], []
    ctx = torch.inference_mode() if no_grad else torch.enable_grad()
    with ctx:
        for batch in batches:
            loss, p = loss_by_log_softmax(model, batch)
            losses.append(loss)
            probs.append(p)
    model.train(was_training if restore else model.training)
    return torch.cat(losses), torch.cat(probs)


def validate_grad_off(model, batches):
    model.eval()
    torch.set_grad_enabled(False)
    parts = [loss_by_log_softmax(model, b) for b in batches]
    return torch.cat([a for a, _ in parts]), torch.cat([b for _, b in parts])


def test_08_10():
    passes("08.10", loss_by_log_softmax, validate_inference_mode)
    passes("08.10", lambda m, b: (F.cross_entropy(m(b[0])[0], b[1], reduction="none"), m(b[0])[1].detach() * 1),
           lambda m, bs: validate_inference_mode(m, bs, restore=False))
    fails("08.10", lambda m, b: (loss_by_log_softmax(m, b)[0].mean(), loss_by_log_softmax(m, b)[1]), validate_inference_mode,
          mentions="reduction='none'")
    fails("08.10", loss_by_log_softmax, validate_grad_off, mentions="switched off")
    assert torch.is_grad_enabled()
    fails("08.10", crash, validate_inference_mode, mentions="raised")
    fails("08.10", loss_by_log_softmax, returns_none, mentions="None")
    fails("08.10", ..., validate_inference_mode, mentions="not answered")


# planted: copied from the chapter (the exercise's buggy code, as the lead will print it)
def buggy_compute_batch_loss(model, batch):
    input_t, label_t = batch[0], batch[1]
    logits, probs = model(input_t)
    return F.cross_entropy(probs, label_t, reduction="none"), probs


# 08.11 ------------------------------------------------------------------------------------------


def leakage_by_sets(candidates, val_stride, split, same="nodule", skip_first=False):
    """Index sets and a dict of training positives per (series, diameter); flags plant mistakes (defaults are right)."""
    n = len(candidates)
    if split == "series":
        uids = sorted({c.series_uid for c in candidates})
        val_uids = {u for k, u in enumerate(uids) if k % val_stride == 0}
        val_idx = {i for i in range(n) if candidates[i].series_uid in val_uids}
    else:
        val_idx = set(range(1 if skip_first else 0, n, val_stride))
    val = [candidates[i] for i in sorted(val_idx)]
    trn = [candidates[i] for i in range(n) if i not in val_idx]
    series = len({c.series_uid for c in val} & {c.series_uid for c in trn})
    pos_by_key = {}
    for c in trn:
        if c.isNodule_bool:
            key = (c.series_uid, c.diameter_mm) if same == "nodule" else c.series_uid
            pos_by_key.setdefault(key, []).append(np.array(c.center_xyz))
    leaked = 0
    for c in val:
        if not c.isNodule_bool or (same == "nodule" and c.diameter_mm == 0):
            continue
        key = (c.series_uid, c.diameter_mm) if same == "nodule" else c.series_uid
        near = [p for p in pos_by_key.get(key, []) if same != "nodule"
                or np.all(np.abs(p - np.array(c.center_xyz)) <= c.diameter_mm / 2)]
        leaked += bool(near) if same != "all" else 1
    return series, leaked


def test_08_11():
    passes("08.11", leakage_by_sets)
    passes("08.11", lambda *a: tuple(np.int64(v) for v in leakage_by_sets(*a)))
    fails("08.11", lambda *a: leakage_by_sets(*a)[0], mentions="two ints")
    fails("08.11", lambda *a: (0.5, 1), mentions="count")
    fails("08.11", crash, mentions="raised")
    fails("08.11", returns_none, mentions="None")
    fails("08.11", ..., mentions="not answered")


# 08.12 ------------------------------------------------------------------------------------------


def allreduce_by_stack(local, how="sum"):
    """One float64 tensor in sorted key order; flags plant mistakes (defaults are right)."""
    import torch
    import torch.distributed as dist

    keys = sorted(local)
    values = torch.tensor([local[k] for k in keys], dtype=torch.float64)
    if how == "local":
        return {k: values[i] for i, k in enumerate(keys)}
    dist.all_reduce(values)
    if how == "mean":
        values /= dist.get_world_size()
    return {k: values[i] for i, k in enumerate(keys)}


def test_08_12():
    start = time.perf_counter()
    passes("08.12", allreduce_by_stack)
    assert time.perf_counter() - start < 60
    fails("08.12", 42, mentions="function")
    fails("08.12", ..., mentions="not answered")


# 08.13 ------------------------------------------------------------------------------------------


def dice_by_flatten(pred, label, eps=1, where="both", reduce="sum"):
    """Flatten to (N, -1), then sums; flags plant mistakes (defaults are right)."""
    p, l = pred.flatten(1), label.flatten(1).to(pred.dtype)
    agg = (lambda t: t.sum(1)) if reduce == "sum" else (lambda t: t.mean(1))
    top = 2 * agg(p * l) + (eps if where == "both" else 0)
    return 1 - top / (agg(p) + agg(l) + eps)


def dice_by_einsum(pred, label, eps=1.0):
    n = pred.shape[0]
    p, l = pred.reshape(n, -1), label.reshape(n, -1)
    inter = torch.einsum("ni,ni->n", p, l)
    return (p.sum(1) + l.sum(1) - 2 * inter) / (p.sum(1) + l.sum(1) + eps)


def test_08_13():
    passes("08.13", dice_by_flatten)
    passes("08.13", dice_by_einsum)
    fails("08.13", lambda p, l, eps=1: dice_by_flatten(p, l, eps).mean(), mentions="one loss per sample")
    fails("08.13", lambda p, l, eps=1: dice_by_flatten(p, l, eps).detach(), mentions="gradient")
    fails("08.13", crash, mentions="raised")
    fails("08.13", returns_none, mentions="None")
    fails("08.13", ..., mentions="not answered")


def test_08_checks_are_fast():
    from course_utils.checks import run_check

    for ex, answers in (("08.2", (read_series_as_tensor,)), ("08.3", (xyz2irc_by_solve, irc2xyz_by_einsum)),
                        ("08.8", (balanced_by_counting,)), ("08.10", (loss_by_log_softmax, validate_inference_mode))):
        start = time.perf_counter()
        assert run_check(ex, *answers)[0]
        assert time.perf_counter() - start < 10, ex


# Planted mistakes ---------------------------------------------------------------------------------


PLANTED = [
    # 08.1
    Planted("08.1", "no clipping", lambda: (lambda h, L, W: window_by_interp(h, L, W, clip=False), _bone()), mentions="clip"),
    Planted("08.1", "the level taken as the lower edge", lambda: (lambda h, L, W: window_by_interp(h, L, W, lower="level"),
                                                                  _bone()), mentions="level - width/2"),
    Planted("08.1", "the ramp inverted", lambda: (lambda h, L, W: 1 - window_by_interp(h, L, W), _bone()),
            mentions="wrong way"),
    Planted("08.1", "bone threshold exclusive at 226", lambda: (window_by_interp, _bone(strict=True)), mentions="both ends"),
    Planted("08.1", "bone from the HU ladder (>= 400)", lambda: (window_by_interp, _bone(lo=400)), mentions="missing"),
    Planted("08.1", "the stored mask with its border", lambda: (window_by_interp, _bone(pad=True)), mentions="index 0"),
    # 08.2
    Planted("08.2", "sorted by file name", lambda: (lambda f: read_series_by_location(f, order="name"),),
            mentions="file-name order"),
    Planted("08.2", "sorted by instance number", lambda: (lambda f: read_series_by_location(f, order="instance"),),
            mentions="InstanceNumber"),
    Planted("08.2", "the intercept forgotten", lambda: (lambda f: read_series_by_location(f, rescale="no intercept"),),
            mentions="RescaleIntercept"),
    Planted("08.2", "the slope forgotten", lambda: (lambda f: read_series_by_location(f, rescale="no slope"),),
            mentions="RescaleSlope"),
    Planted("08.2", "PixelSpacing read as [x, y]", lambda: (lambda f: read_series_by_location(f, spacing="swap"),),
            mentions="[row spacing, column spacing]"),
    Planted("08.2", "SliceThickness as the z spacing", lambda: (lambda f: read_series_by_location(f, spacing="thickness"),),
            mentions="SliceThickness"),
    # 08.3
    Planted("08.3", "floor instead of round", lambda: (lambda *a: xyz2irc_by_solve(*a, rounding="floor"), irc2xyz_by_einsum),
            mentions="round"),
    Planted("08.3", "direction matrix ignored in xyz2irc", lambda: (lambda *a: xyz2irc_by_solve(*a, direction=False),
                                                                    irc2xyz_by_einsum), mentions="direction"),
    Planted("08.3", "indices returned as CRI", lambda: (lambda *a: xyz2irc_by_solve(*a, order="cri"), irc2xyz_by_einsum),
            mentions="reverse"),
    Planted("08.3", "irc2xyz without reversing IRC", lambda: (xyz2irc_by_solve, lambda irc, *r: irc2xyz_by_einsum(
        irc[::-1], *r)), mentions="reverse"),
    # 08.4
    Planted("08.4", "strict < instead of <=", lambda: (lambda c, a: join_by_axes(c, a, cmp="lt"),), mentions="<="),
    Planted("08.4", "first match instead of largest", lambda: (lambda c, a: join_by_axes(c, a, largest=False),),
            mentions="largest"),
    Planted("08.4", "d/2 tolerance", lambda: (lambda c, a: join_by_axes(c, a, tolerance=2),), mentions="quarter"),
    Planted("08.4", "only positives joined", lambda: (join_positives_only,), mentions="whatever its class"),
    Planted("08.4", "Euclidean distance", lambda: (join_by_distance,), mentions="Euclidean"),
    Planted("08.4", "series ignored", lambda: (lambda c, a: join_by_axes([("", *r[1:]) for r in c],
                                                                         [("", *r[1:]) for r in a]),),
            mentions="own series"),
    # 08.5
    Planted("08.5", "off-by-one upper clamp", lambda: (lambda *a: crop_by_take(*a, clamp="off by one"),), mentions="one voxel"),
    Planted("08.5", "no clamping (cut short)", lambda: (lambda *a: crop_by_take(*a, clamp="none"),), mentions="cut short"),
    Planted("08.5", "zero padding", lambda: (crop_padded,), mentions="padded"),
    Planted("08.5", "block starts at the centre", lambda: (lambda v, c, w: crop_by_take(
        v, tuple(ci + wi // 2 for ci, wi in zip(c, w)), w),), mentions="center - width/2"),
    # 08.6
    Planted("08.6", "share of positives as accuracy", lambda: (1 - _imbalance_answer()[0], *_imbalance_answer()[1:]),
            mentions="share of positives"),
    Planted("08.6", "at least one positive", lambda: _imbalance_answer(batch_draws="at least one"), mentions="at least one"),
    Planted("08.6", "linear instead of a power", lambda: (_imbalance_answer()[0], 1 - 32 * (1 - _imbalance_answer()[0]),
                                                          _imbalance_answer()[2]), mentions="negatives"),
    # 08.7
    Planted("08.7", "nan on empty denominators", lambda: (lambda *a: prf_by_counts(*a, empty="nan"),), mentions="nan"),
    Planted("08.7", "beta not squared", lambda: (lambda *a: prf_by_counts(*a, beta_power=1),), mentions="squared"),
    Planted("08.7", "precision and recall swapped", lambda: (lambda *a: prf_by_counts(*a, swap=True),), mentions="swapped"),
    # 08.8
    Planted("08.8", "positive last in each group", lambda: (lambda *a: balanced_by_counting(*a, first="neg"),),
            mentions="comes first"),
    Planted("08.8", "negative index from ndx", lambda: (lambda *a: balanced_by_counting(*a, neg_from="ndx"),),
            mentions="count only the negatives"),
    Planted("08.8", "no wrap-around", lambda: (lambda *a: balanced_by_counting(*a, wrap=False),), mentions="wrap"),
    Planted("08.8", "negative counted from 1", lambda: (lambda *a: balanced_by_counting(*a, shift=1),),
            mentions="counted from 0"),
    # 08.9
    Planted("08.9", "rotation about the x axis", lambda: (lambda *a: augment_by_blocks(*a, axis="x"),), mentions="z"),
    Planted("08.9", "rotation applied first", lambda: (lambda *a: augment_by_blocks(*a, order="RT"),), mentions="T @ R"),
    Planted("08.9", "rotation turns the wrong way", lambda: (lambda *a: augment_by_blocks(*a, sign=-1),),
            mentions="wrong way"),
    Planted("08.9", "flips ignored", lambda: (lambda f, *a: augment_by_blocks((False,) * 3, *a),), mentions="determinant"),
    Planted("08.9", "axes in IRC order", lambda: (lambda f, o, s, a: augment_by_blocks(f[::-1], o[::-1], s[::-1], a),),
            mentions="(x, y, z)"),
    # 08.10
    Planted("08.10", "softmax before cross-entropy", lambda: (buggy_compute_batch_loss, validate_inference_mode),
            mentions="softmax"),
    Planted("08.10", "loss detached", lambda: (lambda m, b: loss_by_log_softmax(m, b, keep_grad=False),
                                               validate_inference_mode), mentions="no gradient"),
    Planted("08.10", "eval() missing", lambda: (loss_by_log_softmax, lambda m, bs: validate_inference_mode(
        m, bs, eval_mode=False)), mentions="evaluation mode"),
    Planted("08.10", "no_grad missing", lambda: (loss_by_log_softmax, lambda m, bs: validate_inference_mode(
        m, bs, no_grad=False)), mentions="no_grad"),
    Planted("08.10", "set_grad_enabled(False) left off", lambda: (loss_by_log_softmax, validate_grad_off),
            mentions="switched off"),
    # 08.11
    Planted("08.11", "every validation positive counted", lambda: (lambda *a: leakage_by_sets(*a, same="all"),),
            mentions="own nodule"),
    Planted("08.11", "same series taken as same nodule", lambda: (lambda *a: leakage_by_sets(*a, same="series"),),
            mentions="same nodule"),
    Planted("08.11", "validation starts at row 1", lambda: (lambda *a: leakage_by_sets(*a, skip_first=True),),
            mentions="candidates[::val_stride]"),
    # 08.12
    Planted("08.12", "averaged instead of summed", lambda: (lambda d: allreduce_by_stack(d, how="mean"),),
            mentions="sum, not mean"),
    Planted("08.12", "local values returned", lambda: (lambda d: allreduce_by_stack(d, how="local"),),
            mentions="own values"),
    # 08.13
    Planted("08.13", "eps only in the denominator", lambda: (lambda p, l, eps=1: dice_by_flatten(p, l, eps, where="den"),),
            mentions="numerator"),
    Planted("08.13", "means instead of sums", lambda: (lambda p, l, eps=1: dice_by_flatten(p, l, eps, reduce="mean"),),
            mentions="sums"),
    Planted("08.13", "eps ignored", lambda: (lambda p, l, eps=1: dice_by_flatten(p, l, 0),), mentions="nan"),
]


test_planted_mistake_is_rejected_with_a_hint = planted_test(PLANTED)  # tests/test_planted.py checks it is here
