//! Training examples: (prompt, target) token sequences for CodePLAN's two tasks, with the loss
//! mask that trains only the target and its end-of-text token.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use codeplan_data::prompt::{self, Task};
use codeplan_data::Problem;
use codeplan_model::chat::{ChatMessage, ChatTemplate};
use codeplan_model::tokenizer::Tokenizer;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TrainError};

/// How prompts and targets are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PromptStyle {
    /// The paper's `[GEN_CODE]` / `[GEN_PLAN]` formats, target followed by the EOS token.
    #[default]
    Codeplan,
    /// The model's own chat template: the target is the assistant's turn, closed by the
    /// template's own end-of-turn text (what `codeplan generate --prompt chat` stops on).
    Chat,
}

/// One plan of a plans file (`codeplan distill` writes these; extra fields are ignored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PlanRecord {
    /// The problem the plan is for.
    pub problem_id: String,
    /// The plan text.
    pub plan: String,
}

/// One tokenised training example.
#[derive(Clone, Debug, PartialEq)]
pub struct Example {
    /// The problem it comes from.
    pub problem_id: String,
    /// Which task.
    pub task: Task,
    /// Prompt then target tokens.
    pub tokens: Vec<u32>,
    /// How many leading tokens are prompt (not trained).
    pub prompt_len: usize,
    /// Whether the target was cut at the length limit (its end-of-text token is then lost).
    pub truncated: bool,
}

impl Example {
    /// Trained tokens.
    pub fn target_len(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }
}

/// An example that was left out, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct Dropped {
    /// The problem.
    pub problem_id: String,
    /// The task.
    pub task: Task,
    /// The reason, in words.
    pub reason: String,
}

/// Reads a plans file: JSONL, one `{"problem_id", "plan", ...}` per line (a numeric
/// `problem_id`, as APPS writes it, is accepted). Errors name the file, line and field.
pub fn load_plans(path: &Path) -> Result<Vec<PlanRecord>> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    let mut plans = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{}:{}", path.display(), i + 1);
        let value: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| TrainError::Input(format!("{}: not valid JSON: {e}", at())))?;
        let id = match value.get("problem_id") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(other) => {
                return Err(TrainError::Input(format!(
                    "{}: field `problem_id` must be a string or number, found {other}",
                    at()
                )))
            }
            None => {
                return Err(TrainError::Input(format!(
                    "{}: missing field `problem_id`",
                    at()
                )))
            }
        };
        let plan = match value.get("plan") {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(other) => {
                return Err(TrainError::Input(format!(
                    "{}: field `plan` of problem {id} must be a string, found {other}",
                    at()
                )))
            }
            None => {
                return Err(TrainError::Input(format!(
                    "{}: missing field `plan` (problem {id})",
                    at()
                )))
            }
        };
        if plan.trim().is_empty() {
            return Err(TrainError::Input(format!(
                "{}: the plan of problem {id} is empty",
                at()
            )));
        }
        plans.push(PlanRecord {
            problem_id: id,
            plan,
        });
    }
    Ok(plans)
}

/// Checks that every plan names a known problem; the error lists the first unknown ids.
pub fn check_plans(plans: &[PlanRecord], problems: &[Problem], plans_file: &Path) -> Result<()> {
    let known: std::collections::HashSet<&str> = problems.iter().map(|p| p.id.as_str()).collect();
    let unknown: Vec<&str> = plans
        .iter()
        .map(|p| p.problem_id.as_str())
        .filter(|id| !known.contains(id))
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = unknown.iter().take(5).copied().collect();
    Err(TrainError::Input(format!(
        "{}: {} plan(s) name problems that are not in the training data (e.g. {}); \
         check that --data and --plans belong together",
        plans_file.display(),
        unknown.len(),
        shown.join(", ")
    )))
}

/// Python's `str.expandtabs(4)`: the paper trains on solutions with tabs expanded.
pub fn expand_tabs(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut column = 0;
    for c in text.chars() {
        match c {
            '\t' => {
                let n = 4 - column % 4;
                out.extend(std::iter::repeat_n(' ', n));
                column += n;
            }
            '\n' | '\r' => {
                out.push(c);
                column = 0;
            }
            _ => {
                out.push(c);
                column += 1;
            }
        }
    }
    out
}

/// A problem's prompts by (task, token budget): the ids and whether the question was cut, or
/// `None` when no cut fits.
type PromptCache = HashMap<(Task, usize), Option<(Vec<u32>, bool)>>;

/// Turns problems, solutions and plans into token sequences.
pub struct ExampleBuilder<'a> {
    /// The student's tokenizer.
    pub tokenizer: &'a Tokenizer,
    /// Its chat template (needed for [`PromptStyle::Chat`]).
    pub template: Option<&'a ChatTemplate>,
    /// Prompt format.
    pub style: PromptStyle,
    /// Longest example in tokens (prompt + target).
    pub max_len: usize,
}

/// What [`ExampleBuilder::build`] made.
#[derive(Debug, Default)]
pub struct ExampleSet {
    /// The examples, code then plan, in data order.
    pub examples: Vec<Example>,
    /// The examples left out.
    pub dropped: Vec<Dropped>,
}

/// The user turn of the plan task in chat style.
fn plan_instruction(problem: &Problem) -> String {
    let mut text = String::from(
        "Write a step-by-step solution plan (numbered steps, no code) for the following programming problem.\n\n",
    );
    text.push_str(problem.question.trim_end());
    text.push('\n');
    text
}

impl ExampleBuilder<'_> {
    /// Prompt and target text of one example.
    fn texts(&self, problem: &Problem, task: Task, target: &str) -> Result<(String, String)> {
        match self.style {
            PromptStyle::Codeplan => Ok((prompt::render(problem, task), target.to_owned())),
            PromptStyle::Chat => {
                let template = self.template.ok_or_else(|| {
                    TrainError::Input(
                        "--prompt chat needs a model with a chat template; this one has none"
                            .into(),
                    )
                })?;
                let (user, answer) = match task {
                    Task::Code => (
                        prompt::chat_instruction(problem),
                        format!("```python\n{}\n```", target.trim_end()),
                    ),
                    Task::Plan => (plan_instruction(problem), target.trim().to_owned()),
                };
                let mut messages = vec![ChatMessage::new("user", user)];
                let prompt = template.render(&messages, true)?;
                messages.push(ChatMessage::new("assistant", answer));
                let full = template.render(&messages, false)?;
                let target = full.strip_prefix(&prompt).ok_or_else(|| {
                    TrainError::Input(
                        "the chat template renders the conversation with a different beginning than the \
                         generation prompt, so the assistant's turn cannot be split off for training"
                            .into(),
                    )
                })?;
                Ok((prompt, target.to_owned()))
            }
        }
    }

    fn example(
        &self,
        problem: &Problem,
        task: Task,
        target: &str,
        prompts: &mut PromptCache,
    ) -> Result<Option<Example>> {
        let (_, target_text) = self.texts(problem, task, target)?;
        let mut target = self.tokenizer.encode(&target_text, false)?;
        if self.style == PromptStyle::Codeplan {
            let eos = self.tokenizer.eos_id().ok_or_else(|| {
                TrainError::Input("the tokenizer has no end-of-text token to train".into())
            })?;
            target.push(eos);
        } else if let Some(last_stop) = target.iter().rposition(|&t| self.tokenizer.is_stop(t)) {
            // Chat templates close the turn with an end-of-turn token and maybe a newline: the
            // end-of-turn token (what generation stops on) is the last token trained.
            target.truncate(last_stop + 1);
        }
        // The prompt gets what the target leaves, but at least half the length: a longer
        // question is cut at the end and marked `…`, as `codeplan generate` cuts it.
        // Budgets are rounded down to 32 tokens so a problem's solutions share prompts.
        let budget = (self.max_len - target.len().min(self.max_len / 2)) / 32 * 32;
        let prompt = match prompts.get(&(task, budget)) {
            Some(cached) => cached.clone(),
            None => {
                let made = self.prompt_within(problem, task, target_text.as_str(), budget)?;
                prompts.insert((task, budget), made.clone());
                made
            }
        };
        let Some((prompt, _question_cut)) = prompt else {
            return Ok(None);
        };
        let room = self.max_len - prompt.len();
        let truncated = target.len() > room;
        target.truncate(room);
        let prompt_len = prompt.len();
        let mut tokens = prompt;
        tokens.extend(target);
        Ok(Some(Example {
            problem_id: problem.id.clone(),
            task,
            tokens,
            prompt_len,
            truncated,
        }))
    }

    /// The prompt's tokens within `budget`, cutting the question's end if needed (`true`);
    /// `None` when even an empty question does not fit.
    fn prompt_within(
        &self,
        problem: &Problem,
        task: Task,
        target: &str,
        budget: usize,
    ) -> Result<Option<(Vec<u32>, bool)>> {
        let render = |question: &str| -> Result<Vec<u32>> {
            let mut p = problem.clone();
            p.question = question.to_owned();
            let (text, _) = self.texts(&p, task, target)?;
            Ok(self.tokenizer.encode_prompt(&text)?)
        };
        let full = render(&problem.question)?;
        if full.len() <= budget {
            return Ok(Some((full, false)));
        }
        let chars: Vec<usize> = problem.question.char_indices().map(|(i, _)| i).collect();
        let (mut lo, mut hi) = (0usize, chars.len());
        let mut best = None;
        while lo < hi {
            let mid = (lo + hi) / 2;
            let ids = render(&format!("{}…", &problem.question[..chars[mid]]))?;
            if ids.len() <= budget {
                best = Some(ids);
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(best.map(|ids| (ids, true)))
    }

    /// One code example per (problem, reference solution) and one plan example per plan, for
    /// the tasks asked for. Examples whose prompt alone does not fit are dropped (reported).
    pub fn build(
        &self,
        problems: &[Problem],
        plans: &[PlanRecord],
        tasks: &[Task],
    ) -> Result<ExampleSet> {
        let mut set = ExampleSet::default();
        let by_id: HashMap<&str, &Problem> = problems.iter().map(|p| (p.id.as_str(), p)).collect();
        let mut cache: HashMap<String, PromptCache> = HashMap::new();
        let mut push =
            |set: &mut ExampleSet, problem: &Problem, task: Task, target: &str| -> Result<()> {
                let prompts = cache.entry(problem.id.clone()).or_default();
                match self.example(problem, task, target, prompts)? {
                    Some(e) => set.examples.push(e),
                    None => set.dropped.push(Dropped {
                        problem_id: problem.id.clone(),
                        task,
                        reason: format!(
                            "the prompt does not fit --max-len {} even with the question cut",
                            self.max_len
                        ),
                    }),
                }
                Ok(())
            };
        if tasks.contains(&Task::Code) {
            for p in problems {
                for solution in &p.solutions {
                    if solution.trim().is_empty() {
                        continue;
                    }
                    push(&mut set, p, Task::Code, &expand_tabs(solution))?;
                }
            }
        }
        if tasks.contains(&Task::Plan) {
            for plan in plans {
                if let Some(p) = by_id.get(plan.problem_id.as_str()) {
                    push(&mut set, p, Task::Plan, &plan.plan)?;
                }
            }
        }
        Ok(set)
    }
}

/// Token-length statistics of one task's examples.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct LengthStats {
    /// Examples.
    pub count: usize,
    /// Shortest, median, 95th percentile and longest total length.
    pub min: usize,
    /// Median length.
    pub median: usize,
    /// 95th percentile.
    pub p95: usize,
    /// Longest.
    pub max: usize,
    /// Mean trained (target) tokens.
    pub mean_target: f64,
    /// Examples whose target was cut at the length limit.
    pub truncated: usize,
}

/// Length statistics per task name (`code`, `plan`).
pub fn length_stats(examples: &[Example]) -> BTreeMap<String, LengthStats> {
    let mut by_task: BTreeMap<String, Vec<&Example>> = BTreeMap::new();
    for e in examples {
        by_task
            .entry(task_name(e.task).to_owned())
            .or_default()
            .push(e);
    }
    by_task
        .into_iter()
        .map(|(task, es)| {
            let mut lens: Vec<usize> = es.iter().map(|e| e.tokens.len()).collect();
            lens.sort_unstable();
            let at = |q: f64| lens[((lens.len() - 1) as f64 * q).round() as usize];
            let stats = LengthStats {
                count: es.len(),
                min: lens[0],
                median: at(0.5),
                p95: at(0.95),
                max: *lens.last().expect("non-empty"),
                mean_target: es.iter().map(|e| e.target_len()).sum::<usize>() as f64
                    / es.len() as f64,
                truncated: es.iter().filter(|e| e.truncated).count(),
            };
            (task, stats)
        })
        .collect()
}

/// `code` or `plan`.
pub fn task_name(task: Task) -> &'static str {
    match task {
        Task::Code => "code",
        Task::Plan => "plan",
    }
}

/// Parses `code`, `plan`.
pub fn parse_task(s: &str) -> Result<Task> {
    match s.trim() {
        "code" => Ok(Task::Code),
        "plan" => Ok(Task::Plan),
        other => Err(TrainError::Input(format!(
            "unknown task `{other}` (the tasks are `code` and `plan`)"
        ))),
    }
}

/// An example as text with the trained part marked `⟦…⟧`, for `codeplan train --inspect`.
pub fn render_marked(example: &Example, tokenizer: &Tokenizer) -> Result<String> {
    let prompt = tokenizer.decode(&example.tokens[..example.prompt_len], false)?;
    let target = tokenizer.decode(&example.tokens[example.prompt_len..], false)?;
    Ok(format!("{prompt}⟦{target}⟧"))
}
