"""Segmentation and one series end to end, after *Deep Learning with PyTorch* ch. 13-14. Used in 08_ct.

    masks       getNoduleInfoList, nodule_mask / getNoduleMask (ground truth), heuristic_mask (the book's), mask_iou
    data        series_split, context_slices, TrainingLuna2dSegmentationDataset (random crops), validation_crops
    model       UNet2d: a small 2D U-Net over 7 context slices, with a sigmoid output
    losses      dice_loss, fn_weighted_loss, segmentation_metrics
    training    train_segmenter, evaluate_segmenter
    end to end  segment_series -> group_candidates -> classify_candidates -> match_nodules (run_end_to_end)

The ground truth is the generator's spheres (`mini_luna_nodules.csv`, which real LUNA does not have); the
book had only LUNA's annotations and built its masks with a heuristic, compared here with the truth.
"""

from __future__ import annotations

import csv
import functools
from collections import namedtuple
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage
from torch import nn
from torch.utils.data import DataLoader, Dataset

from course_utils.ct.dsets import Ct, LunaDataError, getCandidateInfoList, irc2xyz, xyz2irc
from course_utils.ct.mini_luna import NODULE_COLUMNS, NODULES_CSV

__all__ = [
    "NoduleInfoTuple", "TrainingLuna2dSegmentationDataset", "UNet2d", "classify_candidates", "context_slices",
    "dice_loss", "evaluate_segmenter", "fn_weighted_loss", "getNoduleInfoList", "getNoduleMask", "group_candidates",
    "heuristic_mask", "mask_iou", "match_nodules", "nodule_mask", "run_end_to_end", "segment_series",
    "segmentation_metrics", "series_split", "train_segmenter", "validation_crops",
]

NoduleInfoTuple = namedtuple("NoduleInfoTuple", "series_uid, center_xyz, diameter_mm, annotated, touches_wall")
NoduleInfoTuple.__doc__ = "One generated nodule: its series, centre (mm), diameter (mm) and two flags. Used in 08_ct."


# ---------------------------------------------------------------------------------------------- masks

@functools.lru_cache(maxsize=4)
def getNoduleInfoList(data_root: str) -> list[NoduleInfoTuple]:
    """Every nodule the generator painted (annotated or not), from `mini_luna_nodules.csv`. Used in 08_ct."""
    path = Path(data_root) / NODULES_CSV
    if not path.is_file():
        raise LunaDataError(f"{path} is missing: only a generated mini-LUNA has ground-truth nodules. Fix: "
                            "generate one with make_mini_luna(root); on real LUNA use heuristic_mask (the book's way).")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if reader.fieldnames != NODULE_COLUMNS:
            raise LunaDataError(f"{path} has the columns {reader.fieldnames}, expected {NODULE_COLUMNS}. Fix: "
                                "regenerate the folder with make_mini_luna(root).")
        return [NoduleInfoTuple(row["seriesuid"], tuple(float(row[k]) for k in ("coordX", "coordY", "coordZ")),
                                float(row["diameter_mm"]), row["annotated"] == "True", row["touches_wall"] == "True")
                for row in reader]


def _voxels_xyz(ct: Ct, irc: np.ndarray) -> np.ndarray:
    """irc2xyz for many voxels at once: (N, 3) indices -> (N, 3) patient coordinates in mm."""
    return (irc[:, ::-1] * np.array(ct.vxSize_xyz)) @ np.asarray(ct.direction_a).T + np.array(ct.origin_xyz)


def nodule_mask(ct: Ct, nodules) -> np.ndarray:
    """Boolean (index, row, col) mask of the voxels whose centre lies within d/2 mm of a nodule's centre. Used in 08_ct.

    `nodules` holds anything with `center_xyz` and `diameter_mm` (NoduleInfoTuple). Distances are measured
    in patient coordinates, so the series' origin, spacing and direction (a flipped axis too) all count.
    """
    mask = np.zeros(ct.hu_a.shape, dtype=bool)
    spacing_irc = np.array(ct.vxSize_xyz)[::-1]
    for nodule in nodules:
        radius = nodule.diameter_mm / 2
        center_irc = np.array(xyz2irc(nodule.center_xyz, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a))
        reach = np.ceil(radius / spacing_irc).astype(int) + 1  # a box sure to hold the sphere
        lo, hi = np.maximum(center_irc - reach, 0), np.minimum(center_irc + reach + 1, ct.hu_a.shape)
        box = np.stack(np.meshgrid(*(np.arange(a, b) for a, b in zip(lo, hi)), indexing="ij"), -1).reshape(-1, 3)
        inside = np.linalg.norm(_voxels_xyz(ct, box) - np.array(nodule.center_xyz), axis=1) <= radius
        mask[tuple(box[inside].T)] = True
    return mask


def getNoduleMask(data_root: str, series_uid: str) -> np.ndarray:
    """The ground-truth mask of one series (every nodule in it, annotated or not). Used in 08_ct."""
    ct = Ct(data_root, series_uid)
    return nodule_mask(ct, [n for n in getNoduleInfoList(str(data_root)) if n.series_uid == series_uid])


def heuristic_mask(ct: Ct, centers_xyz, threshold_hu: float = -700.0) -> np.ndarray:
    """The book's `buildAnnotationMask` (ch. 13): a box grown from each centre, ANDed with HU > threshold. Used in 08_ct.

    Along each axis the box's half-width grows from 2 while the voxels at +-radius from the centre are
    both denser than `threshold_hu` (it stops at the lung on either side); the mask keeps the dense voxels
    in the box. A nodule that touches the lung wall keeps a slab of the wall too.
    """
    hu = ct.hu_a
    box = np.zeros(hu.shape, dtype=bool)
    for center_xyz in centers_xyz:
        center_irc = xyz2irc(center_xyz, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a)
        radii = []
        for axis in range(3):
            radius = 2
            while True:
                lo, hi = list(center_irc), list(center_irc)
                lo[axis] -= radius
                hi[axis] += radius
                if lo[axis] < 0 or hi[axis] >= hu.shape[axis]:  # the book catches the IndexError; same effect
                    radius -= 1
                    break
                if not (hu[tuple(lo)] > threshold_hu and hu[tuple(hi)] > threshold_hu):
                    break
                radius += 1
            radii.append(radius)
        box[tuple(slice(max(c - r, 0), c + r + 1) for c, r in zip(center_irc, radii))] = True
    return box & (hu > threshold_hu)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boolean masks (1.0 when both are empty). Used in 08_ct."""
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


# ----------------------------------------------------------------------------------------------- data

def series_split(data_root: str, val_stride: int = 5) -> tuple[list[str], list[str]]:
    """(training uids, validation uids): every `val_stride`-th of the sorted uids validates, as in LunaDataset. Used in 08_ct."""
    uids = sorted({c.series_uid for c in getCandidateInfoList(str(data_root))})
    val = uids[::val_stride]
    return [u for u in uids if u not in val], val


def context_slices(hu: np.ndarray, index: int, context: int = 3, rows=None, cols=None) -> np.ndarray:
    """Slices `index - context .. index + context` of `hu` as channels (2·context+1, H, W). Used in 08_ct.

    Indices past the volume's edges repeat the edge slice, row or column (the book clamps the same way);
    `rows`/`cols` pick a window, e.g. `range(r0, r0 + 32)`.
    """
    def clamp(ndx, size):
        return np.clip(np.asarray(ndx), 0, size - 1)

    d, h, w = hu.shape
    rows = clamp(range(h) if rows is None else rows, h)
    cols = clamp(range(w) if cols is None else cols, w)
    slices = clamp(range(index - context, index + context + 1), d)
    return hu[np.ix_(slices, rows, cols)]


@functools.lru_cache(maxsize=4)
def _nodule_chunks(data_root: str, uids: tuple[str, ...], size: int, context: int) -> tuple[np.ndarray, np.ndarray]:
    """HU (N, 2·context+1, size, size) and truth (N, 1, size, size) centred on every nodule of `uids`."""
    inputs, labels = [], []
    nodules = getNoduleInfoList(data_root)
    for uid in uids:
        mine = [n for n in nodules if n.series_uid == uid]
        if not mine:
            continue
        ct = Ct(data_root, uid)
        mask = nodule_mask(ct, mine)
        for nodule in mine:
            ci, cr, cc = xyz2irc(nodule.center_xyz, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a)
            rows, cols = range(cr - size // 2, cr + size // 2), range(cc - size // 2, cc + size // 2)
            inputs.append(context_slices(ct.hu_a, ci, context, rows, cols))
            labels.append(context_slices(mask, ci, 0, rows, cols))
    return np.stack(inputs).astype(np.float32), np.stack(labels).astype(np.float32)


class TrainingLuna2dSegmentationDataset(Dataset):
    """Random `crop`×`crop` windows around the training series' nodules: (7, 32, 32) HU, (1, 32, 32) truth. Used in 08_ct.

    The book's TrainingLuna2dSegmentationDataset (ch. 13): the centre slice of a nodule with `context`
    slices either side as channels, the label from the truth mask of the centre slice. Each sample picks a
    nodule and an offset (the nodule lands anywhere within `margin` pixels of the window's centre) and,
    with `augment`, one of the 8 in-plane flips/quarter turns (in-plane pixels are square, so these are
    all valid scans; ch. 13 augments too). The draws come from a generator seeded with (seed, epoch,
    index), so `set_epoch` makes a new epoch and a run repeats exactly.
    """

    def __init__(self, data_root: str, val_stride: int = 5, epoch_len: int = 512, crop: int = 32, context: int = 3,
                 margin: int = 8, augment: bool = True, seed: int = 0):
        train_uids, _ = series_split(data_root, val_stride)
        self.inputs, self.labels = _nodule_chunks(str(data_root), tuple(train_uids), crop + 2 * margin, context)
        self.epoch_len, self.crop, self.augment, self.seed, self.epoch = epoch_len, crop, augment, seed, 0

    def set_epoch(self, epoch: int) -> None:
        """Which epoch is read next: it seeds the draws."""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.epoch_len

    def __getitem__(self, ndx: int):
        rng = np.random.default_rng((self.seed, self.epoch, ndx))
        k = rng.integers(len(self.inputs))
        r, c = rng.integers(0, self.inputs.shape[-1] - self.crop + 1, size=2)
        window = (slice(None), slice(r, r + self.crop), slice(c, c + self.crop))
        pair = [self.inputs[k][window], self.labels[k][window]]
        if self.augment:
            turns, flip = rng.integers(4), rng.integers(2)
            pair = [np.rot90(a, turns, axes=(1, 2)) for a in pair]
            pair = [a[:, :, ::-1] if flip else a for a in pair]
        return tuple(torch.from_numpy(a.copy()) for a in pair)


def validation_crops(data_root: str, val_stride: int = 5, crop: int = 32, context: int = 3):
    """One fixed `crop`×`crop` window centred on every nodule of the validation series: (inputs, labels) tensors. Used in 08_ct."""
    _, val_uids = series_split(data_root, val_stride)
    inputs, labels = _nodule_chunks(str(data_root), tuple(val_uids), crop, context)
    return torch.from_numpy(inputs), torch.from_numpy(labels)


# ---------------------------------------------------------------------------------------------- model

def _conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1), nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True),
    )


class UNet2d(nn.Module):
    """A 2D U-Net (Ronneberger et al. 2015) with the book's UNetWrapper around it. Used in 08_ct.

    (N, in_channels, H, W) HU -> (N, n_classes, H, W) probabilities; H and W must be multiples of
    2**(depth-1). An input BatchNorm scales the raw HU; `depth` levels of two padded 3x3 convolutions
    (with BatchNorm), 2x max-pooling on the way down and 2x2 transposed convolutions on the way up, each
    concatenated with the skip connection of its level; 2**wf filters at the top, doubling per level
    (wf=3: 8, 16, 32, as in the book's convention where wf=4 means 16); a 1x1 convolution and a sigmoid.
    """

    def __init__(self, in_channels: int = 7, n_classes: int = 1, depth: int = 3, wf: int = 3):
        super().__init__()
        self.input_batchnorm = nn.BatchNorm2d(in_channels)
        widths = [2 ** (wf + level) for level in range(depth)]
        self.down = nn.ModuleList(_conv_block(c_in, c_out) for c_in, c_out in zip([in_channels] + widths, widths))
        self.up = nn.ModuleList(nn.ConvTranspose2d(c, c // 2, kernel_size=2, stride=2) for c in widths[:0:-1])
        self.up_blocks = nn.ModuleList(_conv_block(c, c // 2) for c in widths[:0:-1])
        self.final = nn.Conv2d(widths[0], n_classes, kernel_size=1)
        # Start out predicting "no nodule" (sigmoid(-4) = 0.02, about the nodule share of a crop): from 0.5
        # everywhere, Dice training spent its first epochs shrinking a crop-sized blob, and some seeds never left it.
        nn.init.constant_(self.final.bias, -4.0)

    def forward(self, x):
        x = self.input_batchnorm(x)
        skips = []
        for level, block in enumerate(self.down):
            if level:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        for up, block, skip in zip(self.up, self.up_blocks, skips[-2::-1]):
            x = block(torch.cat([up(x), skip], dim=1))
        return torch.sigmoid(self.final(x))


# --------------------------------------------------------------------------------------------- losses

def dice_loss(pred: torch.Tensor, label: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """Soft Dice loss per sample: 1 - (2·Σ pred·label + eps) / (Σ pred + Σ label + eps). Used in 08_ct.

    The sums run over every axis but the first, so the result has one value per sample. `eps` keeps an
    empty label finite: the loss is then Σ pred / (Σ pred + 1), small when the prediction is small.
    """
    dims = tuple(range(1, pred.dim()))
    overlap = (pred * label).sum(dims)
    return 1 - (2 * overlap + eps) / (pred.sum(dims) + label.sum(dims) + eps)


def fn_weighted_loss(pred: torch.Tensor, label: torch.Tensor, fn_weight: float = 8.0) -> torch.Tensor:
    """The book's Dice + 8·FN-Dice per sample: the second term looks only inside the label, so it punishes misses alone. Used in 08_ct."""
    return dice_loss(pred, label) + fn_weight * dice_loss(pred * label, label)


def segmentation_metrics(pred: torch.Tensor, label: torch.Tensor, threshold: float = 0.5) -> dict[str, float]:
    """Pixel counts tp/fp/fn over the whole set at `threshold`, with Dice, precision and recall (0.0 when empty). Used in 08_ct."""
    predicted, truth = pred >= threshold, label >= 0.5
    tp, fp, fn = (int(v) for v in ((predicted & truth).sum(), (predicted & ~truth).sum(), (~predicted & truth).sum()))

    def ratio(a, b):
        return a / b if b else 0.0

    return {"dice": ratio(2 * tp, 2 * tp + fp + fn), "precision": ratio(tp, tp + fp), "recall": ratio(tp, tp + fn),
            "tp": tp, "fp": fp, "fn": fn}


# ------------------------------------------------------------------------------------------- training

LOSSES = {"dice": dice_loss, "fn_weighted": fn_weighted_loss}


def evaluate_segmenter(model: nn.Module, data_root: str, val_stride: int = 5, threshold: float = 0.5) -> dict[str, float]:
    """`segmentation_metrics` of `model` on the fixed validation crops (eval mode, no gradients). Used in 08_ct."""
    inputs, labels = validation_crops(data_root, val_stride)
    model.eval()
    with torch.no_grad():
        pred = model(inputs)
    return segmentation_metrics(pred, labels, threshold)


def train_segmenter(data_root: str, loss: str = "dice", epochs: int = 8, epoch_len: int = 512, batch_size: int = 16,
                    lr: float = 1e-3, seed: int = 0, val_stride: int = 5, wf: int = 3, depth: int = 3,
                    augment: bool = True):
    """Train a UNet2d with Adam on random nodule crops; return (model, history). Used in 08_ct.

    `loss` is "dice" (soft Dice) or "fn_weighted" (Dice + 8·FN-Dice). `history` has one dict per epoch:
    the mean training loss and `evaluate_segmenter`'s validation metrics. `seed` fixes the initial
    weights (torch.manual_seed) and every crop, so a CPU run repeats exactly.
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {sorted(LOSSES)}, not {loss!r}")
    torch.manual_seed(seed)
    model = UNet2d(depth=depth, wf=wf)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    dataset = TrainingLuna2dSegmentationDataset(data_root, val_stride, epoch_len=epoch_len, augment=augment, seed=seed)
    history = []
    for epoch in range(epochs):
        dataset.set_epoch(epoch)
        model.train()
        total = 0.0
        for inputs, labels in DataLoader(dataset, batch_size=batch_size):  # each sample is already a random draw
            batch_loss = LOSSES[loss](model(inputs), labels).mean()
            optimizer.zero_grad()
            batch_loss.backward()
            optimizer.step()
            total += batch_loss.item() * len(inputs)
        history.append({"epoch": epoch + 1, "loss": total / len(dataset), **evaluate_segmenter(model, data_root, val_stride)})
    return model, history


# ----------------------------------------------------------------------------------------- end to end

def segment_series(model: nn.Module, ct: Ct, context: int = 3, batch_size: int = 16) -> np.ndarray:
    """The model's probability for every voxel of `ct`, slice by slice with context channels: (D, H, W). Used in 08_ct."""
    d, h, w = ct.hu_a.shape
    multiple = 4  # UNet2d's default depth 3 pools twice
    padded = np.pad(ct.hu_a, ((0, 0), (0, -h % multiple), (0, -w % multiple)), constant_values=-1000.0)
    model.eval()
    out = []
    with torch.no_grad():
        for start in range(0, d, batch_size):
            batch = np.stack([context_slices(padded, i, context) for i in range(start, min(start + batch_size, d))])
            out.append(model(torch.from_numpy(batch))[:, 0, :h, :w].numpy())
    return np.concatenate(out)


def group_candidates(ct: Ct, probabilities: np.ndarray, threshold: float = 0.5, in_plane: bool = True) -> list[dict]:
    """Connected blobs of the thresholded, once-eroded mask -> candidates (book ch. 14's groupSegmentationOutput). Used in 08_ct.

    The erosion strips one voxel of border so that thin, touching blobs fall apart. The book erodes in
    3D; with `in_plane` (the default) it erodes within each slice only, because our slices are 2-2.5 mm
    apart and a 3D erosion deletes every blob less than 3 slices thick, i.e. most nodules under ~7 mm.
    Each candidate's centre is the blob's centre of mass weighted by clip(HU) + 1001 (denser voxels pull
    harder; +1001 keeps air's weight above 0), converted to patient coordinates. Returns dicts with
    `center_irc` (floats), `center_xyz` and `voxels`.
    """
    structure = ndimage.generate_binary_structure(3, 1)
    if in_plane:
        structure[[0, 2]] = False
    mask = ndimage.binary_erosion(probabilities > threshold, structure=structure, iterations=1)
    labels, count = ndimage.label(mask)
    if not count:
        return []
    index = np.arange(1, count + 1)
    centers = ndimage.center_of_mass(np.clip(ct.hu_a, -1000, 1000) + 1001, labels=labels, index=index)
    sizes = ndimage.sum_labels(mask, labels, index)
    return [{"center_irc": tuple(float(v) for v in c), "voxels": int(n),
             "center_xyz": tuple(float(v) for v in irc2xyz(c, ct.origin_xyz, ct.vxSize_xyz, ct.direction_a))}
            for c, n in zip(centers, sizes)]


def classify_candidates(ct: Ct, candidates: list[dict], classifier, width_irc=(16, 24, 24)) -> np.ndarray:
    """P(nodule) for each candidate from `classifier` applied to (N, 1, *width_irc) HU crops. Used in 08_ct.

    `classifier` is a LunaModel (returning logits and probabilities) or any callable returning
    probabilities of shape (N,) or (N, 2) (the second column is "nodule").
    """
    if not candidates:
        return np.zeros(0)
    crops = np.stack([ct.getRawCandidate(c["center_xyz"], width_irc)[0] for c in candidates])
    if isinstance(classifier, nn.Module):
        classifier.eval()
    with torch.no_grad():
        out = classifier(torch.from_numpy(crops).unsqueeze(1))
    if isinstance(out, tuple):  # LunaModel: (logits, probabilities)
        out = out[1]
    out = torch.as_tensor(out)
    return (out[:, 1] if out.dim() == 2 else out).float().numpy()


def match_nodules(nodules, candidates: list[dict], probabilities, threshold: float = 0.5) -> dict:
    """The found / missed / false-positive table of book ch. 14, against annotated nodules. Used in 08_ct.

    A nodule is found when a candidate with probability >= `threshold` lies within its radius; it is
    `segmented` when any grouped candidate does (so a missed one was either never segmented or rejected
    by the classifier). A kept candidate near no annotated nodule is a false positive. Returns
    {"nodules": one row per nodule, "found", "missed", "false_positives", "kept"}.
    """
    kept = [c for c, p in zip(candidates, probabilities) if p >= threshold]

    def near(nodule, candidate):
        return np.linalg.norm(np.subtract(candidate["center_xyz"], nodule.center_xyz)) <= nodule.diameter_mm / 2

    rows = [{"diameter_mm": round(n.diameter_mm, 1), "segmented": any(near(n, c) for c in candidates),
             "found": any(near(n, c) for c in kept)} for n in nodules]
    false_positives = sum(not any(near(n, c) for n in nodules) for c in kept)
    found = sum(r["found"] for r in rows)
    return {"nodules": rows, "found": found, "missed": len(rows) - found, "false_positives": false_positives,
            "kept": len(kept)}


def run_end_to_end(model: nn.Module, classifier, data_root: str, series_uid: str, threshold: float = 0.5,
                   classifier_threshold: float = 0.5, width_irc=(16, 24, 24), in_plane: bool = True) -> dict:
    """Segment -> group -> classify one series and score it against its annotations (`match_nodules` plus
    `candidates` and `probabilities`). Used in 08_ct."""
    ct = Ct(str(data_root), series_uid)
    candidates = group_candidates(ct, segment_series(model, ct), threshold, in_plane)
    probabilities = classify_candidates(ct, candidates, classifier, width_irc)
    annotated = [n for n in getNoduleInfoList(str(data_root)) if n.series_uid == series_uid and n.annotated]
    result = match_nodules(annotated, candidates, probabilities, classifier_threshold)
    return {**result, "candidates": candidates, "probabilities": probabilities}
