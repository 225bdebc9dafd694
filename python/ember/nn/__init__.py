"""``ember.nn``: modules, parameters, layers and losses with ``torch.nn``'s names."""

from . import functional
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
    "GELU", "CrossEntropyLoss", "Dropout", "Embedding", "Identity", "LayerNorm", "Linear",
    "Module", "ModuleDict", "ModuleList", "MSELoss", "Parameter", "ReLU", "RMSNorm",
    "Sequential", "Sigmoid", "SiLU", "Tanh", "functional", "utils",
]
