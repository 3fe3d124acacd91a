"""course_utils.ct.augment: the random affine matrix and the resampled crops, reproducible per (seed, epoch, sample)."""

from __future__ import annotations

import pytest
import torch

from course_utils.ct.augment import AUGMENTATIONS, augment_crop, augmentation_matrix


def blob(shape=(1, 16, 24, 24), centre=(8, 12, 12)):
    d, h, w = (torch.arange(n, dtype=torch.float32) for n in shape[1:])
    r2 = (d[:, None, None] - centre[0]) ** 2 + (h[None, :, None] - centre[1]) ** 2 + (w[None, None, :] - centre[2]) ** 2
    return (torch.exp(-r2 / 8) * 1000 - 800).unsqueeze(0)


def centre_of_mass(volume):
    weights = (volume[0] + 800).clamp(min=0)
    grids = torch.meshgrid(*(torch.arange(n, dtype=torch.float32) for n in weights.shape), indexing="ij")
    return torch.stack([(g * weights).sum() / weights.sum() for g in grids])


def test_no_augmentation_is_the_identity_and_leaves_the_crop():
    g = torch.Generator().manual_seed(0)
    assert torch.equal(augmentation_matrix({}, g), torch.eye(4, dtype=torch.float64))
    crop = blob()
    assert torch.allclose(augment_crop(crop, {}, g), crop, atol=1e-3)


def test_flips_set_the_sign_of_the_determinant_and_rotation_keeps_the_index_axis():
    signs = set()
    for seed in range(20):
        m = augmentation_matrix({"flip": True, "rotate": True}, torch.Generator().manual_seed(seed))
        signs.add(1 if float(torch.linalg.det(m[:3, :3])) > 0 else -1)
        assert abs(abs(float(m[2, 2])) - 1) < 1e-12 and torch.allclose(m[2, :2], torch.zeros(2, dtype=torch.float64))
        assert torch.allclose(m[:2, 2], torch.zeros(2, dtype=torch.float64))
    assert signs == {-1, 1}


def test_an_offset_moves_the_blob_and_the_same_seed_repeats_it():
    crop = blob()
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a, b = augment_crop(crop, {"offset": 0.1}, g1), augment_crop(crop, {"offset": 0.1}, g2)
    assert torch.equal(a, b)
    moved = centre_of_mass(a) - centre_of_mass(crop)
    assert 0.05 < float(moved.abs().max()) < 2.5  # at most 0.1 of a half-width (12 voxels) per axis, plus blur


def test_noise_has_the_asked_size():
    out = augment_crop(torch.zeros(1, 16, 24, 24), {"noise": AUGMENTATIONS["noise"]}, torch.Generator().manual_seed(1))
    assert float(out.std()) == pytest.approx(25.0, rel=0.05)


def test_the_dataset_draws_the_same_augmentation_for_the_same_epoch_and_sample(tmp_path):
    pytest.importorskip("SimpleITK")
    from course_utils.ct import LunaDataset, make_mini_luna

    make_mini_luna(tmp_path / "tiny", tiny=True, seed=4)
    data = LunaDataset(str(tmp_path / "tiny"), augmentation_dict=AUGMENTATIONS, seed=3)
    first, again = data[5][0], data[5][0]
    data.set_epoch(1)
    assert torch.equal(first, again) and not torch.equal(first, data[5][0])
