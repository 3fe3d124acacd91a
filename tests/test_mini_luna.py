"""course_utils.ct.make_mini_luna: LUNA16's file contract, read back with SimpleITK, and the anatomy it promises."""

from __future__ import annotations

import csv
import hashlib

import numpy as np
import pytest

from course_utils.ct import irc2xyz, make_mini_luna

sitk = pytest.importorskip("SimpleITK")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("luna") / "tiny"
    return make_mini_luna(root, seed=3, tiny=True)


def rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def digest(root):
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_the_files_are_luna_s(tiny):
    root = tiny.root
    assert sorted(p.name for p in root.iterdir()) == ["annotations.csv", "annotations_with_malignancy.csv",
                                                      "candidates.csv", "mini_luna_nodules.csv", "subset0", "subset1"]
    assert list(rows(root / "candidates.csv")[0]) == ["seriesuid", "coordX", "coordY", "coordZ", "class"]
    assert list(rows(root / "annotations.csv")[0]) == ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"]
    assert list(rows(root / "annotations_with_malignancy.csv")[0])[-1] == "mal_bool"
    for subset, uids in tiny.series.items():
        for uid in uids:
            assert uid.startswith("1.3.6.1.4.1.14519.5.2.1.6279.6001.") and len(uid.rsplit(".", 1)[1]) == 30
            assert (root / subset / f"{uid}.mhd").is_file() and (root / subset / f"{uid}.raw").is_file()


def test_simpleitk_reads_every_series_back_with_its_geometry(tiny):
    for subset, uids in tiny.series.items():
        for uid in uids:
            image = sitk.ReadImage(str(tiny.root / subset / f"{uid}.mhd"))
            volume = sitk.GetArrayFromImage(image)
            raw = np.fromfile(tiny.root / subset / f"{uid}.raw", dtype="<i2").reshape(volume.shape)
            assert volume.dtype == np.int16 and volume.shape == (32, 64, 64) and np.array_equal(volume, raw)
            assert np.unique(np.abs(np.diag(np.array(image.GetDirection()).reshape(3, 3)))).tolist() == [1.0]
            for irc in ((0, 0, 0), (31, 10, 63), (5, 40, 7)):
                ours = irc2xyz(irc, image.GetOrigin(), image.GetSpacing(), np.array(image.GetDirection()).reshape(3, 3))
                theirs = image.TransformIndexToPhysicalPoint(tuple(int(v) for v in irc[::-1]))
                assert np.allclose(ours, theirs, atol=1e-9)


def test_positive_candidates_sit_on_bright_spheres_inside_the_lungs(tiny):
    images = {uid: sitk.ReadImage(str(tiny.root / subset / f"{uid}.mhd")) for subset, uids in tiny.series.items()
              for uid in uids}
    arrays = {uid: sitk.GetArrayFromImage(image) for uid, image in images.items()}
    positives = [r for r in rows(tiny.root / "candidates.csv") if r["class"] == "1"]
    assert len(positives) == tiny.positive_rows >= tiny.nodules
    for row in positives:
        image = images[row["seriesuid"]]
        x, y, z = image.TransformPhysicalPointToIndex((float(row["coordX"]), float(row["coordY"]), float(row["coordZ"])))
        patch = arrays[row["seriesuid"]][max(z - 1, 0):z + 2, max(y - 1, 0):y + 2, max(x - 1, 0):x + 2]
        assert patch.max() > -300, "a positive row should point at a nodule (0..100 HU), not into the lung (-850)"
    for row in rows(tiny.root / "annotations.csv"):  # an annotation's centre voxel is inside its sphere
        image = images[row["seriesuid"]]
        x, y, z = image.TransformPhysicalPointToIndex((float(row["coordX"]), float(row["coordY"]), float(row["coordZ"])))
        assert arrays[row["seriesuid"]][z, y, x] > -300


def test_counts_ratio_and_annotations(tiny):
    candidates = rows(tiny.root / "candidates.csv")
    assert sum(r["class"] == "0" for r in candidates) == tiny.negative_rows == 40 * tiny.positive_rows
    assert len(rows(tiny.root / "annotations.csv")) == tiny.annotated <= tiny.nodules
    assert {r["mal_bool"] for r in rows(tiny.root / "annotations_with_malignancy.csv")} <= {"True", "False"}


def test_the_nodule_list_is_the_truth_behind_the_annotations(tiny):
    nodules = rows(tiny.root / "mini_luna_nodules.csv")
    assert list(nodules[0]) == ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "annotated", "touches_wall"]
    assert len(nodules) == tiny.nodules and {r["annotated"] for r in nodules} <= {"True", "False"}
    annotated = [[r[k] for k in ("seriesuid", "coordX", "coordY", "coordZ", "diameter_mm")] for r in nodules
                 if r["annotated"] == "True"]
    assert annotated == [list(r.values()) for r in rows(tiny.root / "annotations.csv")]


def test_luna_s_files_are_unchanged_by_the_extra_nodule_list(tiny):
    """The bytes of every LUNA file for seed 3 as written before mini_luna_nodules.csv existed."""
    digest = hashlib.sha256()
    for path in sorted(tiny.root.rglob("*")):
        if path.is_file() and path.name != "mini_luna_nodules.csv":
            digest.update(path.relative_to(tiny.root).as_posix().encode())
            digest.update(path.read_bytes())
    assert digest.hexdigest() == "f177b5173b889bd41c99a936096b13ddeb3694d46a837f0fdc86591a0dc79fc2"


def test_the_same_seed_writes_the_same_bytes(tmp_path, tiny):
    again = make_mini_luna(tmp_path / "again", seed=3, tiny=True)
    assert digest(again.root) == digest(tiny.root)
    other = make_mini_luna(tmp_path / "other", seed=4, tiny=True)
    assert digest(other.root) != digest(tiny.root)
