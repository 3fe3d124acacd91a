"""08_ct's project code, after *Deep Learning with PyTorch* part 2 (a module per concern, as in the book's p2chNN).

    mini_luna   make_mini_luna(): a generated LUNA16 with its file contract (.mhd/.raw series, candidates.csv, ...)
    dsets       getCandidateInfoList, Ct, xyz2irc / irc2xyz, getRawCandidate, crop_cache (diskcache), LunaDataset
    prepcache   prep_cache(): fill the crop cache once (also `python -m course_utils.ct.prepcache`)
    training    LunaTrainingApp: the CLI training application, TensorBoard, checkpoints, DDP under torchrun
    model       LunaBlock, LunaModel
    segment     truth and heuristic masks, UNet2d, Dice losses, train_segmenter, one series end to end (Part C)
    evaluate    predictions, ROC/PR curves and AUC from scratch, the HU baseline, threshold tables, TensorBoard scalars read back

Nothing here runs at import time; SimpleITK is imported when a series is read.
"""

from course_utils.ct.dsets import (
    CandidateInfoTuple,
    Ct,
    LunaDataError,
    LunaDataset,
    crop_cache,
    getCandidateInfoList,
    getCt,
    irc2xyz,
    xyz2irc,
)
from course_utils.ct.mini_luna import MiniLunaSummary, make_mini_luna, write_mhd
from course_utils.ct.model import LunaBlock, LunaModel

__all__ = [
    "CandidateInfoTuple", "Ct", "LunaBlock", "LunaDataError", "LunaDataset", "LunaModel", "MiniLunaSummary",
    "crop_cache", "getCandidateInfoList", "getCt", "irc2xyz", "make_mini_luna", "write_mhd", "xyz2irc",
]
