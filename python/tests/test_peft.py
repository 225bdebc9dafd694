"""``ember.peft`` against peft: an adapter peft trained-and-saved loads into the same model
written with ``ember.nn`` and gives peft's outputs; an adapter Ember saves loads in peft with
Ember's outputs; merging keeps the outputs; only the adapters train; peft features Ember does
not implement are refused by name."""

import json
import os

import numpy as np
import pytest

import ember
import ember.nn as enn
from ember import peft as epeft

if os.environ.get("EMBER_REQUIRE_VENV") == "1":
    import peft
    import torch
else:
    torch = pytest.importorskip("torch", reason="torch is not installed in this environment")
    peft = pytest.importorskip("peft", reason="peft is not installed in this environment")


class TorchNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.v = torch.nn.Linear(8, 8), torch.nn.Linear(8, 8)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(8, 8)])
        self.out = torch.nn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.blocks[0](torch.relu(self.q(x)) + self.v(x)))


class EmberNet(enn.Module):
    def __init__(self):
        super().__init__()
        self.q, self.v = enn.Linear(8, 8), enn.Linear(8, 8)
        self.blocks = enn.ModuleList([enn.Linear(8, 8)])
        self.out = enn.Linear(8, 3)

    def forward(self, x):
        return self.out(self.blocks[0](self.q(x).relu() + self.v(x)))


def pair(seed):
    torch.manual_seed(seed)
    t = TorchNet()
    e = EmberNet()
    e.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()})
    return t, e


X = np.random.default_rng(0).standard_normal((5, 8)).astype(np.float32)


def out(model, fw):
    if fw == "torch":
        with torch.no_grad():
            return model(torch.tensor(X)).numpy()
    with ember.no_grad():
        return model(ember.tensor(X)).numpy()


def test_peft_adapter_loads_in_ember(tmp_path):
    t, e = pair(1)
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q", "v", "0"], init_lora_weights=False)
    pt = peft.get_peft_model(t, cfg).eval()
    pt.save_pretrained(tmp_path)
    em = epeft.PeftModel.from_pretrained(e, str(tmp_path))
    em.eval()
    np.testing.assert_allclose(out(em, "ember"), out(pt, "torch"), rtol=1e-5, atol=1e-5)
    assert len(em.lora_layers()) == 3


def test_ember_adapter_loads_in_peft_and_merges(tmp_path):
    t, e = pair(2)
    em = epeft.get_peft_model(e, epeft.LoraConfig(r=2, lora_alpha=6, target_modules=r"(q|v)",
                                                 use_rslora=True))
    for _, m in em.lora_layers():  # B is zero at init: give it values to see
        m.lora_B.weight = ember.nn.Parameter(ember.randn(8, 2) * 0.5)
    trainable = [n for n, p in em.named_parameters() if p.requires_grad]
    assert sorted(trainable) == sorted(
        f"base_model.model.{m}.lora_{ab}.weight" for m in ("q", "v") for ab in "AB")
    loss = em(ember.tensor(X)).square().sum()
    loss.backward()
    assert em.model.out.weight.grad is None and em.model.q.lora_A.weight.grad is not None
    em.eval()
    ours = out(em, "ember")
    em.save_pretrained(str(tmp_path))
    saved = json.load(open(tmp_path / "adapter_config.json"))
    assert saved["peft_type"] == "LORA" and saved["use_rslora"] is True
    pt = peft.PeftModel.from_pretrained(t, str(tmp_path)).eval()
    np.testing.assert_allclose(out(pt, "torch"), ours, rtol=1e-5, atol=1e-5)
    merged = em.merge_and_unload()
    assert not any(isinstance(m, epeft.LoraLinear) for m in merged.modules())
    np.testing.assert_allclose(out(merged, "ember"), ours, rtol=1e-5, atol=1e-5)


def test_unsupported_peft_features_are_refused(tmp_path):
    _, e = pair(3)
    with pytest.raises(ValueError):
        epeft.LoraConfig(r=0, target_modules=["q"])
    with pytest.raises(ValueError):
        epeft.get_peft_model(e, epeft.LoraConfig(target_modules=["nothing_here"]))
    (tmp_path / "adapter_config.json").write_text(json.dumps(
        {"peft_type": "LORA", "r": 2, "lora_alpha": 2, "target_modules": ["q"], "use_dora": True}))
    with pytest.raises(ValueError, match="use_dora"):
        epeft.PeftModel.from_pretrained(e, str(tmp_path))
