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
from check_helpers import fails, passes


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


def test_01_2_wrong():
    fails("01.2", lambda o, s, i: sum(a * b for a, b in zip(s, i)), storage_right, mentions="element_address")
    fails("01.2", address_right, lambda t: t.flatten(), mentions="storage_view")
    # counts the storage in 4-byte floats whatever the dtype
    fails("01.2", address_right, lambda t: torch.as_strided(t, (t.untyped_storage().nbytes() // 4,), (1,), 0))
    # starts at the view's offset instead of position 0
    fails("01.2", address_right,
          lambda t: torch.as_strided(t, (t.untyped_storage().nbytes() // t.element_size(),), (1,), t.storage_offset()))


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


def test_01_3_wrong():
    # the textbook formula that forgets size-1 dimensions and empty tensors
    def strict(shape, stride):
        return tuple(stride) == tuple(math.prod(shape[k + 1:]) for k in range(len(shape)))

    fails("01.3", strict, mentions="is_contiguous_manual")
    fails("01.3", lambda shape, stride: list(stride) == sorted(stride, reverse=True))
    fails("01.3", lambda shape, stride: 1 if contiguous_right(shape, stride) else 0, mentions="True or False")


def test_01_3_stub_and_crash():
    fails("01.3", ...)
    fails("01.3", lambda shape, stride: None, mentions="returned None")
    fails("01.3", boom, mentions="raised")


# ------------------------------------------------------------------------------------------------
# 01.4
# ------------------------------------------------------------------------------------------------


def test_01_4():
    passes("01.4", torch.arange(9).double().sqrt_())
    passes("01.4", torch.sqrt(torch.arange(9)))
    fails("01.4", torch.arange(9), mentions="dtype")
    fails("01.4", torch.arange(9.0), mentions="sqrt")
    fails("01.4", torch.arange(9.0).sqrt()[:8], mentions="shape")
    fails("01.4", [math.sqrt(i) for i in range(9)], mentions="tensor")
    fails("01.4", ..., mentions="not answered")
    fails("01.4", None)


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
    for shortcut in (broadcast_by_torch, broadcast_by_numpy):
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


def test_01_5_wrong():
    def left_aligned(s1, s2):
        s1, s2 = list(s1) + [1] * (len(s2) - len(s1)), list(s2) + [1] * (len(s1) - len(s2))
        if any(a != b and 1 not in (a, b) for a, b in zip(s1, s2)):
            return None
        return tuple(max(a, b) for a, b in zip(s1, s2))

    fails("01.5", left_aligned, mentions="broadcast_shape")
    fails("01.5", lambda s1, s2: tuple(max(a, b) for a, b in zip(s1[::-1], s2[::-1]))[::-1])  # drops extra dims
    fails("01.5", lambda s1, s2: broadcast_right(s1, s2) or (), mentions="incompatible")  # never None


def test_01_5_stub_and_crash():
    fails("01.5", None)
    fails("01.5", lambda s1, s2: None, mentions="returned None")
    fails("01.5", boom, mentions="raised")
    fails("01.5", lambda s1, s2: "(2, 3)", mentions="tuple")


# ------------------------------------------------------------------------------------------------
# 01.6
# ------------------------------------------------------------------------------------------------


def test_01_6_right():
    passes("01.6", lambda x, m, s: (x - m.view(-1, 1, 1)) / s.view(-1, 1, 1))
    passes("01.6", lambda x, m, s: torch.einsum("...chw,c->...chw", x - m[:, None, None], 1 / s))


def test_01_6_wrong():
    fails("01.6", lambda x, m, s: (x - m) / s)  # lines up with the last dimension
    fails("01.6", lambda x, m, s: (x - m.view(1, -1, 1, 1)) / s.view(1, -1, 1, 1), mentions="shape")  # batch only

    def in_place(x, m, s):
        x -= m[:, None, None]
        x /= s[:, None, None]
        return x

    fails("01.6", in_place, mentions="changed its input")
    fails("01.6", lambda x, m, s: x - m[:, None, None])  # forgot the std


def test_01_6_stub_and_crash():
    fails("01.6", ...)
    fails("01.6", lambda x, m, s: None, mentions="returned None")
    fails("01.6", boom, mentions="raised")
    fails("01.6", lambda x, m, s: ((x - m[:, None, None]) / s[:, None, None]).numpy(), mentions="tensor")


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
    fails("01.7", one_loop_columns, lambda a, b: torch.einsum("ik,kj->ji", a, b))  # transposed result
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
    fails("01.7", lambda a, b: a @ b, einsum_right, mentions="ready-made product")
    fails("01.7", lambda a, b: torch.stack([a @ b[:, j] for j in range(b.shape[1])], 1), einsum_right,
          mentions="torch.matmul")
    fails("01.7", lambda a, b: torch.stack([torch.mv(a, col) for col in b.T], 1), einsum_right, mentions="torch.mv")
    fails("01.7", lambda a, b: torch.einsum("ik,kj->ij", a, b), einsum_right, mentions="torch.einsum")

    def rows_like_section_6(a, b):  # loops over the rows of a, as section 6 did
        return torch.stack([(a[i][:, None] * b).sum(0) for i in range(a.shape[0])])

    fails("01.7", rows_like_section_6, einsum_right, mentions="rows of a")

    def over_k(a, b):  # one loop, but over the inner size: a sum of outer products
        c = torch.zeros(a.shape[0], b.shape[1])
        for p in range(a.shape[1]):
            c += a[:, p:p + 1] * b[p:p + 1, :]
        return c

    fails("01.7", over_k, einsum_right, mentions="loops over k")
    fails("01.7", lambda a, b: (a[:, :, None] * b[None]).sum(1), einsum_right, mentions="no loop over the columns")


def test_01_7_einsum_shortcuts():
    fails("01.7", one_loop_columns, lambda a, b: torch.matmul(a, b), mentions="asks for torch.einsum")
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


def photo_answers():
    means = np.stack([data.photo(n)[..., :3].reshape(-1, 3).mean(axis=0) / 255 for n in NAMES])
    bright = means.mean(axis=1)
    relative = means / bright[:, None]
    dominant = {c: NAMES[int(np.argmax(relative[:, k]))] for k, c in enumerate(["red", "green", "blue"])}
    return means, bright, dominant


def test_01_8():
    means, bright, dominant = photo_answers()
    passes("01.8", means, bright, dominant)
    passes("01.8", torch.tensor(means), list(bright), dominant)
    fails("01.8", means * 255, bright * 255, dominant, mentions="[0, 1]")
    four_channel = np.stack([data.photo(n)[..., :3].reshape(-1, 3).mean(axis=0) / 255 for n in NAMES[:3]]
                            + [data.photo("horse").reshape(-1, 4)[:, :3].mean(axis=0) / 255])
    raw_argmax = {c: NAMES[int(np.argmax(means[:, k]))] for k, c in enumerate(["red", "green", "blue"])}
    fails("01.8", means, bright, raw_argmax, mentions="dominant")
    fails("01.8", means, data.photo("horse")[..., :4].reshape(-1, 4).mean(0)[None].repeat(4, 0)[:, 0] / 255, dominant)
    fails("01.8", means.T, bright, dominant, mentions="shape")
    fails("01.8", means, bright, {"red": "coffee"}, mentions="green")
    fails("01.8", means, bright, ["coffee", "horse", "horse"], mentions="dict")
    fails("01.8", ..., ..., ..., mentions="not answered")
    fails("01.8", means, None, dominant, mentions="not answered")
    assert four_channel.shape == (4, 3)


# ------------------------------------------------------------------------------------------------
# 01.9
# ------------------------------------------------------------------------------------------------


def prepare_right(table):
    feats = table[:, :9]
    feats = (feats - feats.mean(0, keepdim=True)) / feats.std(0, unbiased=False, keepdim=True)
    onehot = F.one_hot(table[:, 9].long() - 1, 5).to(torch.float32)
    return feats, onehot


def test_01_9_right():
    passes("01.9", prepare_right)


def test_01_9_wrong():
    fails("01.9", lambda t: (prepare_right(t)[0], F.one_hot(t[:, 9].long() - 1, 5)), mentions="float")
    fails("01.9", lambda t: (prepare_right(t)[0], F.one_hot(t[:, 9].long() % 5, 5).float()), mentions="wrong column")
    fails("01.9", lambda t: (t[:, :9], prepare_right(t)[1]), mentions="mean 0")
    fails("01.9", lambda t: ((t[:, 1:] - t[:, 1:].mean(0)) / t[:, 1:].std(0), prepare_right(t)[1]))
    fails("01.9", lambda t: list(prepare_right(t))[:1], mentions="two tensors")

    def in_place(t):
        t[:, :9] -= t[:, :9].mean(0)
        return prepare_right(t)

    fails("01.9", in_place, mentions="changed")
    full = None

    def hard_coded(t):
        nonlocal full
        if full is None:
            full = prepare_right(t)
        return full

    fails("01.9", hard_coded, mentions="5,000")


def test_01_9_stub_and_crash():
    fails("01.9", None)
    fails("01.9", lambda t: None, mentions="returned None")
    fails("01.9", boom, mentions="raised")


# ------------------------------------------------------------------------------------------------
# 01.10
# ------------------------------------------------------------------------------------------------


def build_days_right(hourly):
    per_day = hourly.reshape(hourly.shape[0] // 24, 24, 15).permute(0, 2, 1)
    weather = F.one_hot(per_day[:, 6].long() - 1, 4).permute(0, 2, 1).float()
    return torch.cat([per_day, weather], dim=1)


def weather_means_right():
    frame = data.ewr_hourly()
    return frame.groupby("weathersit")["departures"].mean().sort_index().to_numpy()


def test_01_10_right():
    passes("01.10", build_days_right, weather_means_right())
    passes("01.10", build_days_right, list(weather_means_right()))


def test_01_10_wrong():
    means = weather_means_right()
    fails("01.10", lambda h: build_days_right(h).double(), means, mentions="float32")
    fails("01.10", lambda h: torch.cat([h.view(-1, 24, 15), F.one_hot(h.view(-1, 24, 15)[..., 6].long() - 1, 4).float()], 2),
          means, mentions="shape")
    fails("01.10", lambda h: torch.cat([h.view(-1, 15, 24), build_days_right(h)[:, 15:]], 1), means)  # view without transpose
    fails("01.10", lambda h: build_days_right(h)[:, list(range(15)) + [16, 17, 18, 15]], means, mentions="weather")
    fails("01.10", build_days_right, means[::-1].copy(), mentions="weather_means")
    fails("01.10", build_days_right, means[:3], mentions="shape")
    real = build_days_right(torch.from_numpy(np.loadtxt(data.path("ewr_hourly"), dtype=np.float32, delimiter=",", skiprows=1)))
    fails("01.10", lambda h: real, means, mentions="shape")  # hard-coded result


def test_01_10_stub_and_crash():
    fails("01.10", ..., ..., mentions="not answered")
    fails("01.10", build_days_right, ..., mentions="not answered")
    fails("01.10", boom, weather_means_right(), mentions="raised")


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


def test_01_11_right():
    passes("01.11", index_right, onehot_right(), "austen")
    passes("01.11", index_right, onehot_right().float().numpy(), "Austen")


def test_01_11_wrong():
    onehot = onehot_right()
    fails("01.11", index_right, onehot, "python", mentions="bigger_vocabulary")
    fails("01.11", index_right, onehot, "pride and prejudice", mentions="austen")
    fails("01.11", lambda t: {w: i for i, w in enumerate(sorted(set(t.split())))}, onehot, "austen", mentions="build_index")
    fails("01.11", lambda t: {w: i for i, w in enumerate(dict.fromkeys(re.findall(r"[a-z0-9_]+", t.lower())))},
          onehot, "austen", mentions="sorted")
    fails("01.11", lambda t: {w: i for i, w in enumerate(sorted(set(re.findall(r"[a-zA-Z0-9_]+", t))))},
          onehot, "austen", mentions="build_index")
    fails("01.11", index_right, onehot[:, :-1], "austen", mentions="shape")
    fails("01.11", index_right, onehot.flip(0), "austen", mentions="wrong places")
    fails("01.11", lambda t: list(index_right(t)), onehot, "austen", mentions="dict")


def test_01_11_stub_and_crash():
    fails("01.11", ..., ..., ..., mentions="not answered")
    fails("01.11", index_right, ..., "austen", mentions="not answered")
    fails("01.11", lambda t: None, onehot_right(), "austen", mentions="returned None")
    fails("01.11", boom, onehot_right(), "austen", mentions="raised")


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
    fails("01.12", lambda hu, l, w: ((hu.float() - l) / w).clamp(0, 1), bone)  # level as the lower edge
    fails("01.12", lambda hu, l, w: ((hu.float() - (l - w / 2)) / w), bone)  # no clipping
    fails("01.12", lambda hu, l, w: hu.float().sub_(l - w / 2).div_(w).clamp_(0, 1) if hu.is_floating_point()
          else window_right(hu, l, w), bone, mentions="changed its input")
    volume, _ = data.ct_volume()
    fails("01.12", window_right, int(((volume > 226) & (volume < 3071)).sum()), mentions="both ends")
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
