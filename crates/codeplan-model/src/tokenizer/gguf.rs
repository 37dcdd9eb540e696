//! Building a `tokenizers::Tokenizer` from GGUF metadata, the way llama.cpp's `llama-vocab.cpp`
//! interprets the `tokenizer.ggml.*` keys for byte-level BPE vocabularies (`model == "gpt2"`).
//!
//! The pre-tokenizer regexes are llama.cpp's, chosen by `tokenizer.ggml.pre`; each regex splits
//! the fragments left by the previous one and keeps both matches and gaps, which is exactly
//! `Sequence[Split(regex, Isolated), ...]` followed by the GPT-2 byte mapping.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::{Content, Value};
use tokenizers::models::bpe::{Merges, Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, DecoderWrapper, SplitDelimiterBehavior};

use super::TokenizerError;

pub(crate) const KEY_MODEL: &str = "tokenizer.ggml.model";
pub(crate) const KEY_PRE: &str = "tokenizer.ggml.pre";
pub(crate) const KEY_TOKENS: &str = "tokenizer.ggml.tokens";
pub(crate) const KEY_MERGES: &str = "tokenizer.ggml.merges";
pub(crate) const KEY_TOKEN_TYPE: &str = "tokenizer.ggml.token_type";
pub(crate) const KEY_BOS: &str = "tokenizer.ggml.bos_token_id";
pub(crate) const KEY_EOS: &str = "tokenizer.ggml.eos_token_id";
pub(crate) const KEY_EOT: &str = "tokenizer.ggml.eot_token_id";
pub(crate) const KEY_EOM: &str = "tokenizer.ggml.eom_token_id";
pub(crate) const KEY_PAD: &str = "tokenizer.ggml.padding_token_id";
pub(crate) const KEY_ADD_BOS: &str = "tokenizer.ggml.add_bos_token";

/// GGUF token types (llama.cpp's `llama_token_type`).
const TOKEN_TYPE_CONTROL: i64 = 3;
const TOKEN_TYPE_USER_DEFINED: i64 = 4;

// llama.cpp's regexes, verbatim in meaning (its C++ string escapes written as Rust raw strings).
const RE_GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";
// llama.cpp spells `(?i:'s|...)` as explicit character classes; keep its spelling so the
// contractions match exactly what llama.cpp matches (no Unicode case folding such as 'ſ').
const RE_LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_QWEN35: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const RE_DEFAULT: [&str; 4] = [
    r"[\p{P}\$\+<=>\^~\|]+",
    RE_GPT2,
    r"\p{N}+",
    r"[0-9][0-9][0-9]",
];
const RE_STARCODER: [&str; 2] = [r"\p{N}", RE_GPT2];
const RE_FALCON: [&str; 3] = [r"[\p{P}\$\+<=>\^~\|`]+", RE_GPT2, r"[0-9][0-9][0-9]"];
const RE_DEEPSEEK_CODER: [&str; 5] = [
    r"[\r\n]",
    r"\s?\p{L}+",
    r"\s?\p{P}+",
    r"[一-龥ࠀ-一가-퟿]+",
    r"\p{N}",
];
const RE_BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";

/// How llama.cpp treats one `tokenizer.ggml.pre` value.
pub(crate) struct PreSpec {
    pub regexes: &'static [&'static str],
    /// llama.cpp's `ignore_merges`: a pre-token that is already a vocabulary entry is not merged.
    pub ignore_merges: bool,
    /// llama.cpp's default for `add_bos` before `tokenizer.ggml.add_bos_token` overrides it.
    pub add_bos: bool,
}

/// The `tokenizer.ggml.pre` values supported here, grouped as llama.cpp groups them. Values that
/// need more than regexes + byte-level BPE in llama.cpp (SEP tokens, whitespace escaping, custom
/// splitters without a plain regex) are deliberately absent, so they fail loudly instead.
pub(crate) fn pre_spec(pre: &str) -> Option<PreSpec> {
    let spec = |regexes: &'static [&'static str], ignore_merges, add_bos| PreSpec {
        regexes,
        ignore_merges,
        add_bos,
    };
    Some(match pre {
        "default" => spec(&RE_DEFAULT, false, false),
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "jina-v5-nano" => spec(&[RE_LLAMA3], true, true),
        "dbrx" | "smaug-bpe" | "chatglm-bpe" => spec(&[RE_LLAMA3], false, false),
        "deepseek-coder" => spec(&RE_DEEPSEEK_CODER, false, false),
        "falcon" => spec(&RE_FALCON, false, false),
        "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone" | "minerva-7b"
        | "mellum2" => spec(&RE_STARCODER, false, false),
        "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es" | "jina-v2-de"
        | "a.x-4.0" | "mellum" | "modern-bert" | "mpt" | "olmo" | "jais" | "trillion"
        | "granite-docling" | "exaone4" => spec(&[RE_GPT2], false, false),
        "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" | "megrez" | "stablelm2" | "hunyuan"
        | "solar-open" => spec(&[RE_QWEN2], false, false),
        "qwen35" => spec(&[RE_QWEN35], false, false),
        "poro-chat" | "bloom" | "gpt3-finnish" => spec(&[RE_BLOOM], false, false),
        _ => return None,
    })
}

/// Everything `Tokenizer::from_gguf` needs, read and validated from the metadata.
pub(crate) struct GgufVocab {
    pub inner: tokenizers::Tokenizer,
    pub n_tokens: usize,
    pub bos: Option<u32>,
    pub eos: Option<u32>,
    pub pad: Option<u32>,
    pub add_bos: bool,
    pub stop_ids: Vec<u32>,
}

fn get<'a>(content: &'a Content, key: &str) -> Option<&'a Value> {
    content.metadata.get(key)
}

fn type_name(v: &Value) -> String {
    match v {
        Value::Array(items) => match items.first() {
            Some(first) => format!("array of {:?}", first.value_type()),
            None => "empty array".to_string(),
        },
        other => format!("{:?}", other.value_type()),
    }
}

fn wrong_type(key: &str, expected: &'static str, v: &Value) -> TokenizerError {
    TokenizerError::WrongType {
        key: key.to_string(),
        expected,
        found: type_name(v),
    }
}

fn as_int(v: &Value) -> Option<i64> {
    Some(match *v {
        Value::U8(x) => x.into(),
        Value::I8(x) => x.into(),
        Value::U16(x) => x.into(),
        Value::I16(x) => x.into(),
        Value::U32(x) => x.into(),
        Value::I32(x) => x.into(),
        Value::U64(x) => i64::try_from(x).ok()?,
        Value::I64(x) => x,
        _ => return None,
    })
}

fn get_string(content: &Content, key: &str) -> Result<Option<String>, TokenizerError> {
    match get(content, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(v) => Err(wrong_type(key, "string", v)),
    }
}

fn get_bool(content: &Content, key: &str) -> Result<Option<bool>, TokenizerError> {
    match get(content, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(wrong_type(key, "bool", v)),
    }
}

fn get_string_array<'a>(content: &'a Content, key: &str) -> Result<Vec<&'a str>, TokenizerError> {
    let v = get(content, key).ok_or_else(|| TokenizerError::MissingKey {
        key: key.to_string(),
    })?;
    let Value::Array(items) = v else {
        return Err(wrong_type(key, "array of strings", v));
    };
    items
        .iter()
        .map(|item| match item {
            Value::String(s) => Ok(s.as_str()),
            _ => Err(wrong_type(key, "array of strings", v)),
        })
        .collect()
}

/// A token id key: absent is `None`; present must be an integer inside the vocabulary.
fn get_token_id(
    content: &Content,
    key: &str,
    n_tokens: usize,
) -> Result<Option<u32>, TokenizerError> {
    let Some(v) = get(content, key) else {
        return Ok(None);
    };
    let id = as_int(v).ok_or_else(|| wrong_type(key, "integer", v))?;
    match u32::try_from(id) {
        Ok(id) if (id as usize) < n_tokens => Ok(Some(id)),
        _ => Err(TokenizerError::InvalidValue {
            key: key.to_string(),
            why: format!("token id {id} is outside the vocabulary of {n_tokens} tokens"),
        }),
    }
}

/// Splits one merge rule as llama.cpp does: at the first space after the first byte, so that a
/// rule whose left part is itself a space-like byte symbol still parses.
fn parse_merge(index: usize, rule: &str) -> Result<(String, String), TokenizerError> {
    let malformed = |why: &str| TokenizerError::MalformedMerge {
        index,
        rule: rule.to_string(),
        why: why.to_string(),
    };
    // Byte-wise like llama.cpp's `find(' ', 1)`; a space byte is always a char boundary.
    let pos = rule
        .bytes()
        .skip(1)
        .position(|b| b == b' ')
        .map(|p| p + 1)
        .ok_or_else(|| malformed("expected two symbols separated by a space"))?;
    let (left, right) = (&rule[..pos], &rule[pos + 1..]);
    if right.is_empty() {
        return Err(malformed("the right-hand symbol is empty"));
    }
    Ok((left.to_string(), right.to_string()))
}

pub(crate) fn build(content: &Content) -> Result<GgufVocab, TokenizerError> {
    let model = get_string(content, KEY_MODEL)?.ok_or_else(|| TokenizerError::MissingKey {
        key: KEY_MODEL.to_string(),
    })?;
    if model != "gpt2" {
        return Err(TokenizerError::UnsupportedModel { value: model });
    }
    // llama.cpp falls back to "default" (with a loud warning) when the key is absent.
    let pre = get_string(content, KEY_PRE)?.unwrap_or_else(|| "default".to_string());
    let spec = pre_spec(&pre).ok_or_else(|| TokenizerError::UnknownPre { value: pre.clone() })?;

    let raw_tokens = get_string_array(content, KEY_TOKENS)?;
    let n_tokens = raw_tokens.len();
    if n_tokens == 0 {
        return Err(TokenizerError::InvalidValue {
            key: KEY_TOKENS.to_string(),
            why: "the vocabulary is empty".to_string(),
        });
    }
    // llama.cpp renames empty tokens so every id keeps a distinct text.
    let tokens: Vec<String> = raw_tokens
        .iter()
        .enumerate()
        .map(|(i, t)| {
            if t.is_empty() {
                format!("[EMPTY_{i}]")
            } else {
                (*t).to_string()
            }
        })
        .collect();
    let mut vocab = Vocab::with_capacity(n_tokens);
    for (id, token) in tokens.iter().enumerate() {
        if let Some(prev) = vocab.insert(token.clone(), id as u32) {
            return Err(TokenizerError::InvalidValue {
                key: KEY_TOKENS.to_string(),
                why: format!("token {token:?} appears twice (ids {prev} and {id})"),
            });
        }
    }

    let token_types: Option<Vec<i64>> = match get(content, KEY_TOKEN_TYPE) {
        None => None,
        Some(v @ Value::Array(items)) => {
            let types = items
                .iter()
                .map(as_int)
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| wrong_type(KEY_TOKEN_TYPE, "array of integers", v))?;
            if types.len() < n_tokens {
                return Err(TokenizerError::InvalidValue {
                    key: KEY_TOKEN_TYPE.to_string(),
                    why: format!("{} entries for {n_tokens} tokens", types.len()),
                });
            }
            Some(types)
        }
        Some(v) => return Err(wrong_type(KEY_TOKEN_TYPE, "array of integers", v)),
    };

    let raw_merges = get_string_array(content, KEY_MERGES)?;
    let mut merges: Merges = Vec::with_capacity(raw_merges.len());
    for (index, rule) in raw_merges.iter().enumerate() {
        let (left, right) = parse_merge(index, rule)?;
        // `tokenizers` rejects merges over unknown symbols; say which rule is at fault first.
        for part in [&left, &right] {
            if !vocab.contains_key(part.as_str()) {
                return Err(TokenizerError::MalformedMerge {
                    index,
                    rule: rule.to_string(),
                    why: format!("symbol {part:?} is not in {KEY_TOKENS}"),
                });
            }
        }
        if !vocab.contains_key(&format!("{left}{right}")) {
            return Err(TokenizerError::MalformedMerge {
                index,
                rule: rule.to_string(),
                why: format!(
                    "the merged symbol {:?} is not in {KEY_TOKENS}",
                    format!("{left}{right}")
                ),
            });
        }
        merges.push((left, right));
    }

    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(spec.ignore_merges)
        .build()
        .map_err(|source| TokenizerError::Tokenizers {
            context: "building the BPE model from GGUF tokens and merges",
            source,
        })?;

    let mut pre_tokenizers: Vec<PreTokenizerWrapper> = Vec::with_capacity(spec.regexes.len() + 1);
    for re in spec.regexes {
        let split = Split::new(
            SplitPattern::Regex((*re).to_string()),
            SplitDelimiterBehavior::Isolated,
            false,
        )
        .map_err(|source| TokenizerError::Tokenizers {
            context: "compiling a llama.cpp pre-tokenizer regex",
            source,
        })?;
        pre_tokenizers.push(split.into());
    }
    // The regexes already split the text; ByteLevel only maps bytes to GPT-2's printable chars.
    pre_tokenizers.push(ByteLevel::new(false, false, false).into());

    let mut inner = tokenizers::Tokenizer::new(bpe);
    inner.with_pre_tokenizer(Some(Sequence::new(pre_tokenizers)));
    inner.with_decoder(Some(DecoderWrapper::ByteLevel(ByteLevel::default())));

    let bos = get_token_id(content, KEY_BOS, n_tokens)?;
    let eos = get_token_id(content, KEY_EOS, n_tokens)?;
    let pad = get_token_id(content, KEY_PAD, n_tokens)?;
    let add_bos = get_bool(content, KEY_ADD_BOS)?.unwrap_or(spec.add_bos);
    let id = |key: &str| get_token_id(content, key, n_tokens);
    let explicit = ExplicitIds {
        eos,
        eot: id(KEY_EOT)?,
        eom: id(KEY_EOM)?,
        fim_pre: id("tokenizer.ggml.fim_pre_token_id")?.or(id("tokenizer.ggml.prefix_token_id")?),
        fim_suf: id("tokenizer.ggml.fim_suf_token_id")?.or(id("tokenizer.ggml.suffix_token_id")?),
        fim_mid: id("tokenizer.ggml.fim_mid_token_id")?.or(id("tokenizer.ggml.middle_token_id")?),
        fim_pad: id("tokenizer.ggml.fim_pad_token_id")?,
        fim_rep: id("tokenizer.ggml.fim_rep_token_id")?,
        fim_sep: id("tokenizer.ggml.fim_sep_token_id")?,
        extra_eog: Vec::new(),
    };
    let lookup: HashMap<&str, u32> = tokens
        .iter()
        .enumerate()
        .map(|(id, t)| (t.as_str(), id as u32))
        .collect();
    let specials = llama_specials(|t| lookup.get(t).copied(), &explicit);

    // Control and user-defined tokens are matched in the text before BPE, as llama.cpp's
    // tokenizer_st_partition does; control tokens are "special" (skippable on decode, and not
    // matched when special parsing is off), user-defined ones are always matched. llama.cpp's
    // text heuristics can promote a normal token (Qwen's plain `</s>`) to control.
    let mut attrs: Vec<Option<bool>> = match &token_types {
        Some(types) => types[..n_tokens]
            .iter()
            .map(|&ty| match ty {
                TOKEN_TYPE_CONTROL => Some(true),
                TOKEN_TYPE_USER_DEFINED => Some(false),
                _ => None,
            })
            .collect(),
        None => vec![None; n_tokens],
    };
    for &id in &specials.promote_control {
        attrs[id as usize] = Some(true);
    }
    for &id in &specials.demote_user_defined {
        attrs[id as usize] = Some(false);
    }
    for &id in &specials.demote_normal {
        attrs[id as usize] = None;
    }
    let added: Vec<AddedToken> = tokens
        .iter()
        .zip(&attrs)
        .filter_map(|(token, attr)| {
            attr.map(|special| AddedToken::from(token.clone(), special).normalized(false))
        })
        .collect();
    inner
        .add_tokens(added)
        .map_err(|source| TokenizerError::Tokenizers {
            context: "registering control and user-defined tokens",
            source,
        })?;

    Ok(GgufVocab {
        inner,
        n_tokens,
        bos,
        eos,
        pad,
        add_bos,
        stop_ids: specials.eog,
    })
}

/// Token texts llama.cpp treats as end-of-generation (its `special_eog_ids` heuristics), so a
/// model stops where llama.cpp would stop even when the GGUF names only one EOS id.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<|return|>",
    "<|call|>",
    "<|flush|>",
    "<|calls|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "</s>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "[EOT]",
    "[EOS]",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<eos>",
    "<turn|>",
    "<|tool_response>",
    "<｜end▁of▁sentence｜>",
    "[e~[",
];

/// FIM token texts llama.cpp recognises when the GGUF names no id, by kind.
const FIM_PRE_TEXTS: &[&str] = &[
    "<|fim_prefix|>",
    "<fim-prefix>",
    "<fim_prefix>",
    "<｜fim▁begin｜>",
    "<PRE>",
    "▁<PRE>",
    "<|code_prefix|>",
    "<|prefix|>",
];
const FIM_SUF_TEXTS: &[&str] = &[
    "<|fim_suffix|>",
    "<fim-suffix>",
    "<fim_suffix>",
    "<｜fim▁hole｜>",
    "<SUF>",
    "▁<SUF>",
    "<|code_suffix|>",
    "<|suffix|>",
];
const FIM_MID_TEXTS: &[&str] = &[
    "<|fim_middle|>",
    "<fim-middle>",
    "<fim_middle>",
    "<｜fim▁end｜>",
    "<MID>",
    "▁<MID>",
    "<|code_middle|>",
    "<|middle|>",
];
const FIM_PAD_TEXTS: &[&str] = &["<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"];
const FIM_REP_TEXTS: &[&str] = &[
    "<|fim_repo|>",
    "<|repo_name|>",
    "<fim-repo>",
    "<REPO>",
    "<reponame>",
];
const FIM_SEP_TEXTS: &[&str] = &["<|file_sep|>"];

/// Special-token ids a GGUF (or HF config) names explicitly; `None` lets text detection decide.
#[derive(Default)]
pub(crate) struct ExplicitIds {
    pub eos: Option<u32>,
    pub eot: Option<u32>,
    pub eom: Option<u32>,
    pub fim_pre: Option<u32>,
    pub fim_suf: Option<u32>,
    pub fim_mid: Option<u32>,
    pub fim_pad: Option<u32>,
    pub fim_rep: Option<u32>,
    pub fim_sep: Option<u32>,
    /// Further end-of-generation ids (e.g. `generation_config.json`'s `eos_token_id` list).
    pub extra_eog: Vec<u32>,
}

/// What llama.cpp's vocabulary loader derives from token texts on top of the token types.
pub(crate) struct Specials {
    /// The end-of-generation set, sorted.
    pub eog: Vec<u32>,
    /// Tokens llama.cpp turns into control tokens because of their text.
    pub promote_control: Vec<u32>,
    /// Tokens llama.cpp turns back into user-defined (harmony's `<|end|>`).
    pub demote_user_defined: Vec<u32>,
    /// Tokens llama.cpp turns back into normal ones (a plain `</s>` in gemma4/plamo vocabularies).
    pub demote_normal: Vec<u32>,
}

/// llama.cpp's text heuristics for EOG and FIM tokens. Where llama.cpp takes the first of
/// several matching texts of one FIM kind (in hash-map order), this promotes every match;
/// real vocabularies carry at most one text per kind, so the result is the same.
pub(crate) fn llama_specials(lookup: impl Fn(&str) -> Option<u32>, ids: &ExplicitIds) -> Specials {
    let matches = |names: &[&str]| names.iter().filter_map(|n| lookup(n)).collect::<Vec<u32>>();
    let mut promote_control = Vec::new();
    let mut eog: Vec<u32> = [ids.eos, ids.eot, ids.eom].into_iter().flatten().collect();
    eog.extend(&ids.extra_eog);
    for (explicit, names, ends_generation) in [
        (ids.fim_pre, FIM_PRE_TEXTS, false),
        (ids.fim_suf, FIM_SUF_TEXTS, false),
        (ids.fim_mid, FIM_MID_TEXTS, false),
        (ids.fim_pad, FIM_PAD_TEXTS, true),
        (ids.fim_rep, FIM_REP_TEXTS, true),
        (ids.fim_sep, FIM_SEP_TEXTS, true),
    ] {
        let found = match explicit {
            Some(id) => vec![id],
            None => {
                let found = matches(names);
                promote_control.extend(&found);
                found
            }
        };
        if ends_generation {
            eog.extend(found);
        }
    }
    let eog_texts = matches(EOG_TEXTS);
    promote_control.extend(&eog_texts);
    eog.extend(eog_texts);
    eog.sort_unstable();
    eog.dedup();

    let in_eog = |name: &str| lookup(name).filter(|id| eog.contains(id));
    let mut demote_user_defined = Vec::new();
    let mut demote_normal = Vec::new();
    // Harmony / solar-open: there `<|end|>` closes a message, not the generation.
    let has_call = in_eog("<|call|>").is_some() || in_eog("<|calls|>").is_some();
    let harmony = has_call && (in_eog("<|return|>").is_some() || in_eog("<|flush|>").is_some());
    if let (true, Some(end)) = (harmony, in_eog("<|end|>")) {
        demote_user_defined.push(end);
    }
    // gemma4 / plamo: `</s>` is an ordinary token there.
    let normal_s = in_eog("<|tool_response>").is_some() || in_eog("<|plamo:eos|>").is_some();
    if let (true, Some(s)) = (normal_s, in_eog("</s>")) {
        demote_normal.push(s);
    }
    eog.retain(|id| !demote_user_defined.contains(id) && !demote_normal.contains(id));
    promote_control.sort_unstable();
    promote_control.dedup();
    Specials {
        eog,
        promote_control,
        demote_user_defined,
        demote_normal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_rules_split_like_llama_cpp() {
        assert_eq!(parse_merge(0, "Ġ t").unwrap(), ("Ġ".into(), "t".into()));
        // A rule whose left symbol is a literal space splits at the second space.
        assert_eq!(parse_merge(0, "  a").unwrap(), (" ".into(), "a".into()));
        assert!(parse_merge(3, "abc").is_err());
        assert!(parse_merge(3, "ab ").is_err());
        assert!(parse_merge(3, "").is_err());
    }

    #[test]
    fn every_supported_regex_compiles() {
        for pre in [
            "default",
            "llama-bpe",
            "qwen2",
            "qwen35",
            "smollm",
            "gpt-2",
            "falcon",
            "deepseek-coder",
            "bloom",
        ] {
            let spec = pre_spec(pre).unwrap();
            for re in spec.regexes {
                Split::new(
                    SplitPattern::Regex((*re).to_string()),
                    SplitDelimiterBehavior::Isolated,
                    false,
                )
                .unwrap_or_else(|e| panic!("{pre}: {re}: {e}"));
            }
        }
        assert!(pre_spec("no-such-pre").is_none());
    }
}
