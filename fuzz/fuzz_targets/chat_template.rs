//! Any template source, with any message, renders or gives an error within its budget: never
//! a panic, an abort or unbounded memory. The input is the template, then a NUL byte, then
//! the content of a user message.
#![no_main]

use ember_models::ChatTemplate;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (source, message) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b"Hi"[..]),
    };
    let source = String::from_utf8_lossy(source);
    let message = String::from_utf8_lossy(message);
    if let Ok(t) = ChatTemplate::new(&source) {
        let messages = [("system", "Be brief."), ("user", message.as_ref())];
        let _ = t.render(&messages, true);
        let _ = t.render(&messages[1..], false);
    }
});
