"""Convolution and pooling layers with ``torch.nn``'s names, arguments, initialization and
parameter names."""

import math

from .. import _ember
from . import functional as F
from .module import Module, Parameter


def _tuple(v, n):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * n


class _ConvNd(Module):
    _dims = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, dtype=None):
        super().__init__()
        if isinstance(padding, str):
            raise ValueError("padding must be numeric: Ember has no 'same'/'valid' padding")
        if groups < 1 or in_channels % groups or out_channels % groups:
            raise ValueError(f"in_channels {in_channels} and out_channels {out_channels} must be "
                             f"divisible by groups {groups}")
        n = self._dims
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride = _tuple(kernel_size, n), _tuple(stride, n)
        self.padding, self.dilation = _tuple(padding, n), _tuple(dilation, n)
        # kaiming_uniform_(a=√5) and the bias as torch.nn.Conv*d: both uniform in ±1/√fan_in.
        fan_in = in_channels // groups * math.prod(self.kernel_size)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        shape = (out_channels, in_channels // groups, *self.kernel_size)
        self.weight = Parameter(_ember.rand(*shape) * (2.0 * bound) - bound)
        self.bias = Parameter(_ember.rand(out_channels) * (2.0 * bound) - bound) if bias else None
        if dtype is not None:
            self.to(dtype)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
                f"groups={self.groups}, bias={self.bias is not None}")


class Conv1d(_ConvNd):
    """``torch.nn.Conv1d``: input ``(N, C, L)``, weight ``(out, in/groups, k)``."""
    _dims = 1

    def forward(self, x):
        return F.conv1d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class Conv2d(_ConvNd):
    """``torch.nn.Conv2d``: input ``(N, C, H, W)``, weight ``(out, in/groups, kh, kw)``."""
    _dims = 2

    def forward(self, x):
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class _Pool(Module):
    def __init__(self, kernel_size, stride=None, padding=0, **extra):
        super().__init__()
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.extra = extra

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool1d(_Pool):
    """``torch.nn.MaxPool1d`` (no ``ceil_mode``, no ``return_indices``)."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1):
        super().__init__(kernel_size, stride, padding, dilation=dilation)

    def forward(self, x):
        return F.max_pool1d(x, self.kernel_size, self.stride, self.padding, **self.extra)


class MaxPool2d(MaxPool1d):
    """``torch.nn.MaxPool2d`` (no ``ceil_mode``, no ``return_indices``)."""

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, **self.extra)


class AvgPool1d(_Pool):
    """``torch.nn.AvgPool1d`` (no ``ceil_mode``)."""

    def __init__(self, kernel_size, stride=None, padding=0, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, count_include_pad=count_include_pad)

    def forward(self, x):
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, **self.extra)


class AvgPool2d(AvgPool1d):
    """``torch.nn.AvgPool2d`` (no ``ceil_mode``)."""

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, **self.extra)


class AdaptiveAvgPool1d(Module):
    """``torch.nn.AdaptiveAvgPool1d``."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool1d(x, self.output_size)


class AdaptiveAvgPool2d(AdaptiveAvgPool1d):
    """``torch.nn.AdaptiveAvgPool2d``."""

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)


class Flatten(Module):
    """``torch.nn.Flatten``: dims ``start_dim..end_dim`` into one (batch kept by default)."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)
