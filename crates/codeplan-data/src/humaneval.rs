//! HumanEval and MBPP (sanitized, CodeT form): `task_id`, `prompt`, `entry_point`,
//! `canonical_solution`, `test`.

use crate::error::Invalid;
use crate::json::Record;
use crate::problem::{CheckTests, Problem, Source, Tests};

/// Reads one HumanEval-form record as a problem of `source` (HumanEval or MBPP).
///
/// The prompt is both the question and the starter code (the model continues it), and the one
/// reference solution is `prompt + canonical_solution`, as human-eval's evaluator builds programs.
/// For MBPP the canonical solution is first re-indented with [`reindent_body`].
/// `canonical_solution` may be absent (then the problem has no reference solution).
pub(crate) fn problem_from_record(
    rec: &mut Record<'_>,
    source: Source,
) -> Result<Problem, Invalid> {
    let id = rec.req_id("task_id")?;
    rec.id = Some(id.clone());
    let prompt = rec.req_str("prompt")?;
    let entry_point = rec.req_str("entry_point")?.to_owned();
    let test = rec.req_str("test")?.to_owned();
    let solutions = match rec.opt_str("canonical_solution")? {
        Some(body) if source == Source::Mbpp => {
            vec![format!("{prompt}{}", reindent_body(prompt, body))]
        }
        Some(body) => vec![format!("{prompt}{body}")],
        None => Vec::new(),
    };
    Ok(Problem {
        id,
        source,
        split: None,
        question: prompt.to_owned(),
        starter_code: prompt.to_owned(),
        difficulty: None,
        tests: Tests::Check(CheckTests { test, entry_point }),
        solutions,
    })
}

/// Re-indents a function body so that it continues `prompt` (which ends inside a function) validly.
///
/// In the CodeT form of MBPP the prompt is `def f(...):` plus a docstring indented by 4 spaces,
/// while the canonical solution keeps the original MBPP body's indentation (2 spaces, 1 space, a
/// tab, 8 spaces, sometimes tabs and spaces mixed), so `prompt + solution` is an
/// `IndentationError` for most records.
///
/// Indentation is measured in columns the way Python reads it (a tab advances to the next
/// multiple of 8). The body's own column is that of its first line that is neither blank nor a
/// comment. Every body line indented at least that far is shifted so the body starts at the
/// prompt's indentation, with the extra indentation written as spaces; this keeps the nesting
/// exactly and removes tab/space mixtures that Python would reject once shifted. The body ends at
/// the first line that starts at column 0 with code (MBPP solutions often define helper functions
/// after the main one); that line and the rest are top-level code and stay as they are. Blank
/// lines, comments and less-indented lines (continuations inside brackets) are kept unchanged.
///
/// ```
/// use codeplan_data::reindent_body;
/// let prompt = "def f(x):\n    '''Doubles x.'''\n";
/// let body = "  y = x * 2\n  if y:\n    return y\n  return 0\ndef g():\n  return 1\n";
/// assert_eq!(
///     reindent_body(prompt, body),
///     "    y = x * 2\n    if y:\n      return y\n    return 0\ndef g():\n  return 1\n"
/// );
/// ```
pub fn reindent_body(prompt: &str, body: &str) -> String {
    let target = prompt_indent(prompt);
    let Some(unit) = body
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        .map(|l| column(leading_ws(l)))
    else {
        return body.to_owned();
    };
    if unit == 0 {
        // Code at column 0 is not a body; there is nothing sensible to shift.
        return body.to_owned();
    }
    let mut out = String::with_capacity(body.len() + body.len() / 4);
    let mut in_body = true;
    for line in body.split_inclusive('\n') {
        let ws = leading_ws(line);
        let rest = &line[ws.len()..];
        if in_body && ws.is_empty() && !rest.trim().is_empty() && !rest.starts_with('#') {
            in_body = false;
        }
        let col = column(ws);
        if in_body && !rest.trim().is_empty() && col >= unit {
            out.push_str(&target);
            out.extend(std::iter::repeat_n(' ', col - unit));
            out.push_str(rest);
        } else {
            out.push_str(line);
        }
    }
    out
}

/// The indentation the next line after `prompt` must have to be inside its function.
fn prompt_indent(prompt: &str) -> String {
    match prompt.lines().rev().find(|l| !l.trim().is_empty()) {
        // The prompt ends with the signature itself: the body goes one level deeper.
        Some(last) if last.trim_end().ends_with(':') => format!("{}    ", leading_ws(last)),
        Some(last) if !leading_ws(last).is_empty() => leading_ws(last).to_owned(),
        _ => "    ".to_owned(),
    }
}

fn leading_ws(line: &str) -> &str {
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

/// The column after `ws` as Python's tokenizer computes it (a tab goes to the next multiple of 8).
fn column(ws: &str) -> usize {
    ws.chars().fold(0, |col, c| {
        if c == '\t' {
            (col / 8 + 1) * 8
        } else {
            col + 1
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = "def f(a):\n    '''\n    Doc.\n    '''\n";

    #[test]
    fn already_aligned_body_is_unchanged() {
        let body = "    if a:\n        return a\n    return 0\n";
        assert_eq!(reindent_body(PROMPT, body), body);
    }

    #[test]
    fn tab_body_becomes_spaces_and_keeps_nesting() {
        let body = "\tif a:\n\t\treturn 1\n\treturn 0\n";
        assert_eq!(
            reindent_body(PROMPT, body),
            "    if a:\n            return 1\n    return 0\n"
        );
    }

    #[test]
    fn mixed_tabs_and_spaces_follow_python_columns() {
        // MbppEval/264: ` \t` is column 8 and `\t ` column 9 for Python; both shift by +3.
        let body = " if a:\n \tx = 1\n else:\n\t x = 2\n return x\n";
        assert_eq!(
            reindent_body(PROMPT, body),
            "    if a:\n           x = 1\n    else:\n            x = 2\n    return x\n"
        );
    }

    #[test]
    fn leading_comment_and_one_space_body() {
        let body = "#note\n x = a\n return x\n";
        assert_eq!(
            reindent_body(PROMPT, body),
            "#note\n    x = a\n    return x\n"
        );
    }

    #[test]
    fn prompt_without_docstring_indents_one_level() {
        assert_eq!(
            reindent_body("def f(a):\n", "  return a\n"),
            "    return a\n"
        );
    }

    #[test]
    fn nested_lines_shift_and_later_functions_are_kept() {
        let body = "  return (a +\n        1)\ndef g(b):\n  return b\n";
        assert_eq!(
            reindent_body(PROMPT, body),
            "    return (a +\n          1)\ndef g(b):\n  return b\n"
        );
    }

    #[test]
    fn body_at_column_zero_is_left_alone() {
        assert_eq!(reindent_body(PROMPT, "return a\n"), "return a\n");
    }
}
