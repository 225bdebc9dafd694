"""The model zoo from Python, on the real assets of ``scripts/fetch_assets.sh``: SmolLM2's
Q4_1 GGUF loads quantized with its tokenizer and chat template, generates the same tokens
as the Rust API's greedy decoding would (its own logits' argmax), streams text pieces that
join to the decoded tokens, and refuses bad generation options with exceptions."""

import os

import pytest

import ember

ASSETS = os.environ.get("EMBER_ASSETS", os.path.expanduser("~/.cache/ember/assets"))
GGUF = os.path.join(ASSETS, "smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")


@pytest.fixture(scope="module")
def smollm2():
    if not os.path.exists(GGUF):
        if os.environ.get("EMBER_REQUIRE_ASSETS") == "1":
            pytest.fail(f"{GGUF} is missing (EMBER_REQUIRE_ASSETS=1): run scripts/fetch_assets.sh")
        pytest.skip(f"{GGUF} is missing: run scripts/fetch_assets.sh")
    return ember.models.AutoModelForCausalLM.from_pretrained(GGUF)


def test_tokenizer_and_chat_template(smollm2):
    tok = smollm2.tokenizer
    assert tok.has_chat_template
    ids = tok.encode("Hello, world!", add_special_tokens=False)
    assert tok.decode(ids) == "Hello, world!"
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is 2+2?"}])
    assert prompt.endswith("<|im_start|>assistant\n") and "What is 2+2?" in prompt
    assert tok.apply_chat_template([{"role": "user", "content": "x"}], tokenize=True)[0] >= 0
    with pytest.raises(ValueError):
        tok.apply_chat_template([{"content": "no role"}])


def test_greedy_generation_is_the_argmax_of_the_models_own_logits(smollm2):
    tok = smollm2.tokenizer
    prompt = tok.encode("The capital of France is", add_special_tokens=False)
    new = smollm2.generate(prompt, max_new_tokens=5)
    assert len(new) == 5
    ids = list(prompt)
    for t in new:  # a full forward per step, no KV cache: the same choices
        logits = smollm2(ember.tensor([ids]))
        assert logits[0, -1].argmax().item() == t
        ids.append(t)
    assert smollm2.model_type == "llama"


def test_stream_yields_the_decoded_tokens(smollm2):
    tok = smollm2.tokenizer
    prompt = tok.apply_chat_template([{"role": "user", "content": "Name a colour."}])
    pieces = list(smollm2.stream(prompt, max_new_tokens=12))
    ids = tok.encode(prompt, add_special_tokens=True)
    want = tok.decode(smollm2.generate(ids, max_new_tokens=12))
    assert "".join(pieces) == want
    it = smollm2.stream(prompt, max_new_tokens=50)
    next(it)
    del it  # dropping the iterator stops the generating thread


def test_transformers_generation_options(smollm2):
    tok = smollm2.tokenizer
    prompt = tok.encode("The capital of France is Paris. The capital of Germany is Berlin. "
                        "The capital of", add_special_tokens=False)
    plain = smollm2.generate(prompt, max_new_tokens=16)
    # a -inf sequence bias bans the greedy first token
    banned = smollm2.generate(prompt, max_new_tokens=4, sequence_bias={(plain[0],): float("-inf")})
    assert banned[0] != plain[0]
    # no generated token completes a bigram seen before it (in the prompt or the output)
    new = smollm2.generate(prompt, max_new_tokens=16, no_repeat_ngram_size=2)
    seq = prompt + new
    for i in range(len(prompt), len(seq)):
        earlier = set(zip(seq[:i - 1], seq[1:i]))
        assert (seq[i - 1], seq[i]) not in earlier, (i, seq)
    # a stop string ends generation inside the token that completes it
    stopped = smollm2.generate(prompt, max_new_tokens=16, stop_strings=["."])
    assert "." in tok.decode(stopped) and "." not in tok.decode(stopped[:-1])
    # the stop tokens wait for min_new_tokens
    eos = tok.encode("<|im_end|>", add_special_tokens=False)
    chat = tok.apply_chat_template([{"role": "user", "content": "Is the sky blue? Answer yes or no."}], tokenize=True)
    short = smollm2.generate(chat, max_new_tokens=24, stop_tokens=eos)
    longer = smollm2.generate(chat, max_new_tokens=24, stop_tokens=eos,
                              min_new_tokens=len(short) + 3)
    assert short[-1] == eos[0] and len(longer) >= len(short) + 3
    assert eos[0] not in longer[:len(short) + 3]


@pytest.mark.parametrize("bad", [
    dict(temperature=float("nan")), dict(temperature=-1.0), dict(top_p=0.0), dict(top_p=1.5),
    dict(repetition_penalty=0.0), dict(repetition_penalty=float("inf")),
    dict(stop_strings=[""]), dict(sequence_bias={(): 1.0}), dict(sequence_bias={(-1,): 1.0}),
    dict(sequence_bias={(10**9,): 1.0}), dict(sequence_bias={(5,): float("nan")}),
])
def test_bad_generation_options_are_value_errors(smollm2, bad):
    with pytest.raises(ValueError):
        smollm2.generate([1, 2, 3], max_new_tokens=2, **bad)


def test_hostile_model_files_are_exceptions(tmp_path):
    with pytest.raises(FileNotFoundError):
        ember.models.AutoModelForCausalLM.from_pretrained(str(tmp_path / "missing"))
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": -4}')
    with pytest.raises(Exception):  # an Exception, never a PanicException (BaseException)
        ember.models.AutoModelForCausalLM.from_pretrained(str(tmp_path))
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 7)
    with pytest.raises(ValueError):
        ember.models.AutoModelForCausalLM.from_pretrained(str(bad))


def test_an_empty_or_too_long_prompt_is_a_value_error(smollm2):
    with pytest.raises(ValueError):
        smollm2.generate([], max_new_tokens=1)
    with pytest.raises(ValueError):
        smollm2.generate([1] * 100_000, max_new_tokens=1)


def _interrupt_soon(seconds=0.3):
    import signal
    import threading

    timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_ctrl_c_interrupts_generate_and_stream(smollm2):
    import time

    prompt = smollm2.tokenizer.encode("Once upon a time", add_special_tokens=False)
    start = time.perf_counter()
    _interrupt_soon()
    with pytest.raises(KeyboardInterrupt):
        smollm2.generate(prompt, max_new_tokens=4000, stop_tokens=[])
    assert time.perf_counter() - start < 20
    start = time.perf_counter()
    _interrupt_soon()
    with pytest.raises(KeyboardInterrupt):
        for _ in smollm2.stream(prompt, max_new_tokens=4000, stop_tokens=[]):
            pass
    assert time.perf_counter() - start < 20


MINILM = os.path.join(ASSETS, "minilm")


def test_minilm_embeddings_rank_paraphrases_first():
    if not os.path.exists(MINILM):
        if os.environ.get("EMBER_REQUIRE_ASSETS") == "1":
            pytest.fail(f"{MINILM} is missing (EMBER_REQUIRE_ASSETS=1)")
        pytest.skip(f"{MINILM} is missing: run scripts/fetch_assets.sh")
    model = ember.models.AutoModel.from_pretrained(MINILM)
    texts = ["A man is eating food.", "A man is eating a piece of bread.", "A man is riding a horse."]
    ids, mask = model.tokenizer.encode_batch(texts)
    assert ids.shape == mask.shape and ids.dtype == ember.int64
    emb = model.embed(ids, mask)
    assert emb.shape == (3, 384)
    norms = (emb * emb).sum(dim=1).sqrt().tolist()
    assert all(abs(n - 1) < 1e-5 for n in norms)
    sims = (emb @ emb.T).tolist()
    assert sims[0][1] > sims[0][2]
    # Padding does not change a sentence's embedding (mean over real tokens only).
    alone = model.embed(*model.tokenizer.encode_batch(texts[:1]))
    assert max(abs(a - b) for a, b in zip(alone.tolist()[0], emb.tolist()[0])) < 1e-5
