"""A generated mini-LUNA: CT series and candidate lists that follow LUNA16's file contract exactly.

LUNA16 (888 CTs, about 220 GB with its candidates) has no offline source, so 08_ct trains on a small
stand-in whose files are those of LUNA: `subsetN/<seriesuid>.mhd` + `.raw` (MetaImage, int16 HU, little
endian), `candidates.csv` (seriesuid, coordX, coordY, coordZ, class), `annotations.csv` (..., diameter_mm)
and `annotations_with_malignancy.csv` (..., mal_bool). Code written for it runs unchanged on the real
data (LUNA_ROOT). One extra file, which LUNA does not have, holds the ground truth for segmentation:
`mini_luna_nodules.csv` (seriesuid, coordX, coordY, coordZ, diameter_mm, annotated, touches_wall) lists
every painted sphere, the unannotated ones too (`course_utils.ct.segment.nodule_mask` rasterises it).

What a series holds, in Hounsfield units: air (-1000) around an elliptical body (+40), two lung
ellipsoids (-850), a spine disc (+700), and in a third of the series an out-of-field-of-view rim
(-2048). Inside the lungs: 6-10 vessels (smoothed random walks, radius 1-2.5 mm) and 2-6 nodules
(spheres with a 0.6 mm sigmoid edge, diameter log-normal with median 7 mm clipped to 4-16 mm, about
20% touching the lung wall). Vessels and nodules draw their HU from the same U(0, 100), so intensity
alone cannot tell them apart; noise has sigma 25 HU. Each nodule has 1-2 positive candidate rows
jittered by at most d/8 per axis and, in about 90% of cases, one annotation row; negatives lie half
on vessels, half on random lung points away from nodules. Every number comes from one seeded NumPy
generator, so the same seed writes the same bytes on every machine.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from course_utils.ct.dsets import irc2xyz

__all__ = [
    "MiniLunaSummary", "NODULE_COLUMNS", "NODULES_CSV", "SERIES_UID_PREFIX", "build_mini_luna", "make_mini_luna",
    "write_mhd",
]

SERIES_UID_PREFIX = "1.3.6.1.4.1.14519.5.2.1.6279.6001."
AIR, BODY, LUNG, SPINE, RIM = -1000.0, 40.0, -850.0, 700.0, -2048.0
EDGE_MM = 0.6  # width of the sigmoid edge of vessels and nodules
NOISE_HU = 25.0
NODULES_CSV = "mini_luna_nodules.csv"  # not part of LUNA: every nodule, for ground-truth masks
NODULE_COLUMNS = ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "annotated", "touches_wall"]


@dataclass
class MiniLunaSummary:
    """What `make_mini_luna` wrote: series per subset and the row counts of the three CSV files. Used in 08_ct."""

    root: Path
    series: dict[str, list[str]] = field(default_factory=dict)  # subset folder -> series uids
    nodules: int = 0
    annotated: int = 0
    positive_rows: int = 0
    negative_rows: int = 0


def write_mhd(mhd: Path, volume_zyx: np.ndarray, origin_xyz, spacing_xyz, direction) -> None:
    """Write an int16 volume as MetaImage: `mhd` (the text header) and the .raw beside it (little endian).

    The header is LUNA's: DimSize and ElementSpacing in x y z order while the array is z y x, the
    direction cosines row by row in TransformMatrix. SimpleITK reads it back bit-exact.
    Used in 08_ct.
    """
    raw = mhd.with_suffix(".raw")
    nz, ny, nx = volume_zyx.shape
    header = [
        "ObjectType = Image",
        "NDims = 3",
        "BinaryData = True",
        "BinaryDataByteOrderMSB = False",
        "CompressedData = False",
        "TransformMatrix = " + " ".join(_num(v) for v in np.asarray(direction, dtype=float).ravel()),
        "Offset = " + " ".join(_num(v) for v in origin_xyz),
        "CenterOfRotation = 0 0 0",
        "AnatomicalOrientation = RAI",
        "ElementSpacing = " + " ".join(_num(v) for v in spacing_xyz),
        f"DimSize = {nx} {ny} {nz}",
        "ElementType = MET_SHORT",
        f"ElementDataFile = {raw.name}",
    ]
    raw.write_bytes(np.ascontiguousarray(volume_zyx, dtype="<i2").tobytes())
    mhd.write_text("\n".join(header) + "\n", encoding="ascii")


def _num(value: float) -> str:
    value = float(value)
    return str(int(value)) if value.is_integer() else repr(value)


@dataclass
class _Series:
    uid: str
    volume: np.ndarray  # int16 (z, y, x)
    origin: np.ndarray
    spacing: np.ndarray  # x, y, z
    direction: np.ndarray
    nodules: list[tuple[np.ndarray, float]]  # (centre irc as floats, diameter mm)
    vessel_points: np.ndarray  # (n, 3) irc floats along the vessels
    lung_mask: np.ndarray
    touches_wall: list[bool]  # one per nodule: placed in the band at the lung wall


def _series(rng: np.random.Generator, shape: tuple[int, int, int], flip_x: bool, rim: bool, n_nodules: int,
            n_vessels: int) -> _Series:
    nz, ny, nx = shape
    spacing = np.array([rng.uniform(1.1, 1.4)] * 2 + [rng.uniform(2.0, 2.5)])
    direction = np.diag([-1.0 if flip_x else 1.0, 1.0, 1.0])
    origin = np.round(-rng.uniform(100, 200, 3), 3)
    if flip_x:
        origin[0] = -origin[0]
    # physical offsets (mm) of every voxel from the volume's centre, z y x
    z, y, x = np.meshgrid(*(((np.arange(n) - (n - 1) / 2) * s) for n, s in zip(shape, spacing[::-1])), indexing="ij",
                          sparse=True)
    width, height, depth = nx * spacing[0], ny * spacing[1], nz * spacing[2]
    hu = np.full(shape, AIR)
    body = (x / (0.46 * width)) ** 2 + (y / (0.36 * height)) ** 2 <= 1.0
    hu[np.broadcast_to(body, shape)] = BODY
    lung = np.zeros(shape, dtype=bool)
    for side in (-1, 1):
        lung |= (((x - side * 0.2 * width) / (0.15 * width)) ** 2 + ((y + 0.02 * height) / (0.22 * height)) ** 2
                 + (z / (0.44 * depth)) ** 2) <= 1.0
    hu[lung] = LUNG
    spine = (x / (0.06 * width)) ** 2 + ((y - 0.27 * height) / (0.06 * width)) ** 2 <= 1.0
    hu[np.broadcast_to(spine, shape)] = SPINE

    grid_mm = [np.arange(n) * s for n, s in zip(shape, spacing[::-1])]  # z, y, x in mm from index 0
    depth_in_lung = ndimage.distance_transform_edt(lung, sampling=spacing[::-1])
    vessel_points = []
    for _ in range(n_vessels):
        points = _random_walk(rng, lung, depth_in_lung, spacing)
        radius = rng.uniform(1.0, 2.5)
        level = rng.uniform(0.0, 100.0)
        for point in points:
            _paint_sphere(hu, grid_mm, point * spacing[::-1], radius, level, inside=lung)
        vessel_points.append(points)
    nodules, touches_wall = [], []
    for _ in range(200):
        if len(nodules) == n_nodules:
            break
        diameter = float(np.clip(np.exp(rng.normal(np.log(7.0), 0.35)), 4.0, 16.0))
        radius = diameter / 2
        touching = rng.random() < 0.2
        band = (depth_in_lung >= 0.8 * radius) & (depth_in_lung <= 1.1 * radius) if touching else (
            depth_in_lung >= radius + 2.0)
        choices = np.argwhere(band)
        if not len(choices):
            continue
        centre = choices[rng.integers(len(choices))].astype(float)
        centre_mm = centre * spacing[::-1]
        if any(np.linalg.norm(centre_mm - c * spacing[::-1]) < radius + d / 2 + 2.0 for c, d in nodules):
            continue
        _paint_sphere(hu, grid_mm, centre_mm, radius, rng.uniform(0.0, 100.0))
        nodules.append((centre, diameter))
        touches_wall.append(touching)
    if rim:
        radial = np.sqrt(x ** 2 + y ** 2) > 0.5 * min(width, height)
        hu[np.broadcast_to(radial, shape)] = RIM
    noisy = hu + rng.normal(0.0, NOISE_HU, shape)
    volume = np.clip(np.rint(noisy), -32768, 32767).astype(np.int16)
    uid = SERIES_UID_PREFIX + "".join(str(d) for d in rng.integers(0, 10, 30))
    return _Series(uid, volume, origin, spacing, direction, nodules, np.concatenate(vessel_points), lung,
                   touches_wall)


def _random_walk(rng, lung, depth_in_lung, spacing) -> np.ndarray:
    """30-60 points (irc, floats) of a smooth walk that starts deep in a lung and stays inside it."""
    deep = np.argwhere(depth_in_lung > 4.0)
    position = deep[rng.integers(len(deep))].astype(float)
    heading = rng.normal(size=3)
    points = []
    for _ in range(int(rng.integers(30, 61))):
        heading = 0.8 * heading / np.linalg.norm(heading) + 0.2 * rng.normal(size=3)
        step = heading / np.linalg.norm(heading) * 1.5 / spacing[::-1]  # 1.5 mm per step, in voxels
        nxt = position + step
        index = tuple(np.clip(np.rint(nxt).astype(int), 0, np.array(lung.shape) - 1))
        if not lung[index]:
            heading = -heading
            continue
        position = nxt
        points.append(position.copy())
    return np.array(points) if points else position[None]


def _paint_sphere(hu, grid_mm, centre_mm, radius, level, inside=None) -> None:
    """Blend a sphere of HU `level` into `hu` with a sigmoid edge EDGE_MM wide (only where `inside`, if given)."""
    reach = radius + 3 * EDGE_MM
    lo = [max(0, int(np.searchsorted(g, c - reach))) for g, c in zip(grid_mm, centre_mm)]
    hi = [int(np.searchsorted(g, c + reach, side="right")) for g, c in zip(grid_mm, centre_mm)]
    box = tuple(slice(a, b) for a, b in zip(lo, hi))
    dz, dy, dx = (g[s][:, None, None] if k == 0 else g[s][None, :, None] if k == 1 else g[s][None, None, :]
                  for k, (g, s) in enumerate(zip(grid_mm, box)))
    distance = np.sqrt((dz - centre_mm[0]) ** 2 + (dy - centre_mm[1]) ** 2 + (dx - centre_mm[2]) ** 2)
    weight = 1.0 / (1.0 + np.exp((distance - radius) / (EDGE_MM / 4)))
    if inside is not None:
        weight = weight * inside[box]
    region = hu[box]
    hu[box] = region + weight * (level - region)


def make_mini_luna(root: Path, n_series: int = 24, n_subsets: int = 4, seed: int = 0, negative_ratio: int = 40,
                   tiny: bool = False) -> MiniLunaSummary:
    """Write a mini-LUNA under `root` (subsetN folders, LUNA's three CSV files and NODULES_CSV). Used in 08_ct.

    24 series of 40-56 x 96-128 x 96-128 voxels in 4 subsets by default (about 25 MB), one of them with a
    flipped x axis; `tiny=True` writes 2 series of 32 x 64 x 64 (under 1 MB) for unit tests. About
    `negative_ratio` negative rows per positive row. The same arguments write the same bytes.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    if tiny:
        n_series, n_subsets = 2, 2
    summary = MiniLunaSummary(root)
    candidates, annotations, nodules = [], [], []
    flipped = int(rng.integers(n_series))
    for k in range(n_series):
        shape = (32, 64, 64) if tiny else (int(rng.integers(40, 57)),) + (int(rng.integers(96, 129)),) * 2
        series = _series(rng, shape, flip_x=(k == flipped), rim=(k % 3 == 2), n_nodules=int(rng.integers(2, 7)),
                         n_vessels=2 if tiny else int(rng.integers(6, 11)))
        subset = f"subset{k % n_subsets}"
        folder = root / subset
        folder.mkdir(parents=True, exist_ok=True)
        write_mhd(folder / f"{series.uid}.mhd", series.volume, series.origin, series.spacing, series.direction)
        summary.series.setdefault(subset, []).append(series.uid)
        to_xyz = lambda irc: np.array(irc2xyz(irc, series.origin, series.spacing, series.direction))  # noqa: E731
        positives = 0
        for (centre, diameter), touching in zip(series.nodules, series.touches_wall):
            summary.nodules += 1
            xyz = to_xyz(centre)
            annotated = bool(rng.random() >= 0.1)
            if annotated:
                annotations.append((series.uid, *xyz, diameter, bool(rng.random() < 1 / (1 + np.exp(-(diameter - 9) / 2)))))
                summary.annotated += 1
            nodules.append((series.uid, *xyz, diameter, annotated, touching))
            for _ in range(int(rng.integers(1, 3))):
                candidates.append((series.uid, *(xyz + rng.uniform(-diameter / 8, diameter / 8, 3)), 1))
                positives += 1
        summary.positive_rows += positives
        negatives = _negative_points(rng, series, negative_ratio * positives)
        candidates += [(series.uid, *to_xyz(point), 0) for point in negatives]
        summary.negative_rows += len(negatives)
    _write_csv(root / "candidates.csv", ["seriesuid", "coordX", "coordY", "coordZ", "class"],
               sorted(candidates, key=lambda row: row[0]))
    _write_csv(root / "annotations.csv", ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm"],
               [row[:5] for row in sorted(annotations, key=lambda row: row[0])])
    _write_csv(root / "annotations_with_malignancy.csv",
               ["seriesuid", "coordX", "coordY", "coordZ", "diameter_mm", "mal_bool"],
               sorted(annotations, key=lambda row: row[0]))
    _write_csv(root / NODULES_CSV, NODULE_COLUMNS, sorted(nodules, key=lambda row: row[0]))
    return summary



def build_mini_luna(arguments: dict, out: Path) -> None:
    """`course data`'s builder of the registry's mini_luna: `make_mini_luna(out / "mini_luna", **arguments)`. Used in 08_ct."""
    make_mini_luna(Path(out) / "mini_luna", **arguments)


def _negative_points(rng, series: _Series, count: int) -> list[np.ndarray]:
    """`count` irc points, half on the vessels, half in the lungs; all at least 3 mm outside every nodule."""
    spacing_zyx = series.spacing[::-1]
    far = series.lung_mask.copy()
    grid = np.argwhere(far)
    for centre, diameter in series.nodules:
        near = np.linalg.norm((grid - centre) * spacing_zyx, axis=1) < diameter / 2 + 3.0
        far[tuple(grid[near].T)] = False
    lung_points = np.argwhere(far)
    vessel_points = series.vessel_points
    for centre, diameter in series.nodules:
        vessel_points = vessel_points[np.linalg.norm((vessel_points - centre) * spacing_zyx, axis=1) >= diameter / 2 + 3.0]
    on_vessels = [vessel_points[i] for i in rng.integers(len(vessel_points), size=count // 2)]
    in_lung = [lung_points[i].astype(float) for i in rng.integers(len(lung_points), size=count - count // 2)]
    return on_vessels + in_lung


def _write_csv(path: Path, header: list[str], rows) -> None:
    with open(path, "w", newline="", encoding="ascii") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        for row in rows:
            writer.writerow([_num(v) if isinstance(v, (float, np.floating)) else v for v in row])
