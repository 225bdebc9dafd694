"""``ember.models``: causal language models from Hugging Face directories and GGUF files
(quantized tensors kept in their blocks), their tokenizers and chat templates, and
generation — whole (``generate``) or streamed as text pieces (``stream``).

    >>> model = ember.models.AutoModelForCausalLM.from_pretrained("SmolLM2-135M-Instruct.Q4_1.gguf")
    >>> tok = model.tokenizer
    >>> prompt = tok.apply_chat_template([{"role": "user", "content": "Hi!"}])
    >>> for piece in model.stream(prompt, max_new_tokens=32):
    ...     print(piece, end="", flush=True)
"""

from ._ember import AutoModel, AutoModelForCausalLM, Gpt, TextStream, Tokenizer

AutoTokenizer = Tokenizer

__all__ = ["AutoModel", "AutoModelForCausalLM", "AutoTokenizer", "Gpt", "TextStream", "Tokenizer"]
