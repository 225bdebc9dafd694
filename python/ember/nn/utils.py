"""``ember.nn.utils``: gradient clipping."""

import math

from .. import _ember


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scales the gradients so their joint ``norm_type``-norm is at most ``max_norm``; returns
    the norm before clipping (a 0-d tensor), as ``torch.nn.utils.clip_grad_norm_``."""
    if norm_type != 2.0:
        raise ValueError("clip_grad_norm_: only the 2-norm is supported")
    params = [p for p in ([parameters] if isinstance(parameters, _ember.Tensor) else parameters)
              if p.grad is not None]
    if not params:
        return _ember.tensor(0.0)
    total = sum(((p.grad.float() ** 2).sum() for p in params), _ember.tensor(0.0)).sqrt()
    norm = total.item()
    if error_if_nonfinite and not math.isfinite(norm):
        raise RuntimeError(f"clip_grad_norm_: the total norm of the gradients is {norm}")
    coef = max_norm / (norm + 1e-6)
    if coef < 1.0:
        for p in params:
            p.grad = p.grad * coef
    return total
