"""``ember.models``: causal language models from Hugging Face directories and GGUF files
(quantized tensors kept in their blocks), their tokenizers and chat templates, and
generation — whole (``generate``) or streamed as text pieces (``stream``); encoders
(``AutoModel``) and task heads (``AutoModelForSequenceClassification``,
``AutoModelForTokenClassification``, ``AutoModelForMaskedLM``).

    >>> model = ember.models.AutoModelForCausalLM.from_pretrained("SmolLM2-135M-Instruct.Q4_1.gguf")
    >>> tok = model.tokenizer
    >>> prompt = tok.apply_chat_template([{"role": "user", "content": "Hi!"}])
    >>> for piece in model.stream(prompt, max_new_tokens=32):
    ...     print(piece, end="", flush=True)
"""

from ._ember import (
    AutoModel,
    AutoModelForCausalLM,
    Gpt,
    TaskModel,
    TaskOutput,
    TextStream,
    Tokenizer,
)

AutoTokenizer = Tokenizer


class AutoModelForSequenceClassification:
    """A classifier of whole sequences (BERT, or a causal model's last real token), as
    transformers' class: ``model(input_ids, attention_mask, labels=y)`` gives ``.logits``
    ``(B, num_labels)`` and ``.loss``. A checkpoint without the head gets a new one with
    ``num_labels`` labels."""

    @staticmethod
    def from_pretrained(path, num_labels=None, dtype=None, device=None) -> TaskModel:
        return TaskModel.load("sequence", path, num_labels, dtype, device)


class AutoModelForTokenClassification:
    """A per-token classifier (BERT): ``.logits`` ``(B, T, num_labels)``."""

    @staticmethod
    def from_pretrained(path, num_labels=None, dtype=None, device=None) -> TaskModel:
        return TaskModel.load("token", path, num_labels, dtype, device)


class AutoModelForMaskedLM:
    """A masked language model (BERT): ``.logits`` ``(B, T, vocab)``; labels -100 where no
    token is masked."""

    @staticmethod
    def from_pretrained(path, dtype=None, device=None) -> TaskModel:
        return TaskModel.load("masked", path, None, dtype, device)


__all__ = [
    "AutoModel",
    "AutoModelForCausalLM",
    "AutoModelForMaskedLM",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
    "AutoTokenizer",
    "Gpt",
    "TaskModel",
    "TaskOutput",
    "TextStream",
    "Tokenizer",
]
