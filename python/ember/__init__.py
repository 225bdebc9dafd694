"""Ember from Python: tensors with PyTorch's semantics over Ember's Rust core.

    >>> import ember
    >>> x = ember.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    >>> y = (x * x).sum()
    >>> y.backward()
    >>> x.grad.tolist()
    [[2.0, 4.0], [6.0, 8.0]]

Every op of Ember's op tables (unary, binary, comparison and reduction ops) is a tensor
method and an ``ember.<name>`` function, taken from the tables themselves.
"""

from . import _ember
from ._ember import (
    Tensor,
    arange,
    autocast,
    bfloat16,
    bool,
    cat,
    checkpoint,
    dtype,
    einsum,
    eye,
    float16,
    float32,
    float64,
    full,
    from_numpy,
    full_like,
    multinomial,
    int64,
    is_grad_enabled,
    load_file,
    manual_seed,
    matmul,
    no_grad,
    ones,
    ones_like,
    rand,
    randn,
    save_file,
    stack,
    tensor,
    where,
    zeros,
    zeros_like,
)

__version__ = _ember.__version__

float = float32
double = float64
half = float16
long = int64


def from_dlpack(x):
    """A tensor sharing the memory of any DLPack exporter (a torch CPU tensor, a NumPy array,
    another ember tensor): read through NumPy's importer, then shared as ``from_numpy`` does
    (a copy where the layout or dtype cannot be shared)."""
    import numpy

    if isinstance(x, Tensor):
        return x
    return from_numpy(numpy.from_dlpack(x))


def enable_grad():
    """``with ember.enable_grad():`` records the graph again inside a ``no_grad`` block."""
    return no_grad(enable=True)


def _table_function(kind, name):
    if kind in ("binary", "compare"):

        def op(input, other):
            if isinstance(input, Tensor):
                return getattr(input, name)(other)
            return getattr(tensor(input), name)(other)

    elif kind == "reduce":

        def op(input, dim=None, keepdim=False):
            return getattr(input, name)(dim, keepdim)

    else:

        def op(input):
            return getattr(input, name)()

    op.__name__ = name
    op.__qualname__ = name
    op.__doc__ = f"``ember.{name}(t, ...)`` is ``t.{name}(...)`` (Ember's {kind} op table)."
    return op


TABLE_OPS = tuple(name for _, name in _ember.table_ops())
for _kind, _name in _ember.table_ops():
    globals()[_name] = _table_function(_kind, _name)
del _kind, _name


from . import amp, models, nn, optim, peft, train  # noqa: E402


def softmax(input, dim):
    """Softmax along ``dim``."""
    return input.softmax(dim)


def log_softmax(input, dim):
    """Log-softmax along ``dim``."""
    return input.log_softmax(dim)
