//! Any bytes as a GGUF file give its tokenizer and chat template, or errors: never a panic.
#![no_main]

use ember_models::{ChatTemplate, Tokenizer};
use ember_weights::GgufFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Ember turns panics of the tokenizers crate into errors (`catch_unwind`); libFuzzer's
    // hook would abort on those too, so only a panic that escapes Ember fails the target.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let path = std::env::temp_dir().join(format!("ember-fuzz-gguf-tok-{}.gguf", std::process::id()));
    std::fs::write(&path, data).unwrap();
    let Ok(g) = GgufFile::open(&path) else { return };
    if let Ok(t) = Tokenizer::from_gguf(&g)
        && let Ok(ids) = t.encode("Hello world, 123", true)
    {
        let _ = t.decode(&ids, false);
    }
    if let Ok(Some(t)) = ChatTemplate::from_gguf(&g) {
        let _ = t.render(&[("user", "Hi")], true);
    }
});
