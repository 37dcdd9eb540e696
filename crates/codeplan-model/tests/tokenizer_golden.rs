//! Golden tests: our GGUF tokenizer against llama.cpp's own test vectors (the vocab-only GGUFs
//! with `.inp`/`.out` files from llama.cpp's `models/`), and against token ids recorded from
//! llama.cpp on the real models (`fixtures/llama_cpp_reference.json`, made by
//! `scripts/reference/llama_cpp_reference.py`). See `fixtures/vocab/README.md` for provenance.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::{self, Content, Value};
use codeplan_model::chat::{ChatMessage, ChatTemplate};
use codeplan_model::tokenizer::{TextStream, Tokenizer, TokenizerError};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

fn read_gguf(path: &Path) -> Content {
    let mut f = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Content::read(&mut f).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn vocab(name: &str) -> Tokenizer {
    let content = read_gguf(
        &fixtures()
            .join("vocab")
            .join(format!("ggml-vocab-{name}.gguf")),
    );
    Tokenizer::from_gguf(&content).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The `.inp`/`.out` pairs exactly as llama.cpp's `tests/test-tokenizer-0.cpp` reads them: inputs
/// separated by `\n__ggml_vocab_test__\n`, one line of space-separated ids per input, and a map
/// keyed by input (a repeated input keeps its last expectation).
fn read_cases(inp: &Path, out: &Path) -> BTreeMap<String, Vec<u32>> {
    let raw = std::fs::read_to_string(inp).unwrap();
    let sep = "\n__ggml_vocab_test__\n";
    let mut inputs = Vec::new();
    let mut pos = 0;
    while pos < raw.len() {
        match raw[pos..].find(sep) {
            Some(next) => {
                inputs.push(raw[pos..pos + next].to_string());
                pos += next + sep.len();
            }
            None => {
                inputs.push(raw[pos..].to_string());
                break;
            }
        }
    }
    let outputs: Vec<Vec<u32>> = std::fs::read_to_string(out)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        inputs.len(),
        outputs.len(),
        "{}: inputs and outputs differ in count",
        inp.display()
    );
    inputs.into_iter().zip(outputs).collect()
}

/// test-tokenizer-0 calls `common_tokenize(ctx, text, add_special=false, parse_special=false)`.
fn check_llama_cpp_vectors(name: &str) {
    let tok = vocab(name);
    let dir = fixtures().join("vocab");
    let cases = read_cases(
        &dir.join(format!("ggml-vocab-{name}.gguf.inp")),
        &dir.join(format!("ggml-vocab-{name}.gguf.out")),
    );
    assert!(cases.len() > 30, "{name}: only {} cases", cases.len());
    let mut failures = Vec::new();
    for (text, expected) in &cases {
        let got = tok.encode_literal(text, false).unwrap();
        if &got != expected {
            failures.push(format!(
                "{text:?}\n    expected {expected:?}\n    got      {got:?}"
            ));
        }
        // Byte-level BPE is lossless: decoding gives the input back.
        let back = tok.decode(&got, false).unwrap();
        if &back != text {
            failures.push(format!("{text:?} decodes back to {back:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{name}: {} of {} llama.cpp cases fail:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn llama_cpp_vectors_qwen2() {
    check_llama_cpp_vectors("qwen2");
}

#[test]
fn llama_cpp_vectors_llama_bpe() {
    check_llama_cpp_vectors("llama-bpe");
}

#[test]
fn llama_cpp_vectors_gpt2() {
    check_llama_cpp_vectors("gpt-2");
}

/// StarCoder's pre-tokenizer is the one llama.cpp uses for SmolLM2 (`pre = smollm`).
#[test]
fn llama_cpp_vectors_starcoder_smollm_family() {
    check_llama_cpp_vectors("starcoder");
}

/// Expected values are llama.cpp's (llama-cpp-python 0.3.36 loading each fixture with
/// `vocab_only=True`: `llama_vocab_bos/eos/get_add_bos`, `llama_vocab_is_eog` over all ids).
#[test]
fn vocab_special_token_facts_follow_llama_cpp() {
    // llama-bpe (Llama 3): BOS added by default (llama.cpp's llama3 rule), EOS <|end_of_text|>,
    // and <|eot_id|> / <|eom_id|> also end generation.
    let t = vocab("llama-bpe");
    assert_eq!(
        (t.bos_id(), t.eos_id(), t.add_bos_by_default()),
        (Some(128000), Some(128001), true)
    );
    assert_eq!(t.token_text(128009).as_deref(), Some("<|eot_id|>"));
    assert_eq!(t.stop_ids(), [128001, 128009]);
    assert_eq!(t.encode("Hi", true).unwrap(), [128000, 13347]);
    assert_eq!(t.vocab_size(), 128256);

    // qwen2: no BOS by default; <|endoftext|> and <|im_end|> stop; the plain-text `</s>` token is
    // promoted to a control token and an end-of-generation token exactly as llama.cpp does.
    let q = vocab("qwen2");
    assert_eq!(
        (q.bos_id(), q.eos_id(), q.add_bos_by_default()),
        (Some(151643), Some(151643), false)
    );
    assert_eq!(q.stop_ids(), [128247, 151643, 151645]);
    assert_eq!(q.encode("Hi", true).unwrap(), [151643, 13048]);

    let g = vocab("gpt-2");
    assert_eq!(g.stop_ids(), [50256]);
    assert_eq!(g.encode("Hi", false).unwrap(), [17250]);

    // StarCoder: <|endoftext|> and the FIM pad token <fim_pad> end generation.
    let s = vocab("starcoder");
    assert_eq!(s.stop_ids(), [0, 4]);
    assert_eq!(s.encode("Hi", false).unwrap(), [12589]);
}

#[test]
fn special_tokens_are_parsed_only_when_asked() {
    let q = vocab("qwen2");
    let text = "<|im_start|>user\nhi<|im_end|>";
    let parsed = q.encode(text, false).unwrap();
    assert_eq!(parsed.first(), Some(&151644));
    assert_eq!(parsed.last(), Some(&151645));
    let literal = q.encode_literal(text, false).unwrap();
    assert!(
        !literal.contains(&151644) && !literal.contains(&151645),
        "{literal:?}"
    );
    assert_eq!(q.decode(&literal, false).unwrap(), text);
    assert_eq!(q.decode(&parsed, false).unwrap(), text);
    assert_eq!(q.decode(&parsed, true).unwrap(), "user\nhi");
    assert!(matches!(
        q.decode(&[999_999], false),
        Err(TokenizerError::UnknownId { id: 999_999, .. })
    ));
}

#[test]
fn text_stream_never_splits_characters() {
    let q = vocab("qwen2");
    let text = "naïve 🦙🦀 日本語 → ok\n    def f():\n\treturn 'é'";
    let ids = q.encode(text, false).unwrap();
    // The emoji take several byte-level tokens each, so some pushes must hold text back.
    let mut stream = TextStream::new(&q);
    let mut chunks = Vec::new();
    let mut held = 0;
    for &id in &ids {
        match stream.push(id).unwrap() {
            Some(chunk) => chunks.push(chunk),
            None => held += 1,
        }
    }
    if let Some(rest) = stream.finish().unwrap() {
        chunks.push(rest);
    }
    assert!(held > 0, "expected incomplete characters to be held back");
    assert!(chunks.iter().all(|c| !c.contains('\u{FFFD}')), "{chunks:?}");
    assert_eq!(chunks.concat(), text);

    // Control tokens are left out by default and kept on request.
    let ids = q.encode("<|im_start|>hi<|im_end|>", false).unwrap();
    let run = |mut s: TextStream| {
        let mut out: String = ids.iter().filter_map(|&id| s.push(id).unwrap()).collect();
        out.extend(s.finish().unwrap());
        out
    };
    assert_eq!(run(TextStream::new(&q)), "hi");
    assert_eq!(
        run(TextStream::with_skip_special(&q, false)),
        "<|im_start|>hi<|im_end|>"
    );
}

// ---------------------------------------------------------------------------------------------
// The real models, against llama.cpp's recorded behaviour.

fn model_path(name: &str) -> Option<PathBuf> {
    let root = match std::env::var_os("CODEPLAN_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME")?).join(".cache/codeplan/models"),
    };
    let path = root.join(name).join("model.gguf");
    if path.exists() {
        Some(path)
    } else {
        if std::env::var("CODEPLAN_REQUIRE_MODELS")
            .is_ok_and(|v| v.split(',').any(|m| m.trim() == name))
        {
            panic!(
                "{name} is required (CODEPLAN_REQUIRE_MODELS) but {} is absent",
                path.display()
            );
        }
        println!(
            "SKIPPED: {} is absent (set CODEPLAN_MODELS or fetch the model into ~/.cache/codeplan/models; see README)",
            path.display()
        );
        None
    }
}

fn reference() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("llama_cpp_reference.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn messages(v: &serde_json::Value) -> Vec<ChatMessage> {
    serde_json::from_value(v.clone()).unwrap()
}

fn check_real_model(name: &str) {
    let Some(path) = model_path(name) else {
        return;
    };
    let reference = reference();
    let r = &reference["models"][name];
    let content = read_gguf(&path);
    let tok = Tokenizer::from_gguf(&content).unwrap();
    let template = ChatTemplate::from_gguf(&content)
        .unwrap()
        .expect("the model has a chat template");
    let mut failures = Vec::new();

    // Vocabulary facts.
    assert_eq!(
        tok.vocab_size() as u64,
        r["n_vocab"].as_u64().unwrap(),
        "{name}: n_vocab"
    );
    assert_eq!(
        tok.bos_id().map(u64::from),
        r["bos_id"].as_u64(),
        "{name}: bos"
    );
    assert_eq!(
        tok.eos_id().map(u64::from),
        r["eos_id"].as_u64(),
        "{name}: eos"
    );
    assert_eq!(
        tok.add_bos_by_default(),
        r["add_bos"].as_bool().unwrap(),
        "{name}: add_bos"
    );
    assert_eq!(
        tok.stop_ids(),
        ids(&r["eog_ids"]),
        "{name}: end-of-generation ids"
    );

    // (a) Chat prompts: our render is the reference Jinja2 render, and our ids are llama.cpp's
    // for tokenize(text, add_bos=False, special=True).
    let chats = r["chats"].as_array().unwrap();
    for chat in chats {
        let label = format!(
            "{name} {} agp={}",
            chat["name"], chat["add_generation_prompt"]
        );
        let msgs = messages(&chat["messages"]);
        let rendered = template
            .render(&msgs, chat["add_generation_prompt"].as_bool().unwrap())
            .unwrap();
        let expected_text = chat["text"].as_str().unwrap();
        if rendered != expected_text {
            failures.push(format!(
                "{label}: render\n    expected {expected_text:?}\n    got      {rendered:?}"
            ));
        }
        let got = tok.encode(expected_text, false).unwrap();
        let expected = ids(&chat["ids"]);
        if got != expected {
            failures.push(format!(
                "{label}: ids\n    expected {expected:?}\n    got      {got:?}"
            ));
        }
        if tok.decode(&got, false).unwrap() != expected_text {
            failures.push(format!("{label}: decode does not give the text back"));
        }
    }

    // llama.cpp's tokenizer test inputs, tokenised by the real model (no special parsing).
    let inputs = {
        let dir = fixtures().join("vocab");
        let raw = std::fs::read_to_string(dir.join("ggml-vocab-qwen2.gguf.inp")).unwrap();
        let mut v: Vec<String> = raw
            .split("\n__ggml_vocab_test__\n")
            .map(String::from)
            .collect();
        if v.last().is_some_and(|s| s.is_empty()) {
            v.pop();
        }
        v
    };
    let vocab_cases = r["vocab_cases"]["ids"].as_array().unwrap();
    assert_eq!(inputs.len(), vocab_cases.len(), "{name}: case count");
    for (text, expected) in inputs.iter().zip(vocab_cases) {
        let got = tok.encode_literal(text, false).unwrap();
        if got != ids(expected) {
            failures.push(format!(
                "{name} vocab case {text:?}\n    expected {:?}\n    got      {got:?}",
                ids(expected)
            ));
        }
    }
    let extra = r["extra_cases"].as_array().unwrap();
    for case in extra {
        let text = case["text"].as_str().unwrap();
        let got = if case["parse_special"].as_bool().unwrap() {
            tok.encode(text, false).unwrap()
        } else {
            tok.encode_literal(text, false).unwrap()
        };
        if got != ids(&case["ids"]) {
            failures.push(format!(
                "{name} extra case {text:?} parse_special={}\n    expected {:?}\n    got      {got:?}",
                case["parse_special"],
                ids(&case["ids"])
            ));
        }
    }

    // The recorded completions' prompts tokenise identically (the runtime's tests rely on them).
    let completions = r["completions"].as_array().unwrap();
    for c in completions {
        let got = tok
            .encode(c["prompt"].as_str().unwrap(), tok.add_bos_by_default())
            .unwrap();
        if got != ids(&c["prompt_ids"]) {
            failures.push(format!(
                "{name} completion prompt {}: ids differ",
                c["kind"]
            ));
        }
        let generated = ids(&c["generated_ids"]);
        let text = tok.decode(&generated, true).unwrap();
        if text != c["generated_text"].as_str().unwrap() {
            failures.push(format!(
                "{name} completion {}: decoded {text:?}, llama.cpp {:?}",
                c["kind"], c["generated_text"]
            ));
        }
    }

    let total = chats.len() * 2 + vocab_cases.len() + extra.len() + completions.len() * 2;
    assert!(
        failures.is_empty(),
        "{name}: {} of {total} checks fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn real_qwen2_5_coder_matches_llama_cpp() {
    check_real_model("qwen2.5-coder-0.5b");
}

#[test]
fn real_smollm2_matches_llama_cpp() {
    check_real_model("smollm2-135m");
}

// ---------------------------------------------------------------------------------------------
// Bad input: small GGUFs written with candle's writer, each broken in one way.

fn tiny_metadata() -> Vec<(&'static str, Value)> {
    let strings =
        |v: &[&str]| Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect());
    vec![
        ("tokenizer.ggml.model", Value::String("gpt2".into())),
        ("tokenizer.ggml.pre", Value::String("qwen2".into())),
        (
            "tokenizer.ggml.tokens",
            strings(&["a", "b", "ab", "<|im_end|>", "Ġ"]),
        ),
        ("tokenizer.ggml.merges", strings(&["a b"])),
        (
            "tokenizer.ggml.token_type",
            Value::Array([1, 1, 1, 3, 1].into_iter().map(Value::I32).collect()),
        ),
        ("tokenizer.ggml.eos_token_id", Value::U32(3)),
    ]
}

fn write_and_load(metadata: &[(&'static str, Value)]) -> Result<Tokenizer, TokenizerError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.gguf");
    let refs: Vec<(&str, &Value)> = metadata.iter().map(|(k, v)| (*k, v)).collect();
    let mut f = std::fs::File::create(&path).unwrap();
    gguf_file::write(&mut f, &refs, &[]).unwrap();
    drop(f);
    Tokenizer::from_gguf(&read_gguf(&path))
}

fn with(key: &'static str, value: Option<Value>) -> Vec<(&'static str, Value)> {
    let mut m: Vec<_> = tiny_metadata()
        .into_iter()
        .filter(|(k, _)| *k != key)
        .collect();
    if let Some(v) = value {
        m.push((key, v));
    }
    m
}

fn err_text(metadata: &[(&'static str, Value)]) -> String {
    write_and_load(metadata)
        .expect_err("should be rejected")
        .to_string()
}

#[test]
fn tiny_gguf_tokenizer_works() {
    let t = write_and_load(&tiny_metadata()).unwrap();
    assert_eq!(t.encode("ab<|im_end|>ba", false).unwrap(), [2, 3, 1, 0]);
    assert_eq!(t.stop_ids(), [3]);
    assert_eq!(t.bos_id(), None);
    assert!(!t.add_bos_by_default());
    assert_eq!(t.decode(&[2, 4, 2], false).unwrap(), "ab ab");
}

#[test]
fn gguf_without_tokenizer_metadata_names_the_key() {
    let msg = err_text(&[("general.architecture", Value::String("llama".into()))]);
    assert!(
        msg.contains("tokenizer.ggml.model") && msg.contains("missing"),
        "{msg}"
    );
    let msg = err_text(&with("tokenizer.ggml.tokens", None));
    assert!(msg.contains("tokenizer.ggml.tokens"), "{msg}");
    let msg = err_text(&with("tokenizer.ggml.merges", None));
    assert!(msg.contains("tokenizer.ggml.merges"), "{msg}");
}

#[test]
fn unsupported_model_and_unknown_pre_name_the_value() {
    let msg = err_text(&with(
        "tokenizer.ggml.model",
        Some(Value::String("llama".into())),
    ));
    assert!(
        msg.contains("`llama`") && msg.contains("tokenizer.ggml.model"),
        "{msg}"
    );
    let msg = err_text(&with(
        "tokenizer.ggml.pre",
        Some(Value::String("mystery-bpe".into())),
    ));
    assert!(
        msg.contains("`mystery-bpe`") && msg.contains("tokenizer.ggml.pre"),
        "{msg}"
    );
}

#[test]
fn malformed_merges_name_the_rule() {
    let strings =
        |v: &[&str]| Value::Array(v.iter().map(|s| Value::String(s.to_string())).collect());
    let msg = err_text(&with(
        "tokenizer.ggml.merges",
        Some(strings(&["a b", "ab"])),
    ));
    assert!(
        msg.contains("tokenizer.ggml.merges") && msg.contains("#1") && msg.contains("\"ab\""),
        "{msg}"
    );
    let msg = err_text(&with("tokenizer.ggml.merges", Some(strings(&["a c"]))));
    assert!(msg.contains("#0") && msg.contains("\"c\""), "{msg}");
    let msg = err_text(&with("tokenizer.ggml.merges", Some(strings(&["b a"]))));
    assert!(msg.contains("\"ba\"") && msg.contains("not in"), "{msg}");
    let msg = err_text(&with(
        "tokenizer.ggml.merges",
        Some(Value::Array(vec![Value::U32(1)])),
    ));
    assert!(
        msg.contains("tokenizer.ggml.merges") && msg.contains("array of strings"),
        "{msg}"
    );
}

#[test]
fn bad_special_ids_and_types_name_the_key() {
    let msg = err_text(&with("tokenizer.ggml.eos_token_id", Some(Value::U32(99))));
    assert!(
        msg.contains("tokenizer.ggml.eos_token_id") && msg.contains("99"),
        "{msg}"
    );
    let msg = err_text(&with(
        "tokenizer.ggml.tokens",
        Some(Value::String("abc".into())),
    ));
    assert!(msg.contains("tokenizer.ggml.tokens"), "{msg}");
    let msg = err_text(&with(
        "tokenizer.ggml.token_type",
        Some(Value::Array(vec![Value::I32(1)])),
    ));
    assert!(
        msg.contains("tokenizer.ggml.token_type") && msg.contains("1 entries for 5 tokens"),
        "{msg}"
    );
}

// ---------------------------------------------------------------------------------------------
// Hugging Face folders: the GGUF-built tokenizer saved as tokenizer.json must load back and still
// reproduce llama.cpp's vectors; BOS/EOS/stop ids come from the JSON configs.

#[test]
fn hf_dir_round_trip_reproduces_llama_cpp_vectors() {
    let gguf_tok = vocab("qwen2");
    let dir = tempfile::tempdir().unwrap();
    gguf_tok
        .inner()
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    // Qwen2.5's own configs: no BOS, EOS <|im_end|>, generation also stops on <|endoftext|>.
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"bos_token": null, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "add_bos_token": false}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("generation_config.json"),
        r#"{"eos_token_id": [151645, 151643]}"#,
    )
    .unwrap();
    let hf = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(
        (hf.bos_id(), hf.eos_id(), hf.pad_id()),
        (None, Some(151645), Some(151643))
    );
    assert!(!hf.add_bos_by_default());
    assert_eq!(hf.stop_ids(), [128247, 151643, 151645]);
    assert_eq!(hf.vocab_size(), gguf_tok.vocab_size());

    let vocab_dir = fixtures().join("vocab");
    let cases = read_cases(
        &vocab_dir.join("ggml-vocab-qwen2.gguf.inp"),
        &vocab_dir.join("ggml-vocab-qwen2.gguf.out"),
    );
    let failures: Vec<_> = cases
        .iter()
        .filter(|(text, expected)| &hf.encode_literal(text, false).unwrap() != *expected)
        .map(|(text, _)| text.clone())
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} cases fail: {failures:?}",
        failures.len(),
        cases.len()
    );
    let chat = "<|im_start|>user\nhi<|im_end|>\n";
    assert_eq!(
        hf.encode(chat, false).unwrap(),
        gguf_tok.encode(chat, false).unwrap()
    );

    // Missing or broken files name the file.
    let empty = tempfile::tempdir().unwrap();
    let err = Tokenizer::from_hf_dir(empty.path())
        .unwrap_err()
        .to_string();
    assert!(err.contains("tokenizer.json"), "{err}");
    std::fs::write(dir.path().join("tokenizer_config.json"), "{oops").unwrap();
    let err = Tokenizer::from_hf_dir(dir.path()).unwrap_err().to_string();
    assert!(err.contains("tokenizer_config.json"), "{err}");
}

#[test]
fn hf_dir_bos_from_config() {
    let gguf_tok = vocab("llama-bpe");
    let dir = tempfile::tempdir().unwrap();
    gguf_tok
        .inner()
        .save(dir.path().join("tokenizer.json"), false)
        .unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"bos_token": {"content": "<|begin_of_text|>"}, "eos_token": "<|eot_id|>", "add_bos_token": true}"#,
    )
    .unwrap();
    let hf = Tokenizer::from_hf_dir(dir.path()).unwrap();
    assert_eq!(
        (hf.bos_id(), hf.eos_id(), hf.add_bos_by_default()),
        (Some(128000), Some(128009), true)
    );
    assert_eq!(hf.encode("Hi", true).unwrap(), [128000, 13347]);
    assert_eq!(hf.stop_ids(), [128001, 128009]);
}
