"""Convolution and pooling layers (im2col based, see ops/window.py)."""

from __future__ import annotations

import math

import numpy as np

from raylite.tensor import creation
from raylite.tensor import functional as F
from raylite.tensor.nn import init
from raylite.tensor.nn.module import Module, Parameter


class Conv2d(Module):
    """2-D convolution over (N, C, H, W) input, weight (out, in, kh, kw).

    Initialised like PyTorch (kaiming-uniform with a=sqrt(5), bias from
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 bias: bool = True, dtype=np.float32, device="cpu"):
        super().__init__()
        kh, kw = F._pair(kernel_size, "kernel_size")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.stride, self.padding = (kh, kw), stride, padding
        self.weight = Parameter(creation.zeros(out_channels, in_channels, kh, kw, dtype=dtype, device=device))
        self.bias = Parameter(creation.zeros(out_channels, dtype=dtype, device=device)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(init.fans(self.weight)[0])
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}")


class MaxPool2d(Module):
    """Max over windows of (N, C, H, W) input; stride defaults to the kernel size."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"
