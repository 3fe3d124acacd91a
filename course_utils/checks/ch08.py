"""Checks for 08_ct: a display window and the Cranium bone mask, a DICOM series read from scratch, XYZ <-> IRC,
the fuzzy candidate/annotation join, a clamped crop, the class-imbalance arithmetic, precision/recall/F-beta,
the balanced index mapping, a 3D augmentation matrix, a loss and a validation loop to repair, a leakage audit,
metric sums all-reduced under DDP, and a soft Dice loss.

References are computed here in float64: the window formula and `course_utils.data.ct_masks()` (the shipped
Cranium masks, 08.1); a DICOM series written by the check with pydicom from the CT_small.dcm template
(`course_utils.data.ct_slice_path()`, 08.2); SimpleITK's `TransformPhysicalPointToIndex` (08.3); the join of
`course_utils.ct.dsets.getCandidateInfoList` (08.4); the clamping of `Ct.getRawCandidate` (08.5); the closed forms
of 08.6 on the candidate split of the chapter's mini-LUNA (`course_utils.data.mini_luna()`); the formulas of `course_utils.ct.training.metrics_from_sums` (08.7); `LunaDataset`'s
`ratio_int` mapping (08.8); `course_utils.ct.augment.augmentation_matrix` with its draws fixed, and
`F.affine_grid`/`F.grid_sample` (08.9); `F.cross_entropy` on a seeded `LunaModel` (08.10); the split of
`LunaDataset` on a hidden mini-LUNA (`make_mini_luna(n_series=8, seed=5)`, 08.11); sums over hidden shards
computed by two spawned gloo processes (08.12, about 5 s); the soft Dice formula and its autograd gradient
(08.13). What every check promises is in framework.py's docstring.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import os
import socket
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from course_utils.checks.framework import (
    F64,
    as_float,
    as_tensor,
    call,
    exercise,
    generator,
    one_line,
    require,
    require_callable,
    short,
    Wrong,
)

__all__ = [
    "check_allreduce", "check_augment_matrix", "check_balanced_index", "check_crop", "check_debug_loss",
    "check_dice", "check_dicom_series", "check_fuzzy_join", "check_imbalance", "check_leakage", "check_prf",
    "check_window", "check_xyz_irc",
]


def _numpy(value: Any, name: str) -> np.ndarray:
    """A learner's array or tensor as a float64 NumPy array (no finiteness check)."""
    require(value, name)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        return np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise Wrong(f"`{name}` should be an array of numbers, got a {type(value).__name__}.") from err


# ----------------------------------------------------------------------------------------------
# 08.1 a display window, and the Cranium bone mask
# ----------------------------------------------------------------------------------------------

_WINDOWS = ((40.0, 80.0), (40.0, 400.0), (500.0, 2000.0), (-600.0, 800.0))


def _window_ref(hu: np.ndarray, level: float, width: float) -> np.ndarray:
    return np.clip((hu - (level - width / 2)) / width, 0.0, 1.0)


def _window_hint(got: np.ndarray, hu: np.ndarray, level: float, width: float) -> str:
    lo = level - width / 2
    tries = [
        ((hu - lo) / width, "values outside [0, 1]: clip the result to [0, 1]."),
        (np.clip((hu - level) / width, 0, 1), "the window is centred on the level: its lower edge is level - width/2."),
        (np.clip((hu - lo) / (width / 2), 0, 1), "divide by the whole width, not half of it."),
        (np.clip((hu - (level + width / 2)) / width, 0, 1), "the lower edge is level minus half the width."),
        (1 - np.clip((hu - lo) / width, 0, 1), "the ramp runs the wrong way: low HU should map to 0 (dark)."),
        (255 * np.clip((hu - lo) / width, 0, 1), "scaled to 0..255: the window should return values in [0, 1]."),
        (np.clip((hu - lo) / width, 0, 1) >= 0.5, "a mask, not a ramp: map linearly between the window's edges."),
    ]
    for value, hint in tries:
        if value.shape == got.shape and np.allclose(got, value, atol=1e-6):
            return hint
    return "0 at level - width/2, 1 at level + width/2, linear between, clipped outside."


def _window_inputs() -> list[tuple[str, Any, np.ndarray]]:
    """(label, what the learner gets, the same values as float64): a float64 array, an int16 array, a float32 tensor
    and a float64 column, each holding values beyond both edges of every hidden window."""
    rng = np.random.default_rng(801)
    ends = np.array([-1100.0, -1024.0, 0.0, 2000.0, 3071.0])
    a = np.concatenate([rng.normal(0, 900, 94), ends]).reshape(9, 11)
    b = np.concatenate([rng.integers(-1100, 3100, 475), ends]).reshape(4, 10, 12).astype(np.int16)
    c = torch.tensor(np.concatenate([rng.integers(-1024, 3000, 205), ends]).reshape(6, 5, 7), dtype=torch.float32)
    d = np.concatenate([rng.uniform(-1100, 3100, 498), ends]).reshape(-1, 1)
    return [("a float64 array of shape (9, 11)", a.copy(), a),
            ("an int16 array of shape (4, 10, 12)", b.copy(), b.astype(np.float64)),
            ("a float32 tensor of shape (6, 5, 7)", c.clone(), c.double().numpy()),
            ("a float64 column (503, 1)", d.copy(), d)]


@exercise("08.1", "a window, and the bone mask")
def check_window(window: Any, bone_mask: Any) -> None:
    """`window(hu, level, width)`: hu a NumPy array (any dtype, int16 included) or a torch tensor of Hounsfield
    units. Returns an array or tensor of the same shape, clip((hu - (level - width/2)) / width, 0, 1), without
    changing hu. `bone_mask`: the learner's boolean (108, 256, 256) mask of bone in the Cranium volume.

    window: four hidden windows (brain 40/80, soft tissue 40/400, bone 500/2000, lung -600/800) on a float64 array,
    an int16 array and a float32 tensor, all with values on both sides of every window; atol 1e-6. bone_mask (a
    NumPy array or a torch tensor of bools or 0/1) must equal the shipped `mask_0` (`course_utils.data.ct_masks()`,
    stored 109 x 257 x 257 and cropped by dropping index 0 on each axis): IoU 1.0.
    """
    fn = require_callable(window, "window")
    for label, given, hu in _window_inputs():
        for level, width in _WINDOWS:
            expected = _window_ref(hu, level, width)
            before = given.copy() if isinstance(given, np.ndarray) else given.clone()
            out = call(fn, given, level, width, name="window")
            same = np.array_equal(before, given) if isinstance(given, np.ndarray) else torch.equal(before, given)
            if not same:
                raise Wrong(f"window changed the array it was given ({label}). Hint: compute a new array (no out=, "
                            "no in-place clip_ or -=).")
            got = _numpy(out, "window(...)")
            where = f"window({label}, level={level:g}, width={width:g})"
            if got.shape != hu.shape:
                raise Wrong(f"{where} has shape {got.shape}, expected {hu.shape}: one value per voxel.")
            if not np.isfinite(got).all():
                raise Wrong(f"{where} contains inf or nan.")
            if not np.allclose(got, expected, rtol=0, atol=1e-6):
                gap = float(np.abs(got - expected).max())
                raise Wrong(f"{where} is off by up to {gap:.3g}. Hint: {_window_hint(got, hu, level, width)}")
    _check_bone_mask(bone_mask)


@functools.lru_cache(maxsize=1)
def _shipped_mask_0() -> np.ndarray:
    from course_utils import data

    loader = getattr(data, "ct_masks", None)
    if loader is None:
        raise Wrong("the shipped Cranium masks are not available in this version of course_utils (data.ct_masks). "
                    "Hint: update the course package, then run this check again.")
    mask = np.asarray(loader()["mask_0"], dtype=bool)
    if mask.shape == (109, 257, 257):  # the stored form, if a loader ever hands it back uncropped
        mask = mask[1:, 1:, 1:]
    return mask


def _check_bone_mask(bone_mask: Any) -> None:
    require(bone_mask, "bone_mask")
    if isinstance(bone_mask, torch.Tensor):
        bone_mask = bone_mask.detach().cpu().numpy()
    if not isinstance(bone_mask, np.ndarray):
        raise Wrong(f"`bone_mask` should be a boolean array or tensor, got a {type(bone_mask).__name__}.")
    expected = _shipped_mask_0()
    if bone_mask.shape != expected.shape:
        hint = ("the stored masks have a one-voxel border: drop index 0 on each axis." if bone_mask.shape == (109, 257, 257)
                else "one value per voxel of the Cranium volume, (slices, rows, columns).")
        raise Wrong(f"`bone_mask` has shape {bone_mask.shape}, expected {expected.shape}. Hint: {hint}")
    if bone_mask.dtype != bool:
        values = np.unique(bone_mask)
        if not np.isin(values, (0, 1)).all():
            raise Wrong("`bone_mask` should hold True/False (or 0/1), but it holds other values. Hint: a comparison "
                        "of the HU with the two ends of the bone range, combined with &.")
        bone_mask = bone_mask.astype(bool)
    inter = int(np.count_nonzero(bone_mask & expected))
    union = int(np.count_nonzero(bone_mask | expected))
    if inter != union:
        iou = inter / union if union else 0.0
        more, fewer = int(np.count_nonzero(bone_mask & ~expected)), int(np.count_nonzero(~bone_mask & expected))
        side = ("it marks voxels the shipped mask leaves out" if more and not fewer else
                "it misses voxels of the shipped mask" if fewer and not more else "it differs both ways")
        raise Wrong(f"IoU(bone_mask, shipped mask_0) = {iou:.4f}, expected 1.0: {side} ({more:,} extra, {fewer:,} "
                    "missing). Hint: bone is a range of HU with both ends included; take the range InVesalius used "
                    "(data.ct_info()), not the HU ladder's rule of thumb.")


# ----------------------------------------------------------------------------------------------
# 08.2 a DICOM series read from scratch
# ----------------------------------------------------------------------------------------------

# (slices, rows, cols, PixelSpacing [row, col], slice step (mm, signed by instance number), slope, intercept,
#  PixelRepresentation, SliceThickness)
_SERIES_CASES = (
    (7, 24, 32, (0.7, 0.55), 2.5, 2, -1024, 0, 5.0),
    (6, 20, 18, (0.8125, 0.6), -1.25, 1, -1000, 1, 2.0),
)


def _write_series(folder: Path, case_no: int) -> dict:
    """Write one hidden series; return the truth (volume in HU sorted by z, spacing xyz, and the wrong orders)."""
    import pydicom
    from pydicom.uid import generate_uid

    from course_utils import data

    n, rows, cols, (sy, sx), step, slope, intercept, signed, thickness = _SERIES_CASES[case_no]
    rng = np.random.default_rng(820 + case_no)
    if signed:
        stored = rng.integers(-1000, 2500, (n, rows, cols)).astype(np.int16)
    else:
        stored = rng.integers(0, 3000, (n, rows, cols)).astype(np.uint16)
    z0 = -80.25 + 10 * case_no
    ds = pydicom.dcmread(data.ct_slice_path())
    ds.remove_private_tags()
    for keyword in ("PixelPaddingValue", "SpacingBetweenSlices", "DataSetTrailingPadding", "OtherPatientIDsSequence"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["course", "check 08.2", str(case_no)])
    ds.Rows, ds.Columns = rows, cols
    ds.PixelSpacing = [f"{sy:g}", f"{sx:g}"]
    ds.SliceThickness = f"{thickness:g}"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, signed
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    names = [f"IM{int(v):05d}.dcm" for v in rng.choice(90000, n, replace=False) + 10000]
    order_by_name = np.argsort(names)
    if np.array_equal(order_by_name, np.arange(n)) or np.array_equal(order_by_name, np.arange(n)[::-1]):
        names = names[1:] + names[:1]
    z = [z0 + k * step for k in range(n)]  # instance k + 1 sits at z[k]
    for k in range(n):
        uid = generate_uid(entropy_srcs=["course", "check 08.2", str(case_no), str(k)])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [-100.5, -90.25, f"{z[k]:g}"]
        ds.SliceLocation = f"{z[k]:g}"
        ds.PixelData = np.ascontiguousarray(stored[k], dtype="<i2" if signed else "<u2").tobytes()
        ds.save_as(folder / names[k], enforce_file_format=True)
    hu = stored.astype(np.float64) * slope + intercept
    by_z = np.argsort(z)
    return {"hu": hu[by_z], "stored": stored.astype(np.float64)[by_z], "slope": slope, "intercept": intercept,
            "by_name": hu[np.argsort(names)], "by_instance": hu, "spacing": (sx, sy, abs(step)),
            "thickness": thickness, "shape": (n, rows, cols)}


def _series_hint(got: np.ndarray, truth: dict) -> str:
    hu = truth["hu"]
    if got.shape == hu.shape:
        for value, hint in (
            (truth["by_name"], "the slices are in file-name order: the names say nothing about position. Sort by "
                               "ImagePositionPatient[2]."),
            (truth["by_instance"], "the slices are in InstanceNumber order, which can run against the position. Sort "
                                   "by ImagePositionPatient[2]."),
            (hu[::-1], "the slices run from the highest z down: sort by ImagePositionPatient[2], increasing."),
            (truth["stored"], "these are the stored values: apply RescaleSlope and RescaleIntercept to get HU."),
            (truth["stored"] + truth["intercept"], "RescaleSlope is missing: HU = stored * slope + intercept."),
            (truth["stored"] * truth["slope"], "RescaleIntercept is missing: HU = stored * slope + intercept."),
        ):
            if np.array_equal(got, value):
                return hint
        if np.array_equal(np.sort(got, axis=0), np.sort(hu, axis=0)):
            return "the slices are out of order: sort by ImagePositionPatient[2], increasing."
        return "stack pixel_array of every file, sorted by ImagePositionPatient[2], then stored * slope + intercept."
    if got.shape == hu.shape[::-1] or got.shape == (hu.shape[1], hu.shape[2], hu.shape[0]):
        return "stack the slices on the first axis: (slices, rows, columns)."
    return "one slice per file, stacked on the first axis: (slices, rows, columns)."


def _spacing_hint(got: np.ndarray, truth: dict) -> str:
    sx, sy, sz = truth["spacing"]
    for value, hint in (
        ((sy, sx, sz), "PixelSpacing is [row spacing, column spacing], i.e. [y, x]: x is its second value."),
        ((sz, sy, sx), "return the spacing in x, y, z order (columns, rows, slices)."),
        ((sx, sy, truth["thickness"]), "SliceThickness is not the distance between slices: take the difference of "
                                       "ImagePositionPatient[2] between neighbouring slices."),
        ((sy, sx, truth["thickness"]), "PixelSpacing is [y, x], and SliceThickness is not the distance between "
                                       "slices."),
        ((sx, sy, -sz), "the z spacing is a distance: positive, whichever way the positions run."),
    ):
        if np.allclose(got, value, rtol=0, atol=1e-6):
            return hint
    return "x and y from PixelSpacing ([row, column] = [y, x]), z from the step of ImagePositionPatient[2]."


@exercise("08.2", "a DICOM series from scratch")
def check_dicom_series(read_dicom_series: Any) -> None:
    """`read_dicom_series(folder)`: folder a str naming a directory of .dcm files, one slice each. Returns
    (hu_volume, spacing_xyz): hu_volume an int or float array or tensor (slices, rows, columns) in HU, slices in
    increasing ImagePositionPatient[2]; spacing_xyz three floats in mm (x, y, z).

    Two hidden series written by the check from CT_small.dcm, with file names that do not sort in slice order:
    7 slices of 24 x 32, unsigned stored pixels, RescaleSlope 2, RescaleIntercept -1024, PixelSpacing [0.7, 0.55],
    positions 2.5 mm apart while SliceThickness says 5; and 6 slices of 20 x 18, signed, slope 1, intercept -1000,
    whose positions fall as the instance number rises. The volume must equal the truth exactly; the spacing within
    1e-6 (x and y from PixelSpacing = [row spacing, column spacing], z from the positions).
    """
    fn = require_callable(read_dicom_series, "read_dicom_series")
    for case_no in range(len(_SERIES_CASES)):
        with tempfile.TemporaryDirectory(prefix="check08_") as tmp:
            truth = _write_series(Path(tmp), case_no)
            out = call(fn, tmp, name="read_dicom_series")
        n, rows, cols = truth["shape"]
        label = f"on a hidden series of {n} slices of {rows} x {cols}"
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Wrong(f"read_dicom_series should return a pair (hu_volume, spacing_xyz), got "
                        f"{one_line(repr(out), 60)}.")
        got = _numpy(out[0], "hu_volume")
        if got.shape != truth["hu"].shape or not np.array_equal(got, truth["hu"]):
            what = (f"has shape {got.shape}, expected {truth['hu'].shape}" if got.shape != truth["hu"].shape
                    else "is not the series in HU")
            raise Wrong(f"{label}, hu_volume {what}. Hint: {_series_hint(got, truth)}")
        spacing = _numpy(out[1], "spacing_xyz").reshape(-1)
        if spacing.size != 3:
            raise Wrong(f"`spacing_xyz` should be three numbers (x, y, z), got {spacing.size}.")
        if not np.allclose(spacing, truth["spacing"], rtol=0, atol=1e-6):
            raise Wrong(f"{label}, spacing_xyz is {tuple(np.round(spacing, 6).tolist())}, expected "
                        f"{truth['spacing']}. Hint: {_spacing_hint(spacing, truth)}")


# ----------------------------------------------------------------------------------------------
# 08.3 XYZ <-> IRC
# ----------------------------------------------------------------------------------------------


def _rotation(ax: float, az: float) -> np.ndarray:
    cx, sx, cz, sz = math.cos(ax), math.sin(ax), math.cos(az), math.sin(az)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ rx


# (label, origin xyz, spacing xyz, direction, size irc)
_GEOMETRIES = (
    ("non-cubic voxels", (-120.5, -80.25, -300.0), (0.7, 0.9, 2.5), np.eye(3), (40, 90, 110)),
    ("a flipped x axis", (150.0, -100.0, -200.0), (1.2, 1.2, 2.0), np.diag([-1.0, 1.0, 1.0]), (30, 60, 70)),
    ("a rotated direction", (-40.0, 25.0, 10.0), (0.8, 1.0, 1.6), _rotation(0.3, 0.5), (36, 50, 64)),
)


def _irc2xyz_ref(irc, origin, spacing, direction) -> np.ndarray:
    return direction @ (np.asarray(irc, dtype=np.float64)[::-1] * np.asarray(spacing)) + np.asarray(origin)


def _cri_float(xyz, origin, spacing, direction) -> np.ndarray:
    return (np.linalg.inv(direction) @ (np.asarray(xyz) - np.asarray(origin))) / np.asarray(spacing)


def _sitk_index(geometry, points_xyz) -> list[tuple[int, int, int]]:
    import SimpleITK as sitk

    _, origin, spacing, direction, size = geometry
    image = sitk.Image([int(s) for s in size[::-1]], sitk.sitkInt16)
    image.SetOrigin(origin)
    image.SetSpacing(spacing)
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    return [tuple(image.TransformPhysicalPointToIndex(tuple(float(v) for v in p)))[::-1] for p in points_xyz]


def _as_index(value: Any, name: str) -> tuple[int, int, int]:
    require(value, name)
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    items = list(value) if isinstance(value, (tuple, list, np.ndarray)) else None
    if items is None or len(items) != 3:
        raise Wrong(f"`{name}` should be three indices (index, row, col), got {one_line(repr(value), 60)}.")
    out = []
    for v in items:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)):
            raise Wrong(f"`{name}` should hold ints, got {one_line(repr(value), 80)}. Hint: round, then int(...): "
                        "array indices are whole numbers.")
        out.append(int(v))
    return tuple(out)


def _irc_hint(got, xyz, geometry) -> str:
    _, origin, spacing, direction, _ = geometry
    cri = _cri_float(xyz, origin, spacing, direction)
    no_dir = (np.asarray(xyz) - np.asarray(origin)) / np.asarray(spacing)
    plain = direction @ (np.asarray(xyz) - np.asarray(origin)) / np.asarray(spacing)
    for value, hint in (
        (np.floor(cri)[::-1], "the indices are truncated (floor or int()): round to the nearest voxel."),
        (np.trunc(cri)[::-1], "the indices are truncated (int()): round to the nearest voxel first."),
        (np.rint(cri), "the order is col, row, index: reverse it to (index, row, col)."),
        (np.rint(no_dir)[::-1], "the direction matrix is ignored: undo it (multiply by its inverse) before dividing "
                                "by the spacing."),
        (np.rint(plain)[::-1], "multiply by the inverse of the direction matrix, not by the matrix itself."),
        (np.rint((np.asarray(xyz) - np.asarray(origin)) @ np.linalg.inv(direction) / np.asarray(spacing))[::-1],
         "the inverse direction is applied from the wrong side (a transpose is missing)."),
        (np.rint(cri * np.asarray(spacing) ** 2)[::-1], "divide by the voxel size, don't multiply."),
    ):
        if tuple(int(v) for v in value) == tuple(got):
            return hint
    return "subtract the origin, multiply by the inverse direction, divide by the spacing, round, reverse to IRC."


def _xyz_hint(got, irc, geometry) -> str:
    _, origin, spacing, direction, _ = geometry
    cri = np.asarray(irc, dtype=np.float64)[::-1]
    for value, hint in (
        (cri * spacing + origin, "the direction matrix is ignored: rotate (direction @ ...) before adding the origin."),
        (np.asarray(irc, dtype=np.float64) * spacing + origin, "reverse (index, row, col) to (col, row, index) first."),
        (direction @ (cri / np.asarray(spacing)) + origin, "multiply by the voxel size, don't divide."),
        (direction @ (cri * spacing), "the origin is missing."),
        ((direction @ (cri * spacing) + origin)[::-1], "return x, y, z, not z, y, x."),
    ):
        if np.allclose(got, value, rtol=0, atol=1e-4):
            return hint
    return "reverse IRC to CRI, multiply by the spacing, apply the direction, add the origin."


@exercise("08.3", "XYZ <-> IRC")
def check_xyz_irc(xyz2irc: Any, irc2xyz: Any) -> None:
    """`xyz2irc(coord_xyz, origin_xyz, vxSize_xyz, direction_a)` -> (index, row, col) as ints (Python ints or NumPy
    integers, in a tuple, list, namedtuple or integer array), the nearest voxel; `irc2xyz(coord_irc, origin_xyz,
    vxSize_xyz, direction_a)` -> (x, y, z) in mm. coord_xyz, origin_xyz, vxSize_xyz are 3-tuples of floats,
    coord_irc a 3-tuple of ints, direction_a a (3, 3) float64 array (its columns are the x, y, z axes of the array).

    Three hidden geometries (non-cubic voxels, a flipped x axis, a rotated direction), 100 points each: irc2xyz
    within 1e-4 mm of the reference on integer IRC; xyz2irc equal to SimpleITK's TransformPhysicalPointToIndex
    (reversed to IRC) on random points inside the volume; the round trip xyz2irc(irc2xyz(irc)) == irc exactly.
    """
    to_irc = require_callable(xyz2irc, "xyz2irc")
    to_xyz = require_callable(irc2xyz, "irc2xyz")
    rng = np.random.default_rng(830)
    for geometry in _GEOMETRIES:
        label, origin, spacing, direction, size = geometry
        ints = [tuple(int(v) for v in rng.integers(0, size)) for _ in range(100)]
        floats = rng.uniform(0, np.asarray(size) - 1, (100, 3))
        points = [tuple(float(v) for v in _irc2xyz_ref(p, origin, spacing, direction)) for p in floats]
        for irc in ints:
            out = call(to_xyz, irc, origin, spacing, direction.copy(), name="irc2xyz")
            got = _numpy(out, "irc2xyz(...)").reshape(-1)
            if got.size != 3:
                raise Wrong(f"irc2xyz should return three coordinates (x, y, z), got {got.size} values.")
            expected = _irc2xyz_ref(irc, origin, spacing, direction)
            if not np.allclose(got, expected, rtol=0, atol=1e-4):  # float32 arithmetic is ~1e-5 mm off at 300 mm
                raise Wrong(f"with {label}, irc2xyz({irc}) = {tuple(np.round(got, 3).tolist())}, expected "
                            f"{tuple(np.round(expected, 3).tolist())}. Hint: {_xyz_hint(got, irc, geometry)}")
        expected_all = _sitk_index(geometry, points)
        for xyz, expected in zip(points, expected_all):
            got = _as_index(call(to_irc, xyz, origin, spacing, direction.copy(), name="xyz2irc"), "xyz2irc(...)")
            if got != expected:
                raise Wrong(f"with {label}, xyz2irc({tuple(round(v, 2) for v in xyz)}) = {got}, SimpleITK says "
                            f"{expected} (as IRC). Hint: {_irc_hint(got, xyz, geometry)}")
        for irc in ints:
            xyz = tuple(float(v) for v in _irc2xyz_ref(irc, origin, spacing, direction))
            got = _as_index(call(to_irc, xyz, origin, spacing, direction.copy(), name="xyz2irc"), "xyz2irc(...)")
            if got != irc:
                raise Wrong(f"with {label}, the round trip xyz2irc(irc2xyz({irc})) gives {got}. Hint: "
                            f"{_irc_hint(got, xyz, geometry)}")


# ----------------------------------------------------------------------------------------------
# 08.4 the fuzzy join
# ----------------------------------------------------------------------------------------------


def _join_ref(candidates, annotations, rule: str = "right") -> list[float]:
    """getCandidateInfoList's join; `rule` plants mistakes for the hints."""
    by_series: dict[str, list] = {}
    for uid, x, y, z, d in annotations:
        by_series.setdefault(uid if rule != "any series" else "", []).append(((x, y, z), d))
    out = []
    for uid, x, y, z, cls in candidates:
        best = 0.0
        if rule == "positives only" and not cls:
            out.append(0.0)
            continue
        for (ax, ay, az), d in by_series.get(uid if rule != "any series" else "", []):
            deltas = [abs(x - ax), abs(y - ay), abs(z - az)]
            if rule == "strict":
                hit = all(v < d / 4 for v in deltas)
            elif rule == "euclid":
                hit = math.sqrt(sum(v * v for v in deltas)) <= d / 4
            elif rule == "radius":
                hit = all(v <= d / 2 for v in deltas)
            else:
                hit = all(v <= d / 4 for v in deltas)
            if hit:
                if rule == "first":
                    best = d
                    break
                best = max(best, d)
        out.append(best)
    return out


_JOIN_HINTS = {
    "strict": "a centre exactly d/4 away matches: the rule is |delta| <= d/4, not <.",
    "euclid": "the rule is per axis (|dx|, |dy| and |dz| each <= d/4), not a Euclidean distance.",
    "radius": "the tolerance is a quarter of the diameter on each axis, not the radius.",
    "first": "when several annotations match, the largest diameter wins, not the first one found.",
    "positives only": "every candidate row is joined, whatever its class (as getCandidateInfoList does).",
    "any series": "an annotation only matches candidates of its own series.",
}


def _join_data() -> tuple[list, list]:
    """Hidden rows: jittered duplicates, an unannotated nodule, a boundary hit at exactly d/4, a near miss just
    beyond it, nested annotations (the smaller listed first), a different series at the same place, a negative row
    near a nodule, a diagonal offset inside d/4 per axis but beyond it in Euclidean distance."""
    rng = np.random.default_rng(840)
    uids = [f"1.3.6.1.4.1.14519.5.2.1.6279.6001.{n}" for n in rng.integers(10**9, 10**10, 4)]
    a, b, c, d = uids
    ann = [(a, 10.5, -20.25, 30.0, 8.0), (a, -60.0, 5.0, -12.0, 6.0), (a, -61.0, 5.5, -12.0, 16.0),
           (b, 40.0, 40.0, 40.0, 12.0), (c, 0.0, 0.0, 0.0, 4.5)]
    cand = [(a, 12.5, -20.25, 30.0, 1),          # exactly d/4 on x: matches (8.0)
            (a, 10.5, -18.23, 30.0, 1),          # 0.02 beyond d/4 on y: no match
            (a, 11.4, -19.4, 30.3, 1),           # jittered duplicate rows of one nodule
            (a, 9.9, -20.9, 29.2, 1),
            (a, -60.5, 5.2, -11.0, 1),           # inside both nested annotations: 16.0
            (a, -58.5, 6.5, -11.0, 0),           # a negative inside both: 16.0
            (b, 10.5, -20.25, 30.0, 1),          # series a's coordinates in series b: no match
            (b, 42.7, 37.3, 40.0, 1),            # 2.7 per axis (<= 3.0) but 3.8 in Euclidean distance: 12.0
            (b, 70.0, 70.0, 70.0, 1),            # an unannotated nodule
            (d, 40.0, 40.0, 40.0, 1),            # series b's annotation, series d: no match
            (c, 0.6, -0.5, 1.1, 1),              # 1.1 <= 1.125
            (c, 1.2, 0.0, 0.0, 0)]               # 1.2 > 1.125
    for _ in range(120):  # a random bulk: jittered rows around the annotations, and far negatives
        uid, x, y, z, dia = ann[int(rng.integers(len(ann)))]
        if rng.random() < 0.5:
            jitter = rng.uniform(-dia / 3, dia / 3, 3)
            cand.append((uid, float(x + jitter[0]), float(y + jitter[1]), float(z + jitter[2]), int(rng.random() < 0.8)))
        else:
            cand.append((uids[int(rng.integers(4))], *(float(v) for v in rng.uniform(-150, 150, 3)), 0))
    return cand, ann


@exercise("08.4", "the fuzzy join")
def check_fuzzy_join(fuzzy_join: Any) -> None:
    """`fuzzy_join(candidates, annotations)`: candidates a list of (series_uid, x, y, z, is_nodule) rows (str, three
    floats in mm, int 0/1), annotations a list of (series_uid, x, y, z, diameter_mm) rows, both as parsed from
    LUNA's csv files. Returns a list (or array) of floats, one per candidate row in order: the largest diameter d
    among the annotations of the same series whose centre is within d/4 of the candidate's on every axis
    (|dx| <= d/4 and |dy| <= d/4 and |dz| <= d/4), else 0.0. Every row is joined, whatever its class, as
    `getCandidateInfoList` does.

    132 hidden candidate rows over 4 series: duplicate jittered rows of one nodule, an unannotated nodule, a row
    exactly d/4 away, a near miss 0.02 mm beyond, nested annotations with the smaller listed first, a different
    series at the same coordinates, a negative row inside an annotation, a diagonal offset within d/4 per axis but
    beyond it in Euclidean distance. The number matched and every diameter must equal the reference (1e-9).
    """
    fn = require_callable(fuzzy_join, "fuzzy_join")
    cand, ann = _join_data()
    given_c, given_a = [tuple(r) for r in cand], [tuple(r) for r in ann]
    out = call(fn, given_c, given_a, name="fuzzy_join")
    if given_c != cand or given_a != ann:
        raise Wrong("fuzzy_join changed the rows it was given. Hint: build a new list of diameters.")
    got = _numpy(out, "fuzzy_join(...)").reshape(-1)
    expected = np.array(_join_ref(cand, ann))
    if got.size != expected.size:
        raise Wrong(f"fuzzy_join returned {got.size} values for {expected.size} candidate rows: one diameter per row, "
                    "in order (0.0 where nothing matches).")
    if np.allclose(got, expected, rtol=0, atol=1e-9):
        return
    matched, want = int(np.count_nonzero(got > 0)), int(np.count_nonzero(expected > 0))
    hint = "match on the same series and |delta| <= d/4 on every axis; keep the largest matching diameter."
    for rule, text in _JOIN_HINTS.items():
        if np.allclose(got, _join_ref(cand, ann, rule), rtol=0, atol=1e-9):
            hint = text
            break
    first = int(np.flatnonzero(~np.isclose(got, expected, rtol=0, atol=1e-9))[0])
    kind = "a nodule" if cand[first][4] else "a negative"
    raise Wrong(f"fuzzy_join matched {matched} rows, expected {want}; row {first} ({kind}) got {got[first]:g}, "
                f"expected {expected[first]:g}. Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 08.5 a crop clamped at the edges
# ----------------------------------------------------------------------------------------------

_CROP_CASES = (
    ((20, 30, 26), (6, 8, 10), [(0, 0, 0), (19, 29, 25), (10, 15, 13), (3, 4, 5), (2, 3, 4), (17, 26, 21),
                                (16, 25, 20), (0, 29, 12), (19, 0, 25), (9, 14, 1)]),
    ((18, 40, 40), (16, 24, 24), [(8, 20, 20), (0, 0, 39), (17, 39, 0), (9, 12, 28), (10, 27, 11)]),
    ((8, 12, 50), (8, 4, 6), [(4, 6, 25), (7, 11, 49), (0, 2, 3), (3, 10, 46)]),
)


def _crop_start(center: int, width: int, size: int) -> int:
    start = int(round(center - width / 2))
    end = start + width
    if start < 0:
        start, end = 0, width
    if end > size:
        start = size - width
    return start


@exercise("08.5", "a crop clamped at the edges")
def check_crop(crop: Any) -> None:
    """`crop(vol, center_irc, width_irc)`: vol a (D, H, W) NumPy array, center_irc three ints inside it, width_irc
    three even ints no larger than vol's sides. Returns the width_irc block around the centre (starting at
    center - width/2 on each axis), shifted inside the volume where it would cross an edge, as Ct.getRawCandidate
    does: never padded, never cut short.

    19 hidden centres in corners, on edges, one voxel from the point where clamping starts, and in the middle, on
    three volume shapes (the (16, 24, 24) crop of the chapter among them). The shape must always equal width_irc,
    the content the reference block exactly, and the block must contain the centre.
    """
    fn = require_callable(crop, "crop")
    for shape, width, centres in _CROP_CASES:
        vol = np.arange(1, math.prod(shape) + 1, dtype=np.float32).reshape(shape)  # every voxel unique and non-zero
        for center in centres:
            given = vol.copy()
            out = call(fn, given, tuple(center), tuple(width), name="crop")
            if not np.array_equal(given, vol):
                raise Wrong("crop changed the volume it was given. Hint: slice it; don't write into it.")
            got = _numpy(out, "crop(...)")
            label = f"crop(vol of shape {shape}, center_irc={center}, width_irc={width})"
            starts = [_crop_start(c, w, s) for c, w, s in zip(center, width, shape)]
            expected = vol[tuple(slice(a, a + w) for a, w in zip(starts, width))]
            if got.shape != expected.shape:
                cut = all(g <= w for g, w in zip(got.shape, width)) and got.ndim == 3
                hint = ("the block is cut short at the volume's edge: shift the window back inside instead." if cut else
                        "the crop is width_irc voxels on each axis, in (index, row, col) order.")
                raise Wrong(f"{label} has shape {got.shape}, expected {tuple(width)}. Hint: {hint}")
            if np.array_equal(got, expected):
                continue
            raise Wrong(f"{label} is not the expected block. Hint: {_crop_hint(got, vol, center, width, starts)}")


def _crop_hint(got, vol, center, width, starts) -> str:
    if (got == 0).any():
        return "it is padded with zeros: shift the window inside the volume instead of padding."
    first = int(got.flat[0]) - 1
    if not 0 <= first < vol.size:
        return "return the values of the volume itself, as a block of it."
    got_start = np.unravel_index(first, vol.shape)
    if not np.array_equal(got, vol[tuple(slice(a, a + w) for a, w in zip(got_start, width))]):
        return "return one contiguous block of the volume, as vol[i0:i1, r0:r1, c0:c1]."
    for axis, (a, b) in enumerate(zip(got_start, starts)):
        if a == b:
            continue
        name = ("index", "row", "col")[axis]
        if abs(a - b) == 1 and (b == 0 or b + width[axis] == vol.shape[axis]):
            return (f"on the {name} axis the block is one voxel off at the edge: clamp so that start >= 0 and "
                    "end <= the size of that axis (end is exclusive).")
        if not a <= center[axis] < a + width[axis]:
            return f"on the {name} axis the block misses the centre: start at center - width/2."
        if a == center[axis]:
            return f"on the {name} axis the block starts at the centre: start at center - width/2."
        return f"on the {name} axis the block starts at {a}, expected {b}: start at center - width/2, then shift inside."
    return "start at center - width/2 and shift the block inside the volume at its edges."


# ----------------------------------------------------------------------------------------------
# 08.6 the accuracy trap, in numbers
# ----------------------------------------------------------------------------------------------

_LUNA_POS, _LUNA_NEG, _BATCH = 1215, 494743, 32


@functools.lru_cache(maxsize=4)
def _mini_luna_candidates(n_series: int, seed: int) -> tuple:
    """The joined, sorted candidate list of a generated mini-LUNA (written to a temporary folder, then removed)."""
    from course_utils.ct import make_mini_luna
    from course_utils.ct.dsets import getCandidateInfoList

    with tempfile.TemporaryDirectory(prefix="check08_luna_") as tmp:
        make_mini_luna(Path(tmp), n_series=n_series, seed=seed)
        return tuple(getCandidateInfoList.__wrapped__(tmp))


def _training_counts() -> tuple[int, int]:
    """(positives, negatives) among the training rows of the chapter's mini-LUNA, candidate split, val_stride 10."""
    from course_utils.ct.dsets import getCandidateInfoList
    from course_utils.data import mini_luna

    rows = [c for i, c in enumerate(getCandidateInfoList(str(mini_luna()))) if i % 10]
    pos = sum(1 for c in rows if c.isNodule_bool)
    return pos, len(rows) - pos


@exercise("08.6", "the accuracy trap, in numbers")
def check_imbalance(acc_always_negative: Any, p_no_pos_batch32_here: Any, p_no_pos_batch32_luna: Any) -> None:
    """Three numbers (floats or one-element tensors): the accuracy of always answering "not a nodule" on the
    training rows of the chapter's mini-LUNA (`course_utils.data.mini_luna()`, candidate split with val_stride=10:
    every row whose position in the sorted candidate list is not a multiple of 10); the probability that a batch
    of 32 rows drawn at random (with replacement) from those rows holds no positive; the same for LUNA's
    1,215 positive and 494,743 negative candidates.

    The check counts the rows itself and compares with the closed forms, within 1e-3.
    """
    pos, neg = _training_counts()
    share = neg / (pos + neg)
    luna = _LUNA_NEG / (_LUNA_POS + _LUNA_NEG)
    got = [as_float(v, n) for v, n in ((acc_always_negative, "acc_always_negative"),
                                       (p_no_pos_batch32_here, "p_no_pos_batch32_here"),
                                       (p_no_pos_batch32_luna, "p_no_pos_batch32_luna"))]
    for value, name in zip(got, ("acc_always_negative", "p_no_pos_batch32_here", "p_no_pos_batch32_luna")):
        if not math.isfinite(value) or not 0 <= value <= 1:
            raise Wrong(f"`{name}` is {value:g}: a probability (or an accuracy as a fraction) lies in [0, 1]. "
                        "Hint: give fractions, not percentages.")
    if abs(got[0] - share) > 1e-3:
        if abs(got[0] - (1 - share)) <= 1e-3:
            hint = "that is the share of positives: always answering negative is right on every negative."
        elif abs(got[0] - neg / pos) <= 1e-3 or abs(got[0] - pos / neg) <= 1e-3:
            hint = "that is a ratio of the two counts: accuracy is the share of rows answered right."
        else:
            hint = ("count the positive and negative rows of the training side of the split (the rows not in "
                    "validation), then the share answered right.")
        raise Wrong(f"acc_always_negative = {got[0]:.4f} is not right. Hint: {hint}")
    for value, p, name in ((got[1], share, "p_no_pos_batch32_here"), (got[2], luna, "p_no_pos_batch32_luna")):
        expected = p ** _BATCH
        if abs(value - expected) <= 1e-3:
            continue
        if abs(value - (1 - expected)) <= 1e-3:
            hint = "that is the chance of at least one positive: the question is the chance of none."
        elif abs(value - (1 - p) ** _BATCH) <= 1e-3 or abs(value - (1 - p)) <= 1e-3:
            hint = "that is built from the share of positives: no positive means 32 negatives in a row."
        elif abs(value - p * _BATCH) <= 1e-3 or abs(value - p) <= 1e-3:
            hint = "32 independent draws must all be negative: the chances multiply."
        else:
            hint = "each of the 32 draws is a negative with probability (negatives / all rows), independently."
        raise Wrong(f"`{name}` = {value:.4f} is not right. Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 08.7 precision, recall and F-beta
# ----------------------------------------------------------------------------------------------


def _prf_ref(labels: torch.Tensor, probs: torch.Tensor, thr: float, beta: float, variant: str = "right"):
    pos = labels.bool()
    pred = probs >= thr
    tp = int((pos & pred).sum())
    fp = int((~pos & pred).sum())
    fn = int((pos & ~pred).sum())
    nan = float("nan") if variant == "nan" else 0.0
    p = tp / (tp + fp) if tp + fp else nan
    r = tp / (tp + fn) if tp + fn else nan
    b2 = beta if variant == "beta" else beta * beta
    if variant == "swap":
        p, r = r, p
    denom = b2 * p + r
    f = (1 + b2) * p * r / denom if denom and denom == denom else (nan if variant == "nan" else 0.0)
    if variant == "f1":
        f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def _prf_cases():
    g = generator(870)
    out = []
    for n, thr, beta, kind in ((60, 0.5, 1.0, "mixed"), (40, 0.3, 2.0, "mixed"), (50, 0.7, 0.5, "mixed"),
                               (30, 0.5, 2.0, "all negative"), (25, 0.4, 1.0, "no positives"),
                               (200, 0.6, 0.5, "mixed")):
        labels = (torch.rand(n, generator=g) < 0.3).long()
        probs = (0.6 * torch.rand(n, generator=g) + 0.4 * labels).float()
        if kind == "all negative":
            probs = probs * 0.4  # every probability below the threshold
        if kind == "no positives":
            labels = torch.zeros(n, dtype=torch.long)
        probs = torch.where((probs - thr).abs() < 1e-4, probs + 2e-4, probs)  # no ties with the threshold
        out.append((labels, probs, thr, beta, kind))
    return out


@exercise("08.7", "precision, recall, F-beta")
def check_prf(prf: Any) -> None:
    """`prf(labels, probs, thr, beta)`: labels an int64 (N,) tensor of 0/1, probs a float32 (N,) tensor of P(nodule),
    thr a float (a sample is predicted positive when probs >= thr), beta a float. Returns (precision, recall, fbeta)
    as floats or one-element tensors, fbeta = (1 + beta²) P R / (beta² P + R); each is 0.0 when its denominator is 0.

    Six hidden cases: β in {0.5, 1, 2}, one where every prediction is negative, one without positive labels. Exact
    to 1e-6, and prf must not emit a warning (a RuntimeWarning from 0/0 counts).
    """
    fn = require_callable(prf, "prf")
    for labels, probs, thr, beta, kind in _prf_cases():
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            out = call(fn, labels.clone(), probs.clone(), thr, beta, name="prf")
        label = f"prf on a hidden batch ({kind}, thr={thr}, beta={beta})"
        if not isinstance(out, (tuple, list)) or len(out) != 3:
            raise Wrong(f"prf should return three numbers (precision, recall, fbeta), got {one_line(repr(out), 60)}.")
        got = [as_float(v, n) for v, n in zip(out, ("precision", "recall", "fbeta"))]
        expected = _prf_ref(labels, probs, thr, beta)
        if any(v != v for v in got):
            raise Wrong(f"{label} returned {tuple(round(v, 4) for v in got)}: nan where a denominator is 0. Hint: test "
                        "the denominator first and return 0.0 when it is empty.")
        if not np.allclose(got, expected, rtol=0, atol=1e-6):
            hint = "precision = TP / (TP + FP), recall = TP / (TP + FN), then the F-beta formula."
            for variant, text in (("swap", "precision and recall are swapped: precision divides by everything "
                                           "predicted positive, recall by every real positive."),
                                  ("beta", "beta enters the formula squared."),
                                  ("f1", "that is F1 for every beta: use beta in the formula.")):
                if np.allclose(got, _prf_ref(labels, probs, thr, beta, variant), rtol=0, atol=1e-6):
                    hint = text
                    break
            raise Wrong(f"{label} gives {tuple(round(v, 4) for v in got)}, expected "
                        f"{tuple(round(v, 4) for v in expected)}. Hint: {hint}")
        if caught:
            raise Wrong(f"{label} emitted a warning ({one_line(str(caught[0].message), 80)}). Hint: don't divide by an "
                        "empty count; test it first and return 0.0.")


# ----------------------------------------------------------------------------------------------
# 08.8 the balanced index mapping
# ----------------------------------------------------------------------------------------------

_BALANCE_CASES = ((1, 7, 123), (3, 13, 50), (2, 5, 9))
_BALANCE_N = 10_000


def _balanced_ref(ndx: int, ratio: int, n_pos: int, n_neg: int) -> tuple[str, int]:
    pos_ndx, rest = divmod(ndx, ratio + 1)
    if rest:
        return "neg", (ndx - 1 - pos_ndx) % n_neg
    return "pos", pos_ndx % n_pos


def _as_pair(value: Any, label: str) -> tuple[str, int]:
    if not isinstance(value, (tuple, list)) or len(value) != 2 or value[0] not in ("pos", "neg"):
        raise Wrong(f"{label} returned {one_line(repr(value), 60)}; expected a pair ('pos' or 'neg', index).")
    i = value[1]
    if isinstance(i, torch.Tensor) and i.numel() == 1 and not i.is_floating_point():
        i = int(i.item())
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise Wrong(f"{label} returned the index {i!r}: it should be an int.")
    return value[0], int(i)


@exercise("08.8", "the balanced index mapping")
def check_balanced_index(balanced_index: Any) -> None:
    """`balanced_index(ndx, ratio, n_pos, n_neg)` -> ('pos', i) or ('neg', i): which list dataset item `ndx` of a
    balanced epoch reads, and where, as LunaDataset does with ratio_int: item 0 is a positive, then `ratio`
    negatives, then the next positive, and so on; each list is read in order and wraps around (i < its length).

    For ratios 1, 3 and 2 and hidden list lengths, over the first 10,000 indices: every answer equals the reference;
    the positive share is exactly 1/(ratio + 1); indices stay inside their list; the first n_neg negatives visit
    every negative once.
    """
    fn = require_callable(balanced_index, "balanced_index")
    for ratio, n_pos, n_neg in _BALANCE_CASES:
        got = []
        for ndx in range(_BALANCE_N):
            label = f"balanced_index({ndx}, ratio={ratio}, n_pos={n_pos}, n_neg={n_neg})"
            got.append(_as_pair(call(fn, ndx, ratio, n_pos, n_neg, name="balanced_index"), label))
        expected = [_balanced_ref(ndx, ratio, n_pos, n_neg) for ndx in range(_BALANCE_N)]
        if got == expected:
            continue
        where = f"with ratio={ratio}, n_pos={n_pos}, n_neg={n_neg}"
        share = sum(1 for kind, _ in got if kind == "pos") / _BALANCE_N
        if share != 1 / (ratio + 1):
            raise Wrong(f"{where}, {share:.2%} of the first {_BALANCE_N:,} items are positives, expected exactly "
                        f"1/(ratio + 1) = {1 / (ratio + 1):.2%}. Hint: one positive, then `ratio` negatives, repeating.")
        kinds_right = [k for k, _ in got] == [k for k, _ in expected]
        if not kinds_right:
            ndx = next(n for n, (a, b) in enumerate(zip(got, expected)) if a[0] != b[0])
            raise Wrong(f"{where}, item {ndx} is a {got[ndx][0]}, expected a {expected[ndx][0]}. Hint: the positive comes "
                        "first in each group of ratio + 1 items (ndx % (ratio + 1) == 0).")
        for kind, size in (("pos", n_pos), ("neg", n_neg)):
            bad = [i for k, i in got if k == kind and not 0 <= i < size]
            if bad:
                raise Wrong(f"{where}, a {kind} index is {bad[0]}, outside its list of {size}. Hint: wrap around with "
                            "% the length of the list.")
        if [i for k, i in got if k == "neg"] == [ndx % n_neg for ndx, (k, _) in enumerate(expected) if k == "neg"]:
            raise Wrong(f"{where}, the negative rows read are ndx % n_neg, which skips rows. Hint: count only the "
                        "negatives read before this item (ndx minus the positives so far, minus 1).")
        negs = [i for k, i in got if k == "neg"][:n_neg]
        if sorted(negs) != list(range(n_neg)):
            missed = n_neg - len(set(negs))
            raise Wrong(f"{where}, the first {n_neg} negatives read visit only {n_neg - missed} different rows. Hint: "
                        "count negatives separately from positives: the k-th negative read is row k (mod n_neg).")
        ndx = next(n for n, (a, b) in enumerate(zip(got, expected)) if a != b)
        raise Wrong(f"{where}, item {ndx} reads {got[ndx]}, expected {expected[ndx]}. Hint: the k-th positive read is "
                    "row k % n_pos and the k-th negative read is row k % n_neg, both counted from 0.")


# ----------------------------------------------------------------------------------------------
# 08.9 a 3D augmentation matrix
# ----------------------------------------------------------------------------------------------

_AUGMENT_CASES = (
    ((False, False, False), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0), 0.0),
    ((True, False, False), (0.1, -0.05, 0.0), (1.1, 0.9, 1.0), 0.3),
    ((True, True, False), (0.0, 0.08, -0.1), (1.0, 1.0, 1.15), 2.0),
    ((False, False, True), (-0.1, 0.0, 0.05), (0.85, 1.2, 1.0), -1.2),
    ((True, True, True), (0.05, 0.05, 0.05), (1.2, 0.8, 0.9), 0.8),
)


def _augment_ref(flip, offset, scale, angle, variant: str = "right") -> torch.Tensor:
    """augmentation_matrix with its draws fixed; `variant` plants mistakes for the hints."""
    t = torch.eye(4, dtype=F64)
    for axis in range(3):
        src = 2 - axis if variant == "irc order" else axis
        if flip[src]:
            t[axis, axis] *= -1
        t[axis, 3] = offset[src]
        t[axis, axis] *= (1 + scale[src]) if variant == "1+scale" else scale[src]
    if variant == "offset row":
        t[3, :3], t[:3, 3] = t[:3, 3].clone(), 0.0
    c, s = math.cos(angle), math.sin(angle)
    if variant == "negative angle":
        s = -s
    if variant == "axis x":
        r = torch.tensor([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]], dtype=F64)
    elif variant == "axis y":
        r = torch.tensor([[c, 0, s, 0], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1]], dtype=F64)
    else:
        r = torch.tensor([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=F64)
    return r @ t if variant == "rotate first" else t @ r


_AUGMENT_HINTS = {
    "rotate first": "the order is wrong: build the flip/scale/offset matrix T, then return T @ R.",
    "negative angle": "the rotation turns the wrong way: R = [[cos, -sin], [sin, cos]] in its x, y block.",
    "irc order": "flip, offset and scale are given in affine_grid's (x, y, z) = (col, row, index) order: entry 0 is x.",
    "1+scale": "scale holds the factors themselves (1.0 = unchanged), not their change from 1.",
    "offset row": "the offsets go in the last column (rows 0-2, column 3), not the last row.",
}


def _blob_volume() -> torch.Tensor:
    """(1, 1, 12, 20, 22) float64: a Gaussian blob centred off the middle, at (index, row, col) = (4.5, 6.0, 14.5)."""
    i, r, c = torch.meshgrid(torch.arange(12.0, dtype=F64), torch.arange(20.0, dtype=F64),
                             torch.arange(22.0, dtype=F64), indexing="ij")
    return torch.exp(-((i - 4.5) ** 2 / 4.0 + (r - 6.0) ** 2 / 6.0 + (c - 14.5) ** 2 / 6.0))[None, None]


def _resampled_com(matrix: torch.Tensor, vol: torch.Tensor) -> torch.Tensor:
    grid = F.affine_grid(matrix[:3].unsqueeze(0).to(F64), list(vol.shape), align_corners=False)
    out = F.grid_sample(vol, grid, padding_mode="border", align_corners=False)[0, 0]
    weight = (out - out.min()).clamp(min=0)
    axes = [torch.arange(n, dtype=F64) for n in out.shape]
    total = weight.sum()
    return torch.stack([(weight.sum(dim=tuple(d for d in range(3) if d != k)) * axes[k]).sum() / total
                        for k in range(3)])


@exercise("08.9", "a 3D augmentation matrix")
def check_augment_matrix(augment_matrix: Any) -> None:
    """`augment_matrix(flip, offset, scale, angle)`: flip three bools, offset three floats, scale three floats (the
    factors, 1.0 = unchanged), all in affine_grid's (x, y, z) = (col, row, index) order, and angle in radians.
    Returns a (4, 4) float tensor (float32 or float64) for `F.affine_grid(matrix[:3][None], ...)`, composed as
    `course_utils.ct.augment.augmentation_matrix` does: T = identity with T[a, a] = (-1 if flip[a] else 1) * scale[a]
    and T[a, 3] = offset[a] for a = 0, 1, 2, then T @ R, where R turns x and y by `angle` about the z (index) axis:
    R[:2, :2] = [[cos, -sin], [sin, cos]].

    Five hidden cases (the identity among them): the sign of det(matrix) is set by the number of flips; the z axis is
    left alone (row 2 and column 2 have no x or y part); resampling a hidden volume with an off-centre blob
    (`grid_sample`, align_corners=False, padding_mode="border") moves its centre of mass where the reference matrix
    does, within 1 voxel; and the matrix equals the reference within 1e-6.
    """
    fn = require_callable(augment_matrix, "augment_matrix")
    vol = _blob_volume()
    for flip, offset, scale, angle in _AUGMENT_CASES:
        label = f"augment_matrix(flip={flip}, offset={offset}, scale={scale}, angle={angle})"
        out = call(fn, tuple(flip), tuple(offset), tuple(scale), angle, name="augment_matrix")
        got = as_tensor(out, label)
        if tuple(got.shape) != (4, 4):
            raise Wrong(f"{label} has shape {tuple(got.shape)}, expected (4, 4). Hint: a 4 x 4 homogeneous matrix; "
                        "affine_grid takes its first three rows.")
        if not torch.isfinite(got).all():
            raise Wrong(f"{label} contains inf or nan.")
        expected = _augment_ref(flip, offset, scale, angle)
        n_flips = sum(bool(f) for f in flip)
        det = float(torch.linalg.det(got))
        if det == 0 or (det < 0) != (n_flips % 2 == 1):
            raise Wrong(f"{label} has determinant {det:.3g} with {n_flips} flip(s): each flip should change its sign. "
                        "Hint: a flip multiplies its axis's diagonal entry by -1.")
        if not torch.allclose(got[3], torch.tensor([0, 0, 0, 1], dtype=F64), atol=1e-9):
            hint = (_AUGMENT_HINTS["offset row"] if torch.allclose(got, _augment_ref(flip, offset, scale, angle,
                                                                                     "offset row"), atol=1e-6)
                    else "the last row of a homogeneous matrix is [0, 0, 0, 1].")
            raise Wrong(f"{label} has the last row {short(got[3])}. Hint: {hint}")
        if got[2, :2].abs().max() > 1e-6 or got[:2, 2].abs().max() > 1e-6:
            raise Wrong(f"{label} mixes z (the index axis) with x or y. Hint: rotate about the z (head-foot) axis only, "
                        "turning x and y (col and row): the voxels are not cubic along z.")
        gap = float((_resampled_com(got, vol) - _resampled_com(expected, vol)).abs().max())
        if gap > 1.0 or not torch.allclose(got, expected, rtol=0, atol=1e-6):
            hint = "build T (flips, scales, offsets) and R (rotation about z), then return T @ R."
            for variant, text in _AUGMENT_HINTS.items():
                if torch.allclose(got, _augment_ref(flip, offset, scale, angle, variant), rtol=0, atol=1e-6):
                    hint = text
                    break
            moved = f"moves the blob's centre of mass {gap:.2f} voxels away from where the reference puts it" \
                if gap > 1.0 else f"is {short(got[:3].flatten())}, expected {short(expected[:3].flatten())}"
            raise Wrong(f"{label} {moved}. Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 08.10 a loss and a validation loop to repair
# ----------------------------------------------------------------------------------------------

_DEBUG_CROP = (16, 16, 16)


def _debug_model_and_batches():
    """A seeded LunaModel (2 channels, 16³ crops) whose BatchNorm has seen two batches, and four hidden batches."""
    from course_utils.ct.model import LunaModel

    g = generator(8100)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(8101)
        model = LunaModel(conv_channels=2, crop=_DEBUG_CROP)
    batches = []
    for k, n in enumerate((6, 5, 7, 4)):
        x = (torch.randn(n, 1, *_DEBUG_CROP, generator=g) * 300 - 400).clamp(-1000, 1000)
        y = torch.zeros(n, dtype=torch.long)
        y[: 1 + k % 3] = 1
        y = y[torch.randperm(n, generator=g)]
        uids = [f"series{k}.{j}" for j in range(n)]
        batches.append((x, y, uids, torch.randint(0, 30, (n, 3), generator=g)))
    model.train()
    with torch.no_grad():
        for x, *_ in batches[:2]:
            model(x)
    return model, batches


def _bn_state(model) -> list[torch.Tensor]:
    return [b.clone() for name, b in model.named_buffers()]


def _loss_and_probs(out: Any, n: int, label: str) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(out, (tuple, list)) or len(out) != 2:
        raise Wrong(f"{label} should return a pair (per-sample losses, probabilities), got {one_line(repr(out), 60)}.")
    loss, probs = out
    if not isinstance(loss, torch.Tensor) or not isinstance(probs, torch.Tensor):
        raise Wrong(f"{label} should return two tensors (losses, probabilities).")
    if tuple(loss.shape) != (n,):
        hint = ("a single number: use reduction='none' to keep one loss per sample." if loss.numel() == 1 else
                "one loss per sample.")
        raise Wrong(f"{label}'s losses have shape {tuple(loss.shape)}, expected ({n},). Hint: {hint}")
    if tuple(probs.shape) != (n, 2):
        raise Wrong(f"{label}'s probabilities have shape {tuple(probs.shape)}, expected ({n}, 2): the model's softmax "
                    "output, both classes.")
    return loss, probs


def _loss_hint(loss: torch.Tensor, logits: torch.Tensor, probs: torch.Tensor, y: torch.Tensor) -> str:
    got = loss.detach().double()
    for value, hint in (
        (F.cross_entropy(probs, y, reduction="none"), "the loss is computed from the softmax probabilities: "
                                                     "cross_entropy takes the logits and applies log-softmax itself."),
        (F.nll_loss(logits, y, reduction="none"), "nll_loss expects log-probabilities; cross_entropy takes the logits."),
        (F.nll_loss(probs, y, reduction="none"), "nll_loss expects log-probabilities; cross_entropy takes the logits."),
        (F.cross_entropy(logits, 1 - y, reduction="none"), "the labels are flipped: class 1 is the nodule."),
    ):
        if torch.allclose(got, value.double(), atol=1e-6):
            return hint
    return "F.cross_entropy(logits, labels, reduction='none'), with the logits the model returns first."


@exercise("08.10", "repair the loss and the validation")
def check_debug_loss(compute_batch_loss: Any, validate: Any) -> None:
    """`compute_batch_loss(model, batch)`: model returns (logits (N, 2), probabilities (N, 2)) like LunaModel; batch
    a tuple whose first two items are the input (N, 1, D, H, W) float32 and the labels (N,) int64 (then the series
    uids and centres, which it ignores). Returns (per-sample loss (N,), probabilities (N, 2)); the loss must keep its
    gradient (training calls .mean().backward() on it). `validate(model, batches)`: batches a list of such tuples.
    Returns (losses (M,), probabilities (M, 2)) over all batches in order, without gradients and without changing
    the model (BatchNorm's running statistics included). validate may leave the model in eval mode (the training
    loop calls model.train() at the start of each epoch); gradients must be on again afterwards.

    On a seeded LunaModel (2 channels, 16³ crops) in train mode and four hidden batches: compute_batch_loss's loss
    equals F.cross_entropy(logits, y, reduction='none') within 1e-6 and has a gradient; after validate, every
    parameter and BatchNorm buffer is unchanged, the outputs have requires_grad False, and the losses equal the
    eval-mode reference within 1e-5.
    """
    loss_fn = require_callable(compute_batch_loss, "compute_batch_loss")
    val_fn = require_callable(validate, "validate")
    model, batches = _debug_model_and_batches()
    x, y = batches[2][0], batches[2][1]
    ref_model = copy.deepcopy(model)
    out = call(loss_fn, model, batches[2], name="compute_batch_loss")
    loss, probs = _loss_and_probs(out, len(y), "compute_batch_loss")
    with torch.no_grad():
        logits_ref, probs_ref = ref_model(x)
    expected = F.cross_entropy(logits_ref, y, reduction="none")
    if not torch.allclose(loss.detach().double(), expected.double(), atol=1e-6):
        raise Wrong(f"compute_batch_loss's losses are {short(loss.detach())}, expected {short(expected)}. Hint: "
                    f"{_loss_hint(loss, logits_ref, probs_ref, y)}")
    if not torch.allclose(probs.detach().double(), probs_ref.double(), atol=1e-6):
        raise Wrong("compute_batch_loss's probabilities are not the model's: return the second output of model(x).")
    if not loss.requires_grad:
        raise Wrong("compute_batch_loss's loss has no gradient, so training could not call backward on it. Hint: "
                    "leave no_grad, detach and .item() to validation.")

    model, batches = _debug_model_and_batches()
    model.train()
    params_before = [p.detach().clone() for p in model.parameters()]
    buffers_before = _bn_state(model)
    eval_model = copy.deepcopy(model).eval()
    grad_before = torch.is_grad_enabled()
    try:
        out = call(val_fn, model, batches, name="validate")
        grad_after = torch.is_grad_enabled()
    finally:
        torch.set_grad_enabled(grad_before)
    n = sum(len(b[1]) for b in batches)
    loss, probs = _loss_and_probs(out, n, "validate")
    changed = any(not torch.equal(a, b) for a, b in zip(buffers_before, _bn_state(model)))
    if changed:
        raise Wrong("validate changed BatchNorm's running statistics: in train mode every batch updates them, even "
                    "under no_grad. Hint: switch the model to evaluation mode before validating.")
    if any(not torch.equal(a, p.detach()) for a, p in zip(params_before, model.parameters())):
        raise Wrong("validate changed the model's parameters. Hint: validation only reads the model: no optimizer step.")
    if loss.requires_grad or probs.requires_grad:
        raise Wrong("validate's outputs require gradients: autograd recorded a graph for every validation batch. Hint: "
                    "run the loop under torch.no_grad().")
    if not grad_after:
        raise Wrong("validate left gradients switched off for the rest of the notebook. Hint: use the context manager "
                    "`with torch.no_grad():`, which turns them back on.")
    with torch.no_grad():
        parts = [eval_model(b[0]) for b in batches]
    logits_ref = torch.cat([p[0] for p in parts])
    probs_ref = torch.cat([p[1] for p in parts])
    labels = torch.cat([b[1] for b in batches])
    expected = F.cross_entropy(logits_ref, labels, reduction="none")
    if not torch.allclose(loss.double(), expected.double(), atol=1e-5):
        raise Wrong(f"validate's losses are {short(loss)}, expected {short(expected)}. Hint: "
                    f"{_loss_hint(loss, logits_ref, probs_ref, labels)} Concatenate the batches in order.")
    if not torch.allclose(probs.double(), probs_ref.double(), atol=1e-5):
        raise Wrong("validate's probabilities are not the eval-mode model's, batch after batch in order.")


# ----------------------------------------------------------------------------------------------
# 08.11 a leakage audit
# ----------------------------------------------------------------------------------------------


def _split(candidates, val_stride: int, split: str):
    if split == "series":
        val_uids = set(sorted({c.series_uid for c in candidates})[::val_stride])
        val = [c for c in candidates if c.series_uid in val_uids]
        trn = [c for c in candidates if c.series_uid not in val_uids]
    else:
        val = list(candidates[::val_stride])
        trn = [c for i, c in enumerate(candidates) if i % val_stride]
    return trn, val


def _leakage_ref(candidates, val_stride: int, split: str, variant: str = "right") -> tuple[int, int]:
    trn, val = _split(candidates, val_stride, split)
    trn_uids = {c.series_uid for c in trn}
    shared = len({c.series_uid for c in val} & trn_uids)
    trn_pos: dict[str, list] = {}
    for c in trn:
        if c.isNodule_bool:
            trn_pos.setdefault(c.series_uid, []).append(c)
    count = 0
    for c in val:
        if not c.isNodule_bool:
            continue
        if variant == "all positives":
            count += 1
            continue
        if variant == "same series":
            count += c.series_uid in trn_pos
            continue
        d = c.diameter_mm
        if d <= 0:
            continue
        count += any(t.diameter_mm == d and all(abs(a - b) <= d / 2 for a, b in zip(t.center_xyz, c.center_xyz))
                     for t in trn_pos.get(c.series_uid, []))
    if variant == "rows":
        shared = sum(1 for c in val if c.series_uid in trn_uids)
    return shared, count


_LEAK_CASES = ((10, "candidate"), (10, "series"), (4, "candidate"), (3, "series"))


@exercise("08.11", "a leakage audit")
def check_leakage(leakage: Any) -> None:
    """`leakage(candidates, val_stride, split)`: candidates a list of CandidateInfoTuple as getCandidateInfoList
    returns it (sorted), split "candidate" (validation = candidates[::val_stride], training = the rest) or "series"
    (validation = the rows of every val_stride-th series uid in sorted order). Returns two ints: the number of
    distinct validation series that also have rows in training, and the number of validation positive rows whose
    nodule also has a positive row in training. Two positive rows show the same nodule when they are in the same
    series, have the same diameter_mm d > 0 (the annotation the join gave them) and their centres differ by at most
    d/2 on every axis; positive rows without a diameter (unannotated nodules) never count.

    On a hidden mini-LUNA (`make_mini_luna(n_series=8, seed=5)`, 2,009 rows, generated once per session): the
    candidate split with strides 10 and 4 and the series split with strides 10 and 3 must give the reference
    counts; the series split gives (0, 0).
    """
    fn = require_callable(leakage, "leakage")
    candidates = list(_mini_luna_candidates(8, 5))
    for stride, split in _LEAK_CASES:
        out = call(fn, list(candidates), stride, split, name="leakage")
        label = f"leakage(candidates, val_stride={stride}, split={split!r})"
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise Wrong(f"{label} should return two ints (series shared, positive rows leaked), got "
                        f"{one_line(repr(out), 60)}.")
        got = []
        for v, name in zip(out, ("series shared", "positive rows leaked")):
            if isinstance(v, torch.Tensor) and v.numel() == 1:
                v = v.item()
            if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) and not (
                    isinstance(v, float) and v.is_integer()):
                raise Wrong(f"{label}: `{name}` should be a count (an int), got {v!r}.")
            got.append(int(v))
        expected = _leakage_ref(candidates, stride, split)
        if tuple(got) == expected:
            continue
        hint = ("a series split keeps every series on one side: both counts are 0 there." if split == "series" else
                "validation is candidates[::val_stride] (rows 0, val_stride, ...), training the other rows.")
        nodule = ("count only the validation positives whose own nodule has a positive row in training; another "
                  "nodule of the same series is not the same nodule (compare diameter and position).")
        for variant, text in (("all positives", nodule), ("same series", nodule),
                              ("rows", "count distinct series, not validation rows.")):
            if tuple(got) == _leakage_ref(candidates, stride, split, variant):
                hint = text
                break
        raise Wrong(f"{label} = {tuple(got)}, expected {expected}. Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 08.12 metric sums all-reduced under DDP
# ----------------------------------------------------------------------------------------------

_DDP_WORLD = 2
_DDP_SECONDS = 10.0
_DDP_STARTUP_SECONDS = 90.0  # spawning two Pythons that import torch, on a loaded 2-core machine

_DDP_SHARDS = (
    {"tp": 3.0, "fp": 11.0, "fn": 2.0, "tn": 240.0, "loss/all": 41.625, "loss/pos": 6.5, "loss/neg": 35.125},
    {"tp": 5.0, "fp": 4.0, "fn": 0.0, "tn": 251.0, "loss/all": 29.0625, "loss/pos": 3.75, "loss/neg": 25.3125},
)


def _free_port() -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _plain(value: Any) -> Any:
    """A worker's returned value as plain Python (floats), so it pickles back whatever it was."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu()
        return float(value.item()) if value.numel() == 1 else value.double().tolist()
    if isinstance(value, (np.generic, np.ndarray)):
        return np.asarray(value, dtype=np.float64).tolist()
    if isinstance(value, (int, float)):
        return float(value)
    return repr(value)


def _allreduce_worker(rank: int, world: int, port: int, payload: bytes, shard: dict, results) -> None:
    """One spawned process: join the gloo group, run the learner's function on this rank's shard, report back."""
    import datetime
    import io
    import pickle

    import torch.distributed as dist

    try:
        torch.set_num_threads(1)
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), \
                warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                                    timeout=datetime.timedelta(seconds=_DDP_SECONDS))
            try:
                fn = pickle.loads(payload)
                start = time.perf_counter()
                out = fn(dict(shard))
                seconds = time.perf_counter() - start
            finally:
                dist.destroy_process_group()
        if not isinstance(out, dict):
            results.put((rank, "error", f"returned a {type(out).__name__}, not a dict"))
        else:
            results.put((rank, "ok", ({str(k): _plain(v) for k, v in out.items()}, seconds)))
    except BaseException as err:  # noqa: BLE001 - everything goes back to the parent as text
        results.put((rank, "error", f"{type(err).__name__}: {one_line(str(err), 200)}"))


def _ship(fn: Any) -> bytes:
    """The learner's function as bytes a spawned process can load: by value with cloudpickle (a function defined in
    a notebook cell cannot be pickled by reference), by reference with pickle if cloudpickle is missing."""
    try:
        import cloudpickle
    except ImportError:  # cloudpickle comes with fastai; without it, only importable functions travel
        import pickle

        return pickle.dumps(fn)
    return cloudpickle.dumps(fn)


def _run_ddp(fn: Any, shards) -> dict[int, tuple]:
    """Run fn on each shard in its own spawned gloo process; {rank: (status, payload)}. Never hangs."""
    import multiprocessing

    try:
        payload = _ship(fn)
    except Exception as err:  # noqa: BLE001
        raise Wrong(f"allreduce_metrics could not be sent to the worker processes ({type(err).__name__}: "
                    f"{one_line(str(err), 120)}). Hint: define it as a plain function (def) in a cell.") from err
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_allreduce_worker, args=(rank, _DDP_WORLD, port, payload, shards[rank], results),
                         daemon=True) for rank in range(_DDP_WORLD)]
    env = {"OMP_NUM_THREADS": "1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        for p in procs:
            p.start()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    found: dict[int, tuple] = {}
    deadline = time.monotonic() + _DDP_STARTUP_SECONDS
    try:
        import queue

        while len(found) < _DDP_WORLD and time.monotonic() < deadline:
            try:
                rank, status, data = results.get(timeout=0.5)
                found[rank] = (status, data)
            except queue.Empty:
                if all(not p.is_alive() for p in procs) and results.empty():
                    break
    finally:
        for p in procs:
            p.join(timeout=2)
            if p.is_alive():
                p.kill()
                p.join(timeout=2)
        results.close()
    return found


@exercise("08.12", "metric sums under DDP")
def check_allreduce(allreduce_metrics: Any) -> None:
    """`allreduce_metrics(local)`: called on every process of an initialised torch.distributed group; local a dict
    of str -> float (this process's metric sums: tp, fp, fn, tn, loss sums). Returns a dict with the same keys whose
    values (floats or one-element tensors) are the sums over all processes, identical on every process.

    The check sends the function to two spawned CPU processes (gloo, a free local port) with hidden shards, cloudpickled
    so that a function defined in a notebook cell travels too (imports it uses must be inside it or in the
    notebook's globals it names). Each rank's result must equal the global sums (rtol 1e-5), the same on both ranks,
    within 10 s; an error or a hang in a worker (collectives time out after 10 s) is reported, never waited on.
    """
    fn = require_callable(allreduce_metrics, "allreduce_metrics")
    found = _run_ddp(fn, _DDP_SHARDS)
    for rank in range(_DDP_WORLD):
        if rank not in found:
            raise Wrong(f"rank {rank} never reported back (a hang, or a crash outside your function). Hint: every "
                        "rank must make the same collective calls, in the same order.")
        status, data = found[rank]
        if status != "ok":
            raise Wrong(f"on rank {rank}, allreduce_metrics failed: {data}. Hint: every rank must make the same "
                        "collective calls in the same order; imports the function needs go inside it; dist.all_reduce "
                        "works in place on a tensor.")
    keys = list(_DDP_SHARDS[0])
    total = {k: sum(s[k] for s in _DDP_SHARDS) for k in keys}
    outs = {rank: found[rank][1][0] for rank in range(_DDP_WORLD)}
    for rank, out in outs.items():
        if set(out) != set(keys):
            raise Wrong(f"on rank {rank}, allreduce_metrics returned the keys {sorted(out)}, expected {sorted(keys)}: "
                        "the same keys as the local dict.")
        for k in keys:
            if not isinstance(out[k], float):
                raise Wrong(f"on rank {rank}, the value for {k!r} is {out[k]}: one number per key.")
    for rank in range(_DDP_WORLD):
        seconds = found[rank][1][1]
        if seconds > _DDP_SECONDS:
            raise Wrong(f"allreduce_metrics took {seconds:.1f} s on rank {rank}, over {_DDP_SECONDS:.0f} s. Hint: one "
                        "all_reduce of a tensor holding every value is enough.")
    got = np.array([[outs[r][k] for k in keys] for r in range(_DDP_WORLD)])
    want = np.array([total[k] for k in keys])
    if np.allclose(got, want[None], rtol=1e-5, atol=1e-6):
        return
    local = np.array([[s[k] for k in keys] for s in _DDP_SHARDS])
    if np.allclose(got, local, rtol=1e-5):
        hint = "each rank returns its own values: all-reduce them so every rank gets the global sums."
    elif np.allclose(got, want[None] / _DDP_WORLD, rtol=1e-5):
        hint = "these are averages over the processes: counts and loss sums add up across processes (sum, not mean)."
    elif np.allclose(got, local[:1].repeat(_DDP_WORLD, 0), rtol=1e-5):
        hint = "every rank returns rank 0's values (a broadcast): all-reduce with a sum instead."
    elif np.allclose(got, local.max(0)[None], rtol=1e-5):
        hint = "these are maxima over the processes: reduce with a sum."
    elif not np.allclose(got[0], got[1], rtol=1e-5):
        hint = "the two ranks disagree: every rank must end with the same global sums."
    else:
        hint = "put the values in one float64 tensor (in a fixed key order), dist.all_reduce it (SUM), rebuild the dict."
    shown = {r: {k: round(outs[r][k], 4) for k in keys[:3]} for r in range(_DDP_WORLD)}
    raise Wrong(f"allreduce_metrics returned {shown} (first keys), expected the sums "
                f"{ {k: total[k] for k in keys[:3]} }. Hint: {hint}")


# ----------------------------------------------------------------------------------------------
# 08.13 a soft Dice loss
# ----------------------------------------------------------------------------------------------


def _dice_ref(pred: torch.Tensor, label: torch.Tensor, eps: float = 1.0, variant: str = "right") -> torch.Tensor:
    dims = tuple(range(1, pred.dim()))
    inter = (pred * label).sum(dims)
    p, l = pred.sum(dims), label.sum(dims)
    if variant == "eps denominator":
        return 1 - (2 * inter) / (p + l + eps)
    if variant == "no 2":
        return 1 - (inter + eps) / (p + l + eps)
    if variant == "means":
        return 1 - (2 * (pred * label).mean(dims) + eps) / (pred.mean(dims) + label.mean(dims) + eps)
    return 1 - (2 * inter + eps) / (p + l + eps)


def _dice_cases():
    g = generator(8130)
    out = []
    for shape in ((4, 1, 16, 16), (3, 2, 4, 8, 8)):
        label = (torch.rand(shape, generator=g) < 0.2).float()
        pred = torch.sigmoid(3 * (label - 0.5) + torch.randn(shape, generator=g))
        label[1] = 0.0  # an empty label ...
        pred[1] = torch.rand(shape[1:], generator=g) * 0.001  # ... with an almost empty prediction
        if len(shape) == 4:
            pred[1] = 0.0  # ... and an exactly empty one
        out.append((pred, label))
    return out


@exercise("08.13", "a soft Dice loss")
def check_dice(dice_loss: Any) -> None:
    """`dice_loss(pred, label, eps=1)`: pred a float (N, ...) tensor of probabilities, label a float (N, ...) tensor of
    0/1 of the same shape. Returns the (N,) tensor 1 - (2 Σ pred·label + eps) / (Σ pred + Σ label + eps), the sums over
    every dimension but the first (one loss per sample), differentiable in pred.

    Two hidden batches, (4, 1, 16, 16) and (3, 2, 4, 8, 8), each with an empty label (the first with an exactly
    empty prediction too: the loss must be small, not nan), with the default eps and with eps=0.1: within 1e-5 of the
    reference; the gradient of sum(loss · w) for a hidden w is finite and equals the reference's within 1e-5.
    """
    fn = require_callable(dice_loss, "dice_loss")
    for pred0, label in _dice_cases():
        for kwargs in ({}, {"eps": 0.1}):
            eps = kwargs.get("eps", 1.0)
            pred = pred0.clone().requires_grad_(True)
            where = f"dice_loss(pred of shape {tuple(pred0.shape)}{', eps=0.1' if kwargs else ''})"
            out = call(fn, pred, label.clone(), **kwargs, name="dice_loss")
            if not isinstance(out, torch.Tensor):
                raise Wrong(f"{where} should return a tensor, got a {type(out).__name__}.")
            n = pred0.shape[0]
            if tuple(out.shape) != (n,):
                hint = ("one number for the whole batch: sum over every dimension except the first." if out.numel() == 1
                        else "sum over every dimension except the first (the batch).")
                raise Wrong(f"{where} has shape {tuple(out.shape)}, expected ({n},): one loss per sample. Hint: {hint}")
            got = out.detach().double()
            if not torch.isfinite(got).all():
                raise Wrong(f"{where} is {short(got)}: nan where the label and the prediction are empty. Hint: eps "
                            "goes in the numerator and in the denominator.")
            expected = _dice_ref(pred0.double(), label.double(), eps)
            if not torch.allclose(got, expected, rtol=0, atol=1e-5):
                hint = "1 - (2 * sum(pred * label) + eps) / (sum(pred) + sum(label) + eps), per sample."
                for variant, text in (("eps denominator", "an empty label with an empty prediction should give a loss "
                                                          "near 0: eps goes in the numerator too."),
                                      ("no 2", "the overlap counts twice in the numerator (2 * sum(pred * label))."),
                                      ("means", "use sums, not means: eps is added to sums of voxels.")):
                    if torch.allclose(got, _dice_ref(pred0.double(), label.double(), eps, variant), rtol=0, atol=1e-5):
                        hint = text
                        break
                raise Wrong(f"{where} is {short(got)}, expected {short(expected)}. Hint: {hint}")
            if not out.requires_grad:
                raise Wrong(f"{where} has no gradient. Hint: keep it in torch (no detach, numpy or .item()).")
            w = torch.linspace(0.5, 1.5, n)
            (out * w.to(out.dtype)).sum().backward()
            ref_pred = pred0.double().clone().requires_grad_(True)
            (_dice_ref(ref_pred, label.double(), eps) * w.double()).sum().backward()
            if pred.grad is None or not torch.isfinite(pred.grad).all():
                raise Wrong(f"{where} gives no finite gradient with respect to pred.")
            if not torch.allclose(pred.grad.double(), ref_pred.grad, rtol=0, atol=1e-5):
                raise Wrong(f"{where} has the right values but the wrong gradient. Hint: compute it from pred itself, "
                            "without clamping or rounding.")
