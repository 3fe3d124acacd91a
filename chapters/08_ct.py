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
# # 08 · CT scans end to end: Hounsfield units, a nodule classifier, and scaling out
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/dl-course/executable-deep-learning/blob/main/chapters/08_ct.ipynb) [![Binder](https://mybinder.org/badge_logo.svg)](https://mybinder.org/v2/gh/dl-course/executable-deep-learning/main?labpath=chapters%2F08_ct.ipynb)
#
# Half of *Deep Learning with PyTorch* builds one real project: finding lung nodules in CT scans (LUNA16). This
# chapter walks the same road on a CPU. Part A reads real CT data (one slice from pydicom's test files, one head
# CT from Debian) and teaches what a voxel, a Hounsfield unit, a display window and a patient coordinate are. Part
# B trains the project's stage 4, a classifier that tells nodule candidates from look-alikes, on a generated
# **mini-LUNA** with LUNA's exact files, with the book's names and as a command-line application with TensorBoard
# logs and checkpoints. It falls into the accuracy trap (97% accuracy, no nodule found), climbs out with precision,
# recall, balancing, augmentation and a chosen threshold, checks that validation is honest, and runs the same
# application under `torchrun` with DistributedDataParallel. Part C, optional, segments nodules with a small U-Net
# and runs one series end to end.
#
# **What you will learn**
#
# - volumetric data: voxels, Hounsfield units (HU), display windows, non-cubic spacing; DICOM and MetaImage, read
#   with pydicom and SimpleITK; a volume as an N x C x D x H x W tensor;
# - to convert patient coordinates (millimetres, x y z) to array indices (index, row, column) and back, by hand,
#   checked against SimpleITK;
# - a real data pipeline: LUNA's file contract, messy CSVs joined fuzzily, fixed-size crops, an in-memory and an
#   on-disk cache, and an honest split (find the leak, then fix it);
# - training as an application: an argparse CLI that also runs in the notebook, TensorBoard, per-sample metrics,
#   checkpoints, and DistributedDataParallel under `torchrun`;
# - the accuracy trap, and its cures: precision, recall, F1/F-beta, a balanced training stream, 3D augmentation,
#   a chosen threshold, ROC curves against a trivial baseline;
# - optionally, a 2D U-Net with a Dice loss, connected components, and one scan end to end.
#
# *Runs on a CPU in about 4 minutes.*

# %%
import sys
if "google.colab" in sys.modules:  # Colab only: add the course's package and what Colab lacks, keep Colab's torch
    # tested against a simulated Colab runtime (2026-12): Python 3.11, torch 2.14.1, fastai 2.8.12, numpy 2.4.6, pandas 3.1.1
    # %pip install -q "course-utils[colab] @ git+https://github.com/dl-course/executable-deep-learning@main"
from course_utils import setup, check, run_app
device = setup()

# %%
import contextlib
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pydicom
import SimpleITK as sitk
import torch
import torch.nn.functional as F
from pydicom.pixels import apply_rescale
from torch import nn

from course_utils import data, plots
from course_utils import ct
from course_utils.ct import evaluate

work = Path(tempfile.mkdtemp(prefix="course_08_"))  # runs, checkpoints and the crop cache of this notebook

# %% [markdown]
# # Part A · Real CT data
#
# ## 1. Setup
#
# `setup()` above seeded every generator, picked the device, and pinned torch to **one thread**. On the 2-core
# machines this course is tested on, a `LunaModel` step was 2-5 times *slower* with two threads than with one when
# another notebook ran beside it, and at best 15% faster alone; one thread is the course-wide setting
# (`COURSE_THREADS` changes it). Everything in Parts A and B runs on the CPU; training moves to `device` when it is a
# GPU.
#
# ## 2. One real slice: pydicom's `CT_small.dcm`
#
# A CT scanner measures how much each small block of the body, a **voxel**, attenuates X-rays, and reports it in
# **Hounsfield units**: air is -1000 HU, water 0, soft tissue a few tens, bone several hundred and more. A DICOM file
# stores each slice as integers plus the two numbers that turn them into HU: HU = stored x `RescaleSlope` +
# `RescaleIntercept`. pydicom ships one real CT slice (a downsized NEMA test image).

# %%
ds = pydicom.dcmread(data.ct_slice_path())
stored = ds.pixel_array
print("stored:", stored.shape, stored.dtype, "| min", stored.min(), "max", stored.max())
print("RescaleSlope", ds.RescaleSlope, "| RescaleIntercept", ds.RescaleIntercept)
hu_slice = stored * float(ds.RescaleSlope) + float(ds.RescaleIntercept)  # the formula, by hand
print("HU: min", hu_slice.min(), "max", hu_slice.max())
print("pydicom's apply_rescale equals the formula:", np.array_equal(apply_rescale(stored, ds), hu_slice))

# %% [markdown]
# Where is this slice in the patient? `PixelSpacing` is the size of a pixel (rows, then columns) in millimetres,
# `SliceThickness` how thick the slab is, `ImagePositionPatient` the position in mm of the centre of the first
# pixel, and `ImageOrientationPatient` the directions of a row and of a column. These are **patient coordinates**,
# the millimetres that radiologists and the LUNA files use; section 8 converts them to array indices.

# %%
print("PixelSpacing (mm):", [float(v) for v in ds.PixelSpacing], "| SliceThickness (mm):", float(ds.SliceThickness))
print("ImagePositionPatient (mm):", [float(v) for v in ds.ImagePositionPatient])
print("ImageOrientationPatient:", [float(v) for v in ds.ImageOrientationPatient])
print(f"field of view: {stored.shape[1] * float(ds.PixelSpacing[1]):.1f} mm wide")

# %%
plots.draw_stored_vs_hu(stored, hu_slice)
plt.show()
plots.draw_hu_histogram(hu_slice)
plt.show()

# %% [markdown]
# The histogram has two big bumps, air around the body (-1000 and below) and soft tissue around +40, and a tail of
# bone. The ladder marks where tissues sit on the scale. Most of the 3,000 HU are of no interest for a given
# question, which is why radiologists look through a **window**.
#
# ## 3. One real volume: the Cranium head CT
#
# Debian's `invesalius-examples` ships a real head CT, stored as a NumPy-readable volume inside InVesalius's project
# file. It is 108 slices of 256 x 256 voxels. Voxels are not cubes: a pixel is 0.957 mm wide but slices are 1.5 mm
# apart, and every view must take the **spacing** into account.

# %%
volume, spacing_zyx = data.ct_volume()
print("volume:", volume.shape, volume.dtype, "| HU", int(volume.min()), "...", int(volume.max()))
print("spacing (x, y, z) in mm:", tuple(round(s, 3) for s in spacing_zyx[::-1]))
info = data.ct_info()
print("InVesalius's stored window: level", info["window_level"], "width", info["window_width"])

# %% [markdown]
# A **window** (level L, width W) maps L - W/2 ... L + W/2 onto black ... white and clips everything else, i.e.
# clip((HU - (L - W/2)) / W, 0, 1). Matplotlib does exactly this when given `vmin` and `vmax`. The same slice under
# three windows: the brain window (40/80) separates grey from white matter and shows bone as a white blank; the
# soft-tissue window (40/400) shows muscle and fat; the bone window (500/2000) shows the skull's inner structure.

# %%
WINDOWS = {"brain": (40, 80), "soft tissue": (40, 400), "bone": (500, 2000)}
plots.draw_windows(volume, spacing_zyx, WINDOWS, index=60)
plt.show()

# %% [markdown]
# The same head in three orthogonal planes. On the left each pixel is drawn with its true shape (a 0.957 x 1.5 mm
# rectangle in the coronal and sagittal views); on the right every pixel is drawn square, as a naive `imshow` of the
# array does, and the head looks squat.

# %%
plots.draw_aspect_comparison(volume, spacing_zyx)
plt.show()

# %% [markdown]
# The project file also stores two masks that InVesalius made by thresholding. A mask is a boolean volume; the
# *intersection over union* (IoU) of two masks is |A ∩ B| / |A ∪ B|, 1.0 when they are identical. The soft-tissue
# and bone mask `mask_1` is every voxel with -142 <= HU <= 2986; a threshold reproduces it exactly. (Exercise 08.1
# finds the bone mask `mask_0`.)

# %%
masks = data.ct_masks()
print({name: (m.shape, int(m.sum())) for name, m in masks.items()})


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


tissue = (volume >= -142) & (volume <= 2986)
print(f"IoU(HU in [-142, 2986], mask_1) = {iou(tissue, masks['mask_1']):.3f}")

# %%
plots.draw_mask_overlay(volume, spacing_zyx, masks["mask_0"], index=60)
plt.show()

# %% [markdown]
# ## 4. File formats
#
# **DICOM** stores one file per slice, each carrying hundreds of tags: the patient, the scanner, the geometry and
# the pixels. The course wrote the Cranium volume as a 108-file DICOM series with pydicom, using `CT_small.dcm` as
# the template (`course_utils.data.ct.build_dicom_series`). Writing one slice takes four steps: copy the template,
# set the geometry, set the pixel format, store the bytes. Here one slice is written with a stored range that needs
# the intercept (stored = HU + 1024 as unsigned integers), and read back.

# %%
template = pydicom.dcmread(data.ct_slice_path())
template.Rows, template.Columns = volume.shape[1:]
template.PixelSpacing = [f"{spacing_zyx[1]:.7f}", f"{spacing_zyx[2]:.7f}"]
template.ImagePositionPatient = [0, 0, f"{60 * spacing_zyx[0]:g}"]
template.BitsAllocated, template.BitsStored, template.HighBit, template.PixelRepresentation = 16, 16, 15, 0
template.RescaleSlope, template.RescaleIntercept = 1, -1024
template.PixelData = (volume[60].astype(np.int32) + 1024).astype("<u2").tobytes()
template.save_as(work / "one_slice.dcm", enforce_file_format=True)

back = pydicom.dcmread(work / "one_slice.dcm")
print("stored:", back.pixel_array.dtype, "| read back in HU equals slice 60:",
      np.array_equal(apply_rescale(back.pixel_array, back), volume[60]))

# %% [markdown]
# Reading a series back, the simple way: sort the file names, read each file, stack, rescale. File names carry no
# guarantee of order; the slices' positions (`ImagePositionPatient`) do. Exercise 08.2 writes a reader that does not
# trust the names.

# %%
series_dir = data.ct_dicom_dir()
files = sorted(series_dir.glob("*.dcm"))
slices = [pydicom.dcmread(f) for f in files]
by_hand = np.stack([apply_rescale(s.pixel_array, s) for s in slices])
print(len(files), "files | stacked:", by_hand.shape, "| equals the source volume:", np.array_equal(by_hand, volume))

# %% [markdown]
# SimpleITK's `ImageSeriesReader` orders the files by their geometry, reads them, and also returns where the volume
# sits: origin, spacing and direction, in x y z order. `GetArrayFromImage` gives the array in z y x order.

# %%
reader = sitk.ImageSeriesReader()
reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series_dir)))
image = reader.Execute()
from_sitk = sitk.GetArrayFromImage(image)
print("SimpleITK:", from_sitk.shape, "| equals the source volume:", np.array_equal(from_sitk, volume))
print("origin", image.GetOrigin(), "| spacing", tuple(round(s, 3) for s in image.GetSpacing()),
      "| direction", image.GetDirection())

# %% [markdown]
# The book reads a series with `imageio.v2.volread(dir, 'DICOM')`. It still works, but it prints its progress to
# stdout with backspaces (silenced here). imageio's newer `v3` API reads files, not folders: one slice at a time.

# %%
import imageio.v2
import imageio.v3

with contextlib.redirect_stdout(io.StringIO()):  # the legacy DICOM reader prints progress, in v2 and v3 alike
    from_imageio = imageio.v2.volread(series_dir, "DICOM")
    one_file = imageio.v3.imread(files[0])
print("imageio.v2.volread:", from_imageio.shape, "| equals:", np.array_equal(from_imageio, volume))
try:
    imageio.v3.imread(series_dir)
except OSError as err:
    print("imageio.v3.imread(folder):", err)
print("imageio.v3.imread(one file):", one_file.shape)

# %% [markdown]
# LUNA uses **MetaImage** instead: one small text header (`.mhd`) and one file of raw voxels (`.raw`). The header
# lists sizes in x y z order (`DimSize = 256 256 108`) while the array is z y x, which is the first trap of every CT
# project.

# %%
sitk.WriteImage(image, str(work / "cranium.mhd"))
header = (work / "cranium.mhd").read_text().splitlines()
print("\n".join(line for line in header if line.split(" =")[0] in
                {"Offset", "ElementSpacing", "TransformMatrix", "DimSize", "ElementType", "ElementDataFile"}))
print(".raw file:", (work / "cranium.raw").stat().st_size, "bytes =", "x".join(map(str, volume.shape)), "x 2")

# %% [markdown]
# To a network, a volume is a 5-D tensor: N samples x C channels x D x H x W. A CT has one channel, so the volume
# gains two leading axes.

# %%
vol_t = torch.from_numpy(volume.astype(np.float32)).unsqueeze(0).unsqueeze(0)
print(tuple(vol_t.shape))

# %% [markdown]
# # Part B · A mini-LUNA nodule classifier
#
# ## 5. The project
#
# A lung nodule is a small lump, a few millimetres across; some are early cancers. Finding one in a chest CT is
# finding a needle in a haystack of about 2²⁵ voxels, and a network that looks at a whole scan at once would need
# far more data and memory than we have. The book splits the task into five stages, each small enough to train and
# to check on its own:
#
# 1. **segment**: a U-Net marks voxels that may belong to a nodule (Part C);
# 2. **group**: connected voxels become candidate centres (Part C);
# 3. **classify**: a 3D CNN looks at a small crop around each candidate and says nodule or not (this part);
# 4. **malignancy**: a second classifier, fine-tuned from the first, says benign or malignant (exercises only);
# 5. **diagnose** the patient from the most suspicious nodule.
#
# The LUNA16 challenge has two tasks: *NDET*, nodule detection from the raw scans (stages 1-3), and *FPRED*, false
# positive reduction, which gives a list of candidates (`candidates.csv`) and asks which are nodules (stage 3). Like
# the book, we build stage 3 first because LUNA hands us its inputs: 888 CT scans with 551,065 candidates, 1,351 of
# them nodules. Real LUNA needs a registration, about 220 GB of disk and a GPU; our stand-in fits in 62 MB and
# trains in a minute.
#
# ## 6. Generate the data
#
# `course_utils.ct.make_mini_luna` writes chest-like CT series with LUNA's exact files: `subsetN/<uid>.mhd` +
# `.raw` (int16 HU), `candidates.csv`, `annotations.csv` and `annotations_with_malignancy.csv`. The course's copy has
# 48 series in four subsets (with 24, too few nodules would be left to validate on for any claim to hold). Each has a
# body, two lungs, a spine, 6-10 vessels and 2-6 nodules; vessels and nodules draw their brightness from the same
# range, so intensity alone cannot tell them apart. `course data` generates it once into the course's cache (or the
# next line does). If you have the real LUNA16 on disk, set `LUNA_ROOT` to its folder: nothing else changes.

# %%
luna_root = Path(os.environ.get("LUNA_ROOT") or data.mini_luna())
for subset in sorted(luna_root.glob("subset*")):
    print(subset.name, len(list(subset.glob("*.mhd"))), "series")
candidates_df = pd.read_csv(luna_root / "candidates.csv")
annotations_df = pd.read_csv(luna_root / "annotations.csv")
print(candidates_df.round(2).head(3).to_string())
print(annotations_df.round(2).head(3).to_string())
print("candidate rows:", len(candidates_df), "| positive:", int(candidates_df["class"].sum()),
      "| negative:", int((candidates_df["class"] == 0).sum()), "| annotations:", len(annotations_df))

# %% [markdown]
# One series in three views, with its candidates marked: positives (red) on the nodules, negatives (blue) on vessels
# and on random points of the lungs. The out-of-field rim (-2048 HU) around the body is what a scanner writes where it
# did not measure; clipping to [-1000, 1000] HU removes it.

# %%
uid_list = sorted(candidates_df["seriesuid"].unique())
plots.draw_series_with_candidates(luna_root, uid_list[0])
plt.show()
plots.draw_class_balance(candidates_df)
plt.show()

# %% [markdown]
# ### The CT explorer
#
# Slide through the Cranium head or any mini-LUNA series, along any axis and under any window (the lung window,
# -600/1500, is the one for chest CT). For a mini-LUNA series, the toggle circles the candidates within two slices of
# the one shown (nodules in red, others in cyan). Below it, its static version: the first series in the lung window.

# %% tags=["nbval-ignore-output"]
plots.ct_explorer(volume, spacing_zyx, luna_root=luna_root)

# %%
plots.draw_ct_explorer(volume, spacing_zyx, luna_root=luna_root, name=uid_list[0], preset="lung")
plt.show()

# %% [markdown]
# ## 7. Parse the CSVs
#
# The book turns every candidate row into a `CandidateInfoTuple(isNodule_bool, hasAnnotation_bool, diameter_mm,
# series_uid, center_xyz)`. Two things make this harder than reading a file. First, keep only series that are on
# disk (LUNA comes in ten subsets, and people often download a few). Second, the diameter lives in the other file,
# and the two files do not agree on the centres: an annotation and the candidate rows of the same nodule differ by a
# fraction of a millimetre, and some nodules have two candidate rows. The book's rule: a candidate takes an
# annotation's diameter when the centres differ by at most a quarter of the diameter **on every axis**; the largest
# match wins; a positive with no match keeps 0.0 (LUNA has nodules that no annotation describes).
#
# First the rows, with the standard library's `csv`:

# %%
import csv
from collections import namedtuple

CandidateInfoTuple = namedtuple("CandidateInfoTuple", "isNodule_bool, hasAnnotation_bool, diameter_mm, series_uid, center_xyz")
present_on_disk = {path.stem for path in luna_root.glob("subset*/*.mhd")}
with open(luna_root / "candidates.csv", newline="") as handle:
    rows = list(csv.reader(handle))[1:]
rows = [row for row in rows if row[0] in present_on_disk]
print(len(rows), "candidate rows on disk; the first:", rows[0][0][-8:], [round(float(v), 2) for v in rows[0][1:4]], rows[0][4])

# %% [markdown]
# Then the join, in pandas: pair every positive candidate with every annotation of its series, keep the pairs within
# d/4 on all three axes, and take the largest diameter per candidate. (Exercise 08.4 writes it as the book's plain
# loop.)

# %%
positives_df = candidates_df[candidates_df["class"] == 1].reset_index(names="row")
pairs = positives_df.merge(annotations_df, on="seriesuid", suffixes=("", "_ann"))
close = np.ones(len(pairs), dtype=bool)
for axis in ("coordX", "coordY", "coordZ"):
    close &= (pairs[axis] - pairs[f"{axis}_ann"]).abs() <= pairs["diameter_mm"] / 4
diameter_by_row = pairs[close].groupby("row")["diameter_mm"].max()
print("positive rows:", len(positives_df), "| matched to an annotation:", len(diameter_by_row),
      "| unmatched (diameter 0.0):", len(positives_df) - len(diameter_by_row))
print("annotations matched by at least one candidate:",
      pairs[close][["seriesuid", "coordX_ann", "coordY_ann", "coordZ_ann"]].drop_duplicates().shape[0],
      "of", len(annotations_df))

# %% [markdown]
# The package's `getCandidateInfoList` does the same with the book's names, sorts the list (largest nodules first,
# then the negatives) and is `lru_cache`d, because every dataset calls it. Both joins agree:

# %%
candidateInfo_list = ct.getCandidateInfoList(str(luna_root))
package_diameters = sorted(c.diameter_mm for c in candidateInfo_list if c.isNodule_bool)
pandas_diameters = sorted([0.0] * (len(positives_df) - len(diameter_by_row)) + diameter_by_row.tolist())
print("same diameters as the pandas join:", package_diameters == pandas_diameters)
print("first rows:", [(c.isNodule_bool, c.hasAnnotation_bool, round(c.diameter_mm, 2)) for c in candidateInfo_list[:3]])
print("counts: positives", sum(c.isNodule_bool for c in candidateInfo_list),
      "| annotated positives", sum(c.hasAnnotation_bool for c in candidateInfo_list),
      "| negatives", sum(not c.isNodule_bool for c in candidateInfo_list))

# %% [markdown]
# ## 8. The `Ct` class and patient coordinates
#
# A `Ct` reads one series with `SimpleITK.ReadImage`, keeps the voxels as float32 HU clipped to [-1000, 1000] (the
# -2048 rim and dense metal would otherwise dominate every statistic), and keeps the geometry: the **origin** (the
# position in mm of voxel (0, 0, 0)), the **spacing** (mm per voxel along x, y, z) and the **direction** (a 3 x 3
# matrix whose columns are the directions of the array's x, y, z axes in the patient; the identity for most scans).

# %%
uid = candidateInfo_list[0].series_uid
ct_a = ct.Ct(str(luna_root), uid)
print("array (index, row, col):", ct_a.hu_a.shape, ct_a.hu_a.dtype, "| HU", ct_a.hu_a.min(), "...", ct_a.hu_a.max())
print("origin (mm):", tuple(round(v, 3) for v in ct_a.origin_xyz))
print("spacing (mm):", tuple(round(v, 3) for v in ct_a.vxSize_xyz))
print("direction:", ct_a.direction_a.tolist())

# %% [markdown]
# The candidates are in patient millimetres (x, y, z); the array wants indices (index, row, col) = (I, R, C). To go
# from millimetres to indices: subtract the origin, undo the direction (multiply by its inverse), divide by the
# spacing, round, and reverse the order (x, y, z) -> (z, y, x). Going back: reverse, scale, apply the direction, add
# the origin. One series has its x axis flipped (direction diag(-1, 1, 1)): there the column index grows towards
# smaller x, and code that ignores the direction puts every crop on the wrong side of the chest.

# %%
plots.draw_xyz_irc(luna_root, candidates_df)
plt.show()

# %% [markdown]
# The package's `xyz2irc` and `irc2xyz` do exactly these steps (exercise 08.3 writes them from scratch). SimpleITK
# has the same conversion, `TransformPhysicalPointToIndex`, which returns (x, y, z) index order. They agree on every
# candidate of every series, the flipped one included, and going to indices and back is exact:

# %%
agree = exact = total = 0
flipped_uids = []
for uid_k in uid_list:
    image_k = sitk.ReadImage(str(next(luna_root.glob(f"subset*/{uid_k}.mhd"))))
    origin, spacing = image_k.GetOrigin(), image_k.GetSpacing()
    direction = np.array(image_k.GetDirection()).reshape(3, 3)
    if direction[0, 0] < 0:
        flipped_uids.append(uid_k)
    for row in candidates_df[candidates_df["seriesuid"] == uid_k].itertuples():
        irc = ct.xyz2irc((row.coordX, row.coordY, row.coordZ), origin, spacing, direction)
        agree += tuple(irc) == image_k.TransformPhysicalPointToIndex((row.coordX, row.coordY, row.coordZ))[::-1]
        exact += tuple(irc) == tuple(ct.xyz2irc(ct.irc2xyz(irc, origin, spacing, direction), origin, spacing, direction))
        total += 1
print(f"xyz2irc = SimpleITK for {agree} of {total} candidates; irc -> xyz -> irc exact for {exact} of {total}")
print("series with a flipped x axis:", len(flipped_uids))

# %% [markdown]
# A candidate's crop is a box of `width_irc = (16, 24, 24)` voxels centred on it: about 36 x 30 x 30 mm, enough to
# hold the largest nodule with its surroundings. Near the edge of the scan a plain slice silently returns a smaller
# box, and a batch of crops of different shapes cannot be stacked:

# %%
width_irc = (16, 24, 24)
edge_row = max(candidateInfo_list, key=lambda c: c.center_xyz[2] if c.series_uid == uid else -1e9)  # the highest candidate
center_irc = ct.xyz2irc(edge_row.center_xyz, ct_a.origin_xyz, ct_a.vxSize_xyz, ct_a.direction_a)
naive = ct_a.hu_a[tuple(slice(c - w // 2, c + w // 2) for c, w in zip(center_irc, width_irc))]
print("centre", tuple(center_irc), "in a volume of", ct_a.hu_a.shape, "-> naive crop", naive.shape)

# %% [markdown]
# The book's `getRawCandidate` clamps: a box that sticks out is shifted back inside, so every crop has the same shape
# and still contains its centre (the book left the clamping out of print; exercise 08.5 writes it).

# %%
crop_a, irc_a = ct_a.getRawCandidate(edge_row.center_xyz, width_irc)
print("clamped crop:", crop_a.shape, "| centre index", tuple(irc_a))

# %% [markdown]
# ## 9. Dataset and caches
#
# `LunaDataset` serves one candidate per index: `(crop 1 x 16 x 24 x 24 float32, label, series_uid, center_irc)`.
# The label is the class index (0 or 1, a long), which is what `CrossEntropyLoss` wants; the book returns a
# two-column one-hot tensor and then indexes `label[:, 1]` everywhere, which does the same with more steps.
#
# Reading a series takes a good part of a second, and 12,000 crops come from 48 series. Two caches make this cheap:
# - `getCt` is wrapped in `functools.lru_cache(1)`: the list is sorted by series, so consecutive candidates of a
#   series read it once;
# - the crop function is memoised on disk with `diskcache.Cache(dir).memoize(typed=True)`, keyed on the data root,
#   the series, the centre, the width and a code version (`CROP_VERSION`, bumped whenever the crop code changes, so a
#   stale crop is never served). Crops are stored as int16: 18 KB each.
#
# Filling the disk cache once before training is the book's `prepcache` step, a module you can run from a shell
# (`python -m course_utils.ct.prepcache --data-root ... --cache-dir ...`) or call in-process. The second pass reads
# every crop from the cache:

# %%
cache_dir = work / "crop_cache"
from course_utils.ct.prepcache import prep_cache

n_cold, cold_s = prep_cache(str(luna_root), str(cache_dir))  # (crops read, seconds)
n_warm, warm_s = prep_cache(str(luna_root), str(cache_dir))
print("crops:", n_cold, n_warm, "| files in the cache folder:", len(list(cache_dir.iterdir())))

# %% tags=["nbval-ignore-output"]
print(f"cold pass {cold_s:.1f} s, warm pass {warm_s:.1f} s: {cold_s / warm_s:.1f}x faster")

# %%
print("the warm pass is faster than the cold one:", warm_s < cold_s)

# %%
full_ds = ct.LunaDataset(str(luna_root), cache_dir=str(cache_dir))
crop_t, label_t, series_uid, center_t = full_ds[0]
print(tuple(crop_t.shape), crop_t.dtype, "| label", label_t.item(), label_t.dtype, "| center_irc", center_t.tolist())
plots.draw_crop_gallery(full_ds)
plt.show()

# %% [markdown]
# ## 10. The model
#
# `LunaModel` is the book's classifier: a `BatchNorm3d` "tail" that rescales the raw HU, four `LunaBlock`s, and a
# linear head. A block is two 3 x 3 x 3 convolutions with ReLUs and a 2 x max-pool, so each block halves every side:
# 16 x 24 x 24 -> 8 x 12 x 12 -> 4 x 6 x 6 -> 2 x 3 x 3 -> 1 x 1 x 1. Two stacked 3³ convolutions see a 5³
# neighbourhood, and the pool after them makes it 6³; every block doubles the reach. `forward` returns the logits
# (for the loss) and the softmax probabilities (for the metrics).
#
# The book uses 8 channels on 32 x 48 x 48 crops; on a CPU we take 4 channels on 16 x 24 x 24, which is 4 times
# fewer parameters and 32 times less compute per sample (`--channels 8 --crop 32 48 48` restores the book's model).

# %%
model = ct.LunaModel()
print(model)
print("parameters:", sum(p.numel() for p in model.parameters()))
print("book size:", sum(p.numel() for p in ct.LunaModel(conv_channels=8, crop=(32, 48, 48)).parameters()))
logits, probabilities = model(torch.zeros(2, 1, 16, 24, 24))
print("logits", tuple(logits.shape), "| probabilities", tuple(probabilities.shape))

# %% [markdown]
# The softmax turns logits into probabilities that sum to 1: exponentiate and normalise. For logits [1, -2, 3]:

# %%
demo = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
print("by hand:", [round(v, 3) for v in (demo.exp() / demo.exp().sum()).tolist()],
      "| F.softmax:", [round(v, 3) for v in F.softmax(demo, dim=0).tolist()])

# %% [markdown]
# The weights start with Kaiming's normal initialisation, and the biases uniformly in ±1/√fan_out. The book's
# listing calls `nn.init.normal_(m.bias, -bound, bound)`, whose arguments are a *mean* of -bound and a *standard
# deviation* of bound: every bias starts negative on average, a bug that silently costs a few epochs.
#
# ## 11. The training application
#
# Training code that lives in notebook cells is hard to run for hours, on another machine or under `torchrun`. The
# book writes it as a command-line application instead, `LunaTrainingApp(sys_argv)`, with one method per step:
# `initModel`, `initOptimizer`, `initTrainDl`/`initValDl`, then `main` loops over epochs calling `doTraining` and
# `doValidation`; `computeBatchLoss` computes the loss of a batch and fills a **metrics tensor** with one column per
# sample (label, predicted probability of "nodule", loss), from which `logMetrics` computes every number it logs to
# the console and to TensorBoard; `saveModel` writes a checkpoint (the state dict, the optimizer's state, the epoch,
# the command line; the best so far by F1 is kept apart). Read `course_utils/ct/training.py`: it is the book's
# listing with the parts it left out written in.
#
# The flags, from a subprocess, exactly as in a terminal:

# %%
help_run = subprocess.run([sys.executable, "-m", "course_utils.ct.training", "--help"], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "100"})  # argparse wraps its help to the terminal's width
print("exit code", help_run.returncode)
print(help_run.stdout)

# %% [markdown]
# One tiny run as a subprocess (a few hundred samples): it logs its progress to stderr and prints a one-line JSON
# summary at the end, which is all a script driving it needs.

# %%
tiny = subprocess.run([sys.executable, "-m", "course_utils.ct.training", "--data-root", str(luna_root),
                       "--cache-dir", str(cache_dir), "--runs-dir", str(work / "runs"), "--epochs", "1",
                       "--epoch-len", "256", "--val-stride", "40", "--device", "cpu", "--quiet", "tiny"],
                      capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
summary_line = next(line for line in tiny.stdout.splitlines() if line.startswith("LUNA_SUMMARY "))
tiny_summary = json.loads(summary_line.removeprefix("LUNA_SUMMARY "))
print("exit code", tiny.returncode, "| samples seen", tiny_summary["samples_seen"], "| epochs", tiny_summary["epoch"])

# %% [markdown]
# In the notebook, the same application runs in-process: `run_app` imports the class by name, builds it with the
# argument list and calls `main()`, which returns the summary. A helper keeps the arguments every run here shares.

# %%
LUNA_SEED = 0


def train(*flags, comment="run"):
    """Run LunaTrainingApp in this process on the mini-LUNA with this notebook's cache and run folders."""
    return run_app("course_utils.ct.training.LunaTrainingApp", "--data-root", luna_root, "--cache-dir", cache_dir,
                   "--runs-dir", work / "runs", "--device", device.type, "--seed", LUNA_SEED, "--quiet", *flags, comment)

# %% [markdown]
# ## 12. The trap
#
# The first run does what the book's chapter 11 does: the data as they come (one positive in about 40 candidates),
# one epoch of 2,000 samples drawn at random, Adam at 1e-3, and the book's validation split, every 10th candidate.
# It logs, per class, the loss and the share classified correctly.

# %%
trap = train("--epochs", "1", "--epoch-len", "2000", "--split", "candidate", "--val-stride", "10", comment="trap")

# %% tags=["nbval-ignore-output"]
for mode in ("trn", "val"):
    m = trap[mode]
    print(f"{mode}: loss {m['loss/all']:.4f} | {m['correct/all']:.1f}% correct | nodules: {m['correct/pos']:.1f}% of "
          f"{m['count/pos']} | others: {m['correct/neg']:.1f}% of {m['count/neg']} | recall {m['pr/recall']:.2f}")

# %%
trap_accuracy, trap_recall = trap["val"]["correct/all"] / 100, trap["val"]["pr/recall"]
# sweep: trap accuracy 0.9756..0.9756 over 6 runs; claim >= 0.95
print("validation accuracy >= 0.95:", trap_accuracy >= 0.95)
# sweep: trap recall 0..0 over 6 runs; claim <= 0.15
print("validation recall <= 0.15:", trap_recall <= 0.15)
print("validation nodules:", trap["val"]["count/pos"], "of", trap["val"]["count/pos"] + trap["val"]["count/neg"], "rows")

# %% [markdown]
# Accuracy near 97%, and the model finds almost no nodule: it has learned to answer "not a nodule" to everything,
# which is right 97 times out of 100. Think of a true/false exam in which 97 answers are "false": a student who
# writes "false" everywhere without reading a question scores 97%. The arithmetic is merciless: the share of
# negatives in the validation rows is exactly the accuracy of "always negative",

# %%
val_negative_share = trap["val"]["count/neg"] / (trap["val"]["count/pos"] + trap["val"]["count/neg"])
print(f"accuracy of 'always negative' on these validation rows: {val_negative_share:.4f}")

# %% [markdown]
# and during training most batches of 32 hold no nodule at all, so most gradient steps only teach "say no". At
# LUNA's real ratio (1,215 nodule rows to 494,743 others in the book's training set) it is far worse. Exercise 08.6
# puts numbers on both.
#
# ## 13. Metrics that see the nodules
#
# Every prediction falls in one of four quadrants. Retold with the book's guard dog: a *true positive* is a bark at a
# burglar, a *false positive* a bark at the postman, a *false negative* a burglar let in quietly, a *true negative* a
# quiet night. Two ratios matter:
#
# - **recall** = TP / (TP + FN): of the real nodules, how many did we flag? (did the dog bark at every burglar?)
# - **precision** = TP / (TP + FP): of the flags, how many were nodules? (was a bark worth getting up for?)
#
# A dog that barks all night has recall 1 and useless precision; our trapped model never barks: precision and recall
# are both 0, or, with a naive division, 0/0. **F1** = 2PR / (P + R), the harmonic mean, is high only when both are.
# The heat-maps compare it with three other ways to combine P and R: the arithmetic mean rewards a model that gives up
# one of them, the minimum ignores the better one entirely, and the product punishes everything.

# %%
plots.draw_f_heatmaps()
plt.show()

# %% [markdown]
# **F-beta** weighs recall β times as much as precision: Fβ = (1 + β²) PR / (β² P + R). Screening wants β = 2: a
# missed cancer costs far more than a second look at a vessel. When a class is empty, the ratios are 0/0; NumPy
# answers `nan` with a RuntimeWarning, which then poisons every average. The app's metrics return 0.0 instead
# (exercise 08.7 writes such a function):

# %%
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    naive_precision = np.float64(0) / np.float64(0)
print("naive 0/0:", naive_precision, "|", caught[0].category.__name__, "| safe:", evaluate.safe_div(0, 0))

# %% [markdown]
# ## 14. Is validation honest?
#
# The book's split takes every 10th row of the sorted candidate list. But rows are not independent: every series
# contributes rows to both sides, and a nodule with two candidate rows (or an annotated and an unannotated copy) can
# have one row in training and the other in validation, where it is recognised rather than detected. Count it:

# %%
def split_sets(split, val_stride):
    val = ct.LunaDataset(str(luna_root), val_stride=val_stride, isValSet_bool=True, split=split, cache_dir=str(cache_dir))
    trn = ct.LunaDataset(str(luna_root), val_stride=val_stride, isValSet_bool=False, split=split, cache_dir=str(cache_dir))
    return trn.candidateInfo_list, val.candidateInfo_list


for split, stride in (("candidate", 10), ("series", 5)):
    trn_rows, val_rows = split_sets(split, stride)
    shared = {c.series_uid for c in val_rows} & {c.series_uid for c in trn_rows}
    print(f"{split:>9} split: {len(val_rows):5} validation rows ({sum(c.isNodule_bool for c in val_rows)} positive) "
          f"from {len({c.series_uid for c in val_rows})} series, {len(shared)} of them also in training")

# %% [markdown]
# Every validation series is also a training series under the candidate split. A real system meets new patients, so
# from now on validation is **series-level**: every 5th of the sorted series UIDs (10 of 48) goes to validation, with
# every row it has. LUNA's own answer is the same idea: ten subsets, split by patient.
#
# ## 15. Balancing
#
# The cure for "most batches hold no nodule" is to show nodules more often. The book interleaves inside the
# Dataset: with `ratio_int = 1`, even indices are positives and odd ones negatives; each list is walked in order and
# wraps around (a positive is seen many times per epoch, a negative rarely more than once), and both lists are
# reshuffled at the start of every epoch. An epoch is then a fixed number of samples (2,000), not a pass over the
# data. Exercise 08.8 writes the index arithmetic.

# %%
balanced_ds = ct.LunaDataset(str(luna_root), val_stride=5, isValSet_bool=False, split="series", ratio_int=1,
                             epoch_len=2000, cache_dir=str(cache_dir))
print("epoch length", len(balanced_ds), "| labels of the first 8 samples:",
      [int(balanced_ds[i][1]) for i in range(8)])

# %% [markdown]
# The library alternative is `torch.utils.data.WeightedRandomSampler`: give every training row a weight
# (1 / its class's count) and it draws rows with replacement in proportion. It must be told every label in advance,
# which means reading them all, and it draws at random rather than interleaving. Either way, **never balance
# validation**: it must look like the world the model will meet.

# %%
train_labels = torch.tensor([int(c.isNodule_bool) for c in balanced_ds.candidateInfo_list])
class_weight = 1.0 / torch.bincount(train_labels).double()
sampler = torch.utils.data.WeightedRandomSampler(class_weight[train_labels], num_samples=2000, replacement=True,
                                                 generator=torch.Generator().manual_seed(0))
drawn = train_labels[list(sampler)]
print("training rows:", len(train_labels), "| positives", int(train_labels.sum()),
      "| share of positives drawn by the sampler within 0.45..0.55:", 0.45 <= drawn.float().mean().item() <= 0.55)

# %% [markdown]
# Now three epochs of 2,000 balanced samples, validated on the held-out series:

# %%
balanced = train("--epochs", "3", "--epoch-len", "2000", "--balanced", "1", "--split", "series", "--val-stride", "5",
                 comment="balanced")

# %% tags=["nbval-ignore-output"]
def report(name, summary):
    m = summary["val"]
    print(f"{name:>9}: recall {m['pr/recall']:.2f} | precision {m['pr/precision']:.2f} | F1 {m['pr/f1_score']:.2f} | "
          f"F2 {m['pr/f2_score']:.2f} | nodules found {m['count/tp']} of {m['count/pos']}")


report("trap", trap)
report("balanced", balanced)

# %%
bal = balanced["val"]
# sweep: balanced - trap F1 0.3497..0.5143 over 6 runs; claim > 0
print("F1 above the trap's:", bal["pr/f1_score"] > trap["val"]["pr/f1_score"])

# %% [markdown]
# Balancing found about half of the held-out nodules where the trap found none. How much it finds moves with the
# seed: over six seeded runs (`sweeps/08_ct.results.md`) recall ranged from 0.46 to 0.68 and F1 from 0.35 to 0.51.
# That spread is the honest price of about 230 nodule rows and 186 optimiser steps; it is also why the only claim
# printed above is the one that holds with a wide margin on every run.

# %% [markdown]
# ## 16. Overfitting, read from TensorBoard
#
# Each run wrote TensorBoard event files: one folder for training and one for validation, with the number of samples
# seen as the step. TensorBoard itself is a web server (`tensorboard --logdir runs`); here the event files are read
# back with its `EventAccumulator` and drawn with matplotlib. Every run logs the same tags:

# %%
runs = {name: evaluate.run_dirs(work / "runs", name) for name in ("trap", "balanced")}
trn_tags = sorted(evaluate.read_scalars(runs["balanced"]["trn"]))
val_tags = sorted(evaluate.read_scalars(runs["balanced"]["val"]))
print("training tags:  ", trn_tags)
print("validation tags:", val_tags)
print("all six required tags present in both:",
      {"loss/all", "loss/pos", "loss/neg", "pr/precision", "pr/recall", "pr/f1_score"} <= set(trn_tags) & set(val_tags))

# %% [markdown]
# What to look for: the signature of overfitting is a training loss on the positives that keeps falling towards 0
# while the validation loss on the positives rises. With about 230 nodule rows in training, each seen a dozen
# times in three epochs, the balanced run starts to memorise them; the augmentation below is the book's cure.

# %%
plots.draw_training_scalars(runs)
plt.show()

# %% [markdown]
# ## 17. Augmentation
#
# Showing the same 230 nodule rows again and again teaches the model those nodules. Augmentation shows a slightly
# different version each time. The book's five, combined into one 4 x 4 affine matrix per sample in `affine_grid`'s
# normalised coordinates:
#
# - **flip** each axis with probability 0.5 (a nodule upside down is still a nodule);
# - **offset** the crop by up to ±0.1 of its size per axis;
# - **scale** each axis by 1 ± 0.2;
# - **rotate** by a random angle about the head-foot axis only: the voxels are 1.1-1.4 mm wide but 2-2.5 mm deep,
#   so a rotation that tips the slices would have to invent detail;
# - then add Gaussian **noise** with σ = 25 HU.
#
# `F.affine_grid` turns the matrix into a sampling grid and `F.grid_sample` reads the crop there (trilinear, with
# `align_corners=False` written out and `padding_mode="border"`, so no black corners appear). Augmentation runs after
# the cache, on every sample, with a generator seeded by (seed, epoch, index) so runs repeat. The simplest case, a
# flip of the column axis, is the identity with a -1:

# %%
flip_x = torch.eye(4)[:3].clone()
flip_x[0, 0] = -1  # affine_grid's first coordinate is x, i.e. the column axis
crop_b = full_ds[0][0].unsqueeze(0)
grid = F.affine_grid(flip_x.unsqueeze(0), list(crop_b.shape), align_corners=False)
flipped = F.grid_sample(crop_b, grid, padding_mode="border", align_corners=False)
# grid_sample interpolates in float32: sampling exactly at voxel centres leaves rounding of about 1e-4 of the value
print("flip by grid_sample == torch.flip along the columns (to 0.1 HU):", torch.allclose(flipped, crop_b.flip(-1), atol=0.1))

# %%
plots.draw_augmentations(full_ds, index=0)
plt.show()

# %% [markdown]
# The same three epochs, balanced and augmented:

# %%
augmented = train("--epochs", "3", "--epoch-len", "2000", "--balanced", "1", "--augmented", "--split", "series",
                  "--val-stride", "5", comment="augmented")

# %% tags=["nbval-ignore-output"]
report("balanced", balanced)
report("augmented", augmented)

# %%
runs["augmented"] = evaluate.run_dirs(work / "runs", "augmented")
plots.draw_training_scalars(runs)
plt.show()

# %%
# sweep: augmented recall 0.614..0.8246 over 6 runs; claim > 0
print("the augmented model finds nodules too (recall > 0):", augmented["val"]["pr/recall"] > 0)

# %% [markdown]
# After three short epochs, augmentation raised recall in every one of the sweep's six seeded runs (0.61-0.82
# against 0.46-0.68 without it), and the table shows what it cost in precision: the model flags more of everything,
# vessels included. That is the honest short-run picture; the book trains for hours, where augmentation
# keeps validation improving long after the plain balanced run has started to overfit. Exercise idea: train both for
# 20 epochs and compare the curves.
#
# ## 18. Thresholds and ROC
#
# A classifier outputs a probability, and 0.5 is only one choice of threshold. Lower it and recall rises while
# precision falls. The balanced model's best checkpoint (by F1) scores every validation row:

# %%
best_path = Path(balanced["checkpoint"]).with_suffix(".best.state")
print("checkpoint keys:", sorted(torch.load(best_path, map_location="cpu", weights_only=True)))
best_model = evaluate.load_model(best_path)  # rebuilt with the --channels and --crop its saved command line gives
val_ds = ct.LunaDataset(str(luna_root), val_stride=5, isValSet_bool=True, split="series", cache_dir=str(cache_dir))
val_labels, val_probs = evaluate.predict_dataset(best_model, val_ds)
print("validation rows:", len(val_labels), "| nodules:", int(val_labels.sum()))

# %%
plots.draw_pr_curve(val_labels, val_probs)
plt.show()
plots.draw_f1_vs_threshold(val_labels, val_probs)
plt.show()

# %% [markdown]
# The **ROC curve** plots the true-positive rate (recall) against the false-positive rate (FP / all negatives) over
# every threshold; the area under it (AUC) is the probability that a random nodule scores above a random non-nodule.
# From scratch: sort by score, accumulate the rates, and add up trapezoids. It equals scikit-learn's:

# %%
fpr, tpr, _ = evaluate.roc_curve_points(val_labels, val_probs)
auc_scratch = evaluate.auc_trapezoid(fpr, tpr)
from sklearn.metrics import roc_auc_score

auc_sklearn = roc_auc_score(val_labels.numpy(), val_probs.numpy())
print("scratch AUC = sklearn AUC within 1e-6:", abs(auc_scratch - auc_sklearn) < 1e-6)

# %% [markdown]
# Is that good? Compare with a one-number baseline: the mean HU of the central 3 x 3 x 3 voxels of the crop (a nodule
# is denser than lung). Overall it looks strong, because most negatives are easy points of air-filled lung. On the
# **hard subset**, the nodules against the negatives whose centre is dense (HU > -400, i.e. on vessels), intensity
# says nothing: vessels and nodules draw their HU from the same range. That is where a model must earn its keep.

# %%
center_hu = evaluate.center_hu(val_ds)
hard = evaluate.hard_subset_mask(val_labels, center_hu)
aucs = {"model": roc_auc_score(val_labels, val_probs), "HU baseline": roc_auc_score(val_labels, center_hu),
        "model, hard": roc_auc_score(val_labels[hard], val_probs[hard]),
        "HU baseline, hard": roc_auc_score(val_labels[hard], center_hu[hard])}
print("hard subset:", int(hard.sum()), "rows,", int(val_labels[hard].sum()), "nodules")

# %% tags=["nbval-ignore-output"]
print(" | ".join(f"{name} AUC {value:.3f}" for name, value in aucs.items()))
plots.draw_roc(val_labels, val_probs, baseline=center_hu, hard=hard)
plt.show()

# %%
# sweep: model AUC 0.8071..0.894 over 6 runs; claim >= 0.6
print("model AUC >= 0.6:", aucs["model"] >= 0.6)

# %% [markdown]
# Over all rows the one-number baseline is hard to beat: most negatives are points of air-filled lung, and any dense
# centre looks like a nodule. On the hard subset the baseline is close to a coin toss, and the model is not: over six
# seeded runs its hard-subset AUC beat the baseline's by 0.16 to 0.29 (`sweeps/08_ct.results.md`; the gap moves too
# much between seeds to be printed here as a claim). Lesson: evaluate where it matters. A metric over all candidates
# is dominated by easy negatives; the hard ones are the reason the model exists.
#
# ### The threshold explorer
#
# Move the threshold: the confusion matrix, precision, recall, F1 and F2 update, and the marker walks along the PR
# curve. For screening you would pick the threshold where F2 peaks, not 0.5.

# %% tags=["nbval-ignore-output"]
plots.threshold_explorer(val_labels, val_probs)

# %% [markdown]
# Its static view at 0.5, and the table it reads from at a few thresholds:

# %% tags=["nbval-ignore-output"]
plots.draw_threshold_explorer(val_labels, val_probs, threshold=0.5)
print(evaluate.threshold_table(val_labels, val_probs, [0.1, 0.3, 0.5, 0.7, 0.9]).round(3).to_string(index=False))

# %% [markdown]
# ## 19. Scaling out with DistributedDataParallel
#
# One process per device. Each process holds a full copy of the model and trains on its own share of every epoch;
# in `backward`, DDP **all-reduces** (sums and averages) the gradients across processes, bucket by bucket while the
# backward pass is still running, so every copy takes the same step and the copies stay identical. The rest is
# bookkeeping, and the app does all of it when given `--ddp`:
#
# - `torch.distributed.init_process_group(backend)`: `gloo` on CPUs, `nccl` on NVIDIA GPUs;
# - each process reads its own share of the samples (for random sampling, `DistributedSampler` with `set_epoch`
#   every epoch, so the shuffles differ by epoch but agree across processes);
# - the batch size is **per process**: 2 processes x 32 = 64 samples per step;
# - metrics are summed across processes (`all_reduce` of the confusion counts and loss sums, never of averages);
# - rank 0 alone logs, writes TensorBoard files and saves checkpoints, unwrapping the model as `.module`.
#
# `nn.DataParallel`, which the book uses, runs one process with one thread per GPU and scatters every batch from
# GPU 0; it is slower, holds the Python GIL, and is discouraged in PyTorch's own documentation.
#
# `torchrun` (`python -m torch.distributed.run`) starts the processes and tells each its rank through environment
# variables. Two processes on this CPU, one epoch of 512 samples:

# %%
ddp = subprocess.run(
    [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "course_utils.ct.training",
     "--ddp", "--backend=gloo", "--device=cpu", "--epochs=1", "--epoch-len=512", "--balanced=1", "--split=series",
     "--val-stride=5", "--data-root", str(luna_root), "--cache-dir", str(cache_dir), "--runs-dir", str(work / "ddp"),
     "--quiet", "ddp"],
    capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"}, timeout=300)
summary_lines = [line for line in ddp.stdout.splitlines() if line.startswith("LUNA_SUMMARY ")]
ddp_summary = json.loads(summary_lines[0].removeprefix("LUNA_SUMMARY "))
print("exit code", ddp.returncode, "| summary lines printed:", len(summary_lines), "(rank 0 only)")
if ddp.returncode:  # show why, instead of a bare number
    print(ddp.stderr[-2000:])
print("world size", ddp_summary["world_size"], "| samples seen", ddp_summary["samples_seen"],
      "| replicas identical", ddp_summary["replicas_identical"])
print("validation metrics finite:", all(np.isfinite(v) for v in ddp_summary["val"].values()))

# %% [markdown]
# torchrun's own messages (it warns that it set `OMP_NUM_THREADS=1` for every process) went to stderr, captured and
# not shown. On a machine with several NVIDIA GPUs the same command with `--backend=nccl` (and no `--device`) starts
# one process per GPU, each using `cuda:LOCAL_RANK`; across machines, `torchrun --nnodes=2 --node_rank=K
# --rdzv_endpoint=HOST:PORT` on each. Nothing in the training code changes.

# %% [markdown]
# # Part C · Optional: segmentation and one scan end to end
#
# Part B classified candidates that LUNA handed us. Where do candidates come from? The book's stages 1 and 2: a
# segmentation network marks voxels that may be nodule, and connected blobs of marked voxels become candidates.
# This part is optional and self-contained (about 30 seconds); skip to the exercises if you like.
#
# ## 20. Masks
#
# A segmenter needs a mask per voxel. The mini-LUNA generator knows where it painted every nodule
# (`mini_luna_nodules.csv`, a file real LUNA does not have), so here the ground truth is exact: every voxel whose
# centre lies within d/2 of a nodule's centre. The book had only LUNA's annotations (a centre and a diameter) and
# built masks with a heuristic: from the centre, grow a box along each axis while the voxels stay denser than
# -700 HU, then keep the dense voxels in the box. Compare the two:

# %%
from course_utils.ct import segment

nodules = segment.getNoduleInfoList(str(luna_root))
print("nodules:", len(nodules), "| annotated:", sum(n.annotated for n in nodules), "| touching the lung wall:",
      sum(n.touches_wall for n in nodules))
ious = {"free": [], "touching the wall": []}
for uid_k in uid_list:
    ct_k = ct.getCt(str(luna_root), uid_k)
    for nodule in (n for n in nodules if n.series_uid == uid_k and n.annotated):
        truth = segment.nodule_mask(ct_k, [nodule])
        guess = segment.heuristic_mask(ct_k, [nodule.center_xyz])
        ious["touching the wall" if nodule.touches_wall else "free"].append(segment.mask_iou(truth, guess))
for kind, values in ious.items():
    print(f"heuristic mask vs truth, {kind:>17} nodules: median IoU {np.median(values):.2f} over {len(values)}")

# %% [markdown]
# For a nodule in the middle of the lung the heuristic is close (a box, so it overshoots a sphere's corners). For a
# nodule that touches the chest wall, the box keeps growing into the wall, which is as dense as the nodule, and the
# mask swallows a slab of it: a flaw the book's authors point out and live with.
#
# ## 21. A U-Net
#
# The U-Net (Ronneberger et al., 2015) is an encoder that halves the resolution while it widens the channels, a
# decoder that doubles it back with transposed convolutions, and skip connections that hand each decoder level the
# encoder's features at the same resolution, so the output can be sharp. `segment.UNet2d` is a small one: depth 3,
# base width 8, padded convolutions (output size = input size), BatchNorm, an input BatchNorm for the raw HU, and a
# sigmoid. It is 2D: its input is one slice with 3 slices of context above and below as 7 channels, the book's
# compromise between a 2D net's speed and a 3D net's context.

# %%
print(segment.UNet2d())
print("parameters:", sum(p.numel() for p in segment.UNet2d().parameters()))

# %% [markdown]
# Training shows it random 32 x 32 crops around nodules (512 per epoch, 8 epochs, Adam); validation uses fixed crops
# from the validation series. Two losses:
#
# - the **soft Dice** loss, 1 - (2 Σ p·y + ε) / (Σ p + Σ y + ε), which compares the overlap with the sizes and so
#   does not care how many background pixels there are (exercise 08.13 writes it);
# - the book's **Dice + 8 · FN-Dice**, whose second term is the Dice of the prediction *inside* the label only: it
#   punishes every missed nodule voxel, and nothing else, eight times over.

# %%
plain_model, plain_history = segment.train_segmenter(str(luna_root), loss="dice", seed=0)
fn_model, fn_history = segment.train_segmenter(str(luna_root), loss="fn_weighted", seed=0)
plain, fn_weighted = plain_history[-1], fn_history[-1]

# %% tags=["nbval-ignore-output"]
print(pd.DataFrame({"plain Dice": plain, "Dice + 8 FN-Dice": fn_weighted}).T[["dice", "precision", "recall"]].round(3))

# %%
# sweep: plain-Dice validation Dice 0.8673..0.9097 over 6 runs; claim >= 0.5
print("plain Dice: validation Dice >= 0.5:", plain["dice"] >= 0.5)
# sweep: FN-weighted recall 0.9342..0.9842 over 6 runs; claim >= 0.8
print("FN-weighted: recall >= 0.8:", fn_weighted["recall"] >= 0.8)

# %% [markdown]
# The FN-weighted loss buys recall with precision: it marks nearly every nodule voxel and a halo around it (over six
# seeded runs its precision was 0.09 to 0.31 below plain Dice's, and its recall 0.93 to 0.98). For a
# detector that is the right trade: stage 3's classifier removes false positives, but nothing recovers a nodule the
# segmenter missed. On a whole slice, rather than a crop centred on a nodule, the false positives explode: the
# segmenter never saw most of the body during training.

# %%
val_crops, val_masks = segment.validation_crops(str(luna_root))
with torch.no_grad():
    plain_model.eval()
    fn_model.eval()
    plain_pred, fn_pred = plain_model(val_crops[:1]), fn_model(val_crops[:1])
    example_uid = segment.series_split(str(luna_root))[1][0]
    ct_e = ct.getCt(str(luna_root), example_uid)
    full_index = ct_e.hu_a.shape[0] // 2
    full_pred = segment.segment_series(fn_model, ct_e)[full_index]
full_truth = segment.getNoduleMask(str(luna_root), example_uid)[full_index]
fig, axes = plt.subplots(1, 3, figsize=(11, 4))
plots.draw_segmentation_overlay(val_crops[0, 3], val_masks[0, 0], plain_pred[0, 0], ax=axes[0])
plots.draw_segmentation_overlay(val_crops[0, 3], val_masks[0, 0], fn_pred[0, 0], ax=axes[1])
plots.draw_segmentation_overlay(ct_e.hu_a[full_index], full_truth, full_pred, ax=axes[2])
for ax, name in zip(axes, ("plain Dice, a crop", "Dice + 8 FN-Dice, a crop", "Dice + 8 FN-Dice, a whole slice")):
    ax.set_title(name + "\n" + ax.get_title(), fontsize=9)
plt.show()

# %% [markdown]
# ## 22. One validation series end to end
#
# The book's chapter 14 chains the stages on a scan the models never saw: segment every slice, threshold at 0.5,
# erode once (so blobs that touch by a voxel fall apart; within each slice, because a 3D erosion deletes every
# nodule thinner than three of our 2-2.5 mm slices), label the connected blobs with `scipy.ndimage.label`, take each
# blob's centre of mass weighted by clip(HU) + 1001 (dense voxels pull harder), convert it to patient coordinates
# with `irc2xyz`, crop it, and let Part B's balanced classifier decide. A nodule is *found* when a kept candidate lies
# within its radius.

# %%
val_uids = segment.series_split(str(luna_root))[1]
annotated_per_series = {u: sum(n.annotated for n in nodules if n.series_uid == u) for u in val_uids}
e2e_uid = max(val_uids, key=lambda u: (annotated_per_series[u], u))  # the validation series with most annotated nodules
e2e = segment.run_end_to_end(fn_model, best_model, str(luna_root), e2e_uid)
print("annotated nodules in this series:", annotated_per_series[e2e_uid])

# %% tags=["nbval-ignore-output"]
print("grouped candidates:", len(e2e["candidates"]), "| kept by the classifier:", e2e["kept"])
print(pd.DataFrame(e2e["nodules"]).to_string())
print("found", e2e["found"], "| missed", e2e["missed"], "| false positives", e2e["false_positives"])
ct_e2e = ct.getCt(str(luna_root), e2e_uid)
e2e_nodules = [ct.xyz2irc(n.center_xyz, ct_e2e.origin_xyz, ct_e2e.vxSize_xyz, ct_e2e.direction_a)
               for n in nodules if n.series_uid == e2e_uid and n.annotated]
plots.draw_grouping(ct_e2e.hu_a, segment.segment_series(fn_model, ct_e2e), e2e["candidates"], e2e_nodules)
plt.show()

# %% [markdown]
# Over six seeded runs, 2 to 4 of this series' 6 annotated nodules were found end to end. The table is the whole
# project in miniature: what the segmenter missed is lost for good, what the classifier
# rejects is lost too, and every false positive is a second look a radiologist must take. Stage 4, malignancy, is
# the last exercise idea: `annotations_with_malignancy.csv` holds a benign/malignant flag per annotated nodule;
# compare a diameter-threshold ROC baseline with a classifier fine-tuned from Part B's model (only its head, or its
# last block as well).

# %% [markdown]
# ## 23. Summary
#
# - A CT is a 3D array of Hounsfield units with a geometry: origin, spacing (rarely cubic) and direction. Windows
#   make a range of HU visible; every view must respect the spacing.
# - DICOM is one file per slice with the rescale and the geometry in tags; MetaImage is a text header and raw
#   voxels, with sizes in x y z order and arrays in z y x. pydicom, SimpleITK and imageio read them; check that they
#   agree.
# - Patient millimetres to array indices: subtract the origin, undo the direction, divide by the spacing, round,
#   reverse the axes. Test the flipped case.
# - A data pipeline is most of a medical imaging project: the file contract, fuzzy joins between messy tables,
#   crops that never change shape, caches keyed on everything that changes their content, and a split by patient.
# - Train as an application: arguments, logs, TensorBoard, checkpoints; the notebook calls the same code.
# - Accuracy is meaningless at 1:40. Watch recall, precision, F1/F2; balance the training stream, never validation;
#   augment; choose the threshold; compare against a trivial baseline on the cases that matter.
# - DistributedDataParallel: one process per device, gradients all-reduced in `backward`, sums (not averages) of
#   metrics all-reduced, rank 0 logs and saves.
#
# ## Exercises
#
# Each exercise ends with a `check(...)` cell that prints ✅ or ❌ with a hint. Write your code where it says
# `# your code here`; the checks run your functions on hidden inputs of their own (generated CT series, geometries,
# candidate lists). The difficulty runs from 1 (a few lines) to 3 (a small project).

# %% [markdown]
# ### Exercise 08.1 · A window, and the bone mask (difficulty 1, about 10 minutes)
#
# Write `window(hu, level, width)` that maps HU to [0, 1] as a display window does (a NumPy array or a torch tensor
# in, the same kind out, `hu` unchanged), and check it against matplotlib: an image drawn with `vmin = L - W/2`,
# `vmax = L + W/2` is `window` under the hood. Then rebuild InVesalius's bone mask `mask_0` from the HU volume: the
# project file recorded the threshold range each mask was made with (`data.ct_info()["masks"]`). Your mask must
# match `mask_0` voxel for voxel.

# %%
window = bone_mask = ...
# BEGIN SOLUTION
def window(hu, level, width):
    low = level - width / 2
    if isinstance(hu, torch.Tensor):
        return ((hu.double() - low) / width).clamp(0, 1)
    return np.clip((np.asarray(hu, dtype=np.float64) - low) / width, 0, 1)


bone_low, bone_high = data.ct_info()["masks"]["mask_0"]["threshold_range"]
bone_mask = (volume >= bone_low) & (volume <= bone_high)
print("bone mask IoU:", round(float(iou(bone_mask, masks["mask_0"])), 3))
# END SOLUTION

# %%
check("08.1", window, bone_mask)

# %% [markdown]
# ### Exercise 08.2 · A DICOM series from scratch (difficulty 2, about 20 minutes)
#
# Write `read_dicom_series(folder)` with pydicom that returns `(hu, spacing_xyz)`: the volume in HU as a
# (slices, rows, columns) array ordered by increasing `ImagePositionPatient[2]`, and the voxel size in mm as
# (x, y, z). Do not trust file names or `SliceThickness`: the check writes series whose names are shuffled, whose
# stored values need a slope *and* an intercept, and whose slices are closer together than they are thick. Mind
# which of `PixelSpacing`'s two numbers is x.

# %%
import glob  # noqa: E402

read_dicom_series = ...
# BEGIN SOLUTION
def read_dicom_series(folder):
    slices = [pydicom.dcmread(p) for p in glob.glob(os.path.join(folder, "*.dcm"))]
    slices.sort(key=lambda s: float(s.ImagePositionPatient[2]))
    hu = np.stack([s.pixel_array.astype(np.float64) * float(s.RescaleSlope) + float(s.RescaleIntercept) for s in slices])
    row_mm, col_mm = (float(v) for v in slices[0].PixelSpacing)
    dz = abs(float(slices[1].ImagePositionPatient[2]) - float(slices[0].ImagePositionPatient[2]))
    return hu, (col_mm, row_mm, dz)


print("Cranium read back:", np.array_equal(read_dicom_series(series_dir)[0], volume))
# END SOLUTION

# %%
check("08.2", read_dicom_series)

# %% [markdown]
# ### Exercise 08.3 · XYZ to IRC and back (difficulty 2, about 20 minutes)
#
# Write `xyz2irc(coord_xyz, origin_xyz, vxSize_xyz, direction_a)`, which returns the integer (index, row, col) of a
# point in patient millimetres, and `irc2xyz(coord_irc, origin_xyz, vxSize_xyz, direction_a)`, its inverse, from
# section 8's recipe, with NumPy. The check uses three hidden geometries (non-cubic voxels, a flipped axis, a
# rotated scanner) and compares with SimpleITK on every point.

# %%
xyz2irc = irc2xyz = ...
# BEGIN SOLUTION
def xyz2irc(coord_xyz, origin_xyz, vxSize_xyz, direction_a):
    cri = np.linalg.inv(direction_a) @ (np.array(coord_xyz) - np.array(origin_xyz)) / np.array(vxSize_xyz)
    cri = np.round(cri)
    return int(cri[2]), int(cri[1]), int(cri[0])


def irc2xyz(coord_irc, origin_xyz, vxSize_xyz, direction_a):
    cri = np.array(coord_irc, dtype=np.float64)[::-1]
    return tuple(np.array(direction_a) @ (cri * np.array(vxSize_xyz)) + np.array(origin_xyz))
# END SOLUTION

# %%
check("08.3", xyz2irc, irc2xyz)

# %% [markdown]
# ### Exercise 08.4 · The fuzzy join, as a loop (difficulty 2, about 15 minutes)
#
# Section 7 joined the CSVs with pandas. Write the book's version in plain Python: `fuzzy_join(candidates,
# annotations)` takes lists of rows, `(series_uid, x, y, z, is_nodule)` and `(series_uid, x, y, z, diameter_mm)`,
# and returns one diameter per candidate row, in order: the largest diameter among the annotations *of the same
# series* whose centre is within diameter/4 of the candidate on every axis, else 0.0. Join every row, as
# `getCandidateInfoList` does. Group the annotations by series first, or it will be slow on LUNA's 551,065 rows.

# %%
fuzzy_join = ...
# BEGIN SOLUTION
def fuzzy_join(candidates, annotations):
    by_series = {}
    for uid_a, x, y, z, diameter in annotations:
        by_series.setdefault(uid_a, []).append(((x, y, z), diameter))
    diameters = []
    for uid_c, x, y, z, _is_nodule in candidates:
        best = 0.0
        for centre, diameter in by_series.get(uid_c, []):
            if all(abs(c - a) <= diameter / 4 for c, a in zip((x, y, z), centre)):
                best = max(best, diameter)
        diameters.append(best)
    return diameters
# END SOLUTION

# %%
check("08.4", fuzzy_join)

# %% [markdown]
# ### Exercise 08.5 · A crop clamped at the edges (difficulty 2, about 15 minutes)
#
# Write `crop(vol, center_irc, width_irc)`: the box of `width_irc` voxels that starts at `center - width // 2` on
# each axis (with even widths), shifted back inside the volume where it would stick out. Its shape must always be
# `width_irc`, and it must contain the centre. Section 8 showed what a plain slice does at the edge.

# %%
crop = ...
# BEGIN SOLUTION
def crop(vol, center_irc, width_irc):
    box = []
    for axis, (center, width) in enumerate(zip(center_irc, width_irc)):
        start = max(0, min(int(round(center - width / 2)), vol.shape[axis] - width))
        box.append(slice(start, start + width))
    return vol[tuple(box)]


print("the edge crop:", crop(ct_a.hu_a, center_irc, width_irc).shape)
# END SOLUTION

# %%
check("08.5", crop)

# %% [markdown]
# ### Exercise 08.6 · The trap, in numbers (difficulty 1, about 10 minutes)
#
# Take the *training* rows of section 12's run: the candidate split with `val_stride=10`, i.e. the rows of
# `candidateInfo_list` whose position is not a multiple of 10. Compute (a) the accuracy of a model that always says
# "not a nodule" on them, (b) the probability that a batch of 32 rows drawn at random (with replacement) holds no
# nodule, and (c) the same probability at the book's LUNA ratio, 1,215 nodule rows to 494,743 others. How many of
# the 62 steps of an epoch of 2,000 samples see no nodule at all, on average?

# %%
acc_always_negative = p_no_nodule_here = p_no_nodule_luna = ...
# BEGIN SOLUTION
trap_train = [c for i, c in enumerate(candidateInfo_list) if i % 10]
n_pos = sum(c.isNodule_bool for c in trap_train)
acc_always_negative = 1 - n_pos / len(trap_train)
p_no_nodule_here = acc_always_negative**32
p_no_nodule_luna = (494743 / (1215 + 494743)) ** 32
print(f"{acc_always_negative:.4f} {p_no_nodule_here:.3f} {p_no_nodule_luna:.3f}; steps without a nodule: "
      f"{p_no_nodule_here * 2000 / 32:.0f} of {2000 / 32:.0f}")
# END SOLUTION

# %%
check("08.6", acc_always_negative, p_no_nodule_here, p_no_nodule_luna)

# %% [markdown]
# ### Exercise 08.7 · Precision, recall and F-beta that never divide by zero (difficulty 1, about 10 minutes)
#
# Write `prf(labels, probs, thr, beta)`: `labels` an int64 tensor of 0/1, `probs` the predicted probabilities of
# class 1; a row is predicted positive when `probs >= thr`. Return `(precision, recall, f_beta)` as floats, each 0.0
# when its denominator is 0, with no warning. Try it on the trapped model's validation outputs.

# %%
prf = ...
# BEGIN SOLUTION
def prf(labels, probs, thr, beta):
    predicted, actual = probs >= thr, labels.bool()
    tp = int((predicted & actual).sum())
    fp = int((predicted & ~actual).sum())
    fn = int((~predicted & actual).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    b2 = beta**2
    f_beta = (1 + b2) * precision * recall / (b2 * precision + recall) if b2 * precision + recall else 0.0
    return precision, recall, f_beta
# END SOLUTION

# %%
check("08.7", prf)

# %% [markdown]
# ### Exercise 08.8 · The balanced index mapping (difficulty 2, about 15 minutes)
#
# Write the arithmetic behind section 15's interleaving: `balanced_index(ndx, ratio, n_pos, n_neg)` returns
# `("pos", i)` or `("neg", i)` for sample `ndx` of a balanced epoch with one positive per `ratio` negatives:
# sample 0 is positive 0, then `ratio` negatives, then positive 1, and so on; both lists wrap around when they run
# out. Over an epoch, each negative must be visited once before any is visited twice.

# %%
balanced_index = ...
# BEGIN SOLUTION
def balanced_index(ndx, ratio, n_pos, n_neg):
    pos_ndx, remainder = divmod(ndx, ratio + 1)
    if remainder:
        return "neg", (ndx - 1 - pos_ndx) % n_neg
    return "pos", pos_ndx % n_pos
# END SOLUTION

# %%
check("08.8", balanced_index)

# %% [markdown]
# ### Exercise 08.9 · A 3D augmentation matrix (difficulty 3, about 30 minutes)
#
# Section 17 built a flip by hand. Write `augment_matrix(flip, offset, scale, angle)` that returns the whole 4 x 4
# matrix for `affine_grid`: `flip` three booleans, `offset` three shifts (in `affine_grid`'s normalised units),
# `scale` three factors (1.0 = unchanged), all in `affine_grid`'s (x, y, z) = (column, row, index) order, and `angle`
# in radians about the head-foot axis. Flip and scale each axis and set the offsets in one matrix T; then multiply
# it on the right by the rotation R of the x-y plane. Before checking, draw a crop under your matrix with
# `F.affine_grid` and `F.grid_sample` and see that it turns the way you expect.

# %%
import math  # noqa: E402

augment_matrix = ...
# BEGIN SOLUTION
def augment_matrix(flip, offset, scale, angle):
    transform = torch.eye(4, dtype=torch.float64)
    for axis in range(3):
        if flip[axis]:
            transform[axis, axis] *= -1
        transform[axis, 3] = offset[axis]
        transform[axis, axis] *= scale[axis]
    c, s = math.cos(angle), math.sin(angle)
    rotation = torch.tensor([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=torch.float64)
    return transform @ rotation
# END SOLUTION

# %%
check("08.9", augment_matrix)

# %% [markdown]
# ### Exercise 08.10 · Repair the loss and the validation (difficulty 2, about 15 minutes)
#
# A colleague's training loop has two bugs that do not crash. Their `compute_batch_loss` feeds the softmax
# probabilities to `cross_entropy` (which applies its own log-softmax), and their `validate` runs the model in
# training mode with gradients on, which updates BatchNorm's running statistics with validation data and keeps
# graphs alive. Fix both: `compute_batch_loss(model, batch)` returns `(per-sample loss, probabilities)` for a batch
# `(crops, labels, uids, centres)`; `validate(model, batches)` returns all the losses and probabilities of a list of
# batches, concatenated, without gradients, and leaves parameters and BatchNorm statistics unchanged.

# %%
def buggy_compute_batch_loss(model, batch):
    input_t, label_t = batch[0], batch[1]
    logits, probs = model(input_t)
    return F.cross_entropy(probs, label_t, reduction="none"), probs


def buggy_validate(model, batches):
    parts = [buggy_compute_batch_loss(model, batch) for batch in batches]
    return torch.cat([loss for loss, _ in parts]), torch.cat([probs for _, probs in parts])


compute_batch_loss = validate = ...
# BEGIN SOLUTION
def compute_batch_loss(model, batch):
    logits, probs = model(batch[0])
    return F.cross_entropy(logits, batch[1], reduction="none"), probs


def validate(model, batches):
    model.eval()
    with torch.no_grad():
        parts = [compute_batch_loss(model, batch) for batch in batches]
    return torch.cat([loss for loss, _ in parts]), torch.cat([probs for _, probs in parts])
# END SOLUTION

# %%
check("08.10", compute_batch_loss, validate)

# %% [markdown]
# ### Exercise 08.11 · A leakage audit (difficulty 2, about 20 minutes)
#
# Section 14 counted shared series. Go one step further: write `leakage(candidates, val_stride, split)` for a
# candidate list sorted as `getCandidateInfoList` sorts it, with the splits of `LunaDataset` (`"candidate"`: every
# `val_stride`-th row; `"series"`: every `val_stride`-th of the sorted series UIDs). Return `(shared_series,
# leaked_positives)`: the number of validation series that also appear in training, and the number of validation
# positive rows whose nodule also has a row in training. Two rows belong to the same nodule when they are in the same
# series, carry the same annotated diameter d > 0, and their centres are within d/2 on every axis. Run it on this
# chapter's list for both splits.

# %%
leakage = ...
# BEGIN SOLUTION
def leakage(candidates, val_stride, split):
    if split == "series":
        val_uids = set(sorted({c.series_uid for c in candidates})[::val_stride])
        val = [c for c in candidates if c.series_uid in val_uids]
        trn = [c for c in candidates if c.series_uid not in val_uids]
    else:
        val = candidates[::val_stride]
        trn = [c for i, c in enumerate(candidates) if i % val_stride]
    shared = len({c.series_uid for c in val} & {c.series_uid for c in trn})
    trn_pos = [c for c in trn if c.isNodule_bool and c.diameter_mm > 0]
    leaked = 0
    for c in val:
        if c.isNodule_bool and c.diameter_mm > 0:
            leaked += any(t.series_uid == c.series_uid and t.diameter_mm == c.diameter_mm
                          and all(abs(a - b) <= c.diameter_mm / 2 for a, b in zip(t.center_xyz, c.center_xyz))
                          for t in trn_pos)
    return shared, leaked


print("candidate split:", leakage(candidateInfo_list, 10, "candidate"), "| series split:",
      leakage(candidateInfo_list, 5, "series"))
# END SOLUTION

# %%
check("08.11", leakage)

# %% [markdown]
# ### Exercise 08.12 · Metric sums under DDP (difficulty 3, about 25 minutes)
#
# Inside a process group (section 19), write `allreduce_metrics(local)`: `local` is a dict of this process's metric
# sums (floats: true positives, loss sums, sample counts...). Return a dict with the same keys holding the sums over
# all processes, identical on every rank, with one collective call. The check starts two gloo processes on this CPU
# (from a module, with the *spawn* start method, which is also what works once CUDA is initialised) and gives each a
# hidden shard. Why sums, never averages?

# %%
allreduce_metrics = ...
# BEGIN SOLUTION
def allreduce_metrics(local):
    import torch
    import torch.distributed as dist

    keys = sorted(local)
    sums = torch.tensor([float(local[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(sums, op=dist.ReduceOp.SUM)
    return dict(zip(keys, sums.tolist()))
# END SOLUTION

# %%
check("08.12", allreduce_metrics)

# %% [markdown]
# ### Exercise 08.13 · A soft Dice loss (difficulty 1, about 10 minutes)
#
# For Part C's segmenter, write `dice_loss(pred, label, eps=1)`: per sample (the first axis), 1 - (2 Σ pred·label +
# eps) / (Σ pred + Σ label + eps), summed over every other axis. It must stay finite, and small, for a sample whose
# label is empty and whose prediction is nearly empty.

# %%
dice_loss = ...
# BEGIN SOLUTION
def dice_loss(pred, label, eps=1):
    dims = tuple(range(1, pred.dim()))
    overlap = (pred * label).sum(dim=dims)
    return 1 - (2 * overlap + eps) / (pred.sum(dim=dims) + label.sum(dim=dims) + eps)
# END SOLUTION

# %%
check("08.13", dice_loss)

# %% [markdown]
# ## Further reading
#
# - Stevens, Antiga & Viehmann, *Deep Learning with PyTorch*, part 2 (ch. 9-14): the LUNA project this chapter
#   follows, with the full-size code (`p2ch10` ... `p2ch14`).
# - Setio et al., *Validation, comparison, and combination of algorithms for automatic detection of pulmonary
#   nodules in computed tomography images: the LUNA16 challenge* (Medical Image Analysis, 2017).
# - Ronneberger, Fischer & Brox, *U-Net: Convolutional Networks for Biomedical Image Segmentation* (MICCAI 2015).
# - Milletari, Navab & Ahmadi, *V-Net* (3DV 2016), which introduced the soft Dice loss.
# - PyTorch tutorials: *Getting Started with Distributed Data Parallel* and *Fault-tolerant Distributed Training with
#   torchrun*.
# - The DICOM standard, part 3 (C.7.6.2, Image Plane Module), and the SimpleITK notebooks on image geometry.
