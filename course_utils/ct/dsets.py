"""LUNA's candidates, CT series and crops, as *Deep Learning with PyTorch* ch. 10 builds them. Used in 08_ct.

The names follow the book (`getCandidateInfoList`, `Ct`, `getRawCandidate`, `LunaDataset`), so a reader can
put the two side by side; what the book printed only in part (the edge clamping of a crop, the
series-level split) is written out. Works on any folder with LUNA's layout: the generated mini-LUNA
(`course_utils.ct.make_mini_luna`) or the real LUNA16 (LUNA_ROOT).
"""

from __future__ import annotations

import csv
import functools
import glob
import os
from collections import namedtuple
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

__all__ = [
    "CROP_VERSION", "CandidateInfoTuple", "Ct", "LunaDataset", "LunaDataError", "crop_cache", "getCandidateInfoList",
    "getCt", "getCtRawCandidate", "irc2xyz", "xyz2irc",
]

CandidateInfoTuple = namedtuple("CandidateInfoTuple", "isNodule_bool, hasAnnotation_bool, diameter_mm, series_uid, center_xyz")
IrcTuple = namedtuple("IrcTuple", "index, row, col")
XyzTuple = namedtuple("XyzTuple", "x, y, z")
CandidateInfoTuple.__doc__ = "One row of candidates.csv with its joined diameter (the book's ch. 10 names). Used in 08_ct."
IrcTuple.__doc__ = "Array indices: (index, row, col) = (z, y, x) order. Used in 08_ct."
XyzTuple.__doc__ = "Patient coordinates in millimetres. Used in 08_ct."

CANDIDATE_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "class"]
ANNOTATION_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
HU_CLIP = (-1000.0, 1000.0)
# Part of every disk-cache key: bump it when getRawCandidate or the HU clipping changes, and old crops are never read.
CROP_VERSION = 1


class LunaDataError(ValueError):
    """A LUNA folder that breaks the file contract; the message names the path and the fix. Used in 08_ct."""


def xyz2irc(coord_xyz, origin_xyz, vxSize_xyz, direction_a) -> IrcTuple:
    """Patient coordinates (mm) -> array indices (index, row, col), rounded: undo the origin, the direction, the spacing.

    Used in 08_ct."""
    origin_a, vxSize_a = np.array(origin_xyz), np.array(vxSize_xyz)
    cri_a = ((np.array(coord_xyz) - origin_a) @ np.linalg.inv(direction_a).T) / vxSize_a
    cri_a = np.round(cri_a)
    return IrcTuple(int(cri_a[2]), int(cri_a[1]), int(cri_a[0]))


def irc2xyz(coord_irc, origin_xyz, vxSize_xyz, direction_a) -> XyzTuple:
    """Array indices (index, row, col) -> patient coordinates (mm): flip to (col, row, index), scale, rotate, shift.

    Used in 08_ct."""
    cri_a = np.array(coord_irc, dtype=np.float64)[::-1]
    coords_xyz = (np.array(direction_a) @ (cri_a * np.array(vxSize_xyz))) + np.array(origin_xyz)
    return XyzTuple(*coords_xyz)


def _read_rows(path: Path, columns: list[str]) -> list[list[str]]:
    if not path.is_file():
        raise LunaDataError(f"{path} is missing. Fix: point the data root at a LUNA folder (candidates.csv, "
                            "annotations.csv and subset*/ folders), or generate one with make_mini_luna(root).")
    with open(path, newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        if header[: len(columns)] != columns:
            raise LunaDataError(f"{path} has the columns {header}, expected {columns}. Fix: use LUNA16's "
                                f"{path.name} unchanged.")
        return list(reader)


@functools.lru_cache(maxsize=4)
def getCandidateInfoList(data_root: str, requireOnDisk_bool: bool = True) -> list[CandidateInfoTuple]:
    """Every candidate of `data_root`, with the diameter of the annotation it matches, large nodules first.

    A candidate takes an annotation's diameter when their centres differ by at most a quarter of that
    diameter on every axis (the largest match wins); a positive with no match keeps 0.0, as in LUNA.
    With `requireOnDisk_bool`, only series whose .mhd is under a subset*/ folder count.
    """
    root = Path(data_root)
    mhd_list = glob.glob(os.path.join(root, "subset*", "*.mhd"))
    if requireOnDisk_bool and not mhd_list:
        raise LunaDataError(f"{root} holds no subset*/<seriesuid>.mhd files. Fix: point the data root at a LUNA "
                            "folder, or generate one with make_mini_luna(root).")
    presentOnDisk_set = {os.path.split(p)[-1][:-4] for p in mhd_list}

    diameter_dict: dict[str, list[tuple[tuple[float, ...], float]]] = {}
    for row in _read_rows(root / "annotations.csv", ANNOTATION_COLUMNS):
        diameter_dict.setdefault(row[0], []).append((tuple(float(x) for x in row[1:4]), float(row[4])))

    candidateInfo_list = []
    for row in _read_rows(root / "candidates.csv", CANDIDATE_COLUMNS):
        series_uid = row[0]
        if series_uid not in presentOnDisk_set and requireOnDisk_bool:
            continue
        isNodule_bool = bool(int(row[4]))
        candidateCenter_xyz = tuple(float(x) for x in row[1:4])
        candidateDiameter_mm = 0.0
        for annotationCenter_xyz, annotationDiameter_mm in diameter_dict.get(series_uid, []):
            if all(abs(c - a) <= annotationDiameter_mm / 4 for c, a in zip(candidateCenter_xyz, annotationCenter_xyz)):
                candidateDiameter_mm = max(candidateDiameter_mm, annotationDiameter_mm)
        candidateInfo_list.append(CandidateInfoTuple(isNodule_bool, candidateDiameter_mm > 0, candidateDiameter_mm,
                                                     series_uid, candidateCenter_xyz))
    candidateInfo_list.sort(reverse=True)
    return candidateInfo_list


class Ct:
    """One CT series: HU clipped to [-1000, 1000] as float32 (index, row, col), and its geometry (x, y, z).

    Used in 08_ct."""

    def __init__(self, data_root: str, series_uid: str):
        import SimpleITK as sitk  # a heavy import, only when a series is read

        paths = glob.glob(os.path.join(data_root, "subset*", f"{series_uid}.mhd"))
        if not paths:
            raise LunaDataError(f"series {series_uid} is not under {data_root}/subset*/. Fix: check the data root.")
        raw = Path(paths[0]).with_suffix(".raw")
        if not raw.is_file():
            raise LunaDataError(f"{paths[0]} has no {raw.name} beside it. Fix: copy the series' .raw file too.")
        ct_mhd = sitk.ReadImage(paths[0])
        self.hu_a = np.clip(sitk.GetArrayFromImage(ct_mhd).astype(np.float32), *HU_CLIP)
        self.series_uid = series_uid
        self.origin_xyz = XyzTuple(*ct_mhd.GetOrigin())
        self.vxSize_xyz = XyzTuple(*ct_mhd.GetSpacing())
        self.direction_a = np.array(ct_mhd.GetDirection()).reshape(3, 3)

    def getRawCandidate(self, center_xyz, width_irc) -> tuple[np.ndarray, IrcTuple]:
        """The `width_irc` crop around `center_xyz`, shifted inside the volume at its edges (never padded)."""
        center_irc = xyz2irc(center_xyz, self.origin_xyz, self.vxSize_xyz, self.direction_a)
        slice_list = []
        for axis, center_val in enumerate(center_irc):
            start_ndx = int(round(center_val - width_irc[axis] / 2))
            end_ndx = start_ndx + int(width_irc[axis])
            if start_ndx < 0:
                start_ndx, end_ndx = 0, int(width_irc[axis])
            if end_ndx > self.hu_a.shape[axis]:
                end_ndx = self.hu_a.shape[axis]
                start_ndx = end_ndx - int(width_irc[axis])
            slice_list.append(slice(start_ndx, end_ndx))
        return self.hu_a[tuple(slice_list)], center_irc


@functools.lru_cache(maxsize=1, typed=True)
def getCt(data_root: str, series_uid: str) -> Ct:
    """The last series read stays in memory: the candidates are sorted by series, so consecutive reads hit it."""
    return Ct(data_root, series_uid)


def getCtRawCandidate(data_root: str, series_uid: str, center_xyz, width_irc) -> tuple[np.ndarray, IrcTuple]:
    """One crop straight from its series (through `getCt`'s one-series memory cache). Used in 08_ct."""
    return getCt(data_root, series_uid).getRawCandidate(center_xyz, width_irc)


@functools.lru_cache(maxsize=None)
def crop_cache(directory: str):
    """A crop function backed by `diskcache` in `directory`: (data_root, uid, center_xyz, width_irc) -> (crop, irc).

    The book's `raw_cache.memoize(typed=True)`. Crops are stored as int16 (HU are whole numbers; 18 KB for
    16 x 24 x 24) and keyed on the data root, the series, the centre, the width and CROP_VERSION. Keep the
    directory on a local disk: SQLite, which diskcache uses, corrupts on network file systems.
    """
    import diskcache

    cache = diskcache.Cache(directory)

    @cache.memoize(typed=True)
    def cached(version, data_root, series_uid, center_xyz, width_irc):
        crop, center_irc = getCtRawCandidate(data_root, series_uid, center_xyz, width_irc)
        return crop.astype(np.int16), tuple(center_irc)

    def crop_fn(data_root, series_uid, center_xyz, width_irc):
        crop, center_irc = cached(CROP_VERSION, str(data_root), series_uid, tuple(center_xyz), tuple(width_irc))
        return crop.astype(np.float32), IrcTuple(*center_irc)

    crop_fn.cache = cache
    return crop_fn


class LunaDataset(Dataset):
    """(crop 1 x D x H x W float32, label, series_uid, center_irc) per candidate. Used in 08_ct.

    Validation takes every `val_stride`-th candidate (`split="candidate"`, the book's split, which leaks
    series and nodules across the two sides) or every `val_stride`-th series of the sorted uids
    (`split="series"`). `ratio_int` > 0 balances training: every (ratio_int + 1)-th sample is a positive.
    `epoch_len` fixes the length of a balanced epoch. Crops come from `crop_fn(data_root, series_uid,
    center_xyz, width_irc)` -> (crop, center_irc); by default from the disk cache in `cache_dir` when one is
    given (`crop_cache`), else straight from the series. `augmentation_dict` (see `course_utils.ct.augment`)
    turns on random augmentation; sample `ndx` then draws from a generator seeded with (seed, epoch, ndx)
    (`set_epoch` before each epoch), so a run repeats exactly whatever the number of DataLoader workers.
    """

    def __init__(self, data_root: str, val_stride: int = 0, isValSet_bool: bool | None = None, split: str = "candidate",
                 ratio_int: int = 0, width_irc=(16, 24, 24), epoch_len: int | None = None, crop_fn=None,
                 cache_dir: str | None = None, augmentation_dict: dict | None = None, seed: int = 0):
        self.data_root, self.width_irc, self.ratio_int, self.epoch_len = data_root, tuple(width_irc), ratio_int, epoch_len
        self.augmentation_dict, self.seed, self.epoch = augmentation_dict or {}, seed, 0
        self.crop_fn = crop_fn or (crop_cache(str(cache_dir)) if cache_dir else getCtRawCandidate)
        candidates = list(getCandidateInfoList(data_root))
        if val_stride:
            if split == "series":
                uids = sorted({c.series_uid for c in candidates})[::val_stride]
                chosen = [c for c in candidates if (c.series_uid in uids) == bool(isValSet_bool)]
            elif split == "candidate":
                chosen = candidates[::val_stride] if isValSet_bool else [c for i, c in enumerate(candidates)
                                                                         if i % val_stride]
            else:
                raise ValueError(f"split must be 'candidate' or 'series', not {split!r}")
            candidates = chosen
        if not candidates:
            raise LunaDataError(f"no candidates left in {data_root} for this split (val_stride={val_stride}, "
                                f"isValSet_bool={isValSet_bool}, split={split!r}). Fix: check the data root and the "
                                "split; the book's bare `assert self.candidateInfo_list` hid this.")
        self.candidateInfo_list = candidates
        self.pos_list = [c for c in candidates if c.isNodule_bool]
        self.neg_list = [c for c in candidates if not c.isNodule_bool]

    def set_epoch(self, epoch: int) -> None:
        """Which epoch is read next: it seeds the augmentation draws."""
        self.epoch = epoch

    def shuffleSamples(self, generator: np.random.Generator) -> None:
        """Reshuffle the positives and negatives (call once per epoch with a seeded generator)."""
        generator.shuffle(self.pos_list)
        generator.shuffle(self.neg_list)

    def __len__(self) -> int:
        if self.ratio_int:
            return self.epoch_len or 2 * len(self.candidateInfo_list)
        return len(self.candidateInfo_list)

    def __getitem__(self, ndx: int):
        if self.ratio_int:
            pos_ndx, remainder = divmod(ndx, self.ratio_int + 1)
            if remainder:
                neg_ndx = ndx - 1 - pos_ndx
                candidateInfo_tup = self.neg_list[neg_ndx % len(self.neg_list)]
            else:
                candidateInfo_tup = self.pos_list[pos_ndx % len(self.pos_list)]
        else:
            candidateInfo_tup = self.candidateInfo_list[ndx]
        crop, center_irc = self.crop_fn(self.data_root, candidateInfo_tup.series_uid, candidateInfo_tup.center_xyz,
                                        self.width_irc)
        crop_t = torch.from_numpy(np.asarray(crop, dtype=np.float32)).unsqueeze(0)
        if self.augmentation_dict:
            from course_utils.ct.augment import augment_crop

            generator = torch.Generator().manual_seed(hash((self.seed, self.epoch, ndx)) % 2**63)
            crop_t = augment_crop(crop_t, self.augmentation_dict, generator)
        label_t = torch.tensor(int(candidateInfo_tup.isNodule_bool), dtype=torch.long)
        return crop_t, label_t, candidateInfo_tup.series_uid, torch.tensor(center_irc)
