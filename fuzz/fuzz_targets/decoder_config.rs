//! Any bytes as a model's `config.json` give a checked configuration or an error, for every
//! architecture: the decoder family (`DecoderConfig`, by `model_type`), GPT-2 and BERT. Never
//! a panic (nothing is allocated from it here; the zoo's tests build from valid ones).
#![no_main]

use ember_models::{BertConfig, DecoderConfig, Gpt2Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(cfg) = DecoderConfig::from_value(std::path::Path::new("fuzz"), &json) {
        let _ = cfg.validate();
    }
    if let Ok(cfg) = serde_json::from_value::<Gpt2Config>(json.clone()) {
        let _ = cfg.validate();
    }
    if let Ok(cfg) = serde_json::from_value::<BertConfig>(json) {
        let _ = cfg.validate();
    }
});
