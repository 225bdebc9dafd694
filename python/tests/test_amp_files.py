"""``ember.amp.GradScaler`` replays torch's recorded trajectories (tests/fixtures/amp.json:
scales, skipped steps and weights with injected infs and NaNs), and safetensors files
round-trip through ``ember.save_file`` / ``ember.load_file`` (and are read by the
``safetensors`` package's NumPy loader where it is installed)."""

import json
import os

import numpy as np
import pytest

import ember
import ember.nn as nn
from _fixtures import ROOT


def test_grad_scaler_follows_torch():
    with open(os.path.join(ROOT, "amp.json")) as f:
        cases = json.load(f)["grad_scaler"]
    for case in cases:
        w = nn.Parameter(ember.tensor([1.0, -2.0]))
        opt = ember.optim.SGD([w], lr=0.1)
        scaler = ember.amp.GradScaler(**case["kwargs"])
        for rec in case["trajectory"]:
            t = rec["step"]
            c = ember.tensor([0.5 + t, -1.0])
            opt.zero_grad()
            scaler.scale((w * c).sum()).backward()
            bad = case["inject"].get(str(t))
            if bad is not None:
                g = w.grad.tolist()
                w.grad = ember.tensor([float(bad), g[1]])
            scaler.unscale_(opt)
            nn.utils.clip_grad_norm_([w], 1.0)
            before = scaler.get_scale()
            stepped = scaler.step(opt)
            scaler.update()
            at = f"{case['name']} step {t}"
            assert before == rec["scale_before"], at
            assert scaler.get_scale() == rec["scale_after"], at
            assert (not stepped) == rec["skipped"], at
            np.testing.assert_allclose(w.numpy(), rec["w"], atol=1e-6, err_msg=at)
    with pytest.raises(RuntimeError):
        s = ember.amp.GradScaler()
        opt = ember.optim.SGD([nn.Parameter(ember.ones(1))])
        s.unscale_(opt)
        s.unscale_(opt)


def test_safetensors_round_trip(tmp_path):
    tensors = {"a.weight": ember.randn(3, 4), "ids": ember.arange(5),
               "h": ember.ones(2, dtype=ember.bfloat16)}
    path = tmp_path / "model.safetensors"
    ember.save_file(tensors, str(path), metadata={"format": "pt"})
    back = ember.load_file(str(path))
    assert set(back) == set(tensors)
    for k, t in tensors.items():
        assert back[k].dtype == t.dtype and back[k].tolist() == t.tolist()
    try:
        from safetensors import safe_open
    except ImportError:
        return  # the reference reader is optional here; the round trip above is the test
    with safe_open(str(path), framework="np") as f:
        assert np.array_equal(f.get_tensor("a.weight"), tensors["a.weight"].numpy())
        assert f.metadata() == {"format": "pt"}


def test_a_module_saves_and_loads_its_state_dict(tmp_path):
    m = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    path = str(tmp_path / "m.safetensors")
    ember.save_file(m.state_dict(), path)
    fresh = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    fresh.load_state_dict(ember.load_file(path))
    x = ember.randn(3, 4)
    assert fresh(x).tolist() == m(x).tolist()


def test_bad_files_are_exceptions(tmp_path):
    with pytest.raises(FileNotFoundError):
        ember.load_file(str(tmp_path / "missing.safetensors"))
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\xff" * 8 + b"{}")
    with pytest.raises(ValueError):
        ember.load_file(str(bad))
    with pytest.raises(TypeError):
        ember.save_file({"x": [1, 2]}, str(tmp_path / "x.safetensors"))
