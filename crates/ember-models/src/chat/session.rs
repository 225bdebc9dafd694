//! A conversation that keeps the model's KV cache from turn to turn: each turn renders the
//! whole conversation with the chat template, finds how much of it the cache already holds
//! and prefills only the rest.

use ember_core::{Device, Error, Result};
use ember_nn::KvCache;

use crate::generate::continue_cached;
use crate::{CausalLm, ChatTemplate, Flow, GenerateOpts, Tokenizer, chat_prompt};

/// A multi-turn chat with one model.
///
/// Every turn renders the conversation with the model's template (ChatML without one), encodes
/// it and compares it with the tokens the cache holds: their common prefix stays cached and
/// only the rest is prefilled, so a turn costs its new message rather than the history. When a
/// template rewrites earlier turns (some drop a model's reasoning), the cache is rolled back to
/// where the texts part. The output is what a fresh [`crate::generate_text`] over the whole
/// rendered conversation gives with dense weights (the keys and values of a token come out the
/// same whether it was prefilled with others or decoded alone); with quantized weights a
/// batched prefill and a one-token step round differently, so at a near-tie a greedy token may
/// differ from a re-prefill's, as with llama.cpp's cache reuse.
///
/// **A full context.** When the conversation plus `max_new_tokens` would pass the context
/// ([`ChatSession::with_context`], at most the model's), the oldest exchanges are dropped,
/// a user message and the reply to it at a time, the system message kept, and the cache is
/// rolled back to where the shortened text departs from it (usually its start). A latest
/// message that does not fit alone is an error, and the conversation is left as it was.
///
/// ```no_run
/// use ember_core::Device;
/// use ember_models::{AutoModelForCausalLM, ChatSession, ChatTemplate, GenerateOpts, Tokenizer};
/// use ember_weights::GgufFile;
/// let g = GgufFile::open("SmolLM2-135M-Instruct.Q4_1.gguf")?;
/// let model = AutoModelForCausalLM::from_gguf(&g, Device::Cpu, ember_core::DType::F32)?;
/// let (tok, template) = (Tokenizer::from_gguf(&g)?, ChatTemplate::from_gguf(&g)?);
/// let mut chat = ChatSession::new(&model, &tok, template.as_ref(), Device::Cpu);
/// let opts = GenerateOpts { stop_tokens: tok.token_id("<|im_end|>").into_iter().collect(), ..Default::default() };
/// let first = chat.send("What is the capital of France?", &opts)?;
/// let second = chat.send("And of Italy?", &opts)?; // prefills only this message
/// # Ok::<(), ember_core::Error>(())
/// ```
pub struct ChatSession<'a> {
    model: &'a dyn CausalLm,
    tok: &'a Tokenizer,
    template: Option<&'a ChatTemplate>,
    device: Device,
    context: usize,
    /// `(role, content)` so far.
    messages: Vec<(String, String)>,
    /// The tokens the conversation reached: the last prompt and its reply.
    tokens: Vec<i64>,
    /// Keys and values of `tokens` but the last.
    cache: Vec<KvCache>,
    prefilled: Vec<usize>,
}

impl<'a> ChatSession<'a> {
    /// An empty conversation with `model`, its tokenizer and template (`None`: ChatML).
    pub fn new(
        model: &'a dyn CausalLm,
        tok: &'a Tokenizer,
        template: Option<&'a ChatTemplate>,
        device: Device,
    ) -> ChatSession<'a> {
        ChatSession {
            model,
            tok,
            template,
            device,
            context: model.max_positions(),
            messages: Vec::new(),
            tokens: Vec::new(),
            cache: model.new_cache(),
            prefilled: Vec::new(),
        }
    }

    /// Starts the conversation with a system message.
    pub fn with_system(mut self, text: &str) -> ChatSession<'a> {
        self.messages.insert(0, ("system".into(), text.into()));
        self
    }

    /// Keeps the conversation within `tokens` positions (capped at the model's context).
    pub fn with_context(mut self, tokens: usize) -> ChatSession<'a> {
        self.context = tokens.min(self.model.max_positions());
        self
    }

    /// The messages so far, `(role, content)`, replies included.
    pub fn messages(&self) -> &[(String, String)] {
        &self.messages
    }

    /// Tokens prefilled by each turn so far (the first turn prefills its whole prompt).
    pub fn prefilled(&self) -> &[usize] {
        &self.prefilled
    }

    /// Sends a user message and returns the reply's text (special tokens skipped).
    pub fn send(&mut self, message: &str, opts: &GenerateOpts) -> Result<String> {
        self.send_with(message, opts, |_| Ok(Flow::Continue))
    }

    /// [`ChatSession::send`] calling `on_token` with each token as it is chosen (to stream it
    /// with a [`crate::TextStream`], or stop it with [`Flow::Stop`]).
    pub fn send_with(
        &mut self,
        message: &str,
        opts: &GenerateOpts,
        on_token: impl FnMut(i64) -> Result<Flow>,
    ) -> Result<String> {
        opts.validate()?;
        let mut messages = self.messages.clone();
        messages.push(("user".into(), message.into()));
        let prompt = self.fit(&mut messages, opts.max_new_tokens)?;
        let common = self
            .tokens
            .iter()
            .zip(&prompt)
            .take_while(|(a, b)| a == b)
            .count();
        let cached = self.cache.first().map_or(0, KvCache::len);
        // At least one token is fed to get the next token's logits.
        let keep = common.min(cached).min(prompt.len() - 1);
        self.cache.iter_mut().for_each(|c| c.truncate(keep));
        // On an error the cache may hold part of the prompt: it is rolled back next turn by
        // the common prefix with `tokens`, which is then only what it held before.
        self.tokens.truncate(keep);
        let out = continue_cached(
            self.model,
            Some(self.tok),
            &prompt,
            &mut self.cache,
            self.device,
            opts,
            on_token,
        )?;
        let reply = self.tok.decode(&out, true)?;
        self.prefilled.push(prompt.len() - keep);
        self.tokens = prompt;
        self.tokens.extend(&out);
        messages.push(("assistant".into(), reply.clone()));
        self.messages = messages;
        Ok(reply)
    }

    /// The rendered, encoded `messages` with the generation prompt, dropping the oldest
    /// exchanges (after any system message) until `max_new` more tokens fit the context.
    fn fit(&self, messages: &mut Vec<(String, String)>, max_new: usize) -> Result<Vec<i64>> {
        let system = usize::from(messages.first().is_some_and(|m| m.0 == "system"));
        loop {
            let pairs: Vec<(&str, &str)> = messages
                .iter()
                .map(|(r, c)| (r.as_str(), c.as_str()))
                .collect();
            let text = chat_prompt(self.template, &pairs, true)?;
            let ids = self.tok.encode(&text, false)?;
            if ids.len() + max_new <= self.context {
                return Ok(ids);
            }
            // Drop the oldest user message and everything up to the next one.
            let next_user = messages[system + 1..]
                .iter()
                .position(|m| m.0 == "user")
                .map(|i| i + system + 1);
            match next_user {
                Some(i) => drop(messages.drain(system..i)),
                None => {
                    return Err(Error::data(
                        "ChatSession",
                        format!(
                            "the latest message needs {} tokens with {max_new} new ones, more \
                             than the context of {}: shorten it or ask for fewer tokens",
                            ids.len(),
                            self.context
                        ),
                    ));
                }
            }
        }
    }
}
