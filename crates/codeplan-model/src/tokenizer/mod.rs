//! The tokenizer: one type for GGUF metadata and Hugging Face `tokenizer.json` folders, wrapping
//! the `tokenizers` crate, plus an incremental detokeniser for streaming.
//!
//! From GGUF the vocabulary is rebuilt the way llama.cpp builds it (see [`gguf`]), so token ids
//! match llama.cpp's for the same text; the golden tests hold it to llama.cpp's own test vectors.

mod gguf;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use candle_core::quantized::gguf_file::Content;

/// Everything that can go wrong while building or using a [`Tokenizer`].
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// A required GGUF metadata key is absent (e.g. a GGUF without tokenizer metadata).
    #[error("GGUF metadata key `{key}` is missing (the file carries no usable tokenizer)")]
    MissingKey {
        /// The missing key.
        key: String,
    },
    /// A GGUF metadata key holds a value of the wrong type.
    #[error("GGUF metadata key `{key}` should be {expected}, found {found}")]
    WrongType {
        /// The offending key.
        key: String,
        /// What the key should hold.
        expected: &'static str,
        /// What it holds.
        found: String,
    },
    /// A GGUF metadata key holds a value of the right type but an unusable content.
    #[error("GGUF metadata key `{key}` is invalid: {why}")]
    InvalidValue {
        /// The offending key.
        key: String,
        /// What is wrong with it.
        why: String,
    },
    /// `tokenizer.ggml.model` names a tokenizer family this crate does not implement.
    #[error(
        "unsupported tokenizer model `{value}` in GGUF key `tokenizer.ggml.model`: only `gpt2` \
         (byte-level BPE) is supported"
    )]
    UnsupportedModel {
        /// The value found.
        value: String,
    },
    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not know.
    #[error(
        "unknown pre-tokenizer `{value}` in GGUF key `tokenizer.ggml.pre`: its splitting rules are \
         not implemented here, and guessing them would silently change token ids"
    )]
    UnknownPre {
        /// The value found.
        value: String,
    },
    /// One entry of `tokenizer.ggml.merges` cannot be used.
    #[error(
        "GGUF metadata key `tokenizer.ggml.merges`: rule #{index} {rule:?} is malformed: {why}"
    )]
    MalformedMerge {
        /// Position of the rule in the array.
        index: usize,
        /// The rule's text.
        rule: String,
        /// What is wrong with it.
        why: String,
    },
    /// A file of a Hugging Face folder could not be read.
    #[error("reading {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A file of a Hugging Face folder could not be parsed.
    #[error("parsing {}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        message: String,
    },
    /// The `tokenizers` crate failed.
    #[error("{context}: {source}")]
    Tokenizers {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: tokenizers::Error,
    },
    /// A token id outside the vocabulary was given.
    #[error("token id {id} is outside the vocabulary of {vocab_size} tokens")]
    UnknownId {
        /// The id.
        id: u32,
        /// The vocabulary size.
        vocab_size: usize,
    },
}

/// A text tokenizer with the model's special-token facts (BOS, EOS, end-of-generation ids).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// A copy that leaves control-token text alone; built on first use because most callers
    /// never need it and a large vocabulary costs tens of MB.
    literal: OnceLock<tokenizers::Tokenizer>,
    bos: Option<u32>,
    eos: Option<u32>,
    pad: Option<u32>,
    add_bos: bool,
    stop_ids: Vec<u32>,
    vocab_size: usize,
}

impl Tokenizer {
    /// Built from GGUF metadata: `tokenizer.ggml.{model,tokens,merges,token_type,pre,bos_token_id,
    /// eos_token_id,eot_token_id,eom_token_id,padding_token_id,add_bos_token}`, as llama.cpp does.
    pub fn from_gguf(content: &Content) -> Result<Self, TokenizerError> {
        let v = gguf::build(content)?;
        Ok(Self {
            vocab_size: v.n_tokens,
            inner: v.inner,
            literal: OnceLock::new(),
            bos: v.bos,
            eos: v.eos,
            pad: v.pad,
            add_bos: v.add_bos,
            stop_ids: v.stop_ids,
        })
    }

    /// From a Hugging Face folder: `tokenizer.json`, with BOS/EOS/`add_bos_token` from
    /// `tokenizer_config.json` and extra EOS ids from `generation_config.json` when present.
    pub fn from_hf_dir(dir: &Path) -> Result<Self, TokenizerError> {
        let path = dir.join("tokenizer.json");
        let inner = tokenizers::Tokenizer::from_file(&path).map_err(|e| {
            match e.downcast::<std::io::Error>() {
                Ok(source) => TokenizerError::Io {
                    path: path.clone(),
                    source: *source,
                },
                Err(e) => TokenizerError::Parse {
                    path: path.clone(),
                    message: e.to_string(),
                },
            }
        })?;
        let config = read_json_if_present(&dir.join("tokenizer_config.json"))?;
        let generation = read_json_if_present(&dir.join("generation_config.json"))?;
        let token_id = |name: &str| -> Option<u32> {
            let v = config.as_ref()?.get(name)?;
            // Either a plain string or a serialised AddedToken `{"content": ...}`.
            let text = v.as_str().or_else(|| v.get("content")?.as_str())?;
            inner.token_to_id(text)
        };
        let gen_ids = |name: &str| -> Vec<u32> {
            match generation.as_ref().and_then(|g| g.get(name)) {
                Some(serde_json::Value::Number(n)) => {
                    n.as_u64().map(|n| n as u32).into_iter().collect()
                }
                Some(serde_json::Value::Array(items)) => items
                    .iter()
                    .filter_map(|n| n.as_u64().map(|n| n as u32))
                    .collect(),
                _ => Vec::new(),
            }
        };
        let bos = token_id("bos_token").or_else(|| gen_ids("bos_token_id").first().copied());
        let gen_eos = gen_ids("eos_token_id");
        let eos = token_id("eos_token").or_else(|| gen_eos.first().copied());
        let pad = token_id("pad_token");
        let add_bos = match config.as_ref().and_then(|c| c.get("add_bos_token")) {
            Some(serde_json::Value::Bool(b)) => *b,
            // No explicit flag: trust the post-processor (Llama 3's template adds BOS itself).
            _ => match (bos, inner.encode("a", true)) {
                (Some(bos), Ok(enc)) => enc.get_ids().first() == Some(&bos),
                _ => false,
            },
        };
        let explicit = gguf::ExplicitIds {
            eos,
            extra_eog: gen_eos,
            ..Default::default()
        };
        let stop_ids = gguf::llama_specials(|t| inner.token_to_id(t), &explicit).eog;
        let vocab_size = inner.get_vocab_size(true);
        Ok(Self {
            inner,
            literal: OnceLock::new(),
            bos,
            eos,
            pad,
            add_bos,
            stop_ids,
            vocab_size,
        })
    }

    /// Token ids of `text`; special-token text in it (e.g. `<|im_start|>`) becomes that token,
    /// and BOS is prepended when `add_bos` is set and the model has one.
    pub fn encode(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TokenizerError> {
        self.encode_with(&self.inner, text, add_bos)
    }

    /// Like [`Tokenizer::encode`] but control-token text stays plain text (llama.cpp's
    /// `parse_special = false`), for untrusted content that must not inject control tokens.
    pub fn encode_literal(&self, text: &str, add_bos: bool) -> Result<Vec<u32>, TokenizerError> {
        let literal = self.literal.get_or_init(|| {
            let mut t = self.inner.clone();
            t.set_encode_special_tokens(true);
            t
        });
        self.encode_with(literal, text, add_bos)
    }

    fn encode_with(
        &self,
        tok: &tokenizers::Tokenizer,
        text: &str,
        add_bos: bool,
    ) -> Result<Vec<u32>, TokenizerError> {
        // Without the post-processor: BOS is this type's decision, made the same way for GGUF
        // and Hugging Face tokenizers.
        let enc = tok
            .encode_fast(text, false)
            .map_err(|source| TokenizerError::Tokenizers {
                context: "encoding text",
                source,
            })?;
        let mut ids = Vec::with_capacity(enc.len() + 1);
        if let (true, Some(bos)) = (add_bos, self.bos) {
            ids.push(bos);
        }
        ids.extend_from_slice(enc.get_ids());
        Ok(ids)
    }

    /// Text of `ids`; with `skip_special`, control tokens (BOS, `<|im_end|>` ...) are left out.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String, TokenizerError> {
        if let Some(&id) = ids.iter().find(|&&id| id as usize >= self.vocab_size) {
            return Err(TokenizerError::UnknownId {
                id,
                vocab_size: self.vocab_size,
            });
        }
        self.inner
            .decode(ids, skip_special)
            .map_err(|source| TokenizerError::Tokenizers {
                context: "decoding token ids",
                source,
            })
    }

    /// The beginning-of-sequence token, if the model has one.
    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// Whether prompts for this model conventionally start with BOS (`add_bos_token`).
    pub fn add_bos_by_default(&self) -> bool {
        self.add_bos && self.bos.is_some()
    }

    /// The end-of-sequence token the model declares, if any.
    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// The padding token the model declares, if any.
    pub fn pad_id(&self) -> Option<u32> {
        self.pad
    }

    /// Tokenises a prompt, adding the BOS token when the model expects one and the text does
    /// not already start with it (how both generation and training see a prompt).
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>, TokenizerError> {
        let mut ids = self.encode(text, false)?;
        if self.add_bos_by_default() {
            if let Some(bos) = self.bos_id() {
                if ids.first() != Some(&bos) {
                    ids.insert(0, bos);
                }
            }
        }
        Ok(ids)
    }

    /// Every end-of-generation token (EOS, EOT such as `<|im_end|>`/`<|endoftext|>`/`<|eot_id|>`,
    /// EOM ...), sorted; the same set llama.cpp stops on.
    pub fn stop_ids(&self) -> &[u32] {
        &self.stop_ids
    }

    /// Whether `id` ends generation.
    pub fn is_stop(&self, id: u32) -> bool {
        self.stop_ids.binary_search(&id).is_ok()
    }

    /// Number of token ids (the embedding rows the model needs), added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The vocabulary entry of `id` as stored (byte-level form, e.g. `Ġworld`), not decoded text.
    pub fn token_text(&self, id: u32) -> Option<String> {
        self.inner.id_to_token(id)
    }

    /// The wrapped `tokenizers` tokenizer, for what this type does not expose.
    pub fn inner(&self) -> &tokenizers::Tokenizer {
        &self.inner
    }
}

fn read_json_if_present(path: &Path) -> Result<Option<serde_json::Value>, TokenizerError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TokenizerError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| TokenizerError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
}

/// Incremental detokeniser for streaming: push ids, get the newly completed text (never splits a
/// UTF-8 character across pushes).
///
/// It decodes a short window of ids and emits the text beyond what the window's first part
/// already produced, holding text back while it ends in an incomplete character (U+FFFD from a
/// partial byte sequence). Decoding windows rather than single tokens keeps decoders that look
/// at neighbours (leading-space rules) correct.
#[derive(Debug)]
pub struct TextStream<'a> {
    tok: &'a Tokenizer,
    skip_special: bool,
    ids: Vec<u32>,
    /// Start of the window whose text has been emitted up to `read`.
    prefix: usize,
    /// End of the ids whose text has been emitted.
    read: usize,
}

impl<'a> TextStream<'a> {
    /// A stream that leaves control tokens out of the text, as chat APIs show it.
    pub fn new(tok: &'a Tokenizer) -> Self {
        Self::with_skip_special(tok, true)
    }

    /// A stream that keeps control tokens in the text when `skip_special` is false.
    pub fn with_skip_special(tok: &'a Tokenizer, skip_special: bool) -> Self {
        Self {
            tok,
            skip_special,
            ids: Vec::new(),
            prefix: 0,
            read: 0,
        }
    }

    /// Adds one id; returns the text it completes, if any.
    pub fn push(&mut self, id: u32) -> Result<Option<String>, TokenizerError> {
        self.ids.push(id);
        let (prefix_text, new_text) = self.window()?;
        if new_text.len() <= prefix_text.len() || new_text.ends_with('\u{FFFD}') {
            return Ok(None);
        }
        Ok(self.advance(&prefix_text, new_text))
    }

    /// Flushes what is held back (an incomplete character comes out as U+FFFD).
    pub fn finish(&mut self) -> Result<Option<String>, TokenizerError> {
        if self.read == self.ids.len() {
            return Ok(None);
        }
        let (prefix_text, new_text) = self.window()?;
        Ok(self.advance(&prefix_text, new_text))
    }

    fn window(&self) -> Result<(String, String), TokenizerError> {
        let prefix_text = self
            .tok
            .decode(&self.ids[self.prefix..self.read], self.skip_special)?;
        let new_text = self
            .tok
            .decode(&self.ids[self.prefix..], self.skip_special)?;
        Ok((prefix_text, new_text))
    }

    fn advance(&mut self, prefix_text: &str, new_text: String) -> Option<String> {
        // The window normally extends the prefix's text; if a decoder rewrote it, fall back to
        // the longest common start so no text is repeated.
        let start = if new_text.starts_with(prefix_text) {
            prefix_text.len()
        } else {
            common_prefix_len(prefix_text, &new_text)
        };
        let out = new_text[start..].to_string();
        // Keep only the ids a future window needs, so long generations stay linear.
        self.ids.drain(..self.read);
        self.prefix = 0;
        self.read = self.ids.len();
        (!out.is_empty()).then_some(out)
    }
}

fn common_prefix_len(a: &str, b: &str) -> usize {
    a.char_indices()
        .zip(b.chars())
        .find(|((_, ca), cb)| ca != cb)
        .map_or_else(|| a.len().min(b.len()), |((i, _), _)| i)
}

#[cfg(test)]
mod tests {
    /// The runtime shares one tokenizer and one template across request threads.
    #[test]
    fn shareable_across_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<super::Tokenizer>();
        assert_send_sync::<crate::chat::ChatTemplate>();
    }

    #[test]
    fn common_prefix_respects_char_boundaries() {
        assert_eq!(super::common_prefix_len("aé", "aéb"), 3);
        assert_eq!(super::common_prefix_len("aé", "aè"), 1);
        assert_eq!(super::common_prefix_len("", "x"), 0);
    }
}
