//! The teacher's prompts: backward reasoning (explain a reference solution), forward reasoning
//! (plan from the statement alone) and validation (code from the statement and the plan), as
//! Jinja templates with named placeholders, loaded from a TOML file or the built-in defaults.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use codeplan_data::{prompt, Problem};
use minijinja::{Environment, UndefinedBehavior};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::request::{hex, Message};
use crate::TeacherError;

/// The built-in templates (also a commented example for users' own files).
pub const DEFAULT_TEMPLATES: &str = include_str!("../templates/default.toml");

/// How plans are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reasoning {
    /// Explain a known-correct solution (the method's default).
    Backward,
    /// Plan from the problem statement alone (the ablation).
    Forward,
}

impl Reasoning {
    /// `backward` or `forward`.
    pub fn name(self) -> &'static str {
        match self {
            Reasoning::Backward => "backward",
            Reasoning::Forward => "forward",
        }
    }
}

/// A system and a user message template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pair {
    /// The system message.
    pub system: String,
    /// The user message.
    pub user: String,
    /// Stop sequences: the answer ends before the first of these (e.g. where a model, following
    /// the demonstration's pattern, would start quoting the next program).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    backward: Option<Pair>,
    forward: Option<Pair>,
    code: Option<Pair>,
}

/// The three prompt templates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Templates {
    /// Backward reasoning: placeholders as in the default file, with `solution`.
    pub backward: Pair,
    /// Forward reasoning.
    pub forward: Pair,
    /// Validation code from a plan: with `plan`.
    pub code: Pair,
}

const COMMON: [&str; 4] = ["question", "starter_code", "io_format", "answer_format"];

impl Templates {
    /// The built-in templates.
    pub fn defaults() -> Templates {
        Templates::parse(DEFAULT_TEMPLATES, None, "the built-in templates")
            .expect("the built-in templates are valid")
    }

    /// Reads a template file; sections it leaves out keep the defaults. Unknown sections or
    /// keys, Jinja syntax errors and unknown placeholders are errors naming the file.
    pub fn load(path: &Path) -> Result<Templates, TeacherError> {
        let text = std::fs::read_to_string(path).map_err(|e| TeacherError::io(path, e))?;
        Templates::parse(
            &text,
            Some(Templates::defaults()),
            &path.display().to_string(),
        )
    }

    fn parse(text: &str, base: Option<Templates>, origin: &str) -> Result<Templates, TeacherError> {
        let file: TemplateFile =
            toml::from_str(text).map_err(|e| TeacherError::Config(format!("{origin}: {e}")))?;
        let pick = |own: Option<Pair>, default: Option<&Pair>, name: &str| {
            own.or_else(|| default.cloned()).ok_or_else(|| {
                TeacherError::Config(format!("{origin}: section [{name}] is missing"))
            })
        };
        let t = Templates {
            backward: pick(
                file.backward,
                base.as_ref().map(|b| &b.backward),
                "backward",
            )?,
            forward: pick(file.forward, base.as_ref().map(|b| &b.forward), "forward")?,
            code: pick(file.code, base.as_ref().map(|b| &b.code), "code")?,
        };
        t.check(origin)?;
        Ok(t)
    }

    /// Checks syntax and placeholders of every template.
    fn check(&self, origin: &str) -> Result<(), TeacherError> {
        let sections = [
            ("backward", &self.backward, Some("solution")),
            ("forward", &self.forward, None),
            ("code", &self.code, Some("plan")),
        ];
        for (section, pair, extra) in sections {
            let known: BTreeSet<&str> = COMMON.iter().copied().chain(extra).collect();
            for (field, source) in [("system", &pair.system), ("user", &pair.user)] {
                let env = environment();
                let template = env.template_from_str(source).map_err(|e| {
                    TeacherError::Config(format!("{origin}: [{section}] {field}: {e}"))
                })?;
                let unknown: Vec<String> = template
                    .undeclared_variables(false)
                    .into_iter()
                    .filter(|v| !known.contains(v.as_str()))
                    .collect();
                if !unknown.is_empty() {
                    return Err(TeacherError::Config(format!(
                        "{origin}: [{section}] {field} uses unknown placeholder(s) {} (known here: {})",
                        unknown.join(", "),
                        known.iter().copied().collect::<Vec<_>>().join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// The messages asking for a plan (`solution` is required for backward reasoning).
    pub fn plan_messages(
        &self,
        reasoning: Reasoning,
        problem: &Problem,
        solution: Option<&str>,
    ) -> Result<Vec<Message>, TeacherError> {
        let mut vars = problem_vars(problem);
        let pair = match reasoning {
            Reasoning::Backward => {
                let solution = solution.ok_or_else(|| {
                    TeacherError::Config(format!(
                        "problem {}: backward reasoning needs a reference solution",
                        problem.id
                    ))
                })?;
                vars.insert("solution", solution.trim_end().to_owned());
                &self.backward
            }
            Reasoning::Forward => &self.forward,
        };
        render_pair(pair, &vars, reasoning.name())
    }

    /// The stop sequences of the plan prompt for `reasoning`.
    pub fn plan_stop(&self, reasoning: Reasoning) -> &[String] {
        match reasoning {
            Reasoning::Backward => &self.backward.stop,
            Reasoning::Forward => &self.forward.stop,
        }
    }

    /// The stop sequences of the validation-code prompt.
    pub fn code_stop(&self) -> &[String] {
        &self.code.stop
    }

    /// The messages asking for code that follows `plan` (never shown a reference solution).
    pub fn code_messages(
        &self,
        problem: &Problem,
        plan: &str,
    ) -> Result<Vec<Message>, TeacherError> {
        let mut vars = problem_vars(problem);
        vars.insert("plan", plan.trim().to_owned());
        render_pair(&self.code, &vars, "code")
    }

    /// sha256 of the templates a run uses (the plan templates of `reasoning` and the code
    /// template), recorded with every plan.
    pub fn hash(&self, reasoning: Reasoning) -> String {
        let plan = match reasoning {
            Reasoning::Backward => &self.backward,
            Reasoning::Forward => &self.forward,
        };
        let text = serde_json::json!({"plan": plan, "code": self.code}).to_string();
        hex(&Sha256::digest(text.as_bytes()))
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .build()
            .expect("the default delimiters are valid"),
    );
    env
}

fn problem_vars(problem: &Problem) -> BTreeMap<&'static str, String> {
    let call_based = prompt::is_call_based(problem);
    let starter = if problem.starter_code == problem.question {
        String::new()
    } else {
        problem.starter_code.trim_end().to_owned()
    };
    BTreeMap::from([
        ("question", problem.question.trim_end().to_owned()),
        ("starter_code", starter),
        (
            "io_format",
            if call_based { "Call-Based" } else { "Standard Input" }.to_owned(),
        ),
        (
            "answer_format",
            if call_based {
                "Write the complete function (with any imports it needs); do not read input or print."
            } else {
                "Write a complete program that reads the input from standard input and prints the answer to standard output."
            }
            .to_owned(),
        ),
    ])
}

fn render_pair(
    pair: &Pair,
    vars: &BTreeMap<&'static str, String>,
    section: &str,
) -> Result<Vec<Message>, TeacherError> {
    let env = environment();
    let render = |source: &str, field: &str| {
        env.render_str(source, vars)
            .map_err(|e| TeacherError::Config(format!("template [{section}] {field}: {e}")))
    };
    let mut messages = Vec::new();
    let system = render(&pair.system, "system")?;
    if !system.trim().is_empty() {
        messages.push(Message::new("system", system));
    }
    messages.push(Message::new("user", render(&pair.user, "user")?));
    Ok(messages)
}

#[cfg(test)]
mod tests {
    use super::*;
    use codeplan_data::{IoTests, Source, Tests};

    fn problem(starter: &str) -> Problem {
        Problem {
            id: "7".into(),
            source: Source::Apps,
            split: None,
            question: "Add two numbers.".into(),
            starter_code: starter.into(),
            difficulty: None,
            tests: Tests::Io(IoTests {
                fn_name: None,
                inputs: vec![],
                outputs: vec![],
            }),
            solutions: vec!["print(sum(map(int, input().split())))".into()],
        }
    }

    #[test]
    fn defaults_render_each_kind() {
        let t = Templates::defaults();
        let p = problem("");
        let m = t
            .plan_messages(Reasoning::Backward, &p, Some(&p.solutions[0]))
            .unwrap();
        assert_eq!(m[0].role, "system");
        assert!(m[1].content.contains("code:\nprint(sum(map(int, input().split())))\n\nWrite a step-by-step solution plan following the above code:"));
        assert!(
            !m[1].content.contains("Add two numbers"),
            "backward shows code, not the problem"
        );
        let f = t.plan_messages(Reasoning::Forward, &p, None).unwrap();
        assert!(
            f[1].content.contains("Add two numbers.") && f[1].content.contains("Standard Input")
        );
        assert!(!f[1].content.contains("Starter code"));
        let c = t.code_messages(&p, "1. Read.\n2. Print.").unwrap();
        assert!(c[1].content.contains("PLAN:\n1. Read.\n2. Print.\n"));
        assert!(
            !c[1].content.contains("print(sum"),
            "never the reference solution"
        );
        let s = t
            .code_messages(&problem("def f(a):\n    "), "1. x")
            .unwrap();
        assert!(s[1]
            .content
            .contains("Start from this code:\n```python\ndef f(a):\n```"));
        assert!(s[1].content.contains("Write the complete function"));
        assert!(t
            .plan_messages(Reasoning::Backward, &p, None)
            .unwrap_err()
            .to_string()
            .contains("needs a reference solution"));
    }

    #[test]
    fn user_files_override_sections_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(
            &path,
            "[code]\nsystem = \"\"\nuser = \"{{ plan }} / {{ question }}\"\n",
        )
        .unwrap();
        let t = Templates::load(&path).unwrap();
        assert_eq!(t.backward, Templates::defaults().backward);
        let c = t.code_messages(&problem(""), "P").unwrap();
        assert_eq!(c.len(), 1, "an empty system message is left out");
        assert_eq!(c[0].content, "P / Add two numbers.");
        assert_ne!(
            t.hash(Reasoning::Backward),
            Templates::defaults().hash(Reasoning::Backward)
        );

        std::fs::write(
            &path,
            "[forward]\nsystem = \"\"\nuser = \"{{ solutoin }}\"\n",
        )
        .unwrap();
        let e = Templates::load(&path).unwrap_err().to_string();
        assert!(
            e.contains("t.toml") && e.contains("[forward] user") && e.contains("solutoin"),
            "{e}"
        );
        std::fs::write(&path, "[code]\nsystem = \"\"\nuser = \"{% if %}\"\n").unwrap();
        let e = Templates::load(&path).unwrap_err().to_string();
        assert!(e.contains("[code] user"), "{e}");
        std::fs::write(&path, "[plans]\nsystem = \"\"\nuser = \"\"\n").unwrap();
        let e = Templates::load(&path).unwrap_err().to_string();
        assert!(e.contains("plans"), "{e}");
    }
}
