"""course_utils.ct.segment: truth masks against the generator, the book's heuristic mask, the U-Net, the Dice
losses and metrics, a short training run, and grouping segmentation output into candidates."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from course_utils.ct import Ct, irc2xyz, make_mini_luna
from course_utils.ct.segment import (
    NoduleInfoTuple, TrainingLuna2dSegmentationDataset, UNet2d, _voxels_xyz, classify_candidates, dice_loss,
    fn_weighted_loss, getNoduleInfoList, group_candidates, heuristic_mask, mask_iou, match_nodules, nodule_mask,
    run_end_to_end, segment_series, segmentation_metrics, series_split, train_segmenter, validation_crops,
)

pytest.importorskip("SimpleITK")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_mini_luna(tmp_path_factory.mktemp("luna") / "tiny", seed=3, tiny=True)


def fake_ct(hu, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0), direction=np.eye(3)):
    return SimpleNamespace(hu_a=np.asarray(hu, dtype=np.float32), origin_xyz=origin, vxSize_xyz=spacing,
                           direction_a=np.asarray(direction, dtype=float))


def ball(shape, center_irc, radius):
    irc = np.indices(shape)
    return sum((i - c) ** 2 for i, c in zip(irc, center_irc)) <= radius ** 2


def test_the_nodule_list_holds_every_painted_sphere(tiny):
    nodules = getNoduleInfoList(str(tiny.root))
    assert len(nodules) == tiny.nodules and sum(n.annotated for n in nodules) == tiny.annotated


def test_truth_masks_are_the_generator_spheres_in_every_geometry(tiny):
    root = str(tiny.root)
    flipped = 0
    counted, expected = 0, 0.0
    for uid in sorted(u for uids in tiny.series.values() for u in uids):
        ct = Ct(root, uid)
        flipped += ct.direction_a[0, 0] < 0
        some = np.array([[0, 0, 0], [31, 63, 5], [7, 20, 40]])
        assert np.allclose(_voxels_xyz(ct, some), [irc2xyz(v, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a) for v in some])
        for nodule in (n for n in getNoduleInfoList(root) if n.series_uid == uid):
            mask = nodule_mask(ct, [nodule])
            counted += mask.sum()
            expected += 4 / 3 * np.pi * (nodule.diameter_mm / 2) ** 3 / np.prod(ct.vxSize_xyz)
            assert mask.sum() > 0 and ct.hu_a[mask].mean() > -300, "the mask should cover the painted sphere (0..100 HU)"
    assert flipped == 1, "tiny should hold the series with the flipped x axis"
    assert 0.85 < counted / expected < 1.15  # voxel counts match the spheres' volumes


def test_the_heuristic_mask_fits_a_free_nodule_but_swallows_the_wall():
    hu = np.full((24, 40, 40), -850.0)
    free, touching = ball(hu.shape, (12, 10, 10), 3.5), ball(hu.shape, (12, 28, 28), 3.5)
    hu[free | touching] = 50.0
    hu[:, :, 31:] = 40.0  # a chest wall 3 voxels from the second nodule's centre
    ct = fake_ct(hu)
    assert mask_iou(heuristic_mask(ct, [(10.0, 10.0, 12.0)]), free) == 1.0
    wall_case = heuristic_mask(ct, [(28.0, 28.0, 12.0)])
    assert (wall_case & touching).sum() == touching.sum() and (wall_case & ~touching).sum() > 100  # a slab of wall
    assert mask_iou(wall_case, touching) < 0.6
    assert mask_iou(np.zeros(3, bool), np.zeros(3, bool)) == 1.0


def test_unet_shapes_range_and_size():
    model = UNet2d()
    assert sum(p.numel() for p in model.parameters()) == 30087
    model.eval()
    with torch.no_grad():
        out = model(torch.randn(2, 7, 32, 48) * 500)
    assert out.shape == (2, 1, 32, 48) and 0 <= out.min() and out.max() <= 1
    assert UNet2d(depth=2, wf=2)(torch.zeros(1, 7, 8, 8)).shape == (1, 1, 8, 8)


def test_dice_loss_per_sample_perfect_empty_and_gradient():
    label = torch.zeros(3, 1, 8, 8)
    label[0, 0, 2:5, 2:5] = 1
    label[1, 0, :4] = 1
    assert dice_loss(label, label).shape == (3,) and torch.allclose(dice_loss(label, label), torch.zeros(3))
    empty = torch.zeros(1, 1, 8, 8)
    small = dice_loss(torch.full((1, 1, 8, 8), 1e-4), empty)
    assert torch.isfinite(small).all() and 0 < small.item() < 0.01
    pred = torch.rand(3, 1, 8, 8, requires_grad=True)
    loss = dice_loss(pred, label)
    expected = 1 - (2 * (pred * label).sum((1, 2, 3)) + 1) / (pred.sum((1, 2, 3)) + label.sum((1, 2, 3)) + 1)
    assert torch.allclose(loss, expected)
    loss.sum().backward()
    assert torch.isfinite(pred.grad).all()


def test_fn_weighting_punishes_misses_not_extras():
    label = torch.zeros(1, 1, 8, 8)
    label[0, 0, :2, :5] = 1
    missed, extra = label.clone(), label.clone()
    missed[0, 0, 1] = 0  # half the nodule missed
    extra[0, 0, 2:4, :5] = 1  # the nodule and as much again
    assert fn_weighted_loss(extra, label).item() == pytest.approx(dice_loss(extra, label).item())
    assert fn_weighted_loss(missed, label).item() > dice_loss(missed, label).item() + 2


def test_segmentation_metrics_count_pixels_over_the_set():
    label = torch.tensor([[1.0, 1, 0, 0], [1, 0, 0, 0]])
    pred = torch.tensor([[0.9, 0.2, 0.7, 0.1], [0.6, 0.1, 0.0, 0.0]])
    got = segmentation_metrics(pred, label)
    assert (got["tp"], got["fp"], got["fn"]) == (2, 1, 1)
    assert got["dice"] == pytest.approx(4 / 6) and got["precision"] == got["recall"] == pytest.approx(2 / 3)
    assert segmentation_metrics(torch.zeros(4), torch.zeros(4))["dice"] == 0.0


def test_crops_are_seeded_and_a_short_training_run_learns(tiny):
    root = str(tiny.root)
    train_uids, val_uids = series_split(root)
    assert len(val_uids) == 1 and len(train_uids) == 1
    dataset = TrainingLuna2dSegmentationDataset(root, epoch_len=8, seed=1)
    x, y = dataset[3]
    assert x.shape == (7, 32, 32) and y.shape == (1, 32, 32) and x.dtype == y.dtype == torch.float32
    assert -1000 <= x.min() and x.max() <= 1000 and set(y.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(dataset[3][0], x)
    dataset.set_epoch(1)
    assert not torch.equal(dataset[3][0], x)
    inputs, labels = validation_crops(root)
    assert inputs.shape[1:] == (7, 32, 32) and labels.shape[1:] == (1, 32, 32) and labels.sum() > 0
    model, history = train_segmenter(root, loss="fn_weighted", epochs=2, epoch_len=32, seed=0)
    assert [h["epoch"] for h in history] == [1, 2] and all(np.isfinite(h["loss"]) for h in history)
    assert history[1]["loss"] < history[0]["loss"]
    assert {"dice", "precision", "recall", "tp", "fp", "fn"} <= set(history[-1])
    with pytest.raises(ValueError, match="loss must be one of"):
        train_segmenter(root, loss="bce")


def test_grouping_finds_planted_blobs_at_their_centres():
    direction = np.diag([-1.0, 1.0, 1.0])
    ct = fake_ct(np.zeros((12, 30, 30)), spacing=(0.8, 0.8, 2.0), origin=(50.0, -20.0, -30.0), direction=direction)
    prob = np.zeros(ct.hu_a.shape)
    prob[2:7, 4:9, 5:10] = 0.9  # a 5-voxel cube centred on (4, 6, 7)
    prob[6:11, 20:25, 20:25] = 0.8  # centred on (8, 22, 22)
    prob[0, 29, 29] = 0.99  # a speck: the erosion removes it
    found = group_candidates(ct, prob)
    assert [c["center_irc"] for c in found] == [(4.0, 6.0, 7.0), (8.0, 22.0, 22.0)]
    assert np.allclose(found[0]["center_xyz"], irc2xyz((4, 6, 7), ct.origin_xyz, ct.vxSize_xyz, direction))
    assert group_candidates(ct, np.zeros(ct.hu_a.shape)) == []

    nodules = [NoduleInfoTuple("s", found[0]["center_xyz"], 6.0, True, False),
               NoduleInfoTuple("s", (0.0, 0.0, 0.0), 6.0, True, False)]
    table = match_nodules(nodules, found, [0.9, 0.7])
    assert (table["found"], table["missed"], table["false_positives"], table["kept"]) == (1, 1, 1, 2)
    assert match_nodules(nodules, found, [0.2, 0.9])["nodules"][0] == {"diameter_mm": 6.0, "segmented": True,
                                                                        "found": False}


def test_end_to_end_on_a_tiny_series(tiny):
    root = str(tiny.root)
    _, (uid,) = series_split(root)
    ct = Ct(root, uid)
    model = UNet2d()
    assert segment_series(model, fake_ct(np.zeros((5, 30, 34)))).shape == (5, 30, 34)
    candidates = [{"center_xyz": irc2xyz((16, 32, 32), ct.origin_xyz, ct.vxSize_xyz, ct.direction_a)}] * 3
    calls = []

    def classifier(crops):
        calls.append(crops.shape)
        return torch.tensor([[0.3, 0.7]] * len(crops))

    assert np.allclose(classify_candidates(ct, candidates, classifier), 0.7) and calls == [(3, 1, 16, 24, 24)]
    result = run_end_to_end(model, lambda crops: torch.ones(len(crops)), root, uid)
    annotated = [n for n in getNoduleInfoList(root) if n.series_uid == uid and n.annotated]
    assert result["found"] + result["missed"] == len(annotated) == len(result["nodules"])
    assert len(result["probabilities"]) == len(result["candidates"]) == result["kept"]
