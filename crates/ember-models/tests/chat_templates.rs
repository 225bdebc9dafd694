//! Chat templates rendered by Ember (minijinja) equal transformers' `apply_chat_template` on
//! the same template strings (`scripts/make_chat_fixtures.py`): Gemma 3, Qwen2.5, Qwen3 and
//! Llama 3 as published and SmolLM2's as stored in its GGUF, with system prompts, multi-turn
//! conversations, reasoning, tools, `enable_thinking` and `add_generation_prompt`; a template
//! that raises is an error here too.

use ember_models::{ChatTemplate, chat_prompt, chatml};
use ember_testing::{asset, read_fixture};
use ember_weights::GgufFile;
use serde_json::Value;

fn fixtures() -> Value {
    serde_json::from_slice(&read_fixture("chat_templates.json")).unwrap()
}

#[test]
fn templates_render_as_transformers_renders_them() {
    let all = fixtures();
    let mut n = 0;
    for (name, t) in all.as_object().unwrap() {
        let template = ChatTemplate::new(t["source"].as_str().unwrap())
            .unwrap()
            .with_special_tokens(t["bos_token"].as_str(), t["eos_token"].as_str());
        for case in t["cases"].as_array().unwrap() {
            let what = format!(
                "{name}: {} (add_generation_prompt {}, extra {})",
                case["conversation"], case["add_generation_prompt"], case["extra"]
            );
            let got = template.render_json(
                &case["messages"],
                case["add_generation_prompt"].as_bool().unwrap(),
                &case["extra"],
            );
            match (&case["text"], got) {
                (Value::String(want), Ok(got)) => assert_eq!(&got, want, "{what}"),
                (Value::Null, Err(e)) => {
                    let want = case["error"].as_str().unwrap();
                    assert!(e.to_string().contains(want), "{what}: {e} vs {want}");
                }
                (want, got) => panic!("{what}: expected {want:?}, got {got:?}"),
            }
            n += 1;
        }
    }
    assert!(n >= 50, "{n} cases");
}

#[test]
fn the_smollm2_gguf_carries_its_template_and_chatml_is_the_fallback() {
    let messages = [("system", "Be brief."), ("user", "Hi")];
    assert_eq!(
        chat_prompt(None, &messages, true).unwrap(),
        chatml(&messages, true)
    );
    let Some(path) = asset("smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") else {
        return;
    };
    let g = GgufFile::open(&path).unwrap();
    let t = ChatTemplate::from_gguf(&g)
        .unwrap()
        .expect("SmolLM2 has a template");
    // SmolLM2's template is ChatML with a default system prompt.
    assert_eq!(t.render(&messages, true).unwrap(), chatml(&messages, true));
    let gemma = asset("gemma3/gemma-3-270m-q4_k_m.gguf").unwrap();
    let base = GgufFile::open(&gemma).unwrap();
    assert!(
        ChatTemplate::from_gguf(&base).unwrap().is_none(),
        "the base model has none"
    );
}

#[test]
fn broken_templates_are_errors() {
    for bad in [
        "{% for m in messages %}",
        "{{ messages[0].content.nosuchmethod() }}",
    ] {
        let r = ChatTemplate::new(bad).and_then(|t| t.render(&[("user", "x")], false));
        assert!(r.is_err(), "{bad:?} rendered");
    }
    let dir = std::env::temp_dir().join(format!("ember-chat-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = dir.join("tokenizer_config.json");
    std::fs::write(
        &cfg,
        r#"{"chat_template": [{"name": "default", "template": "{{ bos_token }}{{ messages[0].content }}"}],
            "bos_token": {"content": "<s>"}}"#,
    )
    .unwrap();
    let t = ChatTemplate::from_tokenizer_config(&cfg).unwrap().unwrap();
    assert_eq!(t.render(&[("user", "x")], false).unwrap(), "<s>x");
    std::fs::write(&cfg, r#"{"bos_token": "<s>"}"#).unwrap();
    assert!(ChatTemplate::from_tokenizer_config(&cfg).unwrap().is_none());
}

#[test]
fn named_formats_render_as_the_published_templates() {
    let all = fixtures();
    let mut n = 0;
    for (name, published) in [("gemma", "gemma3"), ("llama3", "llama3")] {
        let template = ChatTemplate::named(name).unwrap();
        for case in all[published]["cases"].as_array().unwrap() {
            // Text messages only: the named formats have no tools or images.
            let text_only = case["extra"].as_object().is_none_or(|e| e.is_empty())
                && case["messages"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .all(|m| m["content"].is_string() && m.get("tool_calls").is_none());
            if !text_only {
                continue;
            }
            let got = template.render_json(
                &case["messages"],
                case["add_generation_prompt"].as_bool().unwrap(),
                &case["extra"],
            );
            let what = format!("{name}: {}", case["conversation"]);
            match (&case["text"], got) {
                (Value::String(want), Ok(got)) => assert_eq!(&got, want, "{what}"),
                (Value::Null, Err(e)) => {
                    let want = case["error"].as_str().unwrap();
                    assert!(e.to_string().contains(want), "{what}: {e} vs {want}");
                }
                (want, got) => panic!("{what}: expected {want:?}, got {got:?}"),
            }
            n += 1;
        }
    }
    assert!(n >= 8, "{n} cases");
    let chatml_named = ChatTemplate::named("chatml").unwrap();
    let messages = [
        ("system", "Be brief."),
        ("user", "Hi"),
        ("assistant", "Hello"),
    ];
    for gen_prompt in [true, false] {
        assert_eq!(
            chatml_named.render(&messages, gen_prompt).unwrap(),
            chatml(&messages, gen_prompt)
        );
    }
    let err = ChatTemplate::named("vicuna").unwrap_err().to_string();
    assert!(err.contains("chatml, gemma, llama3"), "{err}");
    let err = ChatTemplate::from_name_or_file("no/such/file.jinja")
        .unwrap_err()
        .to_string();
    assert!(err.contains("neither a chat format"), "{err}");
}

#[test]
fn a_template_file_is_read_as_jinja_or_tokenizer_config() {
    let dir = std::env::temp_dir().join(format!("ember-template-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jinja = dir.join("chat_template.jinja");
    std::fs::write(
        &jinja,
        "{% for m in messages %}[{{ m.content }}]{% endfor %}",
    )
    .unwrap();
    let t = ChatTemplate::from_file(&jinja).unwrap();
    assert_eq!(t.render(&[("user", "x")], false).unwrap(), "[x]");
    let config = dir.join("tokenizer_config.json");
    std::fs::write(&config, r#"{"eos_token": "</s>"}"#).unwrap();
    let err = ChatTemplate::from_file(&config).unwrap_err().to_string();
    assert!(err.contains("has no chat_template"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
