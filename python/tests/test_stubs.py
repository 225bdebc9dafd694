"""The type stubs follow the module: the table-op block of ``_ember.pyi`` lists exactly the
ops of Ember's tables (stubtest, run by scripts/test_python.sh, checks the rest), and the
allowlist excuses exactly those names."""

import os
import re

import ember

HERE = os.path.dirname(__file__)


def test_the_stub_lists_every_table_op_and_no_other():
    with open(os.path.join(HERE, "..", "ember", "_ember.pyi")) as f:
        stub = f.read()
    block = stub.split("# --- table ops")[1].split("# --- end of table ops")[0]
    stubbed = re.findall(r"def (\w+)\(self", block)
    assert stubbed == list(ember.TABLE_OPS)
    with open(os.path.join(HERE, "..", "stubtest-allowlist.txt")) as f:
        allowed = {line.strip().rsplit(".", 1)[-1] for line in f
                   if line.startswith("ember._ember.Tensor.")}
    assert set(ember.TABLE_OPS) <= allowed
