//! The prompts a student sees: CodePLAN's task formats, and a chat instruction for chat models.

use crate::problem::{Problem, Tests};

/// Which of CodePLAN's two tasks a prompt asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Task {
    /// Problem → code (`[GEN_CODE]`); the only task at inference time.
    Code,
    /// Problem → plan (`[GEN_PLAN]`); trained beside the code task.
    Plan,
}

/// Whether the answer is a function to be called (APPS `fn_name`, HumanEval/MBPP) rather than a
/// program reading standard input.
pub fn is_call_based(problem: &Problem) -> bool {
    match &problem.tests {
        Tests::Io(io) => io.fn_name.is_some() || !problem.starter_code.trim().is_empty(),
        Tests::Check(_) => true,
    }
}

/// The paper's format line: `\nUse Call-Based format\n` or `\nUse Standard Input format\n`.
pub fn format_line(problem: &Problem) -> &'static str {
    if is_call_based(problem) {
        "\nUse Call-Based format\n"
    } else {
        "\nUse Standard Input format\n"
    }
}

/// The student's input for `task`, in the paper's format (method notes §2):
///
/// - code: `[GEN_CODE]\nQUESTION:\n{question}\n{starter_code}\n{format}\nANSWER:\n`
/// - plan: `[GEN_PLAN]\nQUESTION:\n{question}\n{starter_code}\n{format}\nLet's think step by step:\n`
///
/// HumanEval and MBPP give the signature and docstring as both question and starter code; it is
/// written once.
///
/// ```
/// use codeplan_data::{load_problems, prompt, LoadOptions};
/// use std::path::Path;
/// let data = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data"));
/// let p = &load_problems(&data.join("apps/test.jsonl"), &LoadOptions::default()).unwrap().problems[0];
/// let text = prompt::render(p, prompt::Task::Code);
/// assert!(text.starts_with("[GEN_CODE]\nQUESTION:\n"));
/// assert!(text.ends_with("\nUse Standard Input format\n\nANSWER:\n"));
/// ```
pub fn render(problem: &Problem, task: Task) -> String {
    render_with_question(problem, task, &problem.question)
}

/// [`render`] with the question replaced (e.g. shortened to fit a token budget).
pub fn render_with_question(problem: &Problem, task: Task, question: &str) -> String {
    let (tag, cue) = match task {
        Task::Code => ("[GEN_CODE]", "ANSWER:\n"),
        Task::Plan => ("[GEN_PLAN]", "Let's think step by step:\n"),
    };
    let starter = if problem.starter_code == problem.question {
        ""
    } else {
        problem.starter_code.as_str()
    };
    format!(
        "{tag}\nQUESTION:\n{question}\n{starter}\n{}\n{cue}",
        format_line(problem)
    )
}

/// The user message for a chat model asked for code: the statement, the starter code, and what
/// form the answer must take (one fenced Python block, which `codeplan eval --extract fenced`
/// and `codeplan generate --prompt chat` take out).
pub fn chat_instruction(problem: &Problem) -> String {
    let mut text = String::new();
    text.push_str("Solve the following programming problem in Python 3.\n\n");
    text.push_str(problem.question.trim_end());
    text.push('\n');
    if !problem.starter_code.trim().is_empty() && problem.starter_code != problem.question {
        text.push_str("\nStart from this code:\n```python\n");
        text.push_str(problem.starter_code.trim_end());
        text.push_str("\n```\n");
    }
    text.push('\n');
    text.push_str(if !is_call_based(problem) {
        "Write a complete program that reads the input from standard input and prints the answer to standard output."
    } else {
        "Write the complete function (with any imports it needs); do not read input or print."
    });
    text.push_str(" Answer with a single ```python code block.\n");
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::problem::{CheckTests, IoTests, Source};

    fn problem(tests: Tests, question: &str, starter: &str) -> Problem {
        Problem {
            id: "p".into(),
            source: Source::Apps,
            split: None,
            question: question.into(),
            starter_code: starter.into(),
            difficulty: None,
            tests,
            solutions: vec![],
        }
    }

    #[test]
    fn paper_formats() {
        let stdio = problem(
            Tests::Io(IoTests {
                fn_name: None,
                inputs: vec![],
                outputs: vec![],
            }),
            "Add two numbers.",
            "",
        );
        assert_eq!(
            render(&stdio, Task::Code),
            "[GEN_CODE]\nQUESTION:\nAdd two numbers.\n\n\nUse Standard Input format\n\nANSWER:\n"
        );
        assert_eq!(
            render(&stdio, Task::Plan),
            "[GEN_PLAN]\nQUESTION:\nAdd two numbers.\n\n\nUse Standard Input format\n\nLet's think step by step:\n"
        );
        let call = problem(
            Tests::Io(IoTests {
                fn_name: Some("add".into()),
                inputs: vec![],
                outputs: vec![],
            }),
            "Add.",
            "def add(a, b):\n",
        );
        assert_eq!(
            render(&call, Task::Code),
            "[GEN_CODE]\nQUESTION:\nAdd.\ndef add(a, b):\n\n\nUse Call-Based format\n\nANSWER:\n"
        );
        let he = problem(
            Tests::Check(CheckTests {
                test: String::new(),
                entry_point: "f".into(),
            }),
            "def f():\n    \"\"\"doc\"\"\"\n",
            "def f():\n    \"\"\"doc\"\"\"\n",
        );
        let text = render(&he, Task::Code);
        assert_eq!(text.matches("def f()").count(), 1, "{text}");
        assert!(chat_instruction(&he).contains("complete function"));
        assert!(chat_instruction(&stdio).contains("standard input"));
    }
}
