//! Any bytes as a decoder's `config.json` give a checked configuration or an error: never a
//! panic (nothing is allocated from it here; the model zoo's tests build from valid ones).
#![no_main]

use ember_models::DecoderConfig;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(json) = serde_json::from_slice::<serde_json::Value>(data) else { return };
    if let Ok(cfg) = DecoderConfig::from_value(std::path::Path::new("fuzz"), &json) {
        let _ = cfg.validate();
    }
});
