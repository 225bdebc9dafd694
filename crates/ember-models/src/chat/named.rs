//! Chat formats by name, for models whose files carry no template (base models, GGUF files
//! written without one), and templates read from a file.

use std::path::Path;

use ember_core::{Error, Result};

use super::{ChatTemplate, MAX_SOURCE, OP};

/// ChatML (SmolLM2, Qwen): `<|im_start|>role\ncontent<|im_end|>\n` per message.
const CHATML: &str = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n\
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

/// Gemma's turns: the system message opens the first user turn, contents trimmed, `model` for
/// the assistant, roles alternating from the user.
const GEMMA: &str = "{{ bos_token }}\
{% if messages and messages[0].role == 'system' %}\
{% set prefix = messages[0].content ~ '\n\n' %}{% set turns = messages[1:] %}\
{% else %}{% set prefix = '' %}{% set turns = messages %}{% endif %}\
{% for m in turns %}\
{% if (m.role == 'user') != (loop.index0 % 2 == 0) %}\
{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}\
{% endif %}\
<start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n\
{{ prefix if loop.first else '' }}{{ m.content | trim }}<end_of_turn>\n\
{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";

/// Llama 3's headers: BOS, then `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>`.
const LLAMA3: &str = "{{ bos_token }}{% for m in messages %}\
<|start_header_id|>{{ m.role }}<|end_header_id|>\n\n{{ m.content | trim }}<|eot_id|>\
{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n\
{% endif %}";

/// The names [`ChatTemplate::named`] knows, with the special tokens each prints.
const NAMED: [(&str, &str, Option<&str>, Option<&str>); 3] = [
    ("chatml", CHATML, None, Some("<|im_end|>")),
    ("gemma", GEMMA, Some("<bos>"), Some("<eos>")),
    (
        "llama3",
        LLAMA3,
        Some("<|begin_of_text|>"),
        Some("<|eot_id|>"),
    ),
];

impl ChatTemplate {
    /// A chat format by name: `chatml` (SmolLM2, Qwen), `gemma` (Gemma 1-3: `<start_of_turn>`),
    /// `llama3` (Llama 3: header ids). These render as the published templates do for text
    /// messages (no tools or images). An unknown name is an error listing the known ones.
    ///
    /// ```
    /// use ember_models::ChatTemplate;
    /// let t = ChatTemplate::named("gemma")?;
    /// let text = t.render(&[("user", "Hi")], true)?;
    /// assert_eq!(text, "<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n");
    /// # Ok::<(), ember_core::Error>(())
    /// ```
    pub fn named(name: &str) -> Result<ChatTemplate> {
        let Some((_, source, bos, eos)) = NAMED.iter().find(|n| n.0 == name) else {
            return Err(Error::data(
                OP,
                format!(
                    "no chat format named {name:?}: the known ones are {}",
                    ChatTemplate::names().join(", ")
                ),
            ));
        };
        Ok(
            ChatTemplate::compile(source, &format!("the {name} chat format"))?
                .with_special_tokens(*bos, *eos),
        )
    }

    /// The names [`ChatTemplate::named`] takes.
    pub fn names() -> Vec<&'static str> {
        NAMED.iter().map(|n| n.0).collect()
    }

    /// A template from a file: a `tokenizer_config.json` (its `chat_template`) or a Jinja
    /// source (`.jinja`, as transformers saves `chat_template.jinja`). A configuration without
    /// a template is an error saying so.
    pub fn from_file(path: impl AsRef<Path>) -> Result<ChatTemplate> {
        let path = path.as_ref();
        if path.extension().is_some_and(|e| e == "json") {
            return ChatTemplate::from_tokenizer_config(path)?.ok_or_else(|| {
                Error::data(
                    OP,
                    format!(
                        "{} has no chat_template: name a format ({}) or a .jinja file",
                        path.display(),
                        ChatTemplate::names().join(", ")
                    ),
                )
            });
        }
        let source = ember_weights::read_text(path, MAX_SOURCE as u64, "chat template")?;
        ChatTemplate::compile(&source, &path.display().to_string())
    }

    /// A template given as a name ([`ChatTemplate::named`]) or a path
    /// ([`ChatTemplate::from_file`]), as a command line takes it.
    pub fn from_name_or_file(spec: &str) -> Result<ChatTemplate> {
        if ChatTemplate::names().contains(&spec) {
            ChatTemplate::named(spec)
        } else if Path::new(spec).exists() {
            ChatTemplate::from_file(spec)
        } else {
            Err(Error::data(
                OP,
                format!(
                    "{spec:?} is neither a chat format ({}) nor a file",
                    ChatTemplate::names().join(", ")
                ),
            ))
        }
    }
}
