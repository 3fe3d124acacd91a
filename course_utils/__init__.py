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

from course_utils.checks import check
from course_utils.env import get_device, setup

__version__ = "0.1.0"

__all__ = ["check", "get_device", "setup", "__version__"]
