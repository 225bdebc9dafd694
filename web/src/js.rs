//! The JavaScript API (wasm-bindgen): classes `Search`, `Train` and `Chat`, and the functions
//! `split_speeches` and `last_panic`. Every Ember error becomes a thrown `Error` with its
//! message; a panic (a bug) is recorded for [`last_panic`] before the instance traps, so the
//! worker can report it and start a fresh instance.

use std::mem::ManuallyDrop;
use std::ptr::NonNull;
use std::sync::Mutex;

use ember::Device;
use wasm_bindgen::prelude::*;

use crate::chat::ChatModel;
use crate::search::{SearchIndex, split_speeches as split};
use crate::train::{TrainOptions, TrainSession};

/// The last panic's message, kept for the worker to read after the trap.
static LAST_PANIC: Mutex<Option<String>> = Mutex::new(None);

fn js_error(e: ember::Error) -> JsError {
    JsError::new(&e.to_string())
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<String, JsError> {
    serde_json::to_string(value).map_err(|e| JsError::new(&e.to_string()))
}

#[wasm_bindgen]
extern "C" {
    /// `console.error`.
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

/// Installs the panic hook (wasm-bindgen calls this when the module starts).
#[wasm_bindgen(start)]
pub fn start() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        console_error(&format!("ember: panicked: {message}"));
        if let Ok(mut last) = LAST_PANIC.lock() {
            *last = Some(message);
        }
    }));
}

/// Panics on purpose, to test that a page survives a trap (the worker reports it and starts a
/// fresh instance).
#[wasm_bindgen]
pub fn debug_panic() {
    panic!("debug_panic: a panic on purpose, to test recovery");
}

/// The message of the panic that stopped this instance, if one did.
#[wasm_bindgen]
pub fn last_panic() -> Option<String> {
    LAST_PANIC.lock().ok().and_then(|l| l.clone())
}

/// The speeches of a Gutenberg play with at least `min_words` words, as JSON
/// `[{"speaker", "text"}]`.
#[wasm_bindgen]
pub fn split_speeches(text: &str, min_words: usize) -> Result<String, JsError> {
    to_json(&split(text, min_words))
}

/// MiniLM search over passages (see [`SearchIndex`]), on the CPU or on WebGPU.
#[wasm_bindgen]
pub struct Search {
    index: SearchIndex,
    /// The name of the adapter behind the index's device.
    adapter: String,
}

/// `"cpu"` or `"webgpu"` (the browser's default adapter, opened without blocking).
async fn open_device(name: &str) -> Result<(Device, String), JsError> {
    let device = match name {
        "cpu" => Device::Cpu,
        "webgpu" => Device::Wgpu(0),
        other => {
            return Err(JsError::new(&format!(
                "unknown device {other:?}: expected \"cpu\" or \"webgpu\""
            )));
        }
    };
    let adapter = device.init_async().await.map_err(js_error)?;
    Ok((device, adapter))
}

#[wasm_bindgen]
impl Search {
    /// MiniLM on the CPU from its `config.json`, `model.safetensors` and `tokenizer.json`
    /// bytes.
    #[wasm_bindgen(constructor)]
    pub fn new(config: &[u8], weights: Vec<u8>, tokenizer: &[u8]) -> Result<Search, JsError> {
        let index = SearchIndex::new(config, weights, tokenizer, Device::Cpu).map_err(js_error)?;
        let adapter = Device::Cpu.adapter_name();
        Ok(Search { index, adapter })
    }

    /// MiniLM on `device` (`"cpu"` or `"webgpu"`), opening the device first. On WebGPU
    /// use the `_async` methods: a GPU is read back only asynchronously in a browser.
    pub async fn open(
        config: Vec<u8>,
        weights: Vec<u8>,
        tokenizer: Vec<u8>,
        device: String,
    ) -> Result<Search, JsError> {
        let (device, adapter) = open_device(&device).await?;
        let index = SearchIndex::new(&config, weights, &tokenizer, device).map_err(js_error)?;
        Ok(Search { index, adapter })
    }

    /// The name of the adapter the model runs on (the WebGPU adapter's, or the CPU's).
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Where the model runs (`cpu` or `wgpu:0`).
    pub fn device(&self) -> String {
        self.index.device().to_string()
    }

    /// Embeds `texts` and keeps them as passages.
    pub fn add(&mut self, texts: Vec<String>) -> Result<(), JsError> {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.index.add(&texts).map_err(js_error)
    }

    /// Keeps embeddings from [`Search::embed_async`] as passages.
    pub fn add_embeddings(&mut self, embeddings: Vec<f32>) -> Result<(), JsError> {
        self.index.add_embeddings(embeddings).map_err(js_error)
    }

    /// Passages kept.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether none is kept.
    #[wasm_bindgen(js_name = isEmpty)]
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Width of an embedding.
    pub fn dim(&self) -> usize {
        self.index.dim()
    }

    /// Embeddings of `texts`, `(N, dim)` row-major, unit rows.
    pub fn embed(&self, texts: Vec<String>) -> Result<Vec<f32>, JsError> {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.index.embed(&texts).map_err(js_error)
    }

    /// [`Search::embed`] on any device (a promise).
    pub async fn embed_async(&self, texts: Vec<String>) -> Result<Vec<f32>, JsError> {
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        self.index.embed_async(&texts).await.map_err(js_error)
    }

    /// The `k` best passages for `query` as JSON `[{"index", "score"}]`.
    pub fn rank(&self, query: &str, k: usize) -> Result<String, JsError> {
        to_json(&self.index.rank(query, k).map_err(js_error)?)
    }

    /// [`Search::rank`] on any device (a promise).
    pub async fn rank_async(&self, query: String, k: usize) -> Result<String, JsError> {
        to_json(&self.index.rank_async(&query, k).await.map_err(js_error)?)
    }
}

/// The character GPT trained step by step (see [`TrainSession`]).
#[wasm_bindgen]
pub struct Train {
    session: TrainSession,
}

#[wasm_bindgen]
impl Train {
    /// A fresh run on `text` with options as JSON (missing fields take the defaults).
    #[wasm_bindgen(constructor)]
    pub fn new(text: &str, options_json: &str) -> Result<Train, JsError> {
        let opts: TrainOptions = serde_json::from_str(if options_json.trim().is_empty() {
            "{}"
        } else {
            options_json
        })
        .map_err(|e| JsError::new(&format!("training options: {e}")))?;
        let session = TrainSession::new(text, opts).map_err(js_error)?;
        Ok(Train { session })
    }

    /// One optimizer step, as JSON `{"step", "loss", "lr", "grad_norm", "tokens_per_step"}`.
    pub fn step(&mut self) -> Result<String, JsError> {
        let r = self.session.step().map_err(js_error)?;
        to_json(&serde_json::json!({
            "step": r.step, "loss": r.loss, "lr": r.lr, "grad_norm": r.grad_norm,
            "tokens_per_step": self.session.tokens_per_step(),
            "skipped": r.outcome != ember::train::StepOutcome::Applied,
        }))
    }

    /// Whether every step has run.
    pub fn done(&self) -> bool {
        self.session.done()
    }

    /// Steps done.
    pub fn steps_done(&self) -> f64 {
        self.session.steps_done() as f64
    }

    /// Steps in the run.
    pub fn total_steps(&self) -> f64 {
        self.session.options().steps as f64
    }

    /// `n_chars` characters sampled after a newline.
    pub fn sample(&self, n_chars: usize, temperature: f64) -> Result<String, JsError> {
        self.session.sample(n_chars, temperature).map_err(js_error)
    }

    /// Parameters in the model.
    pub fn parameters(&self) -> usize {
        self.session.parameters()
    }

    /// Characters in the vocabulary.
    pub fn vocab_size(&self) -> usize {
        self.session.vocab_size()
    }

    /// The run's options as JSON.
    pub fn options(&self) -> Result<String, JsError> {
        to_json(self.session.options())
    }
}

/// A conversation with a GGUF chat model (see [`ChatModel`]).
#[wasm_bindgen]
pub struct Chat {
    /// Borrows `*model`: dropped by hand before the model is freed.
    session: ManuallyDrop<ember::models::ChatSession<'static>>,
    /// Owned (from `Box::leak`); freed in `Drop` after `session`.
    model: NonNull<ChatModel>,
    /// The system message each conversation starts with.
    system: String,
}

#[wasm_bindgen]
impl Chat {
    /// The model from a GGUF file's bytes, kept quantized; the conversation starts with
    /// `system` (omitted: [`crate::chat::DEFAULT_SYSTEM`]; empty: none).
    #[wasm_bindgen(constructor)]
    pub fn new(gguf: Vec<u8>, system: Option<String>) -> Result<Chat, JsError> {
        let model = ChatModel::from_gguf_bytes(gguf).map_err(js_error)?;
        let model = NonNull::from(Box::leak(Box::new(model)));
        // SAFETY: the pointer comes from a live Box that only `Drop` frees, after the session
        // (the one holder of this `'static` borrow) is dropped.
        let chat: &'static ChatModel = unsafe { model.as_ref() };
        let system = system.unwrap_or_else(|| crate::chat::DEFAULT_SYSTEM.to_string());
        let session = match chat.session(&system) {
            Ok(s) => s,
            Err(e) => {
                // SAFETY: nothing borrows the model yet; it is freed once, here.
                drop(unsafe { Box::from_raw(model.as_ptr()) });
                return Err(js_error(e));
            }
        };
        Ok(Chat {
            session: ManuallyDrop::new(session),
            model,
            system,
        })
    }

    /// The model, borrowed for as long as `self` is.
    fn model(&self) -> &ChatModel {
        // SAFETY: as in `new`: the model lives until `Drop`, which `&self` outlives.
        unsafe { self.model.as_ref() }
    }

    /// Sends `message`; `on_piece` is called with each new piece of the reply's text.
    /// Returns the reply.
    pub fn send(
        &mut self,
        message: &str,
        max_new_tokens: usize,
        on_piece: &js_sys::Function,
    ) -> Result<String, JsError> {
        // SAFETY: the model lives until `Drop`; this borrow ends with the call, while `self`
        // (and so the model) is alive. It is taken from the pointer, not through `self`, so
        // the session can be borrowed mutably beside it.
        let model: &ChatModel = unsafe { self.model.as_ref() };
        model
            .send(&mut self.session, message, max_new_tokens, |piece| {
                on_piece
                    .call1(&JsValue::NULL, &JsValue::from_str(piece))
                    .map(|_| ())
                    .map_err(|e| ember::Error::data("Chat::send", format!("on_piece threw: {e:?}")))
            })
            .map_err(js_error)
    }

    /// Forgets the conversation (and its cache); a new system message when given.
    pub fn reset(&mut self, system: Option<String>) -> Result<(), JsError> {
        let system = system.unwrap_or_else(|| self.system.clone());
        // SAFETY: the new session borrows the model as the old one did: until `Drop`, which
        // drops the session before freeing the model.
        let model: &'static ChatModel = unsafe { self.model.as_ref() };
        let fresh = model.session(&system).map_err(js_error)?;
        *self.session = fresh;
        self.system = system;
        Ok(())
    }

    /// The system message conversations start with.
    pub fn system(&self) -> String {
        self.system.clone()
    }

    /// Which model this is.
    pub fn describe(&self) -> String {
        self.model().describe().to_string()
    }
}

impl Drop for Chat {
    fn drop(&mut self) {
        // SAFETY: the session is dropped exactly once, here, and not used after.
        unsafe { ManuallyDrop::drop(&mut self.session) };
        // SAFETY: `model` came from `Box::leak` in `new`; its one borrower, the session, is gone.
        drop(unsafe { Box::from_raw(self.model.as_ptr()) });
    }
}
