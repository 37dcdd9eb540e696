//! Errors of the data layer: every bad-input error says where (file, line, problem id, field) and what.

use std::fmt;
use std::path::{Path, PathBuf};

/// What kind of problem a bad record has, for callers that want to react to it programmatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InvalidKind {
    /// A JSONL line that is not valid JSON, or not a JSON object.
    MalformedJson,
    /// A required field is absent.
    MissingField,
    /// A field has the wrong JSON type (e.g. a number where a string is expected).
    WrongType,
    /// A field holding JSON *text* (APPS `solutions`, `input_output`) does not parse, or parses to the wrong shape.
    EmbeddedJson,
    /// A field has the right type but an unusable value (e.g. `inputs` and `outputs` of different length).
    BadValue,
    /// A problem id appears twice, or a (problem, sample index) pair does.
    Duplicate,
    /// A sample names a problem that was not loaded.
    UnknownProblem,
    /// A file has no records at all.
    EmptyFile,
    /// The file's format could not be recognised.
    UnknownFormat,
}

/// One bad record (or file): where it is and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The file holding the record (for the APPS folder layout, the file inside the problem folder).
    pub file: PathBuf,
    /// 1-based line number in a JSONL file; `None` for whole files.
    pub line: Option<usize>,
    /// The problem id, when it could be read.
    pub problem_id: Option<String>,
    /// The field at fault, when one is.
    pub field: Option<String>,
    /// The kind of fault.
    pub kind: InvalidKind,
    /// What is wrong, in words (without the location, which `Display` adds).
    pub message: String,
}

impl Invalid {
    /// A fault in `file` (no line, id or field yet; add them with the builder methods).
    pub fn new(file: &Path, kind: InvalidKind, message: impl Into<String>) -> Self {
        Invalid {
            file: file.to_path_buf(),
            line: None,
            problem_id: None,
            field: None,
            kind,
            message: message.into(),
        }
    }

    /// Sets the 1-based line number.
    pub fn at_line(mut self, line: usize) -> Self {
        self.line = Some(line);
        self
    }

    /// Sets the problem id (kept if one is already set: the innermost context knows best).
    pub fn for_problem(mut self, id: Option<&str>) -> Self {
        if self.problem_id.is_none() {
            self.problem_id = id.map(str::to_owned);
        }
        self
    }

    /// Sets the field at fault.
    pub fn in_field(mut self, field: &str) -> Self {
        self.field = Some(field.to_owned());
        self
    }

    /// The message with the field prefix but without file and line: what a [`Skipped`] records.
    pub fn reason(&self) -> String {
        let mut out = String::new();
        if let Some(id) = &self.problem_id {
            out.push_str(&format!("problem `{id}`: "));
        }
        if let Some(field) = &self.field {
            out.push_str(&format!("field `{field}`: "));
        }
        out.push_str(&self.message);
        out
    }

    /// This fault as a [`Skipped`] entry (used when `skip_invalid` is on).
    pub fn to_skipped(&self) -> Skipped {
        Skipped {
            file: self.file.clone(),
            line: self.line,
            problem_id: self.problem_id.clone(),
            reason: self.reason(),
        }
    }
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": {}", self.reason())
    }
}

/// A record left out because `skip_invalid` was on; nothing is dropped without one of these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The file holding the record.
    pub file: PathBuf,
    /// 1-based line number in a JSONL file; `None` for the APPS folder layout.
    pub line: Option<usize>,
    /// The problem id, when it could be read.
    pub problem_id: Option<String>,
    /// Why the record was skipped (field and message).
    pub reason: String,
}

impl fmt::Display for Skipped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, ": skipped: {}", self.reason)
    }
}

/// Where one copy of a duplicated problem id came from (for [`DataError::DuplicateProblems`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateId {
    /// The duplicated id.
    pub id: String,
    /// The source that defined it first.
    pub first: PathBuf,
    /// The source that defined it again.
    pub second: PathBuf,
}

/// Every error of the data layer.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// A file or folder could not be read or written.
    #[error("{}: {action}: {source}", path.display())]
    Io {
        /// The path involved.
        path: PathBuf,
        /// What was being done (`"cannot read"`, `"cannot write"`, ...).
        action: &'static str,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A bad record or file; see [`Invalid`].
    #[error("{0}")]
    Invalid(Box<Invalid>),
    /// Several data sources define the same problem id.
    #[error("{}", describe_duplicates(.0))]
    DuplicateProblems(Vec<DuplicateId>),
    /// A selection asked for problem ids that were not loaded.
    #[error("unknown problem id(s) in the selection: {}", quote_list(.0))]
    UnknownIds(Vec<String>),
    /// A selection asked for difficulty names that do not exist.
    #[error("unknown difficulty name(s) {}; valid names: {}", quote_list(.unknown), quote_list(.valid))]
    UnknownDifficulties {
        /// The names asked for that do not exist.
        unknown: Vec<String>,
        /// The names that may be used.
        valid: Vec<String>,
    },
    /// A `--format` name that is not one of `auto`, `apps`, `humaneval`, `mbpp`.
    #[error("unknown data format `{0}`; expected one of: auto, apps, humaneval, mbpp")]
    UnknownFormatName(String),
}

impl DataError {
    /// An I/O error on `path`.
    pub fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    }

    /// The bad-record details, when this is a [`DataError::Invalid`].
    pub fn as_invalid(&self) -> Option<&Invalid> {
        match self {
            DataError::Invalid(inv) => Some(inv),
            _ => None,
        }
    }
}

impl From<Invalid> for DataError {
    fn from(inv: Invalid) -> Self {
        DataError::Invalid(Box::new(inv))
    }
}

fn quote_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("`{s}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn describe_duplicates(dups: &[DuplicateId]) -> String {
    // Name every clash (not just the first) so one run shows the user everything to fix.
    let shown: Vec<String> = dups
        .iter()
        .take(20)
        .map(|d| {
            format!(
                "`{}` (in {} and {})",
                d.id,
                d.first.display(),
                d.second.display()
            )
        })
        .collect();
    let more = if dups.len() > shown.len() {
        format!(" and {} more", dups.len() - shown.len())
    } else {
        String::new()
    };
    format!(
        "{} problem id(s) defined by more than one data source: {}{more}; \
         problem ids must be unique across all data sources (APPS train and test reuse ids: load one split)",
        dups.len(),
        shown.join(", ")
    )
}
