//! The leak guard: a plan must explain the reference solution, not restate it. Plans with code
//! fences, or that copy a run of the solution's lines or a long run of its tokens, are rejected
//! (and the reason recorded).

use serde::{Deserialize, Serialize};

/// Thresholds of the leak guard.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LeakGuard {
    /// Reject plans containing a fenced code block.
    pub reject_fences: bool,
    /// Reject a plan containing this many consecutive lines of the solution (lines of at
    /// least [`LeakGuard::min_line_chars`] characters, compared without surrounding blanks).
    pub max_copied_lines: usize,
    /// Shorter lines (`else:`, `print(x)`) do not count as copied lines.
    pub min_line_chars: usize,
    /// Reject a plan containing this many consecutive code tokens of the solution
    /// (identifiers, numbers, operators; whitespace and backticks ignored).
    pub max_copied_tokens: usize,
}

impl Default for LeakGuard {
    fn default() -> Self {
        LeakGuard {
            reject_fences: true,
            max_copied_lines: 2,
            min_line_chars: 12,
            max_copied_tokens: 20,
        }
    }
}

/// Why a plan was rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Leak {
    /// It contains a fenced code block.
    CodeFence,
    /// It copies consecutive lines of the solution.
    CopiedLines {
        /// How many.
        lines: usize,
        /// The first copied line.
        first: String,
    },
    /// It copies a long run of the solution's tokens.
    CopiedTokens {
        /// How many.
        tokens: usize,
        /// The copied text (tokens joined by spaces).
        run: String,
    },
}

impl Leak {
    /// A sentence for summaries.
    pub fn describe(&self) -> String {
        match self {
            Leak::CodeFence => "contains a code fence".into(),
            Leak::CopiedLines { lines, first } => {
                format!("copies {lines} consecutive solution lines, from {first:?}")
            }
            Leak::CopiedTokens { tokens, run } => {
                format!("copies {tokens} consecutive solution tokens: {run:?}")
            }
        }
    }
}

impl LeakGuard {
    /// Checks `plan` against the reference `solution` it explains (`None` for forward plans:
    /// only the fence rule applies).
    pub fn check(&self, plan: &str, solution: Option<&str>) -> Result<(), Leak> {
        if self.reject_fences && has_fence(plan) {
            return Err(Leak::CodeFence);
        }
        let Some(solution) = solution else {
            return Ok(());
        };
        if self.max_copied_lines > 0 {
            let (lines, first) = longest_copied_lines(plan, solution, self.min_line_chars);
            if lines >= self.max_copied_lines {
                return Err(Leak::CopiedLines { lines, first });
            }
        }
        if self.max_copied_tokens > 0 {
            let plan_tokens = tokens(plan);
            let solution_tokens = tokens(solution);
            let (len, end) = longest_common_run(&plan_tokens, &solution_tokens);
            if len >= self.max_copied_tokens {
                return Err(Leak::CopiedTokens {
                    tokens: len,
                    run: plan_tokens[end + 1 - len..=end].join(" "),
                });
            }
        }
        Ok(())
    }
}

fn has_fence(text: &str) -> bool {
    text.lines().any(|l| {
        let t = l.trim_start();
        t.starts_with("```") || t.starts_with("~~~")
    })
}

/// The longest run of consecutive solution lines that appear, consecutively, in the plan.
fn longest_copied_lines(plan: &str, solution: &str, min_chars: usize) -> (usize, String) {
    let norm = |l: &str| l.split_whitespace().collect::<Vec<_>>().join(" ");
    let plan_lines: Vec<String> = plan.lines().map(norm).filter(|l| !l.is_empty()).collect();
    let sol_lines: Vec<String> = solution
        .lines()
        .map(norm)
        .filter(|l| !l.is_empty())
        .collect();
    let long = |l: &String| l.chars().count() >= min_chars;
    let (mut best, mut first) = (0, String::new());
    for i in 0..plan_lines.len() {
        for j in 0..sol_lines.len() {
            let mut k = 0;
            while i + k < plan_lines.len()
                && j + k < sol_lines.len()
                && long(&sol_lines[j + k])
                && plan_lines[i + k].contains(sol_lines[j + k].as_str())
            {
                k += 1;
            }
            if k > best {
                best = k;
                first = sol_lines[j].clone();
            }
        }
    }
    (best, first)
}

/// Code tokens: identifiers/numbers, and each other non-blank character; backticks dropped.
fn tokens(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut word = String::new();
    for c in text.chars() {
        if c.is_alphanumeric() || c == '_' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            out.push(std::mem::take(&mut word));
        }
        if !c.is_whitespace() && c != '`' {
            out.push(c.to_string());
        }
    }
    if !word.is_empty() {
        out.push(word);
    }
    out
}

/// Length and end index (in `a`) of the longest common contiguous run of `a` and `b`.
fn longest_common_run(a: &[String], b: &[String]) -> (usize, usize) {
    let mut prev = vec![0usize; b.len() + 1];
    let mut cur = vec![0usize; b.len() + 1];
    let (mut best, mut end) = (0, 0);
    for (i, x) in a.iter().enumerate() {
        for (j, y) in b.iter().enumerate() {
            cur[j + 1] = if x == y { prev[j] + 1 } else { 0 };
            if cur[j + 1] > best {
                best = cur[j + 1];
                end = i;
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    (best, end)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOLUTION: &str = "n = int(input())\nvalues = sorted(map(int, input().split()))\ntotal = sum(values[i] * (i + 1) for i in range(n))\nprint(total % 1000000007)\n";

    #[test]
    fn explanations_pass() {
        let plan = "1. Read n and the n values.\n2. Sort the values in increasing order.\n3. Sum each value times its 1-based position, e.g. `values[i] * (i + 1)`.\n4. Print the total modulo 1000000007.";
        assert_eq!(LeakGuard::default().check(plan, Some(SOLUTION)), Ok(()));
    }

    #[test]
    fn restatements_are_caught() {
        let g = LeakGuard::default();
        let fenced = "1. Do this:\n```python\nprint(1)\n```";
        assert_eq!(g.check(fenced, Some(SOLUTION)), Err(Leak::CodeFence));
        assert_eq!(
            g.check(fenced, None),
            Err(Leak::CodeFence),
            "forward plans too"
        );
        let copied =
            "Steps:\n1. n = int(input())\n2. values = sorted(map(int, input().split()))\n3. done";
        match g.check(copied, Some(SOLUTION)) {
            Err(Leak::CopiedLines { lines: 2, first }) => assert_eq!(first, "n = int(input())"),
            other => panic!("{other:?}"),
        }
        let inline = "1. Compute total = sum(values[i] * (i + 1) for i in range(n)) and print it.";
        match g.check(inline, Some(SOLUTION)) {
            Err(Leak::CopiedTokens { tokens, run }) => {
                assert_eq!(tokens, 22);
                assert!(run.starts_with("total = sum ("), "{run}");
            }
            other => panic!("{other:?}"),
        }
        let lax = LeakGuard {
            reject_fences: false,
            max_copied_lines: 0,
            min_line_chars: 12,
            max_copied_tokens: 0,
        };
        assert_eq!(
            lax.check(fenced, Some(SOLUTION)),
            Ok(()),
            "every rule can be turned off"
        );
        assert_eq!(lax.check(copied, Some(SOLUTION)), Ok(()));
    }
}
