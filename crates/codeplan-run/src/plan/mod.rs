//! The plan of work: the stages each variant needs, each keyed by a hash of its inputs.
//!
//! A stage's key covers the codeplan version, the stage's settings (minus those that cannot
//! change its result, such as rate limits or worker counts), the contents of the files it reads
//! (problems, models, templates) and the keys of the stages it reads from. Its outputs live in
//! `stages/<kind>-<key prefix>/`, so changing the student's settings makes new train, generate
//! and eval stages but leaves the teacher's stage — and every answer it paid for — where it is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use toml::{Table, Value};

use crate::error::{Result, RunError};
use crate::experiment::{Experiment, StudentExport, Variant};
use crate::hashes::FileHashes;

/// The codeplan version every key includes.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Settings that change how a stage runs but never what it produces; left out of keys.
const OPERATIONAL: &[&str] = &[
    "concurrency",
    "rpm",
    "tpm",
    "request_timeout",
    "max_retries",
    "retry_base",
    "cache_dir",
    "no_cache",
    "max_cost",
    "max_requests",
    "price_in",
    "price_out",
    "api_key_env",
    "models_dir",
    "jobs",
    "save_every",
    "keep_checkpoints",
    "require_sandbox",
];

/// What a stage does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StageKind {
    /// `codeplan distill`: the teacher's plans.
    Distill,
    /// `codeplan train`: one student.
    Train,
    /// `codeplan generate`: samples of one student.
    Generate,
    /// `codeplan eval`: verdicts of those samples.
    Eval,
}

impl StageKind {
    /// The verb's name.
    pub fn name(self) -> &'static str {
        match self {
            StageKind::Distill => "distill",
            StageKind::Train => "train",
            StageKind::Generate => "generate",
            StageKind::Eval => "eval",
        }
    }
}

/// One unit of work, shared by every variant that needs it.
#[derive(Clone, Debug, Serialize)]
pub struct Stage {
    /// What it does.
    pub kind: StageKind,
    /// sha256 (hex) of its inputs.
    pub key: String,
    /// Its output folder.
    pub dir: PathBuf,
    /// The verb's settings file, with problems, inputs and outputs filled in.
    pub config: Table,
    /// What the key was computed from.
    pub inputs: Json,
    /// Stages it reads from (indices into [`Plan::stages`]).
    pub needs: Vec<usize>,
    /// Variants that use it.
    pub variants: Vec<String>,
}

impl Stage {
    /// The verb's settings file in the stage folder.
    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config.toml")
    }

    /// The command that runs this stage by hand.
    pub fn command(&self) -> String {
        format!(
            "codeplan {} --config {}",
            self.kind.name(),
            self.config_path().display()
        )
    }
}

/// Where a finished stage's outputs are.
pub mod outputs {
    use std::path::{Path, PathBuf};

    /// A distill stage's kept plans.
    pub fn plans(dir: &Path) -> PathBuf {
        dir.join("plans.jsonl")
    }
    /// A distill stage's summary.
    pub fn plans_summary(dir: &Path) -> PathBuf {
        dir.join("summary.json")
    }
    /// A train stage's metrics.
    pub fn metrics(dir: &Path) -> PathBuf {
        dir.join("metrics.jsonl")
    }
    /// A generate stage's samples.
    pub fn samples(dir: &Path) -> PathBuf {
        dir.join("samples.jsonl")
    }
    /// An eval stage's verdicts.
    pub fn verdicts(dir: &Path) -> PathBuf {
        dir.join("verdicts.jsonl")
    }
}

/// One variant and the stages that produce it.
#[derive(Clone, Debug, Serialize)]
pub struct VariantPlan {
    /// The variant.
    pub variant: Variant,
    /// Its teacher stage, when it trains on plans.
    pub distill: Option<usize>,
    /// Its training stage.
    pub train: usize,
    /// Its sampling stage.
    pub generate: usize,
    /// Its judging stage.
    pub eval: usize,
}

/// Every stage of an experiment, in an order that runs inputs before their readers.
#[derive(Clone, Debug, Serialize)]
pub struct Plan {
    /// The run folder.
    pub out: PathBuf,
    /// The stages, deduplicated by key.
    pub stages: Vec<Stage>,
    /// The variants.
    pub variants: Vec<VariantPlan>,
    /// Named models (`codeplan models list`) the stages use, installed or not.
    pub named_models: Vec<String>,
}

/// Builds the plan of an experiment. `hashes` supplies (and remembers) file contents' hashes.
pub fn plan(experiment: &Experiment, hashes: &mut FileHashes) -> Result<Plan> {
    let out = absolute(&experiment.out_dir())?;
    let mut builder = Builder {
        out: out.clone(),
        stages: Vec::new(),
        by_key: BTreeMap::new(),
        hashes,
        export: experiment.student_export,
        named: Vec::new(),
    };
    let train_data = DataInput::new(&experiment.train_data, "train_data", builder.hashes)?;
    let eval_data = DataInput::new(&experiment.eval_data, "eval_data", builder.hashes)?;
    for key in ["format", "skip_invalid"] {
        if experiment.train_data.contains_key(key) {
            return Err(RunError::Experiment(format!(
                "[train_data] `{key}`: not supported for training problems (the trainer detects each file's format)"
            )));
        }
    }
    let mut variants = Vec::new();
    for variant in experiment.variants() {
        let distill = if variant.uses_plans() {
            Some(builder.distill(&variant, &train_data)?)
        } else {
            None
        };
        let train = builder.train(&variant, &train_data, distill)?;
        let generate = builder.generate(&variant, &experiment.generate, &eval_data, train)?;
        let train = train.0;
        let eval = builder.eval(&variant, &experiment.eval, &eval_data, generate)?;
        variants.push(VariantPlan {
            variant,
            distill,
            train,
            generate,
            eval,
        });
    }
    Ok(by_kind(Plan {
        out,
        stages: builder.stages,
        variants,
        named_models: builder.named,
    }))
}

/// Orders stages by kind — every distillation, then training, sampling, judging — so the
/// teacher's work (the slowest to redo by hand) is done first and a run's progress is plain.
fn by_kind(plan: Plan) -> Plan {
    let rank = |k: StageKind| k as usize;
    let mut order: Vec<usize> = (0..plan.stages.len()).collect();
    order.sort_by_key(|&i| (rank(plan.stages[i].kind), i));
    let mut new_index = vec![0; order.len()];
    for (new, &old) in order.iter().enumerate() {
        new_index[old] = new;
    }
    let stages = order
        .iter()
        .map(|&i| {
            let mut s = plan.stages[i].clone();
            s.needs = s.needs.iter().map(|&n| new_index[n]).collect();
            s
        })
        .collect();
    let variants = plan
        .variants
        .into_iter()
        .map(|mut v| {
            v.distill = v.distill.map(|i| new_index[i]);
            v.train = new_index[v.train];
            v.generate = new_index[v.generate];
            v.eval = new_index[v.eval];
            v
        })
        .collect();
    Plan {
        out: plan.out,
        stages,
        variants,
        named_models: plan.named_models,
    }
}

/// A data section: its settings for the verbs, and its identity for keys.
struct DataInput {
    /// The section with absolute paths, as the verbs read it.
    table: Table,
    /// Selection settings and file hashes.
    identity: Json,
}

impl DataInput {
    fn new(section: &Table, name: &str, hashes: &mut FileHashes) -> Result<DataInput> {
        let mut table = section.clone();
        let paths: Vec<PathBuf> = match section.get("data") {
            Some(Value::String(s)) => vec![PathBuf::from(s)],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str().map(PathBuf::from).ok_or_else(|| {
                        RunError::Experiment(format!("[{name}] `data`: every entry must be a path"))
                    })
                })
                .collect::<Result<_>>()?,
            _ => {
                return Err(RunError::Experiment(format!(
                    "[{name}] needs `data = [\"path\", ...]`"
                )))
            }
        };
        let mut files = Vec::new();
        let mut absolute_paths = Vec::new();
        for p in &paths {
            if !p.exists() {
                return Err(RunError::Experiment(format!(
                    "[{name}] `data`: {} does not exist",
                    p.display()
                )));
            }
            files.push(hashes.sha256(p)?);
            let abs = absolute(p)?;
            absolute_paths.push(Value::String(abs.display().to_string()));
        }
        table.insert("data".into(), Value::Array(absolute_paths));
        let mut selection = section.clone();
        selection.remove("data");
        Ok(DataInput {
            table,
            identity: json!({ "files": files, "selection": canonical(&selection) }),
        })
    }
}

struct Builder<'a> {
    out: PathBuf,
    stages: Vec<Stage>,
    by_key: BTreeMap<String, usize>,
    hashes: &'a mut FileHashes,
    export: Option<StudentExport>,
    named: Vec<String>,
}

impl Builder<'_> {
    /// Adds a stage unless one with the same key exists; returns its index. `out` gives the
    /// verb's `out` setting from the stage folder.
    fn add(
        &mut self,
        kind: StageKind,
        variant: &str,
        mut config: Table,
        inputs: Json,
        needs: Vec<usize>,
        out: fn(&Path) -> PathBuf,
    ) -> usize {
        let key = sha256_hex(
            serde_json::to_string(&json!({ "version": VERSION, "kind": kind, "inputs": inputs }))
                .expect("JSON values serialise")
                .as_bytes(),
        );
        if let Some(&i) = self.by_key.get(&key) {
            if !self.stages[i].variants.iter().any(|v| v == variant) {
                self.stages[i].variants.push(variant.to_owned());
            }
            return i;
        }
        let dir = self
            .out
            .join("stages")
            .join(format!("{}-{}", kind.name(), &key[..12]));
        config.insert("out".into(), Value::String(out(&dir).display().to_string()));
        self.stages.push(Stage {
            kind,
            key: key.clone(),
            dir,
            config,
            inputs,
            needs,
            variants: vec![variant.to_owned()],
        });
        self.by_key.insert(key, self.stages.len() - 1);
        self.stages.len() - 1
    }

    fn distill(&mut self, variant: &Variant, data: &DataInput) -> Result<usize> {
        let mut config = variant.teacher.clone();
        let mut files = BTreeMap::new();
        if let Some(spec) = config.get("teacher").and_then(Value::as_str) {
            if let Some(model) = spec.strip_prefix("local:") {
                let (_, sha256) = resolve(
                    model,
                    config.get("models_dir"),
                    self.hashes,
                    &mut self.named,
                )?;
                files.insert("teacher_model", sha256);
            }
        }
        if let Some(t) = config.get("templates").and_then(Value::as_str) {
            let path = PathBuf::from(t);
            files.insert("templates", self.hashes.sha256(&path)?);
            config.insert("templates".into(), path_value(&path)?);
        }
        // The built-in prompts are an input too (a file's missing sections fall back to them).
        let builtin = codeplan_teacher::prompts::DEFAULT_TEMPLATES;
        files.insert("builtin_templates", sha256_hex(builtin.as_bytes()));
        let inputs = json!({
            "settings": settings_identity(&config),
            "files": files,
            "problems": data.identity,
        });
        config.extend(data.table.clone());
        Ok(self.add(
            StageKind::Distill,
            &variant.name,
            config,
            inputs,
            Vec::new(),
            |d: &Path| d.to_owned(),
        ))
    }

    fn train(
        &mut self,
        variant: &Variant,
        data: &DataInput,
        distill: Option<usize>,
    ) -> Result<(usize, StudentExport)> {
        let mut config = variant.student.clone();
        let Some(spec) = config
            .get("model")
            .and_then(Value::as_str)
            .map(str::to_owned)
        else {
            return Err(RunError::Experiment(format!(
                "variant `{}`: the student needs `model` in [student] (a fetched name, a .gguf file or a Hugging Face folder)",
                variant.name
            )));
        };
        let (model, model_hash) = resolve(
            &spec,
            config.get("models_dir"),
            self.hashes,
            &mut self.named,
        )?;
        let format = self.export.unwrap_or(
            if model
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
            {
                StudentExport::GgufQ8_0
            } else {
                StudentExport::Hf
            },
        );
        config.insert("model".into(), Value::String(model.display().to_string()));
        // The generate stage reads this export.
        let mut export: Vec<Value> = match config.get("export") {
            Some(Value::Array(a)) => a.clone(),
            _ => vec!["peft".into(), "hf".into()],
        };
        if !export
            .iter()
            .any(|v| v.as_str() == Some(format.config_name()))
        {
            export.push(format.config_name().into());
        }
        config.insert("export".into(), Value::Array(export));
        let plans = distill.map(|i| self.stages[i].key.clone());
        let inputs = json!({
            "settings": settings_identity(&config),
            "model": model_hash,
            "problems": data.identity,
            "plans": plans,
        });
        for (k, v) in &data.table {
            config.insert(k.clone(), v.clone());
        }
        if let Some(i) = distill {
            config.insert(
                "plans".into(),
                Value::String(outputs::plans(&self.stages[i].dir).display().to_string()),
            );
        }
        let index = self.add(
            StageKind::Train,
            &variant.name,
            config,
            inputs,
            distill.into_iter().collect(),
            |d: &Path| d.to_owned(),
        );
        Ok((index, format))
    }

    fn generate(
        &mut self,
        variant: &Variant,
        section: &Table,
        data: &DataInput,
        (train, format): (usize, StudentExport),
    ) -> Result<usize> {
        let mut config = section.clone();
        config.extend(variant.generate.clone());
        let inputs = json!({
            "settings": settings_identity(&config),
            "model": { "train": self.stages[train].key, "export": format.name() },
            "problems": data.identity,
        });
        config.extend(data.table.clone());
        config.insert(
            "model".into(),
            Value::String(format.path(&self.stages[train].dir).display().to_string()),
        );
        Ok(self.add(
            StageKind::Generate,
            &variant.name,
            config,
            inputs,
            vec![train],
            outputs::samples,
        ))
    }

    fn eval(
        &mut self,
        variant: &Variant,
        section: &Table,
        data: &DataInput,
        generate: usize,
    ) -> Result<usize> {
        let mut config = section.clone();
        let inputs = json!({
            "settings": settings_identity(&config),
            "samples": self.stages[generate].key,
            "problems": data.identity,
        });
        config.extend(data.table.clone());
        config.insert(
            "samples".into(),
            Value::String(
                outputs::samples(&self.stages[generate].dir)
                    .display()
                    .to_string(),
            ),
        );
        Ok(self.add(
            StageKind::Eval,
            &variant.name,
            config,
            inputs,
            vec![generate],
            |d: &Path| d.to_owned(),
        ))
    }
}

/// A model name or path resolved to its file or folder and the sha256 of its contents.
///
/// A named model (`codeplan models list`) is known by its pinned sha256 — checked when it was
/// fetched — so it need not be installed (or read) to plan; a path is hashed.
fn resolve(
    spec: &str,
    models_dir: Option<&Value>,
    hashes: &mut FileHashes,
    named: &mut Vec<String>,
) -> Result<(PathBuf, String)> {
    let dir = models_dir.and_then(Value::as_str).map(PathBuf::from);
    let root = codeplan_model::store::models_root(dir.as_deref())?;
    if let Some(known) = codeplan_model::registry::find_model(spec) {
        if !named.iter().any(|n| n == spec) {
            named.push(spec.to_owned());
        }
        let path = absolute(&codeplan_model::store::model_path(&root, spec))?;
        return Ok((path, known.sha256.clone()));
    }
    let location = codeplan_model::store::resolve_model(spec, &root)?;
    let path = absolute(location.path())?;
    let sha256 = hashes.sha256(&path)?;
    Ok((path, sha256))
}

/// The settings that decide a stage's result, canonically ordered.
fn settings_identity(config: &Table) -> Json {
    let mut t = config.clone();
    for key in OPERATIONAL {
        t.remove(*key);
    }
    for key in ["model", "templates", "teacher"] {
        // Local models and template files enter keys by content; a remote teacher by name.
        if key == "teacher" {
            if let Some(Value::String(s)) = t.get(key) {
                if !s.starts_with("local:") {
                    continue;
                }
            }
        }
        t.remove(key);
    }
    canonical(&t)
}

/// A TOML table as JSON with keys in sorted order at every level.
pub fn canonical(root: &Table) -> Json {
    fn value(v: &Value) -> Json {
        match v {
            Value::String(s) => Json::String(s.clone()),
            Value::Integer(i) => json!(i),
            Value::Float(f) => json!(f),
            Value::Boolean(b) => json!(b),
            Value::Datetime(d) => Json::String(d.to_string()),
            Value::Array(a) => Json::Array(a.iter().map(value).collect()),
            Value::Table(t) => table(t),
        }
    }
    fn table(t: &Table) -> Json {
        let sorted: BTreeMap<&String, Json> = t.iter().map(|(k, v)| (k, value(v))).collect();
        let mut map = serde_json::Map::new();
        for (k, v) in sorted {
            map.insert(k.clone(), v);
        }
        Json::Object(map)
    }
    table(root)
}

/// Lower-case hex sha256 of bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn absolute(path: &Path) -> Result<PathBuf> {
    std::path::absolute(path).map_err(|e| RunError::io(path, e))
}

fn path_value(path: &Path) -> Result<Value> {
    Ok(Value::String(absolute(path)?.display().to_string()))
}

#[cfg(test)]
mod tests;
