"""ember.models' task heads against transformers: the tiny BERT checkpoints that transformers
saved with a sequence-classification, token-classification and masked-LM head
(scripts/make_head_fixtures.py) give transformers' logits and losses from Python too, and a
saved head reloads with the same logits."""

import os

import numpy as np
import pytest

import ember
from _fixtures import ROOT, load, read_safetensors

MODELS = os.path.join(ROOT, "models")
REF = read_safetensors(os.path.join(MODELS, "tiny-bert-heads_ref.safetensors"))
CLASSES = {
    "seq": ember.models.AutoModelForSequenceClassification,
    "tok": ember.models.AutoModelForTokenClassification,
    "mlm": ember.models.AutoModelForMaskedLM,
}


def inputs():
    return load(REF, "ids"), load(REF, "mask"), load(REF, "types")


@pytest.mark.parametrize("case,kind", [("seq", "seq"), ("seq_multi", "seq"), ("tok", "tok"), ("mlm", "mlm")])
def test_heads_give_transformers_logits_and_loss(case, kind):
    model = CLASSES[kind].from_pretrained(os.path.join(MODELS, f"tiny-bert-{kind}"))
    ids, mask, types = inputs()
    out = model(ids, attention_mask=mask, token_type_ids=types, labels=load(REF, f"{case}.labels"))
    want = REF[f"{case}.logits"][0]
    assert out.logits.shape == want.shape
    np.testing.assert_allclose(out.logits.numpy(), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.loss.numpy().reshape(-1), REF[f"{case}.loss"][0].reshape(-1), rtol=1e-4, atol=1e-6)
    assert model(ids, attention_mask=mask, token_type_ids=types).loss is None
    if kind != "mlm":
        assert len(model.labels) == want.shape[-1]


def test_a_saved_head_reloads_with_the_same_logits(tmp_path):
    model = ember.models.AutoModelForSequenceClassification.from_pretrained(os.path.join(MODELS, "tiny-bert-seq"))
    ids, mask, types = inputs()
    before = model(ids, mask, types).logits.numpy()
    model.save_pretrained(str(tmp_path))
    again = ember.models.AutoModelForSequenceClassification.from_pretrained(str(tmp_path))
    np.testing.assert_array_equal(again(ids, mask, types).logits.numpy(), before)
    assert set(again.state_dict()) == set(model.state_dict())


def test_a_new_head_and_bad_arguments():
    encoder = os.path.join(MODELS, "tiny-bert")
    fresh = ember.models.AutoModelForSequenceClassification.from_pretrained(encoder, num_labels=4)
    ids, mask, _ = inputs()
    assert fresh(ids, mask).logits.shape == (ids.shape[0], 4)
    with pytest.raises(ValueError, match="unknown task"):
        ember.models.TaskModel.load("summarize", encoder)
    with pytest.raises(Exception, match="tiny-bert-missing|No such file|not found"):
        ember.models.AutoModelForTokenClassification.from_pretrained(os.path.join(MODELS, "tiny-bert-missing"))
