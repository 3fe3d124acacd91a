"""09_deploy's serving code: from a trained model to a service (after *Deep Learning with PyTorch* ch. 13 and 15).

    (checkpoints: save_checkpoint / load_checkpoint and friends live one layer down, in course_utils.checkpoints,
                because the course's cached training steps write them too; they are re-exported here)
    service     create_app(): FastAPI routes /health, /predict (JSON) and /predict_raw (float32 bytes) with
                validation; LocalServer: uvicorn on 127.0.0.1 in a background thread, silent, stopped cleanly
    batching    Batcher: a queue and a worker thread that turn single requests into batched forwards; Busy
    measure     median_ms, state_dict_bytes, file_bytes, count_compiles (torch.compile's compilations)

Nothing here runs at import time: no server starts and no thread runs until asked.
"""

from course_utils.deploy.batching import Batcher, Busy
from course_utils.checkpoints import (
    ChecksumError,
    file_sha256,
    load_checkpoint,
    save_checkpoint,
    sidecar_path,
    strip_prefix,
)
from course_utils.deploy.measure import CompileCounts, count_compiles, file_bytes, median_ms, state_dict_bytes
from course_utils.deploy.service import IMAGE_SIDE, LocalServer, Prediction, Predictions, PredictRequest, create_app

__all__ = [
    "Batcher", "Busy", "ChecksumError", "CompileCounts", "IMAGE_SIDE", "LocalServer", "Prediction", "Predictions",
    "PredictRequest", "count_compiles", "create_app", "file_bytes", "file_sha256", "load_checkpoint", "median_ms",
    "save_checkpoint", "sidecar_path", "state_dict_bytes", "strip_prefix",
]
