"""``ember.nn.Module`` and ``Parameter``: Python classes subclass ``Module`` as in PyTorch;
parameters and submodules assigned as attributes are registered, named with dots, saved and
loaded by ``state_dict`` under those names (Hugging Face's, when the attributes follow its
layout)."""

from collections import OrderedDict

from .. import _ember
from .._ember import Tensor


class Parameter(Tensor):
    """A tensor a module owns and trains: a leaf that requires a gradient (unless told not)."""

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            data = _ember.zeros(0)
        return super().__new__(cls, data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """The base of layers and models (``torch.nn.Module``'s interface)."""

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError("call super().__init__() before assigning attributes of a Module")
        for store in (self._parameters, self._buffers, self._modules):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name):
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name, tensor):
        """A tensor saved with the module that is not trained (``state_dict`` keeps it)."""
        self._buffers[name] = tensor

    def register_parameter(self, name, param):
        if param is None:
            self._parameters.pop(name, None)
        else:
            self.__setattr__(name, param)

    def add_module(self, name, module):
        self.__setattr__(name, module)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} has no forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def named_modules(self, prefix=""):
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self):
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        yield from self._modules.items()

    def children(self):
        yield from self._modules.values()

    def named_parameters(self, prefix="", recurse=True):
        seen = set()
        mods = self.named_modules(prefix) if recurse else [(prefix, self)]
        for mp, m in mods:
            for name, p in m._parameters.items():
                if id(p) in seen:
                    continue  # tied weights appear once, under their first name
                seen.add(id(p))
                yield (f"{mp}.{name}" if mp else name), p

    def parameters(self, recurse=True):
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix=""):
        for mp, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                yield (f"{mp}.{name}" if mp else name), b

    def state_dict(self):
        """Every parameter and buffer by dotted name (tied weights under each name)."""
        out = OrderedDict()
        for mp, m in self.named_modules():
            for name, t in list(m._parameters.items()) + list(m._buffers.items()):
                out[f"{mp}.{name}" if mp else name] = t.detach()
        return out

    def load_state_dict(self, state_dict, strict=True):
        """Copies values into the parameters and buffers of the same names; with ``strict``,
        missing or unexpected names are an error. Returns ``(missing, unexpected)``."""
        own = {}
        for mp, m in self.named_modules():
            for name in list(m._parameters) + list(m._buffers):
                own[f"{mp}.{name}" if mp else name] = (m, name)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for key, (m, name) in own.items():
            if key not in state_dict:
                continue
            value = state_dict[key]
            if not isinstance(value, Tensor):
                value = _ember.tensor(value)
            if name in m._parameters:
                p = m._parameters[name]
                if tuple(value.shape) != tuple(p.shape):
                    raise ValueError(f"load_state_dict: {key} has shape {tuple(value.shape)}, the module {tuple(p.shape)}")
                p.data = value.to(p.dtype)
            else:
                m._buffers[name] = value
        return missing, unexpected

    def train(self, mode=True):
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none=True):
        for p in self.parameters():
            p.grad = None

    def to(self, *args, **kwargs):
        """Moves or casts every float parameter and buffer (``module.to(ember.bfloat16)``)."""
        for m in self.modules():
            for p in m._parameters.values():
                if p.dtype.is_floating_point:
                    p.data = p.to(*args, **kwargs)
            for name, b in list(m._buffers.items()):
                if b.dtype.is_floating_point:
                    m._buffers[name] = b.to(*args, **kwargs)
        return self

    def apply(self, fn):
        for m in self._modules.values():
            m.apply(fn)
        fn(self)
        return self

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"({name}): " + repr(m).replace("\n", "\n  ") for name, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        if not lines:
            return head + ")"
        return head + "\n  " + "\n  ".join(lines) + "\n)"
