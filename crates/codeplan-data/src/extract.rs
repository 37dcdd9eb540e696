//! Taking the program out of a model's answer (plain code, or markdown with fenced code blocks).

use std::borrow::Cow;

/// How the code of a sample is taken from the text in a samples file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CodeExtraction {
    /// The text is the program, as is.
    #[default]
    Raw,
    /// The text is a markdown answer: take the first Python (or unlabelled) fenced block; see [`extract_fenced`].
    Fenced,
}

impl CodeExtraction {
    /// Applies this extraction to `text`.
    pub fn apply<'a>(&self, text: &'a str) -> Cow<'a, str> {
        match self {
            CodeExtraction::Raw => Cow::Borrowed(text),
            CodeExtraction::Fenced => extract_fenced(text),
        }
    }
}

/// The code of the first fenced block whose info string is `python`, `py`, `python3` or empty.
///
/// Chat models wrap their program in markdown, often with prose around it and sometimes with
/// other blocks (sample input, shell commands) before it. Rules:
/// - A fence is a line of at least three backticks or tildes (leading whitespace allowed); it is
///   closed by a line of the same character, at least as long, with nothing else on it.
/// - The info string's first word, case-insensitively, must be `python`, `py`, `python3`, or
///   absent; blocks in other languages are skipped over whole (so their closing fence is not
///   mistaken for an opening one).
/// - The block's text is returned without the fence lines; when the opening fence is indented
///   (inside a list item), up to that many leading spaces are removed from each line.
/// - An unterminated fence takes the rest of the text.
/// - Without any matching block, the text is returned as is.
///
/// ```
/// use codeplan_data::extract_fenced;
/// let answer = "Here is the plan.\n```text\n1 2\n```\nCode:\n```python\nprint(int(input()) * 2)\n```\nDone.";
/// assert_eq!(extract_fenced(answer), "print(int(input()) * 2)\n");
///
/// // No fence at all: the answer is taken to be code.
/// assert_eq!(extract_fenced("print(1)\n"), "print(1)\n");
///
/// // A fence never closed (the model ran out of tokens) takes the rest.
/// assert_eq!(extract_fenced("~~~py\nx = 1\ny = 2"), "x = 1\ny = 2");
/// ```
pub fn extract_fenced(text: &str) -> Cow<'_, str> {
    let lines: Vec<(usize, &str)> = line_spans(text);
    let mut i = 0;
    while i < lines.len() {
        let (_, line) = lines[i];
        let Some(fence) = Fence::open(line) else {
            i += 1;
            continue;
        };
        let body_start = lines.get(i + 1).map_or(text.len(), |(s, _)| *s);
        let close = (i + 1..lines.len()).find(|&j| fence.closes(lines[j].1));
        let body_end = close.map_or(text.len(), |j| lines[j].0);
        if fence.is_python() {
            return dedent(&text[body_start..body_end], fence.indent);
        }
        match close {
            Some(j) => i = j + 1,
            None => break,
        }
    }
    Cow::Borrowed(text)
}

/// An opening fence: its character, length, indentation and info string.
struct Fence<'a> {
    ch: char,
    len: usize,
    indent: usize,
    info: &'a str,
}

impl<'a> Fence<'a> {
    fn open(line: &'a str) -> Option<Self> {
        let content = line.trim_start_matches([' ', '\t']);
        let indent = line.len() - content.len();
        let ch = content.chars().next().filter(|c| *c == '`' || *c == '~')?;
        let len = content.len() - content.trim_start_matches(ch).len();
        if len < 3 {
            return None;
        }
        let info = content[len..].trim();
        // CommonMark: a backtick fence's info string may not contain backticks (that is inline code).
        if ch == '`' && info.contains('`') {
            return None;
        }
        Some(Fence {
            ch,
            len,
            indent,
            info,
        })
    }

    fn closes(&self, line: &str) -> bool {
        let t = line.trim();
        t.len() >= self.len && t.chars().all(|c| c == self.ch)
    }

    fn is_python(&self) -> bool {
        let word = self.info.split_whitespace().next().unwrap_or("");
        let word = word.trim_start_matches('{').trim_start_matches('.');
        matches!(
            word.to_ascii_lowercase().as_str(),
            "" | "python" | "py" | "python3"
        )
    }
}

/// Each line of `text` with its starting byte offset; the line excludes its `\n` (and a `\r`).
fn line_spans(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = 0;
    for piece in text.split_inclusive('\n') {
        let line = piece.strip_suffix('\n').unwrap_or(piece);
        let line = line.strip_suffix('\r').unwrap_or(line);
        out.push((start, line));
        start += piece.len();
    }
    out
}

fn dedent(body: &str, indent: usize) -> Cow<'_, str> {
    if indent == 0 {
        return Cow::Borrowed(body);
    }
    let mut out = String::with_capacity(body.len());
    for piece in body.split_inclusive('\n') {
        let spaces = piece.len() - piece.trim_start_matches(' ').len();
        out.push_str(&piece[spaces.min(indent)..]);
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_python_block_wins_over_later_ones() {
        let t = "```python\na = 1\n```\n```python\nb = 2\n```\n";
        assert_eq!(extract_fenced(t), "a = 1\n");
    }

    #[test]
    fn other_language_block_is_skipped_whole() {
        // The ```cpp block's closing fence must not be read as an unlabelled opening fence.
        let t = "```cpp\nint main() {}\n```\ntext\n```py\nprint(2)\n```";
        assert_eq!(extract_fenced(t), "print(2)\n");
    }

    #[test]
    fn unlabelled_and_tilde_fences_count() {
        assert_eq!(extract_fenced("x\n```\nprint(3)\n```\n"), "print(3)\n");
        assert_eq!(extract_fenced("~~~\nprint(4)\n~~~\n"), "print(4)\n");
        assert_eq!(
            extract_fenced("~~~~Python3 \nprint(5)\n~~~~\n"),
            "print(5)\n"
        );
    }

    #[test]
    fn longer_fence_contains_shorter_ones() {
        let t = "````python\ns = '''\n```\n'''\n````\n";
        assert_eq!(extract_fenced(t), "s = '''\n```\n'''\n");
    }

    #[test]
    fn crlf_and_indented_fences() {
        assert_eq!(extract_fenced("```python\r\nx = 1\r\n```\r\n"), "x = 1\r\n");
        assert_eq!(
            extract_fenced("1. Code:\n   ```python\n   if x:\n       y()\n   ```\n"),
            "if x:\n    y()\n"
        );
    }

    #[test]
    fn only_non_python_blocks_gives_text_as_is() {
        let t = "```java\nclass A {}\n```\n";
        assert_eq!(extract_fenced(t), t);
        assert_eq!(
            CodeExtraction::Raw.apply("```python\nx\n```"),
            "```python\nx\n```"
        );
    }

    #[test]
    fn unterminated_and_empty_blocks() {
        assert_eq!(extract_fenced("intro\n```python\nprint(1)\n"), "print(1)\n");
        assert_eq!(extract_fenced("```python\n```\n"), "");
        assert_eq!(extract_fenced("```python"), "");
    }

    #[test]
    fn inline_backticks_are_not_fences() {
        let t = "use ```x``` here\nprint(1)\n";
        assert_eq!(extract_fenced(t), t);
    }
}
