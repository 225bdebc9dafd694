"""Hostile input through the newer Python surfaces (modules, optimizers, files, NumPy and
DLPack, models): an exception of the fitting type each, the interpreter alive after all."""

import numpy as np
import pytest

import ember
import ember.nn as nn
import ember.nn.functional as F

CASES = [
    (lambda: nn.Linear(4, 3)(ember.ones(2, 5)), ValueError),
    (lambda: nn.Embedding(10, 4)(ember.tensor([[11]])), IndexError),
    (lambda: nn.Embedding(10, 4)(ember.tensor([[-1]])), IndexError),
    (lambda: nn.LayerNorm(4)(ember.ones(2, 5)), ValueError),
    (lambda: F.layer_norm(ember.ones(2, 4), [2, 2]), ValueError),
    (lambda: nn.Dropout(1.5), ValueError),
    (lambda: F.cross_entropy(ember.ones(3, 4), ember.tensor([0, 1])), ValueError),
    (lambda: F.cross_entropy(ember.ones(3, 4), ember.tensor([0, 1, 9])), IndexError),
    (lambda: F.cross_entropy(ember.ones(3, 4), ember.tensor([0, 1, 2]), reduction="avg"), ValueError),
    (lambda: F.gelu(ember.ones(2), approximate="fast"), ValueError),
    (lambda: F.scaled_dot_product_attention(ember.ones(1, 2, 3, 4), ember.ones(1, 2, 5, 6), ember.ones(1, 2, 5, 4)), ValueError),
    (lambda: ember.multinomial(ember.tensor([-1.0, 2.0]), 1), ValueError),
    (lambda: ember.optim.AdamW([]), ValueError),
    (lambda: ember.optim.AdamW([nn.Parameter(ember.ones(2))], lr=-1), ValueError),
    (lambda: ember.optim.AdamW([nn.Parameter(ember.ones(2))], betas=(1.5, 0.9)), ValueError),
    (lambda: ember.optim.SGD([nn.Parameter(ember.ones(2))], momentum=-1), ValueError),
    (lambda: ember.amp.GradScaler(init_scale=0), ValueError),
    (lambda: setattr(nn.Parameter(ember.ones(2)), "data", ember.ones(3)), ValueError),
    (lambda: setattr(nn.Parameter(ember.ones(2)), "grad", ember.ones(3)), ValueError),
    (lambda: nn.Linear(2, 2).load_state_dict({"weight": ember.ones(3, 3), "bias": ember.ones(2)}), ValueError),
    (lambda: ember.load_file("/nonexistent/x.safetensors"), FileNotFoundError),
    (lambda: ember.save_file({1: ember.ones(1)}, "/tmp/ember_hostile.safetensors"), TypeError),
    (lambda: ember.save_file({"a": ember.ones(1)}, "/nonexistent/dir/x.safetensors"), OSError),
    (lambda: ember.from_numpy(np.array(["a", "b"])), TypeError),
    (lambda: ember.from_numpy(np.zeros((2, 2), dtype=np.complex64)), TypeError),
    (lambda: ember.from_dlpack(object()), (TypeError, AttributeError)),
    (lambda: ember.tensor(np.zeros(3, dtype=np.uint64)), TypeError),
    (lambda: ember.models.Tokenizer.from_pretrained("/nonexistent"), FileNotFoundError),
]


def test_hostile_inputs_each_raise_and_the_interpreter_lives():
    for make, kind in CASES:
        with pytest.raises(kind):
            make()
    assert (ember.ones(2) * 2).tolist() == [2.0, 2.0]
