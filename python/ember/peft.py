"""``ember.peft``: LoRA on ``ember.nn`` models in peft's format, as peft's ``LoraConfig``,
``get_peft_model`` and ``PeftModel`` do it: ``nn.Linear`` layers named by ``target_modules``
(names matched at the end of the module path, or a regex matched whole) get ``lora_A``
(``r × in``, kaiming-uniform) and ``lora_B`` (``out × r``, zeros) beside the frozen weight;
the output adds ``dropout(x) Aᵀ Bᵀ · lora_alpha / r`` (``/ √r`` with ``use_rslora``).
``save_pretrained`` writes ``adapter_config.json`` and ``adapter_model.safetensors`` with
peft's names (``base_model.model.<module>.lora_A.weight``), which peft loads into the same
architecture written with torch, and ``PeftModel.from_pretrained`` reads peft's."""

import json
import math
import os
import re
import tempfile
from dataclasses import asdict, dataclass, field

from . import _ember
from .nn import functional as F
from .nn.layers import Linear
from .nn.module import Module, Parameter

__all__ = ["LoraConfig", "LoraLinear", "PeftModel", "get_peft_model"]


@dataclass
class LoraConfig:
    """peft's ``LoraConfig`` (the LoRA fields Ember implements)."""

    r: int = 8
    lora_alpha: float = 8
    target_modules: object = field(default_factory=list)
    lora_dropout: float = 0.0
    use_rslora: bool = False
    bias: str = "none"
    task_type: object = None

    def __post_init__(self):
        if not isinstance(self.r, int) or self.r < 1:
            raise ValueError(f"r must be a positive int, got {self.r!r}")
        if not 0.0 <= self.lora_dropout < 1.0:
            raise ValueError(f"lora_dropout {self.lora_dropout} must be in [0, 1)")
        if self.bias != "none":
            raise ValueError(f"bias={self.bias!r}: Ember's LoRA trains no biases ('none')")
        if isinstance(self.target_modules, str):
            re.compile(self.target_modules)
        elif not self.target_modules:
            raise ValueError("target_modules names no module")

    @property
    def scaling(self):
        return self.lora_alpha / (math.sqrt(self.r) if self.use_rslora else self.r)

    def matches(self, name):
        """peft's rule: a regex matches the whole name; a list entry matches the name or its
        last components."""
        if isinstance(self.target_modules, str):
            return re.fullmatch(self.target_modules, name) is not None
        return any(name == t or name.endswith("." + t) for t in self.target_modules)


class LoraLinear(Module):
    """A frozen ``Linear`` with a trained low-rank update (peft's ``lora.Linear``)."""

    def __init__(self, base, config):
        super().__init__()
        self.base_layer = base
        self.r, self.scaling = config.r, config.scaling
        self.lora_dropout_p = config.lora_dropout
        self.lora_A = Linear(base.in_features, config.r, bias=False)  # ±1/√in, as kaiming(√5)
        self.lora_B = Linear(config.r, base.out_features, bias=False)
        self.lora_B.weight = Parameter(_ember.zeros(base.out_features, config.r))
        self.merged = False

    def forward(self, x):
        y = self.base_layer(x)
        if self.merged:
            return y
        h = F.dropout(x, self.lora_dropout_p, self.training)
        return y + self.lora_B(self.lora_A(h)) * self.scaling

    def delta_weight(self):
        return (self.lora_B.weight.detach() @ self.lora_A.weight.detach()) * self.scaling


class PeftModel(Module):
    """A model with LoRA layers: ``forward`` is the model's; only the adapters train."""

    def __init__(self, model, config):
        super().__init__()
        self.base_model = _Wrapper(model)
        self.peft_config = config
        targets = [(n, m) for n, m in model.named_modules() if n and config.matches(n)]
        if not any(isinstance(m, Linear) for _, m in targets):
            raise ValueError(f"target_modules {config.target_modules!r} match no nn.Linear")
        for p in model.parameters():
            p.requires_grad_(False)
        for name, m in targets:
            if isinstance(m, Linear):
                parent, attr = _parent(model, name)
                setattr(parent, attr, LoraLinear(m, config))

    @property
    def model(self):
        return self.base_model.model

    def forward(self, *args, **kwargs):
        return self.model(*args, **kwargs)

    def lora_layers(self):
        return [(n, m) for n, m in self.model.named_modules() if isinstance(m, LoraLinear)]

    def print_trainable_parameters(self):
        total = sum(p.numel() for p in self.parameters())
        train = sum(p.numel() for p in self.parameters() if p.requires_grad)
        print(f"trainable params: {train:,} || all params: {total:,} || "
              f"trainable%: {100 * train / total:.4f}")

    def adapter_state_dict(self):
        """The adapters by peft's saved names."""
        out = {}
        for name, m in self.lora_layers():
            out[f"base_model.model.{name}.lora_A.weight"] = m.lora_A.weight.detach()
            out[f"base_model.model.{name}.lora_B.weight"] = m.lora_B.weight.detach()
        return out

    def save_pretrained(self, directory):
        """``adapter_config.json`` and ``adapter_model.safetensors`` in peft's layout (written
        atomically)."""
        os.makedirs(directory, exist_ok=True)
        c = self.peft_config
        target = c.target_modules if isinstance(c.target_modules, str) else sorted(set(c.target_modules))
        config = {
            "peft_type": "LORA", "r": c.r, "lora_alpha": c.lora_alpha, "target_modules": target,
            "lora_dropout": c.lora_dropout, "use_rslora": c.use_rslora, "bias": "none",
            "fan_in_fan_out": False, "task_type": c.task_type, "inference_mode": True,
            "init_lora_weights": True, "modules_to_save": None, "base_model_name_or_path": None,
        }
        _ember.save_file(self.adapter_state_dict(), os.path.join(directory, "adapter_model.safetensors"))
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".json.tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(config, f, indent=2)
        os.replace(tmp, os.path.join(directory, "adapter_config.json"))

    @classmethod
    def from_pretrained(cls, model, directory):
        """``model`` with the adapter peft (or Ember) saved in ``directory``."""
        with open(os.path.join(directory, "adapter_config.json")) as f:
            raw = json.load(f)
        if raw.get("peft_type", "LORA") != "LORA":
            raise ValueError(f"peft_type {raw.get('peft_type')!r}: Ember reads LoRA adapters")
        for key, off in [("use_dora", False), ("fan_in_fan_out", False), ("modules_to_save", None)]:
            if raw.get(key, off) not in (off, [], None):
                raise ValueError(f"{key}={raw[key]!r} is a peft feature Ember does not implement")
        config = LoraConfig(r=raw["r"], lora_alpha=raw["lora_alpha"],
                            target_modules=raw["target_modules"],
                            lora_dropout=raw.get("lora_dropout", 0.0),
                            use_rslora=raw.get("use_rslora", False), bias=raw.get("bias", "none"))
        peft_model = cls(model, config)
        weights = _ember.load_file(os.path.join(directory, "adapter_model.safetensors"))
        expected = peft_model.adapter_state_dict()
        if set(weights) != set(expected):
            raise KeyError(f"adapter tensors {sorted(set(weights) ^ set(expected))} do not match the model")
        for name, m in peft_model.lora_layers():
            for part in ("lora_A", "lora_B"):
                w = weights[f"base_model.model.{name}.{part}.weight"]
                if tuple(w.shape) != tuple(getattr(m, part).weight.shape):
                    raise ValueError(f"{name}.{part}: shape {tuple(w.shape)} does not fit")
                getattr(m, part).weight = Parameter(w.float())
        return peft_model

    def merge_and_unload(self):
        """The model with each adapter added into its weight and the LoRA layers removed."""
        model = self.model
        for name, m in self.lora_layers():
            base = m.base_layer
            base.weight = Parameter(base.weight.detach() + m.delta_weight())
            parent, attr = _parent(model, name)
            setattr(parent, attr, base)
        return model


class _Wrapper(Module):
    """peft's ``LoraModel`` level (``base_model.model``)."""

    def __init__(self, model):
        super().__init__()
        self.model = model


def _parent(model, name):
    *path, attr = name.split(".")
    parent = model
    for p in path:
        parent = getattr(parent, p)
    return parent, attr


def get_peft_model(model, config):
    """``model`` with LoRA layers where ``config`` targets, the rest frozen."""
    return PeftModel(model, config)
