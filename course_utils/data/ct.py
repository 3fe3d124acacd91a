"""Builders for the CT data: the Cranium head CT as .npy (with its two masks), and as a 108-file DICOM series.

Cranium.inv3 (Debian invesalius-examples) is a gzip tar written by InVesalius: `main.plist`
describes the volume (shape, dtype, spacing as x, y, z, and the display window the project was
saved with) and `matrix.dat` holds it as raw int16 Hounsfield units. Each `mask_N.plist` names a
`mask_N.dat`: uint8, one voxel larger on every axis than the volume, because InVesalius keeps a
border of flags (which slices it has thresholded) at index 0 of each axis; inside, 255 marks a voxel
of the mask and 0 one outside it. The plist also records the HU range the mask was thresholded at.
The DICOM series is written from pydicom's CT_small.dcm, used as a template.
"""

from __future__ import annotations

import json
import plistlib
import tarfile
from pathlib import Path

import numpy as np

from course_utils.data.errors import SourceFailed

__all__ = ["build_cranium", "build_dicom_series", "DICOM_DIR", "INFO_FILE", "MASKS_FILE", "read_inv3", "VOLUME_FILE"]

VOLUME_FILE = "ct/cranium.npy"
INFO_FILE = "ct/cranium.json"
MASKS_FILE = "ct/cranium_masks.npz"
DICOM_DIR = "ct/cranium_dicom"


def build_cranium(inv3: Path, out: Path) -> None:
    """ct/cranium.npy (int16 HU, (z, y, x)), ct/cranium_masks.npz (bool, same shape) and ct/cranium.json.

    The JSON holds spacing_zyx, the series name and modality, the display window the project was saved
    with (window_level, window_width) and, per mask, its InVesalius name and HU threshold range.
    """
    volume, masks, info = read_inv3(inv3)
    (out / "ct").mkdir(parents=True, exist_ok=True)
    np.save(out / VOLUME_FILE, volume)
    np.savez_compressed(out / MASKS_FILE, **masks)
    (out / INFO_FILE).write_text(json.dumps(info, indent=1) + "\n")


def read_inv3(inv3: Path) -> tuple[np.ndarray, dict[str, np.ndarray], dict]:
    """The volume, its masks ({"mask_0": bool array, ...}, flag border dropped) and its description."""
    with tarfile.open(inv3, "r:gz") as archive:
        members = {Path(m.name).name: m for m in archive.getmembers() if m.isfile()}

        def read(name: str) -> bytes:
            if name not in members:
                raise SourceFailed(f"{inv3} holds no {name}")
            return archive.extractfile(members[name]).read()

        main = plistlib.loads(read("main.plist"))
        shape = tuple(main["matrix"]["shape"])
        raw = read(main["matrix"]["filename"])
        volume = np.frombuffer(raw, dtype=np.dtype(main["matrix"]["dtype"]).newbyteorder("<")).reshape(shape)
        masks, mask_info = {}, {}
        for key in sorted(main.get("masks", {}), key=int):
            plist = plistlib.loads(read(main["masks"][key]))
            name = Path(plist["mask_file"]).stem  # "mask_0"
            stored = np.frombuffer(read(plist["mask_file"]), dtype=np.uint8).reshape(plist["mask_shape"])
            masks[name] = stored[1:, 1:, 1:] > 127  # index 0 of each axis holds flags; inside, 255 = in the mask
            mask_info[name] = {"name": plist.get("name", ""), "threshold_range": [int(t) for t in plist["threshold_range"]]}
    x, y, z = (float(s) for s in main["spacing"])
    info = {
        "spacing_zyx": [z, y, x],
        "name": main.get("name", ""),
        "modality": main.get("modality", ""),
        "window_level": float(main["window_level"]),
        "window_width": float(main["window_width"]),
        "masks": mask_info,
    }
    for name, mask in masks.items():
        if mask.shape != volume.shape:
            raise SourceFailed(f"{inv3}: {name} has the shape {mask.shape} without its border, the volume {volume.shape}")
    return volume.astype(np.int16), masks, info


def build_dicom_series(inputs: tuple[Path, Path], out: Path) -> None:
    """ct/cranium_dicom/slice_000.dcm ... slice_107.dcm: the Cranium volume as a DICOM series.

    Fresh (but deterministic) Study, Series, Frame-of-reference and SOP instance UIDs; 256 x 256
    signed 16-bit pixels in HU (slope 1, intercept 0); slice z sits at ImagePositionPatient
    (0, 0, 1.5 z). Everything else, including the private GE tags, comes from or is removed from
    the CT_small.dcm template.
    """
    import pydicom
    from pydicom.uid import generate_uid

    volume_path, template_path = inputs
    volume = np.load(volume_path)
    info = json.loads((volume_path.parent / Path(INFO_FILE).name).read_text())
    dz, dy, dx = info["spacing_zyx"]

    ds = pydicom.dcmread(template_path)
    ds.remove_private_tags()
    for keyword in ("DataSetTrailingPadding", "PixelPaddingValue", "OtherPatientIDsSequence"):
        if keyword in ds:
            delattr(ds, keyword)
    ds.StudyInstanceUID = generate_uid(entropy_srcs=["course", "cranium", "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=["course", "cranium", "series"])
    ds.FrameOfReferenceUID = generate_uid(entropy_srcs=["course", "cranium", "frame"])
    ds.PatientName, ds.PatientID = "Cranium^InVesalius", "CRANIUM"
    ds.StudyDescription = ds.SeriesDescription = info["name"] or "Cranium"
    ds.Rows, ds.Columns = volume.shape[1], volume.shape[2]
    ds.PixelSpacing = [f"{dy:.7f}", f"{dx:.7f}"]
    ds.SliceThickness = ds.SpacingBetweenSlices = f"{dz:g}"
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.WindowCenter, ds.WindowWidth = 40, 400

    folder = out / DICOM_DIR
    folder.mkdir(parents=True)
    for z, plane in enumerate(volume):
        uid = generate_uid(entropy_srcs=["course", "cranium", "slice", str(z)])
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = uid
        ds.InstanceNumber = z + 1
        ds.ImagePositionPatient = [0, 0, f"{z * dz:g}"]
        ds.SliceLocation = f"{z * dz:g}"
        ds.PixelData = np.ascontiguousarray(plane, dtype="<i2").tobytes()
        ds.save_as(folder / f"slice_{z:03d}.dcm", enforce_file_format=True)
