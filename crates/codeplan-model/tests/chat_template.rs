//! Chat templates rendered as transformers renders them. The real templates are the ones inside
//! the two models' GGUFs (copied to `fixtures/templates/`, see the README there); expectations are
//! the ChatML layout those templates document, written out by hand.

use std::path::{Path, PathBuf};

use candle_core::quantized::gguf_file::Content;
use codeplan_model::chat::{ChatError, ChatMessage, ChatTemplate};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
}

fn template(file: &str, bos: &str, eos: &str) -> ChatTemplate {
    let source = std::fs::read_to_string(fixtures().join("templates").join(file)).unwrap();
    ChatTemplate::from_source(&source, bos, eos).unwrap()
}

fn qwen() -> ChatTemplate {
    template("qwen2.5-coder-0.5b.jinja", "<|endoftext|>", "<|im_end|>")
}

fn smol() -> ChatTemplate {
    template("smollm2-135m.jinja", "<|im_start|>", "<|im_end|>")
}

fn msg(role: &str, content: &str) -> ChatMessage {
    ChatMessage::new(role, content)
}

const QWEN_DEFAULT_SYSTEM: &str =
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n";
const SMOL_DEFAULT_SYSTEM: &str =
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";

#[test]
fn qwen_system_and_user() {
    let m = [
        msg("system", "Be brief."),
        msg("user", "Sum 2 and 3 in Python.\n```py\nx = 2\n```"),
    ];
    let body = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nSum 2 and 3 in Python.\n```py\nx = 2\n```<|im_end|>\n";
    assert_eq!(qwen().render(&m, false).unwrap(), body);
    assert_eq!(
        qwen().render(&m, true).unwrap(),
        format!("{body}<|im_start|>assistant\n")
    );
}

#[test]
fn qwen_user_only_gets_the_default_system_prompt() {
    let m = [msg("user", "hi")];
    let body = format!("{QWEN_DEFAULT_SYSTEM}<|im_start|>user\nhi<|im_end|>\n");
    assert_eq!(qwen().render(&m, false).unwrap(), body);
    assert_eq!(
        qwen().render(&m, true).unwrap(),
        format!("{body}<|im_start|>assistant\n")
    );
}

#[test]
fn qwen_multi_turn() {
    let m = [
        msg("system", "S"),
        msg("user", "U1"),
        msg("assistant", "A1"),
        msg("user", "U2"),
    ];
    let expected = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n\
                    <|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n\
                    <|im_start|>assistant\n";
    assert_eq!(qwen().render(&m, true).unwrap(), expected);
    // A training example ends with the assistant's turn closed by <|im_end|>.
    let m = [msg("user", "U1"), msg("assistant", "A1")];
    assert_eq!(
        qwen().render(&m, false).unwrap(),
        format!("{QWEN_DEFAULT_SYSTEM}<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n")
    );
}

#[test]
fn smollm_system_and_user() {
    let m = [msg("system", "Be brief."), msg("user", "hi")];
    let body = "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n";
    assert_eq!(smol().render(&m, false).unwrap(), body);
    assert_eq!(
        smol().render(&m, true).unwrap(),
        format!("{body}<|im_start|>assistant\n")
    );
}

#[test]
fn smollm_user_only_and_multi_turn() {
    let m = [msg("user", "hi")];
    let body = format!("{SMOL_DEFAULT_SYSTEM}<|im_start|>user\nhi<|im_end|>\n");
    assert_eq!(smol().render(&m, false).unwrap(), body);
    assert_eq!(
        smol().render(&m, true).unwrap(),
        format!("{body}<|im_start|>assistant\n")
    );

    let m = [msg("user", "U1"), msg("assistant", "A1"), msg("user", "U2")];
    assert_eq!(
        smol().render(&m, true).unwrap(),
        format!(
            "{SMOL_DEFAULT_SYSTEM}<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n\
             <|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n"
        )
    );
}

/// The fixture templates are the GGUFs' own (skips when the models are absent).
#[test]
fn fixtures_are_the_gguf_templates() {
    let root = match std::env::var_os("CODEPLAN_MODELS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(std::env::var_os("HOME").unwrap_or_default())
            .join(".cache/codeplan/models"),
    };
    for (model, file) in [
        ("qwen2.5-coder-0.5b", "qwen2.5-coder-0.5b.jinja"),
        ("smollm2-135m", "smollm2-135m.jinja"),
    ] {
        let path = root.join(model).join("model.gguf");
        if !path.exists() {
            if std::env::var("CODEPLAN_REQUIRE_MODELS")
                .is_ok_and(|v| v.split(',').any(|m| m.trim() == model))
            {
                panic!("{model} is required (CODEPLAN_REQUIRE_MODELS) but absent");
            }
            println!(
                "SKIPPED: {} is absent (set CODEPLAN_MODELS or fetch the model)",
                path.display()
            );
            continue;
        }
        let content = Content::read(&mut std::fs::File::open(&path).unwrap()).unwrap();
        let from_gguf = ChatTemplate::from_gguf(&content)
            .unwrap()
            .expect("a chat template");
        let fixture = std::fs::read_to_string(fixtures().join("templates").join(file)).unwrap();
        assert_eq!(from_gguf.source(), fixture, "{model}");
        // BOS/EOS strings come from the GGUF's token list.
        let m = [msg("user", "x")];
        let expected = template(file, "", "").render(&m, true).unwrap();
        assert_eq!(from_gguf.render(&m, true).unwrap(), expected);
    }
}

/// llama.cpp's qwen2 vocab fixture carries a (Qwen1.5) template of its own.
#[test]
fn template_from_the_vocab_fixture_gguf() {
    let path = fixtures().join("vocab").join("ggml-vocab-qwen2.gguf");
    let content = Content::read(&mut std::fs::File::open(path).unwrap()).unwrap();
    let t = ChatTemplate::from_gguf(&content)
        .unwrap()
        .expect("a chat template");
    assert_eq!(
        t.render(&[msg("user", "hi")], true).unwrap(),
        "<|im_start|>system\nYou are a helpful assistant<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    );
    let gpt2 = fixtures().join("vocab").join("ggml-vocab-gpt-2.gguf");
    let content = Content::read(&mut std::fs::File::open(gpt2).unwrap()).unwrap();
    assert!(ChatTemplate::from_gguf(&content).unwrap().is_none());
}

#[test]
fn raise_exception_is_a_clear_error() {
    // The shape of Mistral/Gemma templates that refuse a system role.
    let t = ChatTemplate::from_source(
        "{% for message in messages %}{% if message['role'] == 'system' %}\
         {{ raise_exception('System role not supported') }}{% endif %}{{ message['content'] }}{% endfor %}",
        "<s>",
        "</s>",
    )
    .unwrap();
    assert_eq!(t.render(&[msg("user", "ok")], false).unwrap(), "ok");
    let err = t.render(&[msg("system", "no")], false).unwrap_err();
    assert!(
        matches!(&err, ChatError::Raised(m) if m == "System role not supported"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("System role not supported"),
        "{err}"
    );
}

#[test]
fn syntax_and_runtime_errors_are_reported() {
    let err = ChatTemplate::from_source("{% for m in messages %}", "", "").unwrap_err();
    assert!(matches!(err, ChatError::Compile(_)), "{err:?}");
    let t = ChatTemplate::from_source("{{ messages[0].content | no_such_filter }}", "", "");
    match t {
        Err(ChatError::Compile(_)) => {}
        Ok(t) => assert!(matches!(
            t.render(&[msg("user", "x")], false),
            Err(ChatError::Render(_))
        )),
        Err(e) => panic!("{e:?}"),
    }
}

/// transformers' Jinja settings: trim_blocks, lstrip_blocks, no trailing newline kept.
#[test]
fn whitespace_control_matches_transformers() {
    let source = "{% for message in messages %}\n    {% if message.role == 'user' %}\n[{{ message.content }}]\n    {% endif %}\n{% endfor %}\n";
    let t = ChatTemplate::from_source(source, "", "").unwrap();
    // Checked against Python Jinja2 3.1 with trim_blocks=True, lstrip_blocks=True.
    assert_eq!(
        t.render(
            &[msg("user", "a"), msg("assistant", "b"), msg("user", "c")],
            false
        )
        .unwrap(),
        "[a]\n[c]\n"
    );
    let t = ChatTemplate::from_source("{{ bos_token }}x\n", "<s>", "").unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "<s>x");
}

/// The helpers HF templates use: Python string methods, tojson, strftime_now, namespace, slicing;
/// and Python's printing of True/False/None (checked against Python Jinja2 3.1).
#[test]
fn hf_template_helpers() {
    let source = concat!(
        "{%- set ns = namespace(sys='') -%}",
        "{%- if messages[0].role == 'system' %}{% set ns.sys = messages[0].content.strip() %}{% endif -%}",
        "{{ bos_token }}[{{ ns.sys }}]",
        "{%- for m in messages[1:] %}",
        "{{ m.role.upper() }}:{{ m.content.startswith('#') }}:{{ m.content.split(' ') | length }}:{{ m.content.replace('a', 'o') }}",
        "{%- if not loop.last %},{% endif %}",
        "{%- endfor %}|{{ none }}|{{ undefined_name }}|{{ {'k': 'é<\">', 'n': [1, 2.5, none, true]} | tojson }}",
        "|{{ strftime_now('%Y') | length }}{{ eos_token }}"
    );
    let t = ChatTemplate::from_source(source, "<s>", "</s>").unwrap();
    let out = t
        .render(
            &[
                msg("system", "  sys  "),
                msg("user", "# a b"),
                msg("assistant", "banana"),
            ],
            false,
        )
        .unwrap();
    assert_eq!(out, "<s>[sys]USER:True:3:# o b,ASSISTANT:False:1:bonono|None||{\"k\": \"é<\\\">\", \"n\": [1, 2.5, null, true]}|4</s>");
}

#[test]
fn from_hf_dir_reads_every_template_form() {
    let dir = tempfile::tempdir().unwrap();
    let config = |value: serde_json::Value| {
        std::fs::write(dir.path().join("tokenizer_config.json"), value.to_string()).unwrap();
    };
    // No config, no template.
    assert!(ChatTemplate::from_hf_dir(dir.path()).unwrap().is_none());
    config(serde_json::json!({"bos_token": "<s>"}));
    assert!(ChatTemplate::from_hf_dir(dir.path()).unwrap().is_none());

    // A string, with BOS/EOS given as AddedToken objects.
    config(serde_json::json!({
        "chat_template": "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}",
        "bos_token": {"content": "<s>", "special": true},
        "eos_token": "</s>",
    }));
    let t = ChatTemplate::from_hf_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.render(&[msg("user", "x")], false).unwrap(), "<s>x</s>");

    // The list-of-named-templates form: "default" is taken.
    config(serde_json::json!({"chat_template": [
        {"name": "tool_use", "template": "TOOLS"},
        {"name": "default", "template": "DEFAULT {{ messages | length }}"},
    ]}));
    let t = ChatTemplate::from_hf_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.render(&[msg("user", "x")], false).unwrap(), "DEFAULT 1");

    config(serde_json::json!({"chat_template": [{"name": "tool_use", "template": "TOOLS"}]}));
    let err = ChatTemplate::from_hf_dir(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("default") && err.to_string().contains("tool_use"),
        "{err}"
    );

    config(serde_json::json!({"chat_template": 3}));
    let err = ChatTemplate::from_hf_dir(dir.path()).unwrap_err();
    assert!(
        err.to_string().contains("chat_template") && err.to_string().contains("a number"),
        "{err}"
    );

    // A chat_template.jinja file wins over the config, as in current transformers.
    config(serde_json::json!({"chat_template": "CONFIG"}));
    std::fs::write(dir.path().join("chat_template.jinja"), "FILE").unwrap();
    let t = ChatTemplate::from_hf_dir(dir.path()).unwrap().unwrap();
    assert_eq!(t.render(&[], false).unwrap(), "FILE");

    std::fs::write(dir.path().join("tokenizer_config.json"), "{not json").unwrap();
    let err = ChatTemplate::from_hf_dir(dir.path()).unwrap_err();
    assert!(err.to_string().contains("tokenizer_config.json"), "{err}");
}
