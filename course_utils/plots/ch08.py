"""Figures and explorers of 08_ct (CT scans end to end).

Part A and the data: a DICOM slice as stored values and as HU, an HU histogram under the tissue ladder,
display windows, orthogonal views at the true and the naive aspect, a mask overlay; then mini-LUNA: one
series in three views with its candidates, a crop gallery, the XYZ <-> IRC geometry of a series, the class
imbalance, and the CT explorer. Every figure function returns its figure (the chapter calls `plt.show()`);
an explorer's draw callback shows its own figure. Slices are drawn by `ct_views.draw_ct_slice` (rows
flipped so the face or the head is up, aspect taken from the spacing), so every marker here goes through
`_on_screen`, which applies the same flip.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from course_utils.plots.ct_views import draw_ct_slice
from course_utils.plots.widgets import explorer, pyplot

__all__ = [
    "LUNA_COUNTS", "TISSUE_LADDER", "WINDOWS", "ct_explorer", "draw_aspect_comparison", "draw_augmentations",
    "draw_class_balance", "draw_crop_gallery", "draw_ct_explorer", "draw_grouping", "draw_hu_histogram",
    "draw_mask_overlay", "draw_segmentation_overlay", "draw_series_with_candidates", "draw_stored_vs_hu",
    "draw_windows", "draw_xyz_irc", "gallery_crops",
]

# ================================================================================================
# Part A and the data
# ================================================================================================

# Display windows as (level, width) in HU: level - width/2 is black, level + width/2 white.
WINDOWS = {"brain": (40, 80), "soft tissue": (40, 400), "bone": (500, 2000), "lung": (-600, 1500)}

# The HU ladder: (tissue, low, high). A single value is drawn as a line, a range as a band.
TISSUE_LADDER = (
    ("air", -1000, -1000),
    ("lung", -850, -500),
    ("fat", -100, -100),
    ("water", 0, 0),
    ("soft tissue", 20, 80),
    ("bone", 400, None),  # >= +400: the band runs to the right edge of the plot
)

# LUNA16's candidates (Deep Learning with PyTorch, ch. 9): 551,065 rows of which 1,351 are nodules.
LUNA_COUNTS = (1351, 551065 - 1351)

_VIEW_NAMES = ("axial", "coronal", "sagittal")
_POSITIVE, _NEGATIVE = "#d62728", "#17becf"  # red: nodule candidates, cyan: negatives


def draw_stored_vs_hu(stored, hu, pixel_spacing: float | None = None):
    """A DICOM slice twice, side by side with colourbars: its stored values and the same pixels in HU. Taught in 08_ct.

    `hu` is what the chapter computes, `stored * RescaleSlope + RescaleIntercept`: the two pictures look
    alike and only the colourbar numbers move. `pixel_spacing` (mm) adds it to the titles. Returns the figure.
    """
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8))
    spacing = f", {pixel_spacing:.3g} mm pixels" if pixel_spacing else ""
    for ax, image, title, unit in ((axes[0], stored, "stored values", "stored value"), (axes[1], hu, "Hounsfield units", "HU")):
        image = np.asarray(image)
        shown = ax.imshow(image, cmap="gray", interpolation="nearest")
        ax.set_title(f"{title} ({image.min():g} ... {image.max():g}){spacing}", fontsize=9)
        ax.set_axis_off()
        fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.04, label=unit)
    fig.tight_layout()
    return fig


def draw_hu_histogram(hu, ax=None, bins: int = 200, ladder=TISSUE_LADDER):
    """Histogram of HU values (log counts) under the tissue ladder: air, lung, fat, water, soft tissue, bone. Taught in 08_ct.

    Returns the figure.
    """
    plt = pyplot()
    hu = np.asarray(hu).ravel()
    if ax is None:
        _, ax = plt.subplots(figsize=(9, 3.6))
    ax.hist(hu, bins=bins, color="0.35", log=True)
    low_edge, high_edge = min(hu.min(), -1050), max(hu.max(), 1100)
    colours = plt.get_cmap("tab10")
    for k, (name, low, high) in enumerate(ladder):
        colour = colours(k)
        if low == high:
            ax.axvline(low, color=colour, linewidth=1.5)
            label = f"{name} {low:+g}"
        else:
            ax.axvspan(low, high if high is not None else high_edge, color=colour, alpha=0.18)
            label = f"{name} {low:+g}..{'' if high is None else f'{high:+g}'}"
        ax.text(low, 0.97 - 0.1 * k, " " + label, transform=ax.get_xaxis_transform(), fontsize=7, color=colour,
                ha="left", va="top")
    ax.set_xlim(low_edge, high_edge)
    ax.set_xlabel("HU")
    ax.set_ylabel("voxels (log)")
    ax.figure.tight_layout()
    return ax.figure


def draw_windows(volume, spacing, windows: Mapping[str, tuple[float, float]] | None = None,
                 window: Callable | None = None, axis: int = 0, index: int | None = None):
    """One slice under several display windows {name: (level, width)} (default: brain, soft tissue, bone). Taught in 08_ct.

    A window maps level - width/2 ... level + width/2 onto black ... white and clips the rest:
    clip((hu - (level - width/2)) / width, 0, 1). Without `window`, matplotlib applies it (`vmin`, `vmax`);
    pass the chapter's own `window(hu, level, width)` and the picture shows what it returns (0 black, 1 white)
    instead, so the two can be compared. `spacing` is (z, y, x) in mm. Returns the figure.
    """
    plt = pyplot()
    volume = np.asarray(volume)
    windows = windows or {name: WINDOWS[name] for name in ("brain", "soft tissue", "bone")}
    index = volume.shape[axis] // 2 if index is None else int(index)
    plane = np.take(volume, [index], axis=axis)  # keeps the axis (length 1), so draw_ct_slice orients it
    fig, axes = plt.subplots(1, len(windows), figsize=(3.4 * len(windows), 3.6))
    for ax, (name, (level, width)) in zip(np.atleast_1d(axes), windows.items()):
        title = f"{name} {level:g}/{width:g}"
        if window is None:
            draw_ct_slice(plane, spacing, axis=axis, index=0, level=level, width=width, ax=ax, title=title)
        else:
            draw_ct_slice(np.asarray(window(plane, level, width), dtype=float), spacing, axis=axis, index=0,
                          level=0.5, width=1.0, ax=ax, title=title)
    fig.suptitle(f"{_VIEW_NAMES[axis]} slice {index}", fontsize=10)
    fig.tight_layout()
    return fig


def draw_aspect_comparison(volume, spacing, level: float = 40, width: float = 400):
    """Axial, coronal and sagittal middle slices at the aspect the spacing gives (left) and with square pixels (right). Taught in 08_ct.

    With 1.5 mm slices and 0.957 mm pixels, the square-pixel coronal and sagittal views squash the head to
    two thirds of its height. Returns the figure.
    """
    plt = pyplot()
    fig, axes = plt.subplots(3, 2, figsize=(7.5, 10))
    for column, (shown_spacing, how) in enumerate(((spacing, "true aspect"), ((1.0, 1.0, 1.0), "square pixels"))):
        for axis in range(3):
            draw_ct_slice(volume, shown_spacing, axis=axis, level=level, width=width, ax=axes[axis, column],
                          title=f"{_VIEW_NAMES[axis]}, {how}")
    fig.tight_layout()
    return fig


def draw_mask_overlay(volume, spacing, mask, axis: int = 0, index: int | None = None, level: float = 40,
                      width: float = 400, colour: str = "#ff7f0e", alpha: float = 0.5, ax=None, title: str | None = None):
    """A slice under a window with a boolean mask painted over it (e.g. Cranium's bone mask). Taught in 08_ct.

    Returns the figure.
    """
    volume, mask = np.asarray(volume), np.asarray(mask, dtype=bool)
    index = volume.shape[axis] // 2 if index is None else int(index)
    title = title or f"{_VIEW_NAMES[axis]} {index}: {int(mask.sum()):,} mask voxels in the volume"
    ax = draw_ct_slice(volume, spacing, axis=axis, index=index, level=level, width=width, ax=ax, title=title)
    plane = np.take(mask, index, axis=axis)[::-1]  # flipped as draw_ct_slice flips the image
    overlay = np.zeros((*plane.shape, 4))
    overlay[plane] = _rgba(colour, alpha)
    ax.imshow(overlay, aspect=ax.get_aspect(), interpolation="nearest")  # the aspect draw_ct_slice set
    return ax.figure


def _rgba(colour: str, alpha: float = 1.0) -> tuple[float, float, float, float]:
    from matplotlib.colors import to_rgba

    return to_rgba(colour, alpha)


# ------------------------------------------------------------------------------------------------
# mini-LUNA: a series, its candidates, crops, geometry and class balance
# ------------------------------------------------------------------------------------------------


def _spacing_zyx(ct) -> tuple[float, float, float]:
    """A `Ct`'s voxel size in the (z, y, x) order of its array (SimpleITK gives x, y, z)."""
    return tuple(float(s) for s in ct.vxSize_xyz)[::-1]


def _rows(candidates) -> list[tuple[str, tuple[float, float, float], bool]]:
    """(series_uid, center_xyz, is_nodule) per candidate, from candidates.csv as a DataFrame or `getCandidateInfoList`."""
    if hasattr(candidates, "columns"):
        return [(uid, (x, y, z), bool(c)) for uid, x, y, z, c in
                candidates[["seriesuid", "coordX", "coordY", "coordZ", "class"]].itertuples(index=False)]
    return [(c.series_uid, tuple(c.center_xyz), bool(c.isNodule_bool)) for c in candidates]


def _series_candidates(ct, candidates) -> list[tuple[tuple[int, int, int], bool]]:
    """(center_irc, is_nodule) of every candidate of `ct`'s series, via `xyz2irc`."""
    from course_utils.ct.dsets import xyz2irc

    return [(tuple(xyz2irc(xyz, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a)), positive)
            for uid, xyz, positive in _rows(candidates) if uid == ct.series_uid]


def _candidates_of(luna_root, candidates):
    from course_utils.ct.dsets import getCandidateInfoList

    return getCandidateInfoList(str(luna_root)) if candidates is None else candidates


def _series_uids(luna_root) -> list[str]:
    return sorted(p.stem for p in Path(luna_root).glob("subset*/*.mhd"))


def _on_screen(shape, axis: int, irc) -> tuple[float, float]:
    """Where voxel `irc` of a (D, H, W) volume lands in a `draw_ct_slice` picture of `axis`: (x, y) in pixels.

    The picture's rows are the first remaining axis, flipped (row r is drawn at height n_rows - 1 - r).
    """
    row_axis, col_axis = [a for a in range(3) if a != axis]
    return float(irc[col_axis]), float(shape[row_axis] - 1 - irc[row_axis])


def _draw_candidates(ax, shape, axis: int, index: int, found, within: int = 2) -> int:
    """Circle the candidates whose slice along `axis` is within `within` of `index`; return how many."""
    near = [(irc, positive) for irc, positive in found if abs(irc[axis] - index) <= within]
    for irc, positive in sorted(near, key=lambda item: item[1]):  # positives last, on top
        x, y = _on_screen(shape, axis, irc)
        ax.plot(x, y, "o", markersize=9, markerfacecolor="none", markeredgewidth=1.3,
                markeredgecolor=_POSITIVE if positive else _NEGATIVE)
    return len(near)


def _legend(ax) -> None:
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], marker="o", linestyle="", markerfacecolor="none", markeredgecolor=colour, label=label)
               for colour, label in ((_POSITIVE, "nodule candidate"), (_NEGATIVE, "negative candidate"))]
    ax.legend(handles=handles, loc="lower right", fontsize=7, framealpha=0.7)


def draw_series_with_candidates(luna_root, series_uid: str, candidates=None, center_irc=None, level: float = -600,
                                width: float = 1500, within: int = 2):
    """One series in axial, coronal and sagittal views, its candidates circled (red: nodule, cyan: negative). Taught in 08_ct.

    The series is read as a `course_utils.ct.Ct` (HU clipped to [-1000, 1000]); `candidates` is candidates.csv
    as a DataFrame or `getCandidateInfoList(root)` (read from `luna_root` when None). The views cross at
    `center_irc`, by default the series' first nodule candidate (else the centre); a candidate is circled
    when it lies within `within` slices of a view. Returns the figure.
    """
    from course_utils.ct.dsets import getCt

    plt = pyplot()
    ct = getCt(str(luna_root), series_uid)
    found = _series_candidates(ct, _candidates_of(luna_root, candidates))
    shape = ct.hu_a.shape
    if center_irc is None:
        center_irc = next((irc for irc, positive in found if positive), tuple(n // 2 for n in shape))
    fig, axes = plt.subplots(1, 3, figsize=(11, 4))
    for axis, ax in enumerate(axes):
        index = int(center_irc[axis])
        draw_ct_slice(ct.hu_a, _spacing_zyx(ct), axis=axis, index=index, level=level, width=width, ax=ax)
        shown = _draw_candidates(ax, shape, axis, index, found, within)
        ax.set_title(f"{_VIEW_NAMES[axis]} {index}: {shown} candidates within ±{within}", fontsize=9)
    _legend(axes[0])
    fig.suptitle(f"series ...{series_uid[-8:]}: {shape[0]} x {shape[1]} x {shape[2]} voxels, window {level:g}/{width:g}",
                 fontsize=10)
    fig.tight_layout()
    return fig


def gallery_crops(dataset, per_row: int = 6, vessel_hu: float = -400.0, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Crops for `draw_crop_gallery`, read through a `LunaDataset`'s crop function (and so its cache). Used in 08_ct.

    Rows: nodules, vessel-like negatives and random-lung negatives. A negative counts as vessel-like when
    its centre voxel is denser than `vessel_hu` (lung is about -850 HU, vessels 0...100). `per_row` of each,
    drawn with a seeded generator. Returns {row title: [crop (D, H, W) in HU, ...]}.
    """
    rng = np.random.default_rng(seed)
    rows: dict[str, list] = {"nodule": [], "vessel-like negative": [], "random-lung negative": []}

    def crop(candidate):
        hu, _ = dataset.crop_fn(dataset.data_root, candidate.series_uid, candidate.center_xyz, dataset.width_irc)
        return np.asarray(hu)

    for i in rng.permutation(len(dataset.pos_list))[:per_row]:
        rows["nodule"].append(crop(dataset.pos_list[i]))
    for i in rng.permutation(len(dataset.neg_list)):
        hu = crop(dataset.neg_list[i])
        kind = "vessel-like negative" if hu[tuple(n // 2 for n in hu.shape)] > vessel_hu else "random-lung negative"
        if len(rows[kind]) < per_row:
            rows[kind].append(hu)
        if len(rows["vessel-like negative"]) >= per_row and len(rows["random-lung negative"]) >= per_row:
            break
    return rows


def draw_crop_gallery(crops, per_row: int = 6, level: float = -600, width: float = 1500, seed: int = 0):
    """A grid of candidate crops, one row per kind, each crop shown at its middle slice. Taught in 08_ct.

    `crops` is a `LunaDataset` (rows picked by `gallery_crops(crops, per_row, seed=seed)`: nodules,
    vessel-like and random-lung negatives) or a mapping {row title: [crop (D, H, W) in HU, ...]}.
    Returns the figure.
    """
    plt = pyplot()
    rows = crops if isinstance(crops, Mapping) else gallery_crops(crops, per_row, seed=seed)
    n_cols = max(1, max(len(row) for row in rows.values()))
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.6 * n_cols, 1.8 * len(rows)), squeeze=False)
    for r, (title, row) in enumerate(rows.items()):
        for c, ax in enumerate(axes[r]):
            ax.set_axis_off()
            if c < len(row):
                crop = np.asarray(row[c])
                ax.imshow(crop[crop.shape[0] // 2], cmap="gray", vmin=level - width / 2, vmax=level + width / 2,
                          interpolation="nearest")
        axes[r, 0].set_title(title, fontsize=9, loc="left")
    fig.suptitle(f"middle slice of each crop, window {level:g}/{width:g}", fontsize=10)
    fig.tight_layout()
    return fig


def draw_xyz_irc(luna_root, candidates=None, series_uids: Sequence[str] | None = None, level: float = -600,
                 width: float = 1500):
    """How array indices (index, row, col) map to patient millimetres (x, y, z), drawn from real series. Taught in 08_ct.

    By default two series: the first with an identity direction and the one whose X axis is flipped. Each
    panel is the axial slice through the series' first nodule candidate, as stored (row 0 at the top, col 0
    at the left): col and row indices on the bottom and left axes, X and Y in mm (origin + direction x
    spacing x index) on the top and right axes, the origin voxel marked, arrows where +X and +Y point, and
    the candidate labelled with its xyz and irc. On the flipped series the +X arrow points left and the mm
    values fall from left to right. `candidates`: candidates.csv as a DataFrame or `getCandidateInfoList`.
    Returns the figure.
    """
    from course_utils.ct.dsets import getCt, xyz2irc

    plt = pyplot()
    rows = _rows(_candidates_of(luna_root, candidates))
    if series_uids is None:
        flips = {uid: getCt(str(luna_root), uid).direction_a[0, 0] < 0 for uid in _series_uids(luna_root)}
        series_uids = [next(u for u, f in flips.items() if not f)] + [u for u, f in flips.items() if f][:1]
    fig, axes = plt.subplots(1, len(series_uids), figsize=(5.4 * len(series_uids), 5.6), squeeze=False)
    for uid, ax in zip(series_uids, axes[0]):
        ct = getCt(str(luna_root), uid)
        (ox, oy, oz), (sx, sy, sz) = ct.origin_xyz, ct.vxSize_xyz
        dx, dy, dz = (float(d) for d in np.diag(ct.direction_a))
        mine = [(xyz, positive) for u, xyz, positive in rows if u == uid]
        xyz = next((xyz for xyz, positive in mine if positive), mine[0][0] if mine else None)
        irc = xyz2irc(xyz, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a) if xyz else (ct.hu_a.shape[0] // 2, 0, 0)
        index = int(irc[0])
        ax.imshow(ct.hu_a[index], cmap="gray", vmin=level - width / 2, vmax=level + width / 2, aspect=sy / sx,
                  interpolation="nearest")
        ax.set_xlabel("col (array axis 2)")
        ax.set_ylabel("row (array axis 1)")
        top = ax.secondary_xaxis("top", functions=(lambda c, o=ox, s=sx * dx: o + s * c,
                                                   lambda x, o=ox, s=sx * dx: (x - o) / s))
        top.set_xlabel("X (mm)")
        right = ax.secondary_yaxis("right", functions=(lambda r, o=oy, s=sy * dy: o + s * r,
                                                       lambda y, o=oy, s=sy * dy: (y - o) / s))
        right.set_ylabel("Y (mm)")
        n_rows, n_cols = ct.hu_a.shape[1:]
        ax.plot(0, 0, "s", color="#ffbf00", markersize=7, clip_on=False)
        ax.annotate(f"origin: voxel (0, 0, 0)\n= ({ox:.1f}, {oy:.1f}, {oz:.1f}) mm", (0, 0),
                    (0.05 * n_cols, 0.12 * n_rows), color="#ffbf00", fontsize=8)
        length, centre = 0.25 * min(n_rows, n_cols), (n_cols / 2, n_rows / 2)
        for label, (u, v) in (("+X", (dx * length, 0)), ("+Y", (0, dy * length))):
            ax.annotate("", (centre[0] + u, centre[1] + v), centre,
                        arrowprops={"arrowstyle": "->", "color": "#2ca02c", "linewidth": 2})
            ax.text(centre[0] + 1.2 * u, centre[1] + 1.2 * v, label, color="#2ca02c", fontsize=10, ha="center",
                    va="center", fontweight="bold")
        if xyz:
            ax.plot(irc[2], irc[1], "o", markersize=11, markerfacecolor="none", markeredgecolor=_POSITIVE)
            ax.annotate(f"xyz ({xyz[0]:.1f}, {xyz[1]:.1f}, {xyz[2]:.1f}) mm\nirc ({irc[0]}, {irc[1]}, {irc[2]})",
                        (irc[2], irc[1]), (0.05 * n_cols, 0.9 * n_rows), color=_POSITIVE, fontsize=8,
                        arrowprops={"arrowstyle": "-", "color": _POSITIVE, "linewidth": 0.8})
        flipped = ", X flipped" if dx < 0 else ""
        ax.set_title(f"series ...{uid[-8:]}{flipped}: axial index {index}\n"
                     f"spacing x, y, z = {sx:.3g}, {sy:.3g}, {sz:.3g} mm; direction diagonal {dx:+g}, {dy:+g}, {dz:+g}",
                     fontsize=8)
    fig.tight_layout()
    return fig


def draw_class_balance(candidates, luna: tuple[int, int] | None = LUNA_COUNTS):
    """Positive versus negative candidate rows, beside LUNA16's, on a log scale with every count written. Taught in 08_ct.

    `candidates`: candidates.csv as a DataFrame (its `class` column) or `getCandidateInfoList`; `luna`
    (positives, negatives) adds the real dataset's bars (None leaves them out). Returns the figure.
    """
    plt = pyplot()
    labels = [positive for _, _, positive in _rows(candidates)]
    counts = {"this data": (sum(labels), len(labels) - sum(labels))}
    if luna is not None:
        counts["LUNA16"] = tuple(luna)
    fig, ax = plt.subplots(figsize=(2.4 + 1.8 * len(counts), 3.6))
    names = list(counts)
    x = np.arange(len(names))
    for offset, k, colour, label in ((-0.2, 0, _POSITIVE, "positive (nodule)"), (0.2, 1, _NEGATIVE, "negative")):
        values = [counts[name][k] for name in names]
        bars = ax.bar(x + offset, values, width=0.4, color=colour, label=label)
        ax.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=8)
    ax.set_yscale("log")
    ax.set_xticks(x, [f"{name}\n1 : {counts[name][1] / max(counts[name][0], 1):,.0f}" for name in names])
    ax.set_ylabel("candidate rows (log)")
    ax.margins(y=0.15)
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------------
# Widget 1: the CT explorer
# ------------------------------------------------------------------------------------------------

_CRANIUM = "Cranium"


def draw_ct_explorer(volume, spacing, luna_root=None, name: str = _CRANIUM, axis: int = 0, position: float = 0.5,
                     preset: str = "soft tissue", markers: bool = True, candidates=None, within: int = 2):
    """The CT explorer's picture: one slice of Cranium or of a mini-LUNA series under a window preset. Taught in 08_ct.

    `volume`, `spacing` (z, y, x in mm) are Cranium's (`data.ct_volume()`); `name` is "Cranium" or a series
    uid under `luna_root`, read as a `Ct`. `position` in [0, 1] picks the slice along `axis`; `preset` is a
    key of `WINDOWS`. With `markers`, a series' candidates within `within` slices are circled (red: nodule,
    cyan: negative); `candidates` defaults to `getCandidateInfoList(luna_root)`. Returns the axes.
    """
    from course_utils.ct.dsets import getCt

    ct = None if name == _CRANIUM else getCt(str(luna_root), name)
    if ct is not None:
        volume, spacing = ct.hu_a, _spacing_zyx(ct)
    shape = np.shape(volume)
    index = min(int(position * shape[axis]), shape[axis] - 1)
    level, width = WINDOWS[preset]
    ax = draw_ct_slice(volume, spacing, axis=axis, index=index, level=level, width=width)
    title = f"{name if ct is None else '...' + name[-8:]}: {_VIEW_NAMES[axis]} {index} of {shape[axis]}, {preset} {level}/{width}"
    if markers and ct is not None:
        shown = _draw_candidates(ax, shape, axis, index, _series_candidates(ct, _candidates_of(luna_root, candidates)),
                                 within)
        title += f"\n{shown} candidates within ±{within} slices"
        _legend(ax)
    ax.set_title(title, fontsize=9)
    return ax


def ct_explorer(volume, spacing, luna_root=None, candidates=None):
    """Widget 1 of 08_ct: volume (Cranium or a mini-LUNA series), axis, slice, window preset, candidate markers. Taught in 08_ct.

    The arguments are `draw_ct_explorer`'s, which draws the default view for a static page. Series under
    `luna_root` (none when it is None) are read only when picked. Returns the ipywidgets box; nothing is
    drawn until a control moves (see `explorer`).
    """
    import ipywidgets as widgets

    def draw(name, axis, position, preset, markers):
        draw_ct_explorer(volume, spacing, luna_root, name=name, axis=axis, position=position, preset=preset,
                         markers=markers, candidates=candidates)
        pyplot().show()

    names = [_CRANIUM] + ([] if luna_root is None else _series_uids(luna_root))
    return explorer(
        draw,
        name=widgets.Dropdown(options=[(n if n == _CRANIUM else "series ..." + n[-8:], n) for n in names], value=_CRANIUM,
                              description="volume"),
        axis=widgets.Dropdown(options=[("axial", 0), ("coronal", 1), ("sagittal", 2)], value=0, description="axis"),
        position=widgets.FloatSlider(min=0.0, max=1.0, step=0.01, value=0.5, continuous_update=False, description="slice"),
        preset=widgets.Dropdown(options=list(WINDOWS), value="soft tissue", description="window"),
        markers=widgets.Checkbox(value=True, description="candidates (±2 slices)"),
    )


# ================================================================================================
# Augmentation (section 17) and Part C
# ================================================================================================


def draw_augmentations(dataset, index: int = 0, seed: int = 0, level: float = -600, width: float = 1500):
    """One crop's middle slice under each augmentation alone, then all five together. Taught in 08_ct.

    Draws from `course_utils.ct.augment` with a generator seeded by `seed`, so the picture repeats. Returns the figure.
    """
    import torch

    from course_utils.ct.augment import AUGMENTATIONS, augment_crop

    plt = pyplot()
    crop = dataset[index][0]
    variants = {"original": {}} | {name: {name: value} for name, value in AUGMENTATIONS.items()} | {"all five": AUGMENTATIONS}
    fig, axes = plt.subplots(1, len(variants), figsize=(2.0 * len(variants), 2.4))
    for ax, (name, augmentation) in zip(axes, variants.items()):
        out = augment_crop(crop, augmentation, torch.Generator().manual_seed(seed)) if augmentation else crop
        ax.imshow(out[0, out.shape[1] // 2].numpy(), cmap="gray", vmin=level - width / 2, vmax=level + width / 2)
        ax.set_title(name, fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def draw_segmentation_overlay(hu_slice, label, pred, threshold: float = 0.5, title: str = "", ax=None,
                              level: float = -600, width: float = 1500):
    """A slice with the segmenter's errors painted on: true positives green, false positives red, false negatives
    orange. Taught in 08_ct. `label` and `pred` are (H, W) arrays (pred a probability). Returns the axes."""
    plt = pyplot()
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 4))
    hu_slice, label = np.asarray(hu_slice), np.asarray(label, dtype=bool)
    predicted = np.asarray(pred) >= threshold
    ax.imshow(hu_slice, cmap="gray", vmin=level - width / 2, vmax=level + width / 2)
    overlay = np.zeros(hu_slice.shape + (4,))
    for mask, colour in ((label & predicted, "#2ca02c"), (~label & predicted, "#d62728"), (label & ~predicted, "#ff7f0e")):
        overlay[mask] = _rgba(colour, 0.7)
    ax.imshow(overlay)
    ax.set_title(title or f"TP {int((label & predicted).sum())}, FP {int((~label & predicted).sum())}, "
                 f"FN {int((label & ~predicted).sum())}", fontsize=9)
    ax.set_axis_off()
    return ax


def draw_grouping(hu, probabilities, candidates, nodules_irc, threshold: float = 0.5, level: float = -600,
                  width: float = 1500):
    """End to end on one series: for each slice that holds a grouped candidate or a nodule centre (at most 6), the
    thresholded segmentation in yellow, candidate centres as crosses, nodule centres as circles. Taught in 08_ct.

    `candidates` are `group_candidates` dicts (centre_irc), `nodules_irc` the (index, row, col) of the nodules.
    Returns the figure.
    """
    plt = pyplot()
    hu, probabilities = np.asarray(hu), np.asarray(probabilities)
    slices = sorted({int(round(c["center_irc"][0])) for c in candidates} | {int(round(n[0])) for n in nodules_irc})[:6]
    fig, axes = plt.subplots(1, max(1, len(slices)), figsize=(3.0 * max(1, len(slices)), 3.2), squeeze=False)
    for ax, index in zip(axes[0], slices):
        ax.imshow(hu[index], cmap="gray", vmin=level - width / 2, vmax=level + width / 2)
        overlay = np.zeros(hu[index].shape + (4,))
        overlay[probabilities[index] >= threshold] = _rgba("#ffdd00", 0.6)
        ax.imshow(overlay)
        for c in candidates:
            if abs(c["center_irc"][0] - index) < 1:
                ax.plot(c["center_irc"][2], c["center_irc"][1], "x", color="#d62728", markersize=8, mew=2)
        for n in nodules_irc:
            if abs(n[0] - index) < 1:
                ax.plot(n[2], n[1], "o", mfc="none", color="#2ca02c", markersize=14, mew=1.5)
        ax.set_title(f"slice {index}", fontsize=9)
        ax.set_axis_off()
    fig.tight_layout()
    return fig
