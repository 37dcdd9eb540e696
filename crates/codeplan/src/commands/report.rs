//! `codeplan report`: work with finished experiments' reports (`report.json`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};

use codeplan_report::{compare, read, render_comparison_markdown, Report};

/// Report commands.
#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Compare two finished runs: pass@k per shared variant, and every problem whose results changed.
    ///
    /// RUN_A and RUN_B are run folders holding a `report.json` (written by `codeplan run`) or
    /// the paths of report.json files. Differences are b − a. The comparison is printed as
    /// Markdown and, with --out, also written to a file.
    #[command(after_help = "Examples:
  codeplan report compare runs/exp-seed0 runs/exp-seed1
  codeplan report compare runs/old/report.json runs/new --out compare.md")]
    Compare(CompareArgs),
}

/// Arguments of `report compare`.
#[derive(Args, Debug)]
pub struct CompareArgs {
    /// The first run (folder with report.json, or the file itself).
    #[arg(value_name = "RUN_A")]
    a: PathBuf,
    /// The second run.
    #[arg(value_name = "RUN_B")]
    b: PathBuf,
    /// Also write the Markdown comparison to this file.
    #[arg(long, value_name = "FILE.md")]
    out: Option<PathBuf>,
}

/// Runs a `codeplan report` command.
pub fn run(cmd: ReportCommand) -> Result<()> {
    match cmd {
        ReportCommand::Compare(args) => run_compare(args),
    }
}

/// The report.json of a run folder, or the path itself when it is a file.
fn load(run: &Path) -> Result<Report> {
    let path = if run.is_dir() {
        let p = run.join("report.json");
        if !p.is_file() {
            bail!(
                "{}: no report.json in this run folder (is the run finished?)",
                run.display()
            );
        }
        p
    } else {
        run.to_path_buf()
    };
    Ok(read(&path)?)
}

fn run_compare(args: CompareArgs) -> Result<()> {
    let a = load(&args.a)?;
    let b = load(&args.b)?;
    let text = render_comparison_markdown(&compare(&a, &b));
    if let Some(out) = &args.out {
        codeplan_exec::eval::write_atomic(out, text.as_bytes())
            .with_context(|| format!("{}: cannot write the comparison", out.display()))?;
    }
    print!("{text}");
    Ok(())
}
