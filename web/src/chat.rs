//! A chat with a GGUF model kept quantized, its own chat template, the KV cache kept from turn
//! to turn ([`ember::models::ChatSession`]) and the reply streamed piece by piece.

use ember::models::{
    AutoModelForCausalLM, CausalLm, ChatSession, ChatTemplate, Flow, GenerateOpts, TextStream,
    Tokenizer,
};
use ember::prelude::*;
use ember::weights::GgufFile;

/// The system message a conversation starts with unless told otherwise. SmolLM2-135M Q4_1
/// without one (its template then inserts its own) answers "What is the capital of France?"
/// with a list of French words in Ember and in llama.cpp alike: the first tokens are a
/// near-tie (0.08 logits apart). Asking for a short answer makes "The" lead by 1.8.
pub const DEFAULT_SYSTEM: &str = "You are a helpful assistant. Answer in one short sentence.";

/// End-of-turn markers of the common chat formats, stop tokens when the vocabulary has them.
const END_OF_TURN: [&str; 4] = ["<|im_end|>", "<end_of_turn>", "<|eot_id|>", "<|end|>"];

/// The model, its tokenizer and template, loaded once.
pub struct ChatModel {
    model: AutoModelForCausalLM,
    tok: Tokenizer,
    template: ChatTemplate,
    stop_tokens: Vec<i64>,
    about: String,
}

impl ChatModel {
    /// A model from a GGUF file's bytes (quantized weights stay quantized), with its own
    /// chat template (ChatML when the file has none).
    pub fn from_gguf_bytes(bytes: Vec<u8>) -> Result<ChatModel> {
        let size = bytes.len();
        let g = GgufFile::from_bytes(bytes, "model.gguf")?;
        let model = AutoModelForCausalLM::from_gguf(&g, Device::Cpu, DType::F32)?;
        let tok = Tokenizer::from_gguf(&g)?;
        let template = match ChatTemplate::from_gguf(&g)? {
            Some(t) => t,
            None => ChatTemplate::named("chatml")?,
        };
        let mut stop_tokens: Vec<i64> =
            END_OF_TURN.iter().filter_map(|m| tok.token_id(m)).collect();
        stop_tokens.extend(model.eos_ids());
        let name = g
            .metadata
            .get("general.name")
            .and_then(|v| v.as_str())
            .unwrap_or("a GGUF model")
            .to_string();
        let about = format!(
            "{name}: {:.0} MB, context {} tokens",
            size as f64 / 1e6,
            model.max_positions()
        );
        Ok(ChatModel {
            model,
            tok,
            template,
            stop_tokens,
            about,
        })
    }

    /// A line saying which model this is.
    pub fn describe(&self) -> &str {
        &self.about
    }

    /// Greedy generation options for a reply of at most `max_new_tokens` (at most 4096).
    pub fn options(&self, max_new_tokens: usize) -> Result<GenerateOpts> {
        if max_new_tokens == 0 || max_new_tokens > 4096 {
            return Err(Error::data(
                "Chat::send",
                format!("max_new_tokens {max_new_tokens} must be between 1 and 4096"),
            ));
        }
        Ok(GenerateOpts {
            max_new_tokens,
            stop_tokens: self.stop_tokens.clone(),
            ..Default::default()
        })
    }

    /// A new conversation with this model, starting with the system message `system` (none
    /// when empty).
    pub fn session(&self, system: &str) -> Result<ChatSession<'_>> {
        if system.len() > 64 << 10 {
            return Err(Error::data(
                "Chat",
                format!(
                    "a system message of {} bytes (at most 64 KiB)",
                    system.len()
                ),
            ));
        }
        let s = ChatSession::new(&self.model, &self.tok, Some(&self.template), Device::Cpu);
        Ok(if system.is_empty() {
            s
        } else {
            s.with_system(system)
        })
    }

    /// Sends `message` in `session` and calls `on_piece` with the reply's text as it grows;
    /// returns the whole reply.
    pub fn send(
        &self,
        session: &mut ChatSession<'_>,
        message: &str,
        max_new_tokens: usize,
        mut on_piece: impl FnMut(&str) -> Result<()>,
    ) -> Result<String> {
        let opts = self.options(max_new_tokens)?;
        let mut stream = TextStream::new(&self.tok);
        let stops = self.stop_tokens.clone();
        let reply = session.send_with(message, &opts, |t| {
            if !stops.contains(&t) {
                let piece = stream.push(t)?;
                if !piece.is_empty() {
                    on_piece(&piece)?;
                }
            }
            Ok(Flow::Continue)
        })?;
        let rest = stream.finish()?;
        if !rest.is_empty() {
            on_piece(&rest)?;
        }
        Ok(reply)
    }
}
