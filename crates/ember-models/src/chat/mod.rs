//! Chat templates: a model's own Jinja template (`chat_template` in `tokenizer_config.json`,
//! `tokenizer.chat_template` in GGUF) rendered as transformers' `apply_chat_template` renders
//! it (trimmed and left-stripped blocks, Python's string methods, `tojson` with Python's
//! separators, `raise_exception`, `strftime_now`), with ChatML as the fallback. A template
//! comes from a stranger's file: every render runs on a budget (`sandbox`, [`RenderLimits`]).

mod compile;
mod functions;
mod named;
mod sandbox;
mod session;

pub use sandbox::RenderLimits;
pub use session::ChatSession;

use std::path::Path;

use ember_core::{Error, Result};
use ember_weights::{GgufFile, GgufValue};
use minijinja::{Environment, Value};
use serde_json::Value as Json;

use crate::tokenizer::chatml;

const OP: &str = "ChatTemplate";
/// Longest template source accepted (the largest published ones are ~20 KB).
const MAX_SOURCE: usize = 1 << 20;
/// The largest `tokenizer_config.json` accepted (real ones are under 1 MB, added tokens
/// included).
const MAX_TOKENIZER_CONFIG: u64 = 64 << 20;

/// A compiled chat template with the tokenizer's special tokens it may print.
///
/// ```
/// use ember_models::ChatTemplate;
/// let t = ChatTemplate::new(
///     "{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}\
///      {% if add_generation_prompt %}<assistant>{% endif %}",
/// )?;
/// assert_eq!(t.render(&[("user", "Hi")], true)?, "<user>Hi<assistant>");
/// # Ok::<(), ember_core::Error>(())
/// ```
pub struct ChatTemplate {
    env: Environment<'static>,
    /// `bos_token`, `eos_token`, ... as the template sees them
    special: serde_json::Map<String, Json>,
    limits: RenderLimits,
    /// Where the template came from, for messages.
    origin: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("origin", &self.origin)
            .field("special", &self.special)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

fn template_error(origin: &str, e: minijinja::Error) -> Error {
    let mut msg = format!("{origin}: {e}");
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    Error::data(OP, msg)
}

impl ChatTemplate {
    /// Compiles `source` (a syntax error is an error naming the line), to render within
    /// [`RenderLimits::default`].
    pub fn new(source: &str) -> Result<ChatTemplate> {
        ChatTemplate::compile(source, "chat template")
    }

    /// Compiles `source`, naming `origin` (a file and key) in its errors.
    fn compile(source: &str, origin: &str) -> Result<ChatTemplate> {
        if source.len() > MAX_SOURCE {
            return Err(Error::data(
                OP,
                format!(
                    "{origin}: template of {} bytes exceeds {MAX_SOURCE}",
                    source.len()
                ),
            ));
        }
        let limits = RenderLimits::default();
        compile::check(source, limits.value_bytes)
            .map_err(|msg| Error::data(OP, format!("{origin}: {msg}")))?;
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        functions::install(&mut env);
        sandbox::install(&mut env, &limits);
        env.add_template_owned("chat", source.to_string())
            .map_err(|e| template_error(origin, e))?;
        // What the sandbox refuses (other templates, reserved names) is refused now.
        let t = env
            .get_template("chat")
            .map_err(|e| template_error(origin, e))?;
        let compiled = minijinja::machinery::get_compiled_template(&t);
        sandbox::rewrite(&compiled.instructions)
            .map_err(|msg| Error::data(OP, format!("{origin}: {msg}")))?;
        Ok(ChatTemplate {
            env,
            special: serde_json::Map::new(),
            limits,
            origin: origin.to_string(),
        })
    }

    /// The same template rendering within `limits` (a larger budget for very long prompts,
    /// or a smaller one).
    pub fn with_limits(mut self, limits: RenderLimits) -> ChatTemplate {
        self.env.set_fuel(Some(limits.fuel));
        self.limits = limits;
        self
    }

    /// The limits each render runs within.
    pub fn limits(&self) -> RenderLimits {
        self.limits
    }

    /// With the special tokens the template may print (`bos_token`, `eos_token`).
    pub fn with_special_tokens(mut self, bos: Option<&str>, eos: Option<&str>) -> ChatTemplate {
        for (key, tok) in [("bos_token", bos), ("eos_token", eos)] {
            if let Some(t) = tok {
                self.special.insert(key.into(), Json::String(t.into()));
            }
        }
        self
    }

    /// The template of a `tokenizer_config.json` (`chat_template` as a string, or the one
    /// named `default` in a list), with its `bos_token`/`eos_token`; `None` when it has none.
    pub fn from_tokenizer_config(path: impl AsRef<Path>) -> Result<Option<ChatTemplate>> {
        let path = path.as_ref();
        let text = ember_weights::read_text(path, MAX_TOKENIZER_CONFIG, "tokenizer_config.json")?;
        let bad = |msg: String| Error::Format {
            format: "tokenizer_config.json",
            path: path.display().to_string(),
            msg,
        };
        let cfg: Json = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let source = match cfg.get("chat_template") {
            None | Some(Json::Null) => return Ok(None),
            Some(Json::String(s)) => s.clone(),
            Some(Json::Array(list)) => list
                .iter()
                .find(|t| t.get("name").and_then(Json::as_str) == Some("default"))
                .and_then(|t| t.get("template").and_then(Json::as_str))
                .ok_or_else(|| bad("chat_template list has no \"default\" template".into()))?
                .to_string(),
            Some(other) => return Err(bad(format!("chat_template is {other}"))),
        };
        let token = |key: &str| match cfg.get(key) {
            Some(Json::String(s)) => Some(s.clone()),
            Some(Json::Object(o)) => o.get("content").and_then(Json::as_str).map(String::from),
            _ => None,
        };
        let (bos, eos) = (token("bos_token"), token("eos_token"));
        let origin = format!("{} (chat_template)", path.display());
        Ok(Some(
            ChatTemplate::compile(&source, &origin)?
                .with_special_tokens(bos.as_deref(), eos.as_deref()),
        ))
    }

    /// The template of a GGUF file (`tokenizer.chat_template`), with its BOS/EOS tokens;
    /// `None` when it has none.
    pub fn from_gguf(g: &GgufFile) -> Result<Option<ChatTemplate>> {
        let Some(source) = g
            .metadata
            .get("tokenizer.chat_template")
            .and_then(GgufValue::as_str)
        else {
            return Ok(None);
        };
        let token = |key: &str| -> Option<String> {
            let id = g.metadata.get(&format!("tokenizer.ggml.{key}"))?.as_u64()?;
            match g.metadata.get("tokenizer.ggml.tokens")? {
                GgufValue::Array(t) => t.get(usize::try_from(id).ok()?)?.as_str().map(String::from),
                _ => None,
            }
        };
        let (bos, eos) = (token("bos_token_id"), token("eos_token_id"));
        let origin = format!("{} (tokenizer.chat_template)", g.path().display());
        Ok(Some(
            ChatTemplate::compile(source, &origin)?
                .with_special_tokens(bos.as_deref(), eos.as_deref()),
        ))
    }

    /// Renders `(role, content)` messages; `add_generation_prompt` opens the assistant's turn.
    pub fn render(&self, messages: &[(&str, &str)], add_generation_prompt: bool) -> Result<String> {
        let messages: Vec<Json> = messages
            .iter()
            .map(|(role, content)| serde_json::json!({"role": role, "content": content}))
            .collect();
        self.render_json(&Json::Array(messages), add_generation_prompt, &Json::Null)
    }

    /// Renders messages given as JSON (as transformers takes them: `role`, `content`,
    /// `tool_calls`, ...) with extra template arguments (`tools`, `enable_thinking`, ...;
    /// an object or null).
    pub fn render_json(
        &self,
        messages: &Json,
        add_generation_prompt: bool,
        extra: &Json,
    ) -> Result<String> {
        let mut ctx = self.special.clone();
        if let Some(e) = extra.as_object() {
            ctx.extend(e.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        ctx.insert("messages".into(), messages.clone());
        ctx.insert("add_generation_prompt".into(), add_generation_prompt.into());
        sandbox::render(&self.env, "chat", Value::from_serialize(&ctx), &self.limits)
            .map_err(|e| template_error(&self.origin, e))
    }
}

/// A prompt for `messages`: the model's template when it has one, else ChatML.
pub fn chat_prompt(
    template: Option<&ChatTemplate>,
    messages: &[(&str, &str)],
    add_generation_prompt: bool,
) -> Result<String> {
    match template {
        Some(t) => t.render(messages, add_generation_prompt),
        None => Ok(chatml(messages, add_generation_prompt)),
    }
}
