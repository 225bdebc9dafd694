"""Driven from Python with the Rust example's seed, data and model (``ember.models.Gpt``),
training gives the same losses as ``examples/train_gpt.rs`` bit for bit over its first 50
steps. scripts/test_python.sh runs the Rust example first and passes its metrics file in
``EMBER_RUST_GPT_METRICS``."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

HERE = os.path.dirname(__file__)


def test_python_driven_training_equals_the_rust_example():
    metrics = os.environ.get("EMBER_RUST_GPT_METRICS")
    if not metrics:
        if os.environ.get("EMBER_REQUIRE_ASSETS") == "1":
            pytest.fail("EMBER_RUST_GPT_METRICS is not set (scripts/test_python.sh sets it)")
        pytest.skip("no Rust run to compare with: run scripts/test_python.sh (it sets EMBER_RUST_GPT_METRICS)")
    rust = {}
    with open(metrics) as f:
        for line in f:
            rec = json.loads(line)
            if "loss" in rec and "step" in rec and "skipped" not in rec and "val_loss" not in rec:
                rust[rec["step"]] = rec["loss"]
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "..", "examples", "train_gpt_rust_model.py"),
         "--steps", "50", "--json"], capture_output=True, text=True, check=True)
    ours = {r["step"]: r["loss"] for r in map(json.loads, out.stdout.splitlines())}
    assert set(ours) == {10, 20, 30, 40, 50}
    assert set(ours) <= set(rust), f"the Rust run logged {sorted(rust)}"
    for step, loss in ours.items():
        assert np.float32(loss) == np.float32(rust[step]), f"step {step}: {loss} vs Rust {rust[step]}"
