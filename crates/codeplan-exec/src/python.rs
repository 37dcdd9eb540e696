//! Finding the real Python interpreter and what it has installed.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde::{Deserialize, Serialize};

use crate::ExecError;

/// Facts about the interpreter that runs judged programs, recorded in every evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PythonInfo {
    /// The real executable (a pyenv shim resolved: shims cost ~170 ms per start).
    pub executable: PathBuf,
    /// `sys.version`'s first word, e.g. `3.11.7`.
    pub version: String,
    /// numpy's version (the APPS prelude imports it).
    pub numpy: String,
    /// `sys.get_int_max_str_digits()`: integers longer than this cannot be printed.
    pub int_max_str_digits: i64,
    /// Folders the interpreter reads at start-up and import time (prefixes and `sys.path`).
    pub read_paths: Vec<PathBuf>,
}

const PROBE: &str = r#"
import json, sys, os
try:
    import numpy
    np_version = numpy.__version__
except Exception as e:
    np_version = None
paths = [sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
         os.path.dirname(os.path.realpath(sys.executable))]
paths += [p for p in sys.path if p and os.path.isabs(p)]
print(json.dumps({"executable": os.path.realpath(sys.executable), "version": sys.version.split()[0],
                  "numpy": np_version, "int_max_str_digits": sys.get_int_max_str_digits(),
                  "paths": paths}))
"#;

impl PythonInfo {
    /// Asks `python` (a path or a name on `PATH`; default `python3`) about itself.
    pub fn discover(python: Option<&Path>) -> Result<PythonInfo, ExecError> {
        let exe = python.unwrap_or(Path::new("python3"));
        let out = Command::new(exe)
            .args(["-c", PROBE])
            .output()
            .map_err(|e| ExecError::Python(format!("cannot run `{}`: {e}", exe.display())))?;
        if !out.status.success() {
            return Err(ExecError::Python(format!(
                "`{}` failed: {}",
                exe.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )));
        }
        #[derive(Deserialize)]
        struct Probe {
            executable: PathBuf,
            version: String,
            numpy: Option<String>,
            int_max_str_digits: i64,
            paths: Vec<PathBuf>,
        }
        let p: Probe = serde_json::from_slice(&out.stdout).map_err(|e| {
            ExecError::Python(format!("unexpected answer from `{}`: {e}", exe.display()))
        })?;
        let numpy = p.numpy.ok_or_else(|| {
            ExecError::Python(format!(
                "numpy is not installed for {} (Python {}); the APPS prelude imports it. \
                 Install it with: {} -m pip install numpy",
                p.executable.display(),
                p.version,
                p.executable.display()
            ))
        })?;
        let mut read_paths: Vec<PathBuf> = Vec::new();
        for path in p.paths {
            if path.exists() && !read_paths.iter().any(|q| path.starts_with(q)) {
                read_paths.retain(|q| !q.starts_with(&path));
                read_paths.push(path);
            }
        }
        Ok(PythonInfo {
            executable: p.executable,
            version: p.version,
            numpy,
            int_max_str_digits: p.int_max_str_digits,
            read_paths,
        })
    }
}
