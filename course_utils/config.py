"""Course-wide settings that several tools share.

The GitHub location is written here once. Badges in the first cell of every notebook variant and the
Colab install line in the second cell are generated from it by `course build`, so a fork changes this
file, runs `make build`, and every link follows.
"""

from pathlib import Path

GITHUB_REPO = "dl-course/executable-deep-learning"
GITHUB_BRANCH = "main"

# The repository root, found from this file, so no path depends on the working directory.
REPO_ROOT = Path(__file__).resolve().parent.parent

CHAPTERS_DIR = REPO_ROOT / "chapters"
EXERCISES_DIR = CHAPTERS_DIR / "exercises"
SOLUTIONS_DIR = REPO_ROOT / "solutions"

CPU_KERNEL = "course-cpu"
GPU_KERNEL = "course-gpu"
