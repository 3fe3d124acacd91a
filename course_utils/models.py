"""Model code shared by chapters and by the course's cached training steps. Taught in 04_cnns.

`conv_bn` and `ResBlock` are fastai's building blocks (Deep Learning for Coders ch. 14), and
`tiny_resnet` the course's reusable small ResNet for 28 x 28 images: 04_cnns trains it from scratch,
fine-tunes it, and `course_utils.pretrained.ch04` pretrains it into the `fmnist8_body` dataset.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ResBlock", "conv_bn", "preprocess", "tiny_resnet"]


def conv_bn(ni: int, nf: int, ks: int = 3, stride: int = 1, act: bool = True, zero_bn: bool = False) -> nn.Sequential:
    """Conv (no bias: BatchNorm's beta replaces it) -> BatchNorm -> optional ReLU. Taught in 04_cnns.

    `zero_bn=True` starts BatchNorm's gamma at 0, so the branch outputs zeros at init (fastai's
    NormType.BatchZero): a residual block then starts as the identity path.
    """
    bn = nn.BatchNorm2d(nf)
    if zero_bn:
        nn.init.zeros_(bn.weight)
    layers = [nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=False), bn]
    if act:
        layers.append(nn.ReLU())
    return nn.Sequential(*layers)


class ResBlock(nn.Module):
    """fastai's ResBlock (Deep Learning for Coders ch. 14). Taught in 04_cnns.

    out = relu(convs(x) + idconv(pool(x))): two conv-BN(-ReLU) layers, the last BN zero-initialised;
    the identity path gets a 1x1 conv-BN when the channel count changes and AvgPool2d(2, ceil_mode=True)
    when `stride` is 2, so both paths have the same shape for odd and even sizes.
    """

    def __init__(self, ni: int, nf: int, stride: int = 1):
        super().__init__()
        self.convs = nn.Sequential(conv_bn(ni, nf, stride=stride), conv_bn(nf, nf, act=False, zero_bn=True))
        self.idconv = nn.Identity() if ni == nf else conv_bn(ni, nf, ks=1, act=False)
        self.pool = nn.Identity() if stride == 1 else nn.AvgPool2d(2, ceil_mode=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.convs(x) + self.idconv(self.pool(x)))


def tiny_resnet(w: int = 8, n_in: int = 1, n_out: int = 10, pretrained: bool = False, seed: int = 0) -> nn.Sequential:
    """A small ResNet for 28 x 28 images, the course's reusable architecture. Taught in 04_cnns.

    stem conv-BN-ReLU (stride 2, w channels) -> ResBlock(w, w) -> ResBlock(w, 2w, 2) -> ResBlock(2w, 4w, 2)
    -> AdaptiveAvgPool2d(1) -> Flatten -> Linear(4w, n_out). Everything before the pooling layer is
    the *body* (`model[:5]`), the rest the head. The weights are drawn from their own generator
    seeded with `seed` (on the CPU), so the notebook's random state is untouched and every device
    starts from the same numbers. `pretrained` exists because fastai's `vision_learner` calls
    `arch(pretrained=...)`; there are no downloadable weights, use `fmnist8_body()` instead.
    """
    if pretrained:
        raise ValueError("tiny_resnet has no downloadable weights: use course_utils.pretrained.fmnist8_body()")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Sequential(
            conv_bn(n_in, w, stride=2),
            ResBlock(w, w),
            ResBlock(w, 2 * w, 2),
            ResBlock(2 * w, 4 * w, 2),
            nn.Identity(),  # index 4: where a body can be cut (kept so body = model[:5] for any w)
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(4 * w, n_out),
        )


def preprocess(images: torch.Tensor, meta: dict) -> torch.Tensor:
    """Images in 0..1, (N, 28, 28) or (N, 1, 28, 28), to the model's input: (N, 1, 28, 28), normalised with
    the mean and std stored in `meta`. The preprocessing contract of the models 09_deploy serves
    (`meta` travels in their checkpoints), applied by the zoo, the service and the playground. Taught in 09_deploy.
    """
    x = images.float()
    if x.dim() == 3:
        x = x.unsqueeze(1)
    return (x - meta["mean"]) / meta["std"]
