"""``ember.train``: the Rust trainer's pieces, for Python runs that must equal a Rust run bit
for bit — the batch sampler (``TokenStream`` with a seeded ``Generator``), the schedule
(``cosine_with_warmup``), gradients kept by parameter (``grad``), and optimizers over a Rust
model's parameter store (``ember.models.Gpt(...).adamw(...)``)."""

from ._ember import Generator, Gradients, Schedule, StoreOptimizer, TokenStream, grad
from ._ember import cosine_with_warmup_schedule as cosine_with_warmup

__all__ = ["Generator", "Gradients", "Schedule", "StoreOptimizer", "TokenStream", "cosine_with_warmup", "grad"]
