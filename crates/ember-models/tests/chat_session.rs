//! Multi-turn chat that keeps its KV cache: with SmolLM2-135M-Instruct (its GGUF and its own
//! template), turn n prefills only what is new, and every reply equals a fresh generation over
//! the whole rendered conversation. A bounded context drops the oldest exchanges and still
//! agrees with a fresh generation; a message that cannot fit is an error that leaves the
//! conversation as it was.

use ember_core::{DType, Device};
use ember_models::{
    AutoModelForCausalLM, ChatSession, ChatTemplate, Flow, GenerateOpts, Tokenizer, generate_text,
};
use ember_testing::asset;
use ember_weights::GgufFile;

const GGUF: &str = "smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

struct Smol {
    model: AutoModelForCausalLM,
    tok: Tokenizer,
    template: ChatTemplate,
    opts: GenerateOpts,
}

fn smol() -> Option<Smol> {
    let g = GgufFile::open(asset(GGUF)?).unwrap();
    let tok = Tokenizer::from_gguf(&g).unwrap();
    let opts = GenerateOpts {
        max_new_tokens: 24,
        stop_tokens: vec![tok.token_id("<|im_end|>").unwrap()],
        ..Default::default()
    };
    Some(Smol {
        model: AutoModelForCausalLM::from_gguf_dequantized(&g, Device::Cpu, DType::F32).unwrap(),
        template: ChatTemplate::from_gguf(&g).unwrap().unwrap(),
        tok,
        opts,
    })
}

/// What a fresh generation over the conversation's messages (its last reply left out) gives.
fn fresh(s: &Smol, messages: &[(String, String)]) -> (usize, String) {
    let pairs: Vec<(&str, &str)> = messages[..messages.len() - 1]
        .iter()
        .map(|(r, c)| (r.as_str(), c.as_str()))
        .collect();
    let prompt = s
        .tok
        .encode(&s.template.render(&pairs, true).unwrap(), false)
        .unwrap();
    let out = generate_text(&s.model, &s.tok, &prompt, Device::Cpu, &s.opts, |_| {
        Ok(Flow::Continue)
    })
    .unwrap();
    (prompt.len(), s.tok.decode(&out, true).unwrap())
}

#[test]
fn later_turns_prefill_only_the_new_message() {
    let Some(s) = smol() else { return };
    let mut chat = ChatSession::new(&s.model, &s.tok, Some(&s.template), Device::Cpu)
        .with_system("You are a helpful assistant. Answer briefly.");
    let turns = [
        "What is the capital of France?",
        "And what is the capital of Italy?",
        "Which of the two cities is larger?",
    ];
    for (n, message) in turns.iter().enumerate() {
        let reply = chat.send(message, &s.opts).unwrap();
        let (prompt_len, want) = fresh(&s, chat.messages());
        let prefilled = chat.prefilled()[n];
        // The conversation before this message, closed as the template closes a reply.
        let earlier = &chat.messages()[..chat.messages().len() - 2];
        let pairs: Vec<(&str, &str)> = earlier
            .iter()
            .map(|(r, c)| (r.as_str(), c.as_str()))
            .collect();
        let before = s
            .tok
            .encode(&s.template.render(&pairs, false).unwrap(), false)
            .unwrap()
            .len();
        eprintln!(
            "turn {}: {prefilled} of {prompt_len} prompt tokens prefilled ({} new since the \
             last reply): {reply:?}",
            n + 1,
            prompt_len - before
        );
        assert_eq!(reply, want, "turn {} against a fresh generation", n + 1);
        if n == 0 {
            assert_eq!(prefilled, prompt_len);
        } else {
            // What is new, and the last reply's closing marker and newline (the marker was
            // generated, so never fed to the model).
            assert!(
                prefilled <= prompt_len - before + 2,
                "turn {} prefilled {prefilled} tokens, {} are new",
                n + 1,
                prompt_len - before
            );
        }
    }
    assert!(
        chat.messages()[2].1.contains("Paris"),
        "{:?}",
        chat.messages()
    );
}

#[test]
fn a_full_context_drops_the_oldest_exchanges() {
    let Some(s) = smol() else { return };
    let mut chat = ChatSession::new(&s.model, &s.tok, Some(&s.template), Device::Cpu)
        .with_system("Answer briefly.")
        .with_context(90);
    for message in [
        "Name a fruit that is red.",
        "Name a fruit that is yellow.",
        "Name a vegetable that is green.",
    ] {
        chat.send(message, &s.opts).unwrap();
        let (prompt_len, want) = fresh(&s, chat.messages());
        assert!(prompt_len + s.opts.max_new_tokens <= 90);
        assert_eq!(chat.messages().last().unwrap().1, want);
    }
    let roles: Vec<&str> = chat.messages().iter().map(|m| m.0.as_str()).collect();
    eprintln!("kept after three turns in 90 positions: {roles:?}");
    assert_eq!(roles[0], "system", "the system message stays");
    assert!(roles.len() < 7, "an exchange was dropped: {roles:?}");
    assert_eq!(
        chat.messages()[roles.len() - 2].1,
        "Name a vegetable that is green."
    );

    let before = chat.messages().to_vec();
    let long = "word ".repeat(200);
    let err = chat.send(&long, &s.opts).unwrap_err().to_string();
    assert!(err.contains("context of 90"), "{err}");
    assert_eq!(
        chat.messages(),
        &before[..],
        "a refused message changes nothing"
    );
    // The conversation goes on, agreeing with a fresh generation.
    chat.send("Name a berry.", &s.opts).unwrap();
    let (_, want) = fresh(&s, chat.messages());
    assert_eq!(chat.messages().last().unwrap().1, want);
}
