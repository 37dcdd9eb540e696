//! A model ready to use: decoder, tokenizer and chat template, with text-level generation.

use std::path::{Path, PathBuf};

use crate::batch::{FinishReason, PromptRequest, Timings};
use crate::chat::{ChatMessage, ChatTemplate};
use crate::decoder::Decoder;
use crate::device::Placement;
use crate::error::{ModelError, Result};
use crate::generate::{generate_tokens, Control};
use crate::sampling::SamplingParams;
use crate::text::TextTracker;
use crate::tokenizer::Tokenizer;
use crate::weights::Precision;

/// A loaded model.
pub struct Model {
    name: String,
    path: PathBuf,
    decoder: Decoder,
    tokenizer: Tokenizer,
    chat_template: Option<ChatTemplate>,
}

/// What to generate from one prompt, at the text level.
#[derive(Clone, Debug)]
pub struct TextRequest {
    /// Independent samples (they share the prompt's prefill).
    pub n: usize,
    /// Upper bound on new tokens per sample.
    pub max_new_tokens: usize,
    /// Temperature, top-p, top-k, seed.
    pub sampling: SamplingParams,
    /// Stop sequences: a sample ends before the first one it writes.
    pub stop: Vec<String>,
}

/// One finished sample.
#[derive(Clone, Debug, PartialEq)]
pub struct TextCompletion {
    /// Its text (cut before a stop sequence).
    pub text: String,
    /// Generated tokens (the end-of-generation token excluded).
    pub tokens: usize,
    /// Why it ended.
    pub finish_reason: FinishReason,
}

/// The samples of one prompt, with usage and timings.
#[derive(Clone, Debug)]
pub struct TextOutput {
    /// One per sample, in sample order.
    pub completions: Vec<TextCompletion>,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Time spent in prefill and decode.
    pub timings: Timings,
}

impl Model {
    /// Loads a GGUF file or a Hugging Face folder for the CPU; `name` is how it is reported
    /// (e.g. in `/v1/models`).
    pub fn load(name: &str, path: &Path, precision: Precision) -> Result<Self> {
        Self::load_on(name, path, precision, &Placement::Cpu)
    }

    /// [`Model::load`] where `placement` says (e.g. a CUDA GPU).
    pub fn load_on(
        name: &str,
        path: &Path,
        precision: Precision,
        placement: &Placement,
    ) -> Result<Self> {
        let (decoder, tokenizer, chat_template) = if path.is_dir() {
            let decoder = crate::load::load_hf_dir_on(path, placement)?;
            let tokenizer = Tokenizer::from_hf_dir(path)?;
            let template = ChatTemplate::from_hf_dir(path)?;
            (decoder, tokenizer, template)
        } else {
            let (decoder, content) = crate::load::load_gguf_on(path, precision, placement)?;
            let tokenizer = Tokenizer::from_gguf(&content)?;
            let template = ChatTemplate::from_gguf(&content)?;
            (decoder, tokenizer, template)
        };
        Ok(Model {
            name: name.to_owned(),
            path: path.to_owned(),
            decoder,
            tokenizer,
            chat_template,
        })
    }

    /// A model from parts already in memory (e.g. weights being trained, for evaluation
    /// during training).
    pub fn from_parts(
        name: &str,
        path: &Path,
        decoder: Decoder,
        tokenizer: Tokenizer,
        chat_template: Option<ChatTemplate>,
    ) -> Self {
        Model {
            name: name.to_owned(),
            path: path.to_owned(),
            decoder,
            tokenizer,
            chat_template,
        }
    }

    /// The name it was loaded under.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The file or folder it was loaded from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The network.
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The tokenizer.
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    /// The model's own chat template, if it has one.
    pub fn chat_template(&self) -> Option<&ChatTemplate> {
        self.chat_template.as_ref()
    }

    /// Longest sequence (prompt + generated) the model accepts.
    pub fn context_length(&self) -> usize {
        self.decoder.config().context_length
    }

    /// Renders messages with the model's chat template, ready for the assistant's turn.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        let template = self.chat_template.as_ref().ok_or_else(|| {
            ModelError::InvalidRequest(format!(
                "model {} has no chat template; use a plain completion prompt",
                self.name
            ))
        })?;
        template.render(messages, true).map_err(Into::into)
    }

    /// Tokenises a prompt, adding the BOS token when the model expects one and the text does
    /// not already start with it.
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self.tokenizer.encode_prompt(text)?)
    }

    /// Generates `request.n` samples from `prompt` (token ids). `on_delta(sample, text)`
    /// receives each sample's text as it becomes final, for streaming.
    pub fn complete(
        &self,
        prompt: &[u32],
        request: &TextRequest,
        mut on_delta: impl FnMut(usize, &str),
    ) -> Result<TextOutput> {
        let mut trackers = vec![TextTracker::new(&request.stop); request.n];
        let mut failure = None;
        let (tokens, timings) = generate_tokens(
            &self.decoder,
            &PromptRequest {
                prompt,
                n: request.n,
                max_new_tokens: request.max_new_tokens,
                sampling: request.sampling.clone(),
                stop_ids: self.tokenizer.stop_ids(),
            },
            |i, token| match trackers[i].push(&self.tokenizer, token) {
                Ok(update) => {
                    if !update.delta.is_empty() {
                        on_delta(i, &update.delta);
                    }
                    if update.stopped {
                        Control::Stop
                    } else {
                        Control::Continue
                    }
                }
                Err(e) => {
                    failure.get_or_insert(e);
                    Control::Stop
                }
            },
        )?;
        if let Some(e) = failure {
            return Err(e);
        }
        let completions = tokens
            .into_iter()
            .zip(trackers.iter_mut())
            .enumerate()
            .map(|(i, (t, tracker))| {
                let rest = tracker.finish();
                if !rest.is_empty() {
                    on_delta(i, &rest);
                }
                TextCompletion {
                    text: tracker.text().to_owned(),
                    tokens: t.tokens.len(),
                    finish_reason: t.finish_reason,
                }
            })
            .collect();
        Ok(TextOutput {
            completions,
            prompt_tokens: prompt.len(),
            timings,
        })
    }
}
