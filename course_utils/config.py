"""Course-wide settings that several tools share.

The GitHub location is written here once. Badges in the first cell of every notebook variant and the
Colab install line in the second cell are generated from it by `course build`, so a fork changes this
file, runs `make build`, and every link follows.
"""

from pathlib import Path

__all__ = [
    "CHAPTER_TITLES", "CHAPTERS_DIR", "CPU_KERNEL", "EXERCISES_DIR", "GITHUB_BRANCH", "GITHUB_REPO",
    "GPU_KERNEL", "REPO_ROOT", "SOLUTIONS_DIR",
]

GITHUB_REPO = "dl-course/executable-deep-learning"
GITHUB_BRANCH = "main"

# The repository root, found from this file, so no path depends on the working directory.
REPO_ROOT = Path(__file__).resolve().parent.parent

CHAPTERS_DIR = REPO_ROOT / "chapters"
EXERCISES_DIR = CHAPTERS_DIR / "exercises"
SOLUTIONS_DIR = REPO_ROOT / "solutions"

CPU_KERNEL = "course-cpu"
GPU_KERNEL = "course-gpu"

# The course's chapters, in order, with one-line titles for README's table. A chapter without a
# source in chapters/ yet is listed as planned.
CHAPTER_TITLES = {
    "01_tensors": "Tensors: the memory model, broadcasting, real data as tensors",
    "02_autograd": "Derivatives, gradient descent and autograd",
    "03_nn": "From one neuron to a tested mini-framework; MNIST from scratch",
    "04_cnns": "Convolutions by hand, ResNets, transfer learning, CAM",
    "05_nlp": "Tokens, the RNN-to-LSTM ladder, language-model transfer",
    "06_tabular": "Tabular data: embeddings, trees and neural nets",
    "07_collab": "Collaborative filtering on real MovieLens ratings",
    "08_ct": "CT scans: a nodule-candidate classifier on LUNA-style volumes",
    "09_deploy": "Deployment: export, serve and test a trained model",
}
