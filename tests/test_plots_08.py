"""course_utils.plots.ch08: every figure of 08_ct draws on small inputs, markers land on their voxels, and the
CT explorer builds without drawing and draws once when its callback is called with fixed arguments."""

import matplotlib
import numpy as np
import pytest

from course_utils.plots import ch08, widgets

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

pytest.importorskip("SimpleITK")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def luna(tmp_path_factory):
    """The tiny mini-LUNA (2 series of 32 x 64 x 64, one with a flipped X axis), its candidates and both series."""
    from course_utils.ct import Ct, getCandidateInfoList, make_mini_luna

    summary = make_mini_luna(tmp_path_factory.mktemp("luna") / "tiny", seed=0, tiny=True)
    root = str(summary.root)
    uids = [uid for uids in summary.series.values() for uid in uids]
    return root, getCandidateInfoList(root), [Ct(root, uid) for uid in uids]


def _head(shape=(12, 20, 24)):
    """A small (D, H, W) 'head': air around a water ball with a bone shell."""
    z, y, x = np.indices(shape)
    r = np.sqrt(((z - shape[0] / 2) * 1.5) ** 2 + (y - shape[1] / 2) ** 2 + (x - shape[2] / 2) ** 2)
    return np.where(r < 6, 20, np.where(r < 8, 900, -1000)).astype(np.int16)


def window(hu, level, width):
    return np.clip((np.asarray(hu, dtype=float) - (level - width / 2)) / width, 0, 1)


def test_part_a_figures_draw():
    head, spacing = _head(), (1.5, 0.957, 0.957)
    stored = np.arange(64 * 64).reshape(64, 64) % 2000 + 128
    for fig in (ch08.draw_stored_vs_hu(stored, stored - 1024, pixel_spacing=0.661),
                ch08.draw_hu_histogram(head),
                ch08.draw_windows(head, spacing, {"brain": (40, 80), "bone": (500, 2000)}, index=4),
                ch08.draw_aspect_comparison(head, spacing),
                ch08.draw_mask_overlay(head, spacing, head >= 226, axis=1)):
        assert isinstance(fig, matplotlib.figure.Figure) and fig.axes


def test_draw_windows_shows_what_the_chapter_s_window_returns_and_matplotlib_agrees():
    head = _head()
    seen = []
    record = lambda hu, level, width: seen.append((hu.shape, level, width)) or window(hu, level, width)  # noqa: E731
    fig = ch08.draw_windows(head, (1.5, 1, 1), {"brain": (40, 80), "bone": (500, 2000)}, window=record, axis=2, index=3)
    assert seen == [((12, 20, 1), 40, 80), ((12, 20, 1), 500, 2000)]  # one slice per window, not the volume
    image = fig.axes[1].images[0]
    assert np.allclose(image.get_array(), window(head[:, :, 3], 500, 2000)[::-1])  # drawn as draw_ct_slice orients it
    plain = ch08.draw_windows(head, (1.5, 1, 1), {"bone": (500, 2000)}, axis=2, index=3).axes[0].images[0]
    assert np.allclose(plain.norm(plain.get_array()).clip(0, 1), image.get_array())  # vmin/vmax: the same window


def test_the_mask_overlay_sits_on_the_masked_voxels():
    head = _head()
    fig = ch08.draw_mask_overlay(head, (1.5, 1, 1), head >= 226, axis=0, index=6)
    ax = fig.axes[0]
    overlay = ax.images[1].get_array()
    assert np.array_equal(overlay[..., 3] > 0, (head[6] >= 226)[::-1])
    assert ax.images[1].get_extent() == ax.images[0].get_extent()


def test_on_screen_matches_draw_ct_slice_orientation():
    volume = np.zeros((5, 6, 7))
    volume[1, 2, 3] = 1
    for axis in range(3):
        ax = ch08.draw_ct_slice(volume, axis=axis, index=(1, 2, 3)[axis])
        x, y = ch08._on_screen(volume.shape, axis, (1, 2, 3))
        assert ax.images[0].get_array()[int(y), int(x)] == 1


def test_mini_luna_figures_draw(luna):
    import pandas as pd

    from course_utils.ct import LunaDataset

    root, candidates, cts = luna
    frame = pd.read_csv(f"{root}/candidates.csv")
    for given in (None, frame):  # the DataFrame of candidates.csv, or the book's candidate list (read when None)
        fig = ch08.draw_series_with_candidates(root, cts[0].series_uid, given)
        assert len(fig.axes) == 3 and sum(len(ax.lines) for ax in fig.axes) >= 1  # its first nodule is circled
    rows = ch08.gallery_crops(LunaDataset(root), per_row=3)
    assert list(rows) == ["nodule", "vessel-like negative", "random-lung negative"]
    assert all(crop.shape == (16, 24, 24) for crops in rows.values() for crop in crops) and rows["nodule"]
    ch08.draw_crop_gallery(rows)
    fig = ch08.draw_xyz_irc(root, frame)
    assert "X flipped" not in fig.axes[0].get_title() and "X flipped" in fig.axes[1].get_title()
    secondary = fig.axes[1].child_axes  # the mm axes ride on the index axes
    assert [a.get_xlabel() or a.get_ylabel() for a in secondary] == ["X (mm)", "Y (mm)"]
    assert fig.axes[1].get_xlabel() == "col (array axis 2)"
    fig = ch08.draw_class_balance(frame)
    assert f"{int(frame['class'].sum()):,}" in [t.get_text() for t in fig.axes[0].texts]
    ch08.draw_class_balance(candidates, luna=None)


def test_the_ct_explorer_builds_without_drawing_and_its_callback_draws_once(luna, monkeypatch):
    from course_utils.ct import xyz2irc

    root, candidates, cts = luna
    head, spacing = _head(), (1.5, 0.957, 0.957)
    box = ch08.ct_explorer(head, spacing, root)
    assert repr(box) == widgets.STATIC_TEXT and plt.get_fignums() == []  # nothing drawn while the cell runs
    volume_control = box.children[0].children[0]
    assert len(volume_control.options) == 1 + len(cts)  # Cranium and every series under the root
    shows = []
    monkeypatch.setattr(plt, "show", lambda *a, **k: shows.append(1))
    box.redraw()  # the callback, with the controls' default values
    assert shows == [1] and len(plt.get_fignums()) == 1
    ct = cts[0]
    nodule = next(c for c in candidates if c.isNodule_bool and c.series_uid == ct.series_uid)
    irc = xyz2irc(nodule.center_xyz, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a)
    position = (irc.index + 0.5) / ct.hu_a.shape[0]
    ax = ch08.draw_ct_explorer(head, spacing, root, name=ct.series_uid, axis=0, position=position, preset="lung")
    assert "lung -600/1500" in ax.get_title() and len(ax.lines) >= 1
    off = ch08.draw_ct_explorer(head, spacing, root, name=ct.series_uid, position=position, markers=False)
    assert len(off.lines) == 0
    ax = ch08.draw_ct_explorer(head, spacing, name="Cranium", axis=2, position=1.0, preset="bone")  # last slice
    assert "sagittal 23 of 24" in ax.get_title()
