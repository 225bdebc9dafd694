//! Any bytes as a `tokenizer.json` give a tokenizer or an error, and the tokenizer encodes
//! and decodes without a panic.
#![no_main]

use ember_models::Tokenizer;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Ember turns panics of the tokenizers crate into errors (`catch_unwind`); libFuzzer's
    // hook would abort on those too, so only a panic that escapes Ember fails the target.
    static QUIET: std::sync::Once = std::sync::Once::new();
    QUIET.call_once(|| std::panic::set_hook(Box::new(|_| {})));
    let path = std::env::temp_dir().join(format!("ember-fuzz-tokenizer-{}.json", std::process::id()));
    std::fs::write(&path, data).unwrap();
    if let Ok(t) = Tokenizer::from_file(&path) {
        for text in ["Hello world", "  a b\n\tc 1234 é 日本", ""] {
            if let Ok(ids) = t.encode(text, true) {
                let _ = t.decode(&ids, false);
            }
        }
    }
});
