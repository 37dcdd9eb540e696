//! Sampling programs for a set of problems into a samples file that `codeplan eval` reads:
//! prompts in CodePLAN's format or the model's chat template, truncation to a token budget
//! (reported), reproducible seeds per problem, and resumption after a crash.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use codeplan_data::{extract_fenced, prompt, Problem};
use serde::{Deserialize, Serialize};

use crate::batch::FinishReason;
use crate::chat::ChatMessage;
use crate::error::{ModelError, Result};
use crate::model::{Model, TextRequest};
use crate::sampling::SamplingParams;

/// How a problem is put to the model.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PromptStyle {
    /// CodePLAN's code-task prompt (`[GEN_CODE]\nQUESTION:\n…\nANSWER:\n`); the answer is code.
    #[default]
    Codeplan,
    /// The model's chat template with an instruction; code is taken from the answer's first
    /// fenced Python block.
    Chat,
    /// Two stages (the method's plan-then-code inference): the plan-task prompt
    /// (`[GEN_PLAN]…Let's think step by step:\n`) samples a plan, then the code-task prompt with
    /// that plan after the question samples the code. Sample `i`'s code follows plan `i`.
    #[serde(rename = "plan-then-code")]
    PlanThenCode,
}

/// Settings of a sampling run.
#[derive(Clone, Debug)]
pub struct SolveOptions {
    /// Samples per problem.
    pub n: usize,
    /// New tokens per sample.
    pub max_new_tokens: usize,
    /// Temperature, top-p, top-k; `seed` is the run's base seed (each problem derives its own).
    pub sampling: SamplingParams,
    /// Stop sequences.
    pub stop: Vec<String>,
    /// Prompt style.
    pub prompt: PromptStyle,
    /// Longest prompt in tokens; longer questions are cut (default: what the context leaves
    /// after `max_new_tokens`).
    pub max_prompt_tokens: Option<usize>,
}

/// One line of the samples file: what `codeplan eval` needs, and how it was made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// The problem.
    pub problem_id: String,
    /// Sample index within the problem.
    pub sample_idx: usize,
    /// The program (extracted from the answer for chat prompts).
    pub code: String,
    /// The model's raw answer.
    pub completion: String,
    /// `stop` or `length`.
    pub finish_reason: FinishReason,
    /// Tokens generated.
    pub completion_tokens: usize,
    /// Tokens in the prompt.
    pub prompt_tokens: usize,
    /// Whether the question was cut to fit the prompt budget.
    pub prompt_truncated: bool,
    /// The seed of this sample's random stream.
    pub seed: u64,
    /// The plan the code follows (plan-then-code prompts only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan: Option<String>,
}

/// A prompt ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ProblemPrompt {
    /// Its tokens.
    pub ids: Vec<u32>,
    /// Whether the question had to be shortened to fit.
    pub truncated: bool,
}

/// Progress of a run, for a progress bar.
#[derive(Clone, Copy, Debug, Default)]
pub struct SolveProgress {
    /// Problems finished (including those found already done).
    pub problems_done: usize,
    /// Problems in the run.
    pub problems_total: usize,
    /// Tokens generated so far in this run.
    pub generated_tokens: usize,
    /// Time spent generating in this run.
    pub elapsed: Duration,
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct SolveSummary {
    /// Problems sampled in this run.
    pub generated: usize,
    /// Problems whose samples were already in the output file.
    pub already_done: usize,
    /// Ids of problems whose question was shortened to fit the prompt budget.
    pub truncated: Vec<String>,
    /// Tokens generated.
    pub generated_tokens: usize,
    /// Prompt tokens processed.
    pub prompt_tokens: usize,
    /// Time in prefill.
    pub prefill: Duration,
    /// Time in decode.
    pub decode: Duration,
}

/// Derives a problem's seed from the run's seed and the problem id, so a problem's samples do
/// not depend on which other problems are in the run or in what order (FNV-1a of the id).
pub fn problem_seed(base: u64, problem_id: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in problem_id.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    base ^ h
}

/// Renders a problem's prompt, cutting the end of the question (marked `…`) when the prompt
/// would exceed `budget` tokens.
pub fn build_prompt(
    model: &Model,
    problem: &Problem,
    style: PromptStyle,
    budget: usize,
) -> Result<ProblemPrompt> {
    let render = |question: &str| -> Result<Vec<u32>> {
        let text = match style {
            PromptStyle::Codeplan => {
                prompt::render_with_question(problem, prompt::Task::Code, question)
            }
            PromptStyle::PlanThenCode => {
                prompt::render_with_question(problem, prompt::Task::Plan, question)
            }
            PromptStyle::Chat => {
                let mut p = problem.clone();
                p.question = question.to_owned();
                model.render_chat(&[ChatMessage {
                    role: "user".into(),
                    content: prompt::chat_instruction(&p),
                }])?
            }
        };
        model.encode_prompt(&text)
    };
    let ids = render(&problem.question)?;
    if ids.len() <= budget {
        return Ok(ProblemPrompt {
            ids,
            truncated: false,
        });
    }
    // Binary search on the number of characters kept.
    let chars: Vec<(usize, char)> = problem.question.char_indices().collect();
    let (mut lo, mut hi) = (0usize, chars.len());
    let mut best = None;
    while lo < hi {
        let mid = (lo + hi) / 2;
        let end = chars.get(mid).map_or(problem.question.len(), |c| c.0);
        let cut = format!("{}…", &problem.question[..end]);
        let ids = render(&cut)?;
        if ids.len() <= budget {
            best = Some(ids);
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    match best {
        Some(ids) => Ok(ProblemPrompt {
            ids,
            truncated: true,
        }),
        None => Err(ModelError::InvalidRequest(format!(
            "problem {}: the prompt without its question already takes {} tokens, more than the \
             prompt budget of {budget} (raise --max-prompt-tokens, or lower --max-new-tokens to \
             leave more of the model's context)",
            problem.id,
            render("…")?.len()
        ))),
    }
}

/// Samples `options.n` programs for every problem and appends them to `out` (JSONL of
/// [`SampleRecord`]). Problems whose samples are all in `out` already are skipped; a torn last
/// line (a crash while writing) is removed first. Each problem's lines are written and synced
/// together, so a crash loses at most the problem being sampled.
pub fn solve_problems(
    model: &Model,
    problems: &[Problem],
    options: &SolveOptions,
    out: &Path,
    mut on_progress: impl FnMut(SolveProgress),
) -> Result<SolveSummary> {
    if options.n == 0 {
        return Err(ModelError::InvalidRequest("n must be at least 1".into()));
    }
    options.sampling.validate()?;
    let context = model.context_length();
    if options.max_new_tokens == 0 || options.max_new_tokens >= context {
        return Err(ModelError::InvalidRequest(format!(
            "max_new_tokens must be between 1 and {} (the model's context is {context})",
            context - 1
        )));
    }
    let budget = options
        .max_prompt_tokens
        .unwrap_or(context - options.max_new_tokens)
        .min(context - options.max_new_tokens);
    let done = read_done(out)?;
    let mut file = BufWriter::new(
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(out)
            .map_err(|source| io(out, source))?,
    );
    let mut summary = SolveSummary::default();
    let mut progress = SolveProgress {
        problems_total: problems.len(),
        ..SolveProgress::default()
    };
    let started = Instant::now();
    on_progress(progress);
    for problem in problems {
        let have = done.get(&problem.id);
        let missing: Vec<usize> = (0..options.n)
            .filter(|i| !have.is_some_and(|h| h.contains(i)))
            .collect();
        if missing.is_empty() {
            summary.already_done += 1;
            progress.problems_done += 1;
            on_progress(progress);
            continue;
        }
        let prompt = build_prompt(model, problem, options.prompt, budget)?;
        if prompt.truncated {
            summary.truncated.push(problem.id.clone());
        }
        let seed = problem_seed(options.sampling.seed, &problem.id);
        let request = TextRequest {
            n: options.n,
            max_new_tokens: options.max_new_tokens,
            sampling: SamplingParams {
                seed,
                ..options.sampling.clone()
            },
            stop: options.stop.clone(),
        };
        let output = model.complete(&prompt.ids, &request, |_, _| {})?;
        let mut tokens: usize = output.completions.iter().map(|c| c.tokens).sum();
        summary.prompt_tokens += output.prompt_tokens;
        summary.prefill += output.timings.prefill;
        summary.decode += output.timings.decode;
        for i in missing {
            let c = &output.completions[i];
            let mut plan = None;
            let mut answer = None;
            if options.prompt == PromptStyle::PlanThenCode {
                // The plan is followed by the code task's prompt with the plan after the question.
                let text = c.text.trim().to_owned();
                let code_prompt = plan_code_prompt(model, problem, &text, budget)?;
                let code_request = TextRequest {
                    n: 1,
                    sampling: SamplingParams {
                        seed: seed.wrapping_add(i as u64),
                        ..request.sampling.clone()
                    },
                    ..request.clone()
                };
                let out = model.complete(&code_prompt, &code_request, |_, _| {})?;
                tokens += out.completions[0].tokens;
                summary.prompt_tokens += out.prompt_tokens;
                summary.prefill += out.timings.prefill;
                summary.decode += out.timings.decode;
                answer = Some((out.completions[0].clone(), code_prompt.len()));
                plan = Some(text);
            }
            let (c, prompt_tokens) = match &answer {
                Some((code, len)) => (code, *len),
                None => (c, prompt.ids.len()),
            };
            let code = match options.prompt {
                PromptStyle::Codeplan | PromptStyle::PlanThenCode => c.text.clone(),
                PromptStyle::Chat => extract_fenced(&c.text).into_owned(),
            };
            let record = SampleRecord {
                problem_id: problem.id.clone(),
                sample_idx: i,
                code,
                completion: c.text.clone(),
                finish_reason: c.finish_reason,
                completion_tokens: c.tokens,
                prompt_tokens,
                prompt_truncated: prompt.truncated,
                seed: seed.wrapping_add(i as u64),
                plan,
            };
            let line = serde_json::to_string(&record).expect("a record serialises");
            writeln!(file, "{line}").map_err(|source| io(out, source))?;
        }
        file.flush().map_err(|source| io(out, source))?;
        file.get_ref()
            .sync_data()
            .map_err(|source| io(out, source))?;
        summary.generated += 1;
        summary.generated_tokens += tokens;
        progress.problems_done += 1;
        progress.generated_tokens += tokens;
        progress.elapsed = started.elapsed();
        on_progress(progress);
    }
    Ok(summary)
}

/// The code-task prompt with a sampled plan after the question; a plan too long for the prompt
/// budget is cut at the end (marked `…`), the question never.
fn plan_code_prompt(
    model: &Model,
    problem: &Problem,
    plan: &str,
    budget: usize,
) -> Result<Vec<u32>> {
    let render = |plan: &str| -> Result<Vec<u32>> {
        let question = format!("{}\n\nLet's think step by step:\n{plan}", problem.question);
        model.encode_prompt(&prompt::render_with_question(
            problem,
            prompt::Task::Code,
            &question,
        ))
    };
    let ids = render(plan)?;
    if ids.len() <= budget {
        return Ok(ids);
    }
    let chars: Vec<usize> = plan.char_indices().map(|(i, _)| i).collect();
    let (mut lo, mut hi) = (0usize, chars.len());
    let mut best = None;
    while lo < hi {
        let mid = (lo + hi) / 2;
        let ids = render(&format!("{}…", &plan[..chars[mid]]))?;
        if ids.len() <= budget {
            best = Some(ids);
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    best.ok_or_else(|| {
        ModelError::InvalidRequest(format!(
            "problem {}: the code prompt without a plan exceeds the prompt budget of {budget} tokens",
            problem.id
        ))
    })
}

fn io(path: &Path, source: std::io::Error) -> ModelError {
    ModelError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The (problem, sample index) pairs already in `out`; cuts a torn last line.
fn read_done(out: &Path) -> Result<HashMap<String, Vec<usize>>> {
    let mut done: HashMap<String, Vec<usize>> = HashMap::new();
    let bytes = match std::fs::read(out) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(done),
        Err(source) => return Err(io(out, source)),
    };
    let complete = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < bytes.len() {
        let f = File::options()
            .write(true)
            .open(out)
            .map_err(|source| io(out, source))?;
        f.set_len(complete as u64)
            .map_err(|source| io(out, source))?;
    }
    for (n, line) in bytes[..complete].split(|&b| b == b'\n').enumerate() {
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        #[derive(Deserialize)]
        struct Key {
            problem_id: String,
            sample_idx: usize,
        }
        let key: Key = serde_json::from_slice(line).map_err(|e| {
            ModelError::InvalidRequest(format!(
                "{}:{}: not a samples line ({e}); pass another --out or move the file away",
                out.display(),
                n + 1
            ))
        })?;
        done.entry(key.problem_id).or_default().push(key.sample_idx);
    }
    Ok(done)
}
