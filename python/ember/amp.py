"""``ember.amp``: ``GradScaler`` for float16 training, with ``torch.amp.GradScaler``'s
arguments, update rule and API (``scale``, ``unscale_``, ``step``, ``update``,
``get_scale``, ``state_dict``), and ``autocast``."""

import numpy as np

from ._ember import autocast  # noqa: F401  (ember.amp.autocast, as torch.amp.autocast)


class GradScaler:
    def __init__(self, device="cpu", init_scale=2.0 ** 16, growth_factor=2.0, backoff_factor=0.5,
                 growth_interval=2000, enabled=True):
        if not (init_scale > 0 and growth_factor > 1 and 0 < backoff_factor < 1 and growth_interval >= 1):
            raise ValueError("GradScaler: init_scale > 0, growth_factor > 1, 0 < backoff_factor < 1 "
                             "and growth_interval >= 1 are required")
        self._scale = float(init_scale)
        self.growth_factor, self.backoff_factor = growth_factor, backoff_factor
        self.growth_interval, self.enabled = growth_interval, enabled
        self._growth_tracker = 0
        self._unscaled = {}  # id(optimizer) -> found an inf or NaN

    def scale(self, outputs):
        return outputs * self._scale if self.enabled else outputs

    def unscale_(self, optimizer):
        """Divides the gradients of ``optimizer``'s parameters by the scale (once per step)."""
        if not self.enabled:
            return
        if id(optimizer) in self._unscaled:
            raise RuntimeError("unscale_() has already been called on this optimizer since the last update()")
        inv, found = 1.0 / self._scale, False
        for group in optimizer.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad * inv
                if not np.isfinite(g.float().numpy()).all():
                    found = True
                p.grad = g
        self._unscaled[id(optimizer)] = found

    def step(self, optimizer):
        """``optimizer.step()`` unless the unscaled gradients hold an inf or NaN; returns
        whether it stepped."""
        if not self.enabled:
            optimizer.step()
            return True
        if id(optimizer) not in self._unscaled:
            self.unscale_(optimizer)
        if self._unscaled[id(optimizer)]:
            return False
        optimizer.step()
        return True

    def update(self):
        if not self.enabled:
            return
        if not self._unscaled:
            raise RuntimeError("update() needs a step() (or unscale_()) since the last update()")
        if any(self._unscaled.values()):
            self._scale *= self.backoff_factor
            self._growth_tracker = 0
        else:
            self._growth_tracker += 1
            if self._growth_tracker == self.growth_interval:
                self._scale *= self.growth_factor
                self._growth_tracker = 0
        self._unscaled = {}

    def get_scale(self):
        return self._scale if self.enabled else 1.0

    def is_enabled(self):
        return self.enabled

    def state_dict(self):
        return {"scale": self._scale, "growth_factor": self.growth_factor,
                "backoff_factor": self.backoff_factor, "growth_interval": self.growth_interval,
                "_growth_tracker": self._growth_tracker}

    def load_state_dict(self, state):
        self._scale = float(state["scale"])
        self.growth_factor = state["growth_factor"]
        self.backoff_factor = state["backoff_factor"]
        self.growth_interval = state["growth_interval"]
        self._growth_tracker = state["_growth_tracker"]
