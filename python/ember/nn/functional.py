"""``ember.nn.functional``: the functions behind layers and losses, with PyTorch's names and
keyword arguments; the heavy ones are Ember's fused kernels."""

from .. import _ember
from .._ember import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    adaptive_max_pool1d,
    adaptive_max_pool2d,
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    cross_entropy,
    embedding,
    gelu,
    layer_norm,
    linear,
    max_pool1d,
    max_pool2d,
    one_hot,
    pad,
    rms_norm,
    scaled_dot_product_attention,
)

__all__ = [
    "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d",
    "one_hot", "pad", "avg_pool1d", "avg_pool2d", "conv1d", "conv2d",
    "max_pool1d", "max_pool2d", "cross_entropy", "dropout", "embedding", "gelu", "layer_norm", "linear", "log_softmax",
    "mse_loss", "relu", "rms_norm", "scaled_dot_product_attention", "sigmoid", "silu",
    "softmax", "tanh",
]


def relu(input):
    return input.relu()


def silu(input):
    return input.silu()


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def softmax(input, dim):
    return input.softmax(dim)


def log_softmax(input, dim):
    return input.log_softmax(dim)


def dropout(input, p=0.5, training=True):
    """Zeroes each element with probability ``p`` and scales the rest by ``1/(1-p)``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    keep = (_ember.rand(*input.shape, device=input.device) >= p).to(input.dtype)
    return input * keep * (1.0 / (1.0 - p))


def mse_loss(input, target, reduction="mean"):
    diff = (input - target).square()
    if reduction == "mean":
        return diff.mean()
    if reduction == "sum":
        return diff.sum()
    if reduction == "none":
        return diff
    raise ValueError(f"mse_loss: reduction {reduction!r} is not one of 'mean', 'sum', 'none'")
