//! Ember in the browser: the three things the page in `web/www` does, as plain Rust
//! ([`search`], [`train`], [`chat`]: tested natively) and as JavaScript classes made with
//! wasm-bindgen ([`js`]: `Search`, `Train`, `Chat`), which a module Worker owns.
//!
//! Build with `bash web/build.sh`; everything comes from bytes the page fetched (no files,
//! no memory maps on wasm32), runs on one thread and returns errors as JavaScript `Error`s.

pub mod chat;
pub mod js;
pub mod search;
pub mod train;
