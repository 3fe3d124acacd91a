"""course_utils: the small support package every chapter of the course imports.

Importing it does nothing but define names: no seeding, no printing, no downloads.
Each notebook starts with::

    from course_utils import setup, check
    device = setup()

Modules, by concern:
    env     setup(), get_device(), seeding and determinism        (taught in 01_tensors, used everywhere)
    checks  check(id, *answers): exercise feedback, one module per chapter
    data    the offline data layer: a registry, a verified cache, one loader per dataset
    plots   figures and widget explorers shared by chapters
    config  the one place that names the course's GitHub repository (badges, Colab install)
    pipeline, grade, cli   the authoring tools behind the `course` command
"""

from importlib import import_module
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what type checkers and static import walks (gpu_kit/imports.py) see
    from course_utils.checks import check
    from course_utils.env import get_device, setup

__version__ = "0.1.0"

__all__ = ["check", "get_device", "setup", "__version__"]

# The names a notebook imports, and the module each lives in. They load on first use (PEP 562), so
# that `course --help` and the data tools start without importing torch.
_LAZY = {"check": "course_utils.checks", "get_device": "course_utils.env", "setup": "course_utils.env"}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'course_utils' has no attribute {name!r}")
