"""``ember.nn``: modules, parameters, layers and losses with ``torch.nn``'s names."""

from . import functional
from .attention import MultiheadAttention
from .block import Block
from .conv import (
    AdaptiveAvgPool1d,
    AdaptiveAvgPool2d,
    AvgPool1d,
    AvgPool2d,
    Conv1d,
    Conv2d,
    Flatten,
    MaxPool1d,
    MaxPool2d,
)
from .layers import (
    GELU,
    CrossEntropyLoss,
    Dropout,
    Embedding,
    Identity,
    LayerNorm,
    Linear,
    ModuleDict,
    ModuleList,
    MSELoss,
    ReLU,
    RMSNorm,
    Sequential,
    Sigmoid,
    SiLU,
    Tanh,
)
from .module import Module, Parameter
from . import utils

__all__ = [
    "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "AvgPool1d", "AvgPool2d", "Conv1d", "Conv2d",
    "Block", "Flatten", "MaxPool1d", "MaxPool2d", "MultiheadAttention", "GELU", "CrossEntropyLoss", "Dropout", "Embedding", "Identity", "LayerNorm", "Linear",
    "Module", "ModuleDict", "ModuleList", "MSELoss", "Parameter", "ReLU", "RMSNorm",
    "Sequential", "Sigmoid", "SiLU", "Tanh", "functional", "utils",
]
