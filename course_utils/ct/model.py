"""LunaModel, the nodule-candidate classifier of *Deep Learning with PyTorch* ch. 11. Used in 08_ct.

A BatchNorm tail on the raw HU crop, four blocks of two 3x3x3 convolutions and a 2x max-pool, and a
linear head. At the CPU defaults (4 channels, 16 x 24 x 24 crops) it has 55,160 parameters; the book's
8 channels at 32 x 48 x 48 are `LunaModel(conv_channels=8, crop=(32, 48, 48))`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

__all__ = ["LunaBlock", "LunaModel"]


class LunaBlock(nn.Module):
    """Conv3d k3 p1 + ReLU, twice, then MaxPool3d(2): doubles the receptive field's reach, halves each side.

    Used in 08_ct."""

    def __init__(self, in_channels: int, conv_channels: int):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, conv_channels, kernel_size=3, padding=1, bias=True)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv3d(conv_channels, conv_channels, kernel_size=3, padding=1, bias=True)
        self.relu2 = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool3d(2, 2)

    def forward(self, x):
        return self.maxpool(self.relu2(self.conv2(self.relu1(self.conv1(x)))))


class LunaModel(nn.Module):
    """(N, 1, D, H, W) HU crops -> (logits (N, 2), probabilities (N, 2)). Used in 08_ct."""

    def __init__(self, in_channels: int = 1, conv_channels: int = 4, crop=(16, 24, 24)):
        super().__init__()
        self.tail_batchnorm = nn.BatchNorm3d(in_channels)
        self.block1 = LunaBlock(in_channels, conv_channels)
        self.block2 = LunaBlock(conv_channels, conv_channels * 2)
        self.block3 = LunaBlock(conv_channels * 2, conv_channels * 4)
        self.block4 = LunaBlock(conv_channels * 4, conv_channels * 8)
        cells = math.prod(side // 16 for side in crop)
        if cells == 0:
            raise ValueError(f"each side of the crop {tuple(crop)} must be at least 16 (four 2x poolings)")
        self.head_linear = nn.Linear(conv_channels * 8 * cells, 2)
        self.head_softmax = nn.Softmax(dim=1)
        self._init_weights()

    def _init_weights(self) -> None:
        """Kaiming-normal weights; biases uniform in +-1/sqrt(fan_out). (The book's listing calls
        `normal_(bias, -bound, bound)`, i.e. mean -bound and std bound: a bug.)"""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight.data, a=0, mode="fan_out", nonlinearity="relu")
                if m.bias is not None:
                    _, fan_out = nn.init._calculate_fan_in_and_fan_out(m.weight.data)
                    bound = 1 / math.sqrt(fan_out)
                    nn.init.uniform_(m.bias, -bound, bound)

    def forward(self, input_batch):
        block_out = self.block4(self.block3(self.block2(self.block1(self.tail_batchnorm(input_batch)))))
        logits = self.head_linear(block_out.flatten(1))
        return logits, self.head_softmax(logits)
