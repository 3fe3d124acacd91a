"""course_utils.ct.dsets and .model on a tiny generated mini-LUNA: the CSV join, the geometry against
SimpleITK, crops at the edges, the two splits, balancing, clear errors, and LunaModel's size."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from course_utils.ct import (
    Ct, LunaDataError, LunaDataset, LunaModel, getCandidateInfoList, irc2xyz, make_mini_luna, xyz2irc,
)

sitk = pytest.importorskip("SimpleITK")


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    folder = tmp_path_factory.mktemp("luna") / "mini"
    make_mini_luna(folder, n_series=6, n_subsets=2, seed=1)
    return str(folder)


def test_candidates_are_joined_to_annotations_and_sorted(root):
    candidates = getCandidateInfoList(root)
    positives = [c for c in candidates if c.isNodule_bool]
    assert positives == candidates[: len(positives)], "nodules first"
    diameters = [c.diameter_mm for c in positives]
    assert diameters == sorted(diameters, reverse=True)
    assert any(c.hasAnnotation_bool for c in positives) and not any(c.hasAnnotation_bool for c in candidates
                                                                     if not c.isNodule_bool)


def test_xyz_irc_round_trip_and_simpleitk_agree_on_every_candidate(root):
    seen_flip = False
    for uid in sorted({c.series_uid for c in getCandidateInfoList(root)}):
        ct = Ct(root, uid)
        seen_flip |= bool(ct.direction_a[0, 0] < 0)
        image = sitk.ReadImage(str(next(Path(root).glob(f"subset*/{uid}.mhd"))))
        for c in [c for c in getCandidateInfoList(root) if c.series_uid == uid][:50]:
            irc = xyz2irc(c.center_xyz, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a)
            assert tuple(irc) == image.TransformPhysicalPointToIndex(c.center_xyz)[::-1]
            back = irc2xyz(irc, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a)
            assert xyz2irc(back, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a) == irc
    assert ct.hu_a.dtype == np.float32 and ct.hu_a.min() >= -1000 and ct.hu_a.max() <= 1000
    assert seen_flip, "make_mini_luna flips the x axis of one series; the round trip must cover it"


def test_crops_keep_their_shape_at_every_edge(root):
    uid = getCandidateInfoList(root)[0].series_uid
    ct = Ct(root, uid)
    d, h, w = ct.hu_a.shape
    for corner in [(0, 0, 0), (d - 1, h - 1, w - 1), (0, h // 2, w - 1), (d // 2, 0, w // 2)]:
        xyz = irc2xyz(corner, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a)
        crop, irc = ct.getRawCandidate(xyz, (16, 24, 24))
        assert crop.shape == (16, 24, 24) and tuple(irc) == corner


def test_the_series_split_shares_no_series_and_the_candidate_split_does(root):
    for split, shared in (("series", False), ("candidate", True)):
        train = LunaDataset(root, val_stride=5, isValSet_bool=False, split=split)
        valid = LunaDataset(root, val_stride=5, isValSet_bool=True, split=split)
        overlap = {c.series_uid for c in train.candidateInfo_list} & {c.series_uid for c in valid.candidateInfo_list}
        assert bool(overlap) == shared
        assert len(train.candidateInfo_list) + len(valid.candidateInfo_list) == len(getCandidateInfoList(root))


def test_balanced_sampling_gives_one_positive_in_ratio_plus_one(root):
    data = LunaDataset(root, val_stride=5, isValSet_bool=False, split="series", ratio_int=3, epoch_len=40,
                       crop_fn=lambda r, u, xyz, w: (np.zeros(w, np.float32), (0, 0, 0)))
    labels = [int(data[i][1]) for i in range(len(data))]
    assert len(labels) == 40 and labels[::4] == [1] * 10 and sum(labels) == 10


def test_a_crop_is_a_float_tensor_with_a_channel(root):
    crop, label, uid, irc = LunaDataset(root)[0]
    assert crop.shape == (1, 16, 24, 24) and crop.dtype == torch.float32 and label.dtype == torch.long


def test_broken_folders_are_named_with_the_fix(tmp_path, root):
    with pytest.raises(LunaDataError, match="subset"):
        getCandidateInfoList(str(tmp_path))
    copy = tmp_path / "copy"
    shutil.copytree(root, copy)
    (copy / "candidates.csv").write_text("uid,x,y,z,label\n")
    with pytest.raises(LunaDataError, match="columns"):
        getCandidateInfoList(str(copy))
    uid = getCandidateInfoList(root)[0].series_uid
    next(copy.glob(f"subset*/{uid}.raw")).unlink()
    with pytest.raises(LunaDataError, match=".raw"):
        Ct(str(copy), uid)


def test_luna_model_has_55160_parameters_at_the_cpu_defaults_and_a_two_class_head():
    model = LunaModel()
    assert sum(p.numel() for p in model.parameters()) == 55_160
    logits, probs = model(torch.randn(3, 1, 16, 24, 24))
    assert logits.shape == probs.shape == (3, 2) and torch.allclose(probs.sum(1), torch.ones(3))
    assert sum(p.numel() for p in LunaModel(conv_channels=8, crop=(32, 48, 48)).parameters()) == 222_220


def test_the_disk_cache_gives_the_series_crops_and_survives_a_new_process_s_memory(root, tmp_path):
    from course_utils.ct import crop_cache, getCt
    from course_utils.ct.prepcache import prep_cache

    seen, _ = prep_cache(root, str(tmp_path / "crops"))
    assert seen == len(getCandidateInfoList(root))
    crop_cache.cache_clear()
    getCt.cache_clear()
    cached = crop_cache(str(tmp_path / "crops"))
    for c in getCandidateInfoList(root)[:: max(1, seen // 20)]:
        crop, irc = cached(root, c.series_uid, c.center_xyz, (16, 24, 24))
        direct, direct_irc = Ct(root, c.series_uid).getRawCandidate(c.center_xyz, (16, 24, 24))
        assert crop.dtype == np.float32 and np.array_equal(crop, direct) and tuple(irc) == tuple(direct_irc)
    assert len(cached.cache) == len({(c.series_uid, c.center_xyz) for c in getCandidateInfoList(root)})  # one per place
