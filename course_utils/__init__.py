"""course_utils: the small support package every chapter of the course imports.

Importing it does nothing but define names: no seeding, no printing, no downloads.
Each notebook starts with::

    from course_utils import setup, check
    device = setup()

Modules, by concern (layers from the bottom; each imports only those below it, see CONTRIBUTING):
    config      paths, the chapter list and the GitHub repository (badges, Colab install)
    data/       the offline data layer: a declarative registry, a verified cache, one loader per dataset
    env         setup(), get_device(), seeding and determinism    (taught in 01_tensors, used everywhere)
    train, models, hooks   the training loop and splits (03), shared architectures and CAM hooks (04)
    checkpoints            sha256-checked checkpoints that load with weights_only (09)
    ct/         08_ct's project code (mini-LUNA, LunaDataset, LunaModel, the training app, evaluation, a U-Net)
    deploy/     09_deploy's serving code (a FastAPI service on uvicorn, a micro-batcher, measurements)
    plots/      figures and widget explorers, one module per chapter (plots.ch01 ... plots.ch09, plots.thresholds)
    pretrained/ the course's cached training steps, one module per chapter (pretrained.ch04, .ch05, .ch09)
    checks/     check(id, *answers): the framework, and one module of exercise checks per chapter
    tools/      the authoring tools behind the `course` command; never imported by a notebook
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and static import walks (gpu_kit/imports.py) see
    from course_utils.checks import check
    from course_utils.env import get_device, run_app, setup

__version__ = "0.1.0"

__all__ = ["check", "get_device", "run_app", "setup", "__version__"]

# The names a notebook imports, and the module each lives in. They load on first use (PEP 562), so
# that `course --help` and the data tools start without importing torch.
_LAZY = {"check": "course_utils.checks", "get_device": "course_utils.env", "run_app": "course_utils.env",
         "setup": "course_utils.env"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'course_utils' has no attribute {name!r}")
