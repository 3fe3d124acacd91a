"""The checks of 01_tensors: right answers pass; stubs, crashes and plausible mistakes fail; nothing raises.

The full notebook under nbval already proves that the chapter's solutions pass, so the right answers
here are written another way (other formulas, other library calls): a check that only accepts one
spelling of the answer would show up. tests/test_checks_independent.py keeps chapter code out.
"""

import inspect
import json.decoder
import math
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from course_utils import data
from check_helpers import Planted, fails, passes, planted_test


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest.py


def boom(*args, **kwargs):
    raise ValueError("learner bug")


# ------------------------------------------------------------------------------------------------
# 01.1
# ------------------------------------------------------------------------------------------------

RIGHT_01_1 = {"shape": torch.Size([2, 2]), "storage_offset": 4, "stride": [3, 1],
              "is_contiguous": False, "a_b_share_storage": True}


def test_01_1_right():
    passes("01.1", RIGHT_01_1)
    a = torch.arange(9)
    c = a.view(3, 3)[1:, 1:]
    passes("01.1", {"shape": tuple(c.shape), "storage_offset": c.storage_offset(), "stride": c.stride(),
                    "is_contiguous": c.is_contiguous(), "a_b_share_storage": True})


@pytest.mark.parametrize("field, value", [("storage_offset", 0), ("stride", (2, 1)), ("is_contiguous", True),
                                          ("a_b_share_storage", False), ("shape", (3, 3)), ("storage_offset", True)])
def test_01_1_wrong_field_is_named(field, value):
    fails("01.1", {**RIGHT_01_1, field: value}, mentions=field)


# Plausible slips, each with the value the ❌ line must not give away (a predict exercise).
@pytest.mark.parametrize("field, value", [
    ("storage_offset", 3),          # counts the start of row 1 only, not the column step
    ("storage_offset", 1),          # the offset of c[0, 0] within b's row
    ("stride", (2, 1)),             # the strides of a fresh 2×2 tensor
    ("stride", (1, 3)),             # row and column steps swapped
    ("shape", (2, 3)),              # slices only the columns' start
    ("is_contiguous", True),        # a slice of a contiguous tensor taken to be contiguous
    ("a_b_share_storage", False),   # view taken for a copy
])
def test_01_1_hint_does_not_give_the_answer(field, value):
    line = fails("01.1", {**RIGHT_01_1, field: value}, mentions=field)
    truth = {"shape": "(2, 2)", "storage_offset": "4", "stride": "(3, 1)", "is_contiguous": "False",
             "a_b_share_storage": "True"}[field]
    assert truth not in line.split(":", 1)[1], line
    assert "True" not in line and "False" not in line, line


@pytest.mark.parametrize("answer", [..., None, [1, 2], {"shape": (2, 2)}])
def test_01_1_stub_and_wrong_types(answer):
    fails("01.1", answer)


# ------------------------------------------------------------------------------------------------
# 01.2
# ------------------------------------------------------------------------------------------------


def address_right(offset, stride, index):
    return int(np.dot(np.asarray(stride, dtype=np.int64), np.asarray(index, dtype=np.int64))) + offset


def storage_right(t):
    return torch.empty(0, dtype=t.dtype).set_(t.untyped_storage())


def test_01_2_right():
    passes("01.2", address_right, storage_right)


def test_01_2_stub_and_crash():
    fails("01.2", ..., storage_right, mentions="not answered")
    fails("01.2", address_right, None)
    fails("01.2", lambda o, s, i: None, storage_right, mentions="returned None")
    fails("01.2", boom, storage_right, mentions="raised")
    fails("01.2", address_right, boom, mentions="raised")
    fails("01.2", lambda o, s, i: float(o), storage_right)


# ------------------------------------------------------------------------------------------------
# 01.3
# ------------------------------------------------------------------------------------------------


def contiguous_right(shape, stride):
    if math.prod(shape) == 0:
        return True
    kept = [(size, step) for size, step in zip(shape, stride) if size != 1]
    expected = [math.prod(size for size, _ in kept[k + 1:]) for k in range(len(kept))]
    return [step for _, step in kept] == expected


def test_01_3_right():
    passes("01.3", contiguous_right)
    # torch's own verdict on an empty strided tensor (on the meta device: no memory)
    passes("01.3", lambda shape, stride: torch.empty_strided(tuple(shape), tuple(stride), device="meta").is_contiguous())


def test_01_3_wrong_type():
    fails("01.3", lambda shape, stride: 1 if contiguous_right(shape, stride) else 0, mentions="True or False")


def test_01_3_stub_and_crash():
    fails("01.3", ...)
    fails("01.3", lambda shape, stride: None, mentions="returned None")
    fails("01.3", boom, mentions="raised")


# ------------------------------------------------------------------------------------------------
# 01.4
# ------------------------------------------------------------------------------------------------


def sqrt_right(t):
    if t.dtype.is_floating_point:
        return torch.sqrt(t, out=t)
    return torch.sqrt(t.to(torch.float32))


def test_01_4_right():
    passes("01.4", sqrt_right)
    passes("01.4", lambda t: t.pow_(0.5) if torch.is_floating_point(t) else t.float() ** 0.5)


def sqrt_always_new(t):  # out of place for every dtype: right values, but a float tensor gets new memory
    return torch.sqrt(t)


def sqrt_always_float32(t):  # the one-line "fix" for arange: float64 and float16 inputs lose their dtype
    return t.float().sqrt_()


def sqrt_double_for_ints(t):  # integers become float64, not the default float
    return t.sqrt_() if t.is_floating_point() else t.double().sqrt()


def sqrt_writes_back_into_ints(t):  # "in place" for integers too: the roots are truncated into the input
    if t.is_floating_point():
        return t.sqrt_()
    t.copy_(t.float().sqrt())
    return t.float()


def test_01_4_stub_and_crash():
    fails("01.4", ..., mentions="not answered")
    fails("01.4", None)
    fails("01.4", lambda t: None, mentions="returned None")
    fails("01.4", lambda t: t.sqrt_(), mentions="raised")  # the cell of the prompt, unchanged
    fails("01.4", lambda t: torch.sqrt(t.float()).tolist(), mentions="tensor")


# ------------------------------------------------------------------------------------------------
# 01.5
# ------------------------------------------------------------------------------------------------


def broadcast_right(s1, s2):
    out = []
    for d1, d2 in __import__("itertools").zip_longest(reversed(s1), reversed(s2), fillvalue=1):
        if 1 not in (d1, d2) and d1 != d2:
            return None
        out.insert(0, max(d1, d2) if 0 not in (d1, d2) else 0)
    return torch.Size(out)


def broadcast_with_size_tensors(s1, s2):  # the rules, computed on tensors of sizes: allowed
    n = max(len(s1), len(s2))
    d1 = torch.tensor([1] * (n - len(s1)) + list(s1), dtype=torch.long)
    d2 = torch.tensor([1] * (n - len(s2)) + list(s2), dtype=torch.long)
    if ((d1 != d2) & (d1 != 1) & (d2 != 1)).any():
        return None
    return tuple(torch.where(d1 == 1, d2, d1).tolist())


def test_01_5_right():
    passes("01.5", broadcast_right)
    passes("01.5", broadcast_with_size_tensors)


# The forbidden shortcuts (the prompt: "Do not call torch.broadcast_shapes"): right numbers, wrong exercise.
def broadcast_by_torch(s1, s2):
    try:
        return tuple(torch.broadcast_shapes(tuple(s1), tuple(s2)))
    except RuntimeError:
        return None


def broadcast_by_tensors(s1, s2):  # lets torch broadcast two empty tensors
    try:
        return tuple((torch.empty(s1) + torch.empty(s2)).shape)
    except RuntimeError:
        return None


def broadcast_by_numpy(s1, s2):
    try:
        return np.broadcast_shapes(s1, s2)
    except ValueError:
        return None


def test_01_5_forbidden_shortcuts():
    for shortcut in (broadcast_by_torch, broadcast_by_numpy):  # also planted below; here: the hint names the call
        line = fails("01.5", shortcut, mentions="forbids")
        assert "broadcast_shapes" in line and "Hint:" in line, line
    from torch import broadcast_shapes as imported_early  # caught however it was imported

    def broadcast_imported(s1, s2):
        try:
            return tuple(imported_early(s1, s2))
        except RuntimeError:
            return None

    fails("01.5", broadcast_imported, mentions="torch.broadcast_shapes")
    fails("01.5", broadcast_by_tensors, mentions="builds tensors of those shapes")
    fails("01.5", lambda s1, s2: tuple(torch.broadcast_tensors(torch.zeros(s1), torch.zeros(s2))[0].shape),
          mentions="forbids")


def broadcast_left_aligned(s1, s2):  # pads the shorter shape on the right
    s1, s2 = list(s1) + [1] * (len(s2) - len(s1)), list(s2) + [1] * (len(s1) - len(s2))
    if any(a != b and 1 not in (a, b) for a, b in zip(s1, s2)):
        return None
    return tuple(b if a == 1 else a for a, b in zip(s1, s2))


def broadcast_by_max(s1, s2):  # the larger size wins: wrong for a 1 against a 0
    n = max(len(s1), len(s2))
    a, b = (1,) * (n - len(s1)) + tuple(s1), (1,) * (n - len(s2)) + tuple(s2)
    if any(x != y and 1 not in (x, y) for x, y in zip(a, b)):
        return None
    return tuple(max(x, y) for x, y in zip(a, b))


def test_01_5_wrong():
    fails("01.5", lambda s1, s2: tuple(max(a, b) for a, b in zip(s1[::-1], s2[::-1]))[::-1])  # drops extra dims


def test_01_5_stub_and_crash():
    fails("01.5", None)
    fails("01.5", lambda s1, s2: None, mentions="returned None")
    fails("01.5", boom, mentions="raised")
    fails("01.5", lambda s1, s2: "(2, 3)", mentions="tuple")


# ------------------------------------------------------------------------------------------------
# 01.6
# ------------------------------------------------------------------------------------------------


def standardize_right(x):
    flat = x.flatten(-2)
    mu = flat.mean(-1)[..., None, None]
    sigma = flat.var(-1, unbiased=False).sqrt()[..., None, None]
    return (x - mu) / sigma


def test_01_6_right():
    passes("01.6", standardize_right)
    passes("01.6", lambda x: torch.nn.functional.layer_norm(x, x.shape[-2:], eps=0.0))


def standardize_batch_wide(x):  # section 5's statistics: over the whole batch, one per channel
    dims = (0, 2, 3) if x.ndim == 4 else (1, 2)
    return (x - x.mean(dim=dims, keepdim=True)) / x.std(dim=dims, keepdim=True, correction=0)


def standardize_sample_std(x):  # torch's default std divides by n − 1
    return (x - x.mean(dim=(-2, -1), keepdim=True)) / x.std(dim=(-2, -1), keepdim=True)


def standardize_rows(x):  # reduces over the last dimension only: every row on its own
    return (x - x.mean(-1, keepdim=True)) / x.std(-1, keepdim=True, correction=0)


def standardize_in_place(x):
    x -= x.mean(dim=(-2, -1), keepdim=True)
    x /= x.std(dim=(-2, -1), keepdim=True, correction=0)
    return x


def test_01_6_stub_and_crash():
    fails("01.6", ...)
    fails("01.6", lambda x: None, mentions="returned None")
    fails("01.6", boom, mentions="raised")
    fails("01.6", lambda x: standardize_right(x).numpy(), mentions="tensor")


# ------------------------------------------------------------------------------------------------
# 01.7
# ------------------------------------------------------------------------------------------------


def one_loop_columns(a, b):  # one loop over the columns of b, broadcasting inside
    return torch.stack([(a * col).sum(1) for col in b.unbind(1)], dim=1)


def einsum_right(a, b):
    return torch.einsum("mk,kn->mn", a, b)


def test_01_7_right():
    passes("01.7", one_loop_columns, einsum_right)

    def columns_filled_in(a, b):
        out = a.new_empty(a.shape[0], b.shape[1])
        for j in range(b.shape[1]):
            out[:, j] = torch.sum(a * b[:, j][None, :], dim=1)
        return out

    passes("01.7", columns_filled_in, lambda a, b: torch.einsum("ij,jk", a, b))  # implicit output


def test_01_7_wrong():
    fails("01.7", lambda a, b: (a[:, :, None] * b[None]).sum(0), einsum_right)  # sums the wrong axis
    fails("01.7", one_loop_columns, lambda a, b: torch.einsum("ik,kj->ik", a, b))  # keeps k instead of summing it

    def python_loops(a, b):  # right numbers, but three Python loops over lists: few torch calls
        aa, bb = a.tolist(), b.tolist()
        rows = [[sum(aa[i][p] * bb[p][j] for p in range(len(bb))) for j in range(len(bb[0]))] for i in range(len(aa))]
        return torch.tensor(rows)

    fails("01.7", one_loop_columns, python_loops, mentions="Python loop")

    def einsum_per_row(a, b):  # right numbers, but a Python loop of torch calls
        return torch.stack([torch.einsum("k,kj->j", a[i], b) for i in range(a.shape[0])])

    fails("01.7", one_loop_columns, einsum_per_row, mentions="torch calls")


def test_01_7_one_loop_shortcuts_and_wrong_loops():
    # The ready-made product, alone or inside the loop (right numbers, not the exercise).
    fails("01.7", lambda a, b: torch.stack([a @ b[:, j] for j in range(b.shape[1])], 1), einsum_right,
          mentions="torch.matmul")
    fails("01.7", lambda a, b: torch.stack([torch.mv(a, col) for col in b.T], 1), einsum_right, mentions="torch.mv")
    fails("01.7", lambda a, b: torch.einsum("ik,kj->ij", a, b), einsum_right, mentions="torch.einsum")

    fails("01.7", lambda a, b: (a[:, :, None] * b[None]).sum(1), einsum_right, mentions="no loop over the columns")


def test_01_7_einsum_shortcuts():
    fails("01.7", one_loop_columns, lambda a, b: a @ b, mentions="`@`")
    fails("01.7", one_loop_columns, lambda a, b: torch.mm(a, b), mentions="torch.mm")
    # no loop, right numbers, but broadcasting instead of einsum
    fails("01.7", one_loop_columns, lambda a, b: (a[:, :, None] * b[None]).sum(1), mentions="never calls torch.einsum")


def test_01_7_stub_and_crash():
    fails("01.7", ..., einsum_right)
    fails("01.7", one_loop_columns, lambda a, b: None, mentions="returned None")
    fails("01.7", boom, einsum_right, mentions="raised")


# ------------------------------------------------------------------------------------------------
# 01.8
# ------------------------------------------------------------------------------------------------


NAMES = ["chelsea", "coffee", "astronaut", "horse"]


def shares_right(images):
    x = images.long()
    top = x.amax(dim=1, keepdim=True)
    alone = (x == top) & ((x == top).sum(dim=1, keepdim=True) == 1)  # the largest, and nobody ties with it
    return alone.double().mean(dim=(2, 3))


def reddest_right():
    crops = []
    for n in NAMES:
        arr = data.photo(n)[..., :3]
        h, w = arr.shape[:2]
        crops.append(arr[(h - 256) // 2:(h - 256) // 2 + 256, (w - 256) // 2:(w - 256) // 2 + 256])
    batch = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2)
    return NAMES[int(np.argmax(shares_right(batch)[:, 0].numpy()))]


def test_01_8_right():
    passes("01.8", shares_right, reddest_right())
    passes("01.8", lambda im: shares_right(im).numpy(), " " + reddest_right().upper())


def shares_by_argmax(images):  # argmax hands every tie to the first channel, red
    return F.one_hot(images.argmax(dim=1), 3).double().mean(dim=(1, 2))


def shares_with_ties(images):  # >= instead of >: gray pixels count for all three colours
    r, g, b = images.int().unbind(1)
    return torch.stack([(r >= g) & (r >= b), (g >= r) & (g >= b), (b >= r) & (b >= g)], 1).double().mean((2, 3))


def shares_counted(images):  # counts pixels instead of taking the fraction
    return shares_right(images) * images.shape[-1] * images.shape[-2]


def shares_over_batch(images):  # one share per colour for the whole batch
    return shares_right(images).mean(dim=0)


def test_01_8_stub_and_crash():
    fails("01.8", ..., ..., mentions="not answered")
    fails("01.8", shares_right, ..., mentions="not answered")
    fails("01.8", boom, "chelsea", mentions="raised")
    fails("01.8", shares_right, 0, mentions="str")


# ------------------------------------------------------------------------------------------------
# 01.9
# ------------------------------------------------------------------------------------------------

CONT = [0, 3, 4, 5, 6, 7, 8]


def split_right(train, valid):
    mu = train[:, CONT].double().mean(0)
    sd = train[:, CONT].double().var(0).sqrt()
    eye = torch.eye(8, dtype=torch.float64)
    return tuple(torch.hstack([(t[:, CONT] - mu) / sd, eye[t[:, 2].long() - 1]]).float() for t in (train, valid))


def test_01_9_right():
    passes("01.9", split_right)

    def population_std(train, valid):
        mu, sd = train[:, CONT].mean(0), train[:, CONT].std(0, correction=0)
        return tuple(torch.cat([(t[:, CONT] - mu) / sd, F.one_hot(t[:, 2].long() - 1, 8).float()], 1)
                     for t in (train, valid))

    passes("01.9", population_std)


def split_own_statistics(train, valid):  # each part scaled with its own mean and std
    return split_right(train, train)[0], split_right(valid, valid)[0]


def split_pooled_statistics(train, valid):  # statistics of both parts together: the validation part leaks in
    both = torch.cat([train, valid])
    mu, sd = both[:, CONT].mean(0), both[:, CONT].std(0)
    return tuple(torch.cat([(t[:, CONT] - mu) / sd, F.one_hot(t[:, 2].long() - 1, 8).float()], 1)
                 for t in (train, valid))


def split_onehot_off_by_one(train, valid):  # grade g in column g mod 8
    out = split_right(train, valid)
    return tuple(torch.cat([x[:, :7], F.one_hot(t[:, 2].long() % 8, 8).float()], 1) for x, t in zip(out, (train, valid)))


def split_all_features(train, valid):  # color standardised too: 8 continuous columns
    cols = CONT[:1] + [1] + CONT[1:]
    mu, sd = train[:, cols].mean(0), train[:, cols].std(0)
    return tuple(torch.cat([(t[:, cols] - mu) / sd, F.one_hot(t[:, 2].long() - 1, 8).float()], 1)
                 for t in (train, valid))


def test_01_9_stub_and_crash():
    fails("01.9", None)
    fails("01.9", lambda a, b: None, mentions="returned None")
    fails("01.9", boom, mentions="raised")
    fails("01.9", lambda a, b: split_right(a, b)[0], mentions="two tensors")

    def in_place(train, valid):
        train[:, 0] -= train[:, 0].mean()
        return split_right(train, valid)

    fails("01.9", in_place, mentions="changed")


# ------------------------------------------------------------------------------------------------
# 01.10
# ------------------------------------------------------------------------------------------------


def weeks_right(hourly):
    n = len(hourly) // 168
    body = torch.stack(torch.split(hourly[: 168 * n], 168)).transpose(1, 2)
    weather = F.one_hot(body[:, 6].long() - 1, 4).transpose(1, 2).to(body.dtype)
    return torch.cat([body, weather], 1)


def weekday_means_right():
    frame = data.ewr_hourly()
    return frame.groupby("weekday")["departures"].mean().sort_index().to_numpy()


def test_01_10_right():
    passes("01.10", weeks_right, weekday_means_right())
    passes("01.10", weeks_right, list(weekday_means_right()))


def weeks_from_the_end(hourly):  # drops the partial week at the start instead of the end
    return weeks_right(hourly[len(hourly) % 168:])


def weeks_without_transpose(hourly):  # reshapes straight to (weeks, 15, 168): mixes hours and columns
    n = len(hourly) // 168
    body = hourly[: 168 * n].reshape(n, 15, 168)
    return torch.cat([body, F.one_hot(body[:, 6].long().clamp(1, 4) - 1, 4).transpose(1, 2).float()], 1)


def weeks_weather_from_zero(hourly):  # masks for situations 0-3 instead of 1-4
    body = weeks_right(hourly)[:, :15]
    return torch.cat([body, torch.stack([body[:, 6] == k for k in range(4)], 1).float()], 1)


def test_01_10_stub_and_crash():
    fails("01.10", ..., ..., mentions="not answered")
    fails("01.10", weeks_right, ..., mentions="not answered")
    fails("01.10", boom, weekday_means_right(), mentions="raised")
    fails("01.10", lambda h: weeks_right(h).double(), weekday_means_right(), mentions="float32")


# ------------------------------------------------------------------------------------------------
# 01.11
# ------------------------------------------------------------------------------------------------


def index_right(text):
    words = re.findall(r"[a-z0-9_]+", text.lower())
    return dict(map(reversed, enumerate(sorted(set(words)))))


def onehot_right():
    source = inspect.getsource(json.decoder)
    words = re.findall(r"[a-z0-9_]+", source.lower())
    index = index_right(source)
    return F.one_hot(torch.tensor([index[w] for w in words]), len(index))


def merged_right():
    tokens = re.findall(r"[A-Za-z0-9_]+", inspect.getsource(json.decoder))
    lower = sorted({t.lower() for t in tokens})
    return [w for w in lower if len({t for t in tokens if t.lower() == w}) > 1]


def test_01_11_right():
    passes("01.11", index_right, onehot_right(), merged_right())
    passes("01.11", index_right, onehot_right().float().numpy(), tuple(merged_right()))


def merged_any_capital():  # every word that has a capital somewhere, merged or not
    tokens = re.findall(r"[A-Za-z0-9_]+", inspect.getsource(json.decoder))
    return sorted({t.lower() for t in tokens if t != t.lower()})


def merged_original_spellings():  # the spellings themselves, not the index's words
    tokens = set(re.findall(r"[A-Za-z0-9_]+", inspect.getsource(json.decoder)))
    return sorted(t for t in tokens if t != t.lower() and t.lower() in {u.lower() for u in tokens if u != t})


def test_01_11_stub_and_crash():
    fails("01.11", ..., ..., ..., mentions="not answered")
    fails("01.11", index_right, ..., merged_right(), mentions="not answered")
    fails("01.11", lambda t: None, onehot_right(), merged_right(), mentions="returned None")
    fails("01.11", boom, onehot_right(), merged_right(), mentions="raised")
    fails("01.11", index_right, onehot_right(), "false", mentions="list")


# ------------------------------------------------------------------------------------------------
# 01.12
# ------------------------------------------------------------------------------------------------


def window_right(hu, level, width):
    return torch.clip((hu.to(torch.float64) - level) / width + 0.5, 0, 1).to(torch.float32)


def bone_right():
    volume, _ = data.ct_volume()
    return np.count_nonzero((volume >= 226) & (volume <= 3071))


def test_01_12_right():
    passes("01.12", window_right, bone_right())
    passes("01.12", window_right, torch.tensor(int(bone_right())))


def test_01_12_wrong():
    bone = int(bone_right())
    fails("01.12", lambda hu, l, w: window_right(hu, l, w).double(), bone, mentions="float32")
    fails("01.12", lambda hu, l, w: hu.float().sub_(l - w / 2).div_(w).clamp_(0, 1) if hu.is_floating_point()
          else window_right(hu, l, w), bone, mentions="changed its input")
    fails("01.12", window_right, float(bone), mentions="int")
    fails("01.12", window_right, True, mentions="int")


def test_01_12_stub_and_crash():
    fails("01.12", ..., ..., mentions="not answered")
    fails("01.12", window_right, ..., mentions="not answered")
    fails("01.12", lambda hu, l, w: None, int(bone_right()), mentions="returned None")
    fails("01.12", boom, int(bone_right()), mentions="raised")


def test_every_check_is_registered_in_order():
    from course_utils.checks import exercises_of

    assert [ex.id for ex in exercises_of("01")] == [f"01.{k}" for k in range(1, 13)]


def test_every_check_has_its_mistakes_listed():
    assert {p.exercise for p in PLANTED} == {f"01.{k}" for k in range(1, 13)}


# ------------------------------------------------------------------------------------------------
# Planted learner mistakes (run at the end of this module; tests/test_planted.py counts them): each rejected with a hint naming it
# ------------------------------------------------------------------------------------------------


def rows_like_section_6(a, b):  # loops over the rows of a, as section 6 did
    return torch.stack([(a[i][:, None] * b).sum(0) for i in range(a.shape[0])])


def one_loop_over_k(a, b):  # one loop, but over the inner size: a sum of outer products
    c = torch.zeros(a.shape[0], b.shape[1])
    for p in range(a.shape[1]):
        c += a[:, p:p + 1] * b[p:p + 1, :]
    return c


def contiguous_forgets_empty(shape, stride):  # size-1 dimensions skipped, but an empty tensor not special
    kept = [(n, st) for n, st in zip(shape, stride) if n != 1]
    return all(st == math.prod(n for n, _ in kept[k + 1:]) for k, (_, st) in enumerate(kept))


def contiguous_strict(shape, stride):  # the textbook formula: every stride, size-1 dimensions included
    return math.prod(shape) == 0 or tuple(stride) == tuple(math.prod(shape[k + 1:]) for k in range(len(shape)))


def contiguous_ignores_zero_strides(shape, stride):  # an expanded dimension (stride 0) taken as harmless
    if math.prod(shape) == 0:
        return True
    kept = [(n, st) for n, st in zip(shape, stride) if n != 1 and st != 0]
    return all(st == math.prod(n for n, _ in kept[k + 1:]) for k, (_, st) in enumerate(kept))


def _ct_bone_exclusive():
    volume, _ = data.ct_volume()
    return int(((volume > 226) & (volume < 3071)).sum())


def _right_01_1(**changes):
    return ({**RIGHT_01_1, **changes},)


_BASE = lambda t: torch.as_strided(t, (t.untyped_storage().nbytes() // t.element_size(),), (1,), 0)  # noqa: E731

PLANTED = [
    # 01.1 predict: plausible slips, each named by its key
    Planted("01.1", "storage offset counted to the start of row 1 only", lambda: _right_01_1(storage_offset=3),
            mentions="storage_offset"),
    Planted("01.1", "row and column strides swapped", lambda: _right_01_1(stride=(1, 3)), mentions="stride"),
    Planted("01.1", "a slice of a contiguous tensor taken for contiguous", lambda: _right_01_1(is_contiguous=True),
            mentions="is_contiguous"),
    Planted("01.1", "view taken for a copy", lambda: _right_01_1(a_b_share_storage=False), mentions="a_b_share_storage"),
    # 01.2 addresses
    Planted("01.2", "address formula without the storage offset",
            lambda: (lambda o, s, i: sum(a * b for a, b in zip(s, i)), storage_right), mentions="element_address"),
    Planted("01.2", "the view's own number of elements taken as the storage's",
            lambda: (address_right, lambda t: torch.as_strided(t, (t.numel(),), (1,), 0)), mentions="bytes"),
    Planted("01.2", "storage read from the view's offset instead of position 0",
            lambda: (address_right, lambda t: torch.as_strided(t, (_BASE(t).numel() - t.storage_offset(),), (1,),
                                                              t.storage_offset())),
            mentions="position 0"),
    Planted("01.2", "the view flattened instead of its whole storage", lambda: (address_right, lambda t: t.flatten()),
            mentions="storage_view"),
    # 01.3 contiguity
    Planted("01.3", "the strict formula: size-1 dimensions' strides compared too", lambda: (contiguous_strict,),
            mentions="size-1"),
    Planted("01.3", "an empty tensor not treated as contiguous", lambda: (contiguous_forgets_empty,),
            mentions="no elements"),
    Planted("01.3", "stride-0 (expanded) dimensions skipped like size-1 ones", lambda: (contiguous_ignores_zero_strides,),
            mentions="expanded"),
    # 01.4 sqrt in place
    Planted("01.4", "torch.sqrt for every dtype: floats get new memory", lambda: (sqrt_always_new,), mentions="in place"),
    Planted("01.4", "t.float() for every dtype: float64 and float16 lose their dtype", lambda: (sqrt_always_float32,),
            mentions="keeps its dtype"),
    Planted("01.4", "integers turned into float64", lambda: (sqrt_double_for_ints,), mentions="float32"),
    Planted("01.4", "roots written back into the integer input", lambda: (sqrt_writes_back_into_ints,),
            mentions="changed the integer input"),
    # 01.5 broadcasting
    Planted("01.5", "a wrapper of torch.broadcast_shapes", lambda: (broadcast_by_torch,), mentions="forbids"),
    Planted("01.5", "a wrapper of np.broadcast_shapes", lambda: (broadcast_by_numpy,), mentions="forbids"),
    Planted("01.5", "shapes aligned on the left", lambda: (broadcast_left_aligned,), mentions="missing dimension"),
    Planted("01.5", "the larger size taken, so a 1 against a 0 gives 1", lambda: (broadcast_by_max,), mentions="even when"),
    Planted("01.5", "never returns None for incompatible shapes", lambda: (lambda s1, s2: broadcast_right(s1, s2) or (),),
            mentions="incompatible"),
    # 01.6 standardise each image
    Planted("01.6", "batch-wide statistics, as in section 5", lambda: (standardize_batch_wide,), mentions="each image"),
    Planted("01.6", "torch's default sample std (n − 1)", lambda: (standardize_sample_std,), mentions="correction"),
    Planted("01.6", "reduced over the last dimension only", lambda: (standardize_rows,), mentions="together"),
    Planted("01.6", "standardised in place", lambda: (standardize_in_place,), mentions="changed its input"),
    # 01.7 matmul
    Planted("01.7", "`a @ b` as the one-loop version", lambda: (lambda a, b: a @ b, einsum_right),
            mentions="ready-made product"),
    Planted("01.7", "one loop over the rows of a, as in section 6", lambda: (rows_like_section_6, einsum_right),
            mentions="rows of a"),
    Planted("01.7", "one loop over the inner size k", lambda: (one_loop_over_k, einsum_right), mentions="loops over k"),
    Planted("01.7", "torch.matmul as the einsum version", lambda: (one_loop_columns, lambda a, b: torch.matmul(a, b)),
            mentions="asks for torch.einsum"),
    Planted("01.7", "einsum output indices swapped", lambda: (one_loop_columns, lambda a, b: torch.einsum("ik,kj->ji", a, b)),
            mentions="shape"),
    # 01.8 colour shares
    Planted("01.8", "argmax over the channels: ties go to red", lambda: (shares_by_argmax, "horse"), mentions="tie"),
    Planted("01.8", ">= instead of >: ties count", lambda: (shares_with_ties, reddest_right()), mentions="tie"),
    Planted("01.8", "pixel counts instead of fractions", lambda: (shares_counted, reddest_right()), mentions="fraction"),
    Planted("01.8", "shares over the whole batch", lambda: (shares_over_batch, reddest_right()), mentions="shape"),
    Planted("01.8", "the reddest by the look of the photos", lambda: (shares_right, "coffee"), mentions="reddest"),
    # 01.9 split table
    Planted("01.9", "each part scaled with its own statistics", lambda: (split_own_statistics,), mentions="own statistics"),
    Planted("01.9", "statistics of both parts pooled", lambda: (split_pooled_statistics,), mentions="training part"),
    Planted("01.9", "clarity one-hot off by one", lambda: (split_onehot_off_by_one,), mentions="wrong column"),
    Planted("01.9", "color standardised too", lambda: (split_all_features,), mentions="color"),
    # 01.10 weeks
    Planted("01.10", "the partial week dropped at the start", lambda: (weeks_from_the_end, weekday_means_right()),
            mentions="first week"),
    Planted("01.10", "reshape to (weeks, 15, 168) without a transpose", lambda: (weeks_without_transpose, weekday_means_right()),
            mentions="move them before the hours"),
    Planted("01.10", "weather masks for situations 0-3", lambda: (weeks_weather_from_zero, weekday_means_right()),
            mentions="sum to 1"),
    Planted("01.10", "departures per day instead of per hour", lambda: (weeks_right, weekday_means_right() * 24),
            mentions="per hour"),
    Planted("01.10", "weekdays counted from 1", lambda: (weeks_right, np.append(weekday_means_right()[1:], np.nan)),
            mentions="Monday is 0"),
    # 01.11 vocabulary
    Planted("01.11", "index without the cleaning rule", lambda: (lambda t: {w: i for i, w in enumerate(sorted(set(t.split())))},
                                                                 onehot_right(), merged_right()), mentions="build_index"),
    Planted("01.11", "index numbered in order of appearance",
            lambda: (lambda t: {w: i for i, w in enumerate(dict.fromkeys(re.findall(r"[a-z0-9_]+", t.lower())))},
                     onehot_right(), merged_right()), mentions="sorted"),
    Planted("01.11", "one-hot rows in reverse order", lambda: (index_right, onehot_right().flip(0), merged_right()),
            mentions="wrong places"),
    Planted("01.11", "every word with a capital counted as merged", lambda: (index_right, onehot_right(), merged_any_capital()),
            mentions="two or more"),
    Planted("01.11", "the original spellings listed", lambda: (index_right, onehot_right(), merged_original_spellings()),
            mentions="not words of the cleaned"),
    # 01.12 window
    Planted("01.12", "level taken as the lower edge", lambda: (lambda hu, l, w: ((hu.float() - l) / w).clamp(0, 1), bone_right()),
            mentions="centre"),
    Planted("01.12", "no clipping", lambda: (lambda hu, l, w: (hu.float() - (l - w / 2)) / w, bone_right()),
            mentions="outside [0, 1]"),
    Planted("01.12", "bone range with both ends excluded", lambda: (window_right, _ct_bone_exclusive()),
            mentions="both ends"),
]

test_planted_mistake_is_rejected_with_a_hint = planted_test(PLANTED)  # tests/test_planted.py checks it is here
