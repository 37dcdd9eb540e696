//! Where answers are kept: an append-only, fsynced ledger in the run's folder (a run killed at
//! any moment resumes without losing a paid answer) and a content-addressed cache shared by
//! runs (a rerun with the same settings asks nothing).

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::client::Attempt;
use crate::request::Reply;
use crate::TeacherError;

/// One line of `ledger.jsonl`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// The request's content address.
    pub key: String,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    /// What the request was for (`plan 4787 s0 k1`), for people reading the ledger.
    pub label: String,
    /// What happened.
    #[serde(flatten)]
    pub event: LedgerEvent,
}

/// What happened to a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum LedgerEvent {
    /// The teacher answered (possibly after retries).
    Answer {
        /// The answer.
        reply: Reply,
        /// Where it came from: `teacher`, `cache` or `batch`.
        source: String,
        /// Failed attempts before it.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        retries: Vec<Attempt>,
    },
    /// No answer (recorded; a rerun asks again).
    Failure {
        /// Why.
        error: String,
        /// Every failed attempt.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attempts: Vec<Attempt>,
    },
}

/// A cache file: the question and its answer.
#[derive(Debug, Serialize, Deserialize)]
struct CacheFile {
    key: String,
    teacher: String,
    request: serde_json::Value,
    reply: Reply,
}

/// The ledger and the cache of one run.
pub struct Store {
    path: PathBuf,
    ledger: Mutex<File>,
    answers: Mutex<HashMap<String, Reply>>,
    cache_dir: Option<PathBuf>,
    teacher: String,
}

impl Store {
    /// Opens (or creates) `ledger.jsonl` in `out_dir` and reads its answers. A torn last line
    /// (the process died while writing it) is cut off; any other unreadable line is an error
    /// naming it.
    pub fn open(
        out_dir: &Path,
        cache_dir: Option<&Path>,
        teacher: &str,
    ) -> Result<Store, TeacherError> {
        fs::create_dir_all(out_dir).map_err(|e| TeacherError::io(out_dir, e))?;
        let path = out_dir.join("ledger.jsonl");
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| TeacherError::io(&path, e))?;
        let mut text = String::new();
        file.read_to_string(&mut text)
            .map_err(|e| TeacherError::io(&path, e))?;
        let mut answers = HashMap::new();
        let mut good_len = 0usize;
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        for (i, line) in lines.iter().enumerate() {
            let last = i + 1 == lines.len();
            match serde_json::from_str::<LedgerEntry>(line) {
                Ok(entry) if line.ends_with('\n') => {
                    if let LedgerEvent::Answer { reply, .. } = entry.event {
                        answers.insert(entry.key, reply);
                    }
                    good_len += line.len();
                }
                _ if last => break, // torn by a crash: dropped below
                Err(e) => {
                    return Err(TeacherError::Ledger(format!(
                        "{} line {}: {e}",
                        path.display(),
                        i + 1
                    )))
                }
                Ok(_) => unreachable!("only the last line can lack its newline"),
            }
        }
        if good_len < text.len() {
            file.set_len(good_len as u64)
                .map_err(|e| TeacherError::io(&path, e))?;
            file.seek(SeekFrom::End(0))
                .map_err(|e| TeacherError::io(&path, e))?;
        }
        if let Some(dir) = cache_dir {
            fs::create_dir_all(dir).map_err(|e| TeacherError::io(dir, e))?;
        }
        Ok(Store {
            path,
            ledger: Mutex::new(file),
            answers: Mutex::new(answers),
            cache_dir: cache_dir.map(Path::to_path_buf),
            teacher: teacher.to_owned(),
        })
    }

    /// The ledger's path.
    pub fn ledger_path(&self) -> &Path {
        &self.path
    }

    /// Answers in this run's ledger.
    pub fn answered(&self) -> usize {
        self.answers.lock().expect("answers lock").len()
    }

    /// The answer to `key` from the ledger, else from the cache (then written to the ledger, so
    /// the run's folder holds every answer it used).
    pub fn lookup(&self, key: &str, label: &str) -> Result<Option<Reply>, TeacherError> {
        if let Some(reply) = self.answers.lock().expect("answers lock").get(key) {
            return Ok(Some(reply.clone()));
        }
        let Some(file) = self.cache_file(key) else {
            return Ok(None);
        };
        let Ok(text) = fs::read_to_string(&file) else {
            return Ok(None);
        };
        // A damaged cache file is only a miss: the ledger, not the cache, is what must be whole.
        let Ok(cached) = serde_json::from_str::<CacheFile>(&text) else {
            return Ok(None);
        };
        if cached.key != key || cached.teacher != self.teacher {
            return Ok(None);
        }
        self.append(key, label, "cache", &cached.reply, &[])?;
        Ok(Some(cached.reply))
    }

    /// Records an answer: ledger line (fsynced) first, then the cache file.
    pub fn record_answer(
        &self,
        key: &str,
        label: &str,
        source: &str,
        request: &serde_json::Value,
        reply: &Reply,
        retries: &[Attempt],
    ) -> Result<(), TeacherError> {
        self.append(key, label, source, reply, retries)?;
        if let Some(file) = self.cache_file(key) {
            let body = serde_json::to_vec(&CacheFile {
                key: key.to_owned(),
                teacher: self.teacher.clone(),
                request: request.clone(),
                reply: reply.clone(),
            })
            .expect("cache files serialise");
            let dir = file.parent().expect("cache files are in a folder");
            fs::create_dir_all(dir).map_err(|e| TeacherError::io(dir, e))?;
            codeplan_exec::eval::write_atomic(&file, &body)
                .map_err(|e| TeacherError::io(&file, e))?;
        }
        Ok(())
    }

    /// Records a request that got no answer (a rerun asks again).
    pub fn record_failure(
        &self,
        key: &str,
        label: &str,
        error: &str,
        attempts: &[Attempt],
    ) -> Result<(), TeacherError> {
        self.write_line(&LedgerEntry {
            key: key.to_owned(),
            at_ms: now_ms(),
            label: label.to_owned(),
            event: LedgerEvent::Failure {
                error: error.to_owned(),
                attempts: attempts.to_vec(),
            },
        })
    }

    fn append(
        &self,
        key: &str,
        label: &str,
        source: &str,
        reply: &Reply,
        retries: &[Attempt],
    ) -> Result<(), TeacherError> {
        let mut answers = self.answers.lock().expect("answers lock");
        if answers.contains_key(key) {
            return Ok(()); // already recorded: the ledger never holds an answer twice
        }
        self.write_line(&LedgerEntry {
            key: key.to_owned(),
            at_ms: now_ms(),
            label: label.to_owned(),
            event: LedgerEvent::Answer {
                reply: reply.clone(),
                source: source.to_owned(),
                retries: retries.to_vec(),
            },
        })?;
        answers.insert(key.to_owned(), reply.clone());
        Ok(())
    }

    fn write_line(&self, entry: &LedgerEntry) -> Result<(), TeacherError> {
        let mut line = serde_json::to_string(entry).expect("ledger entries serialise");
        line.push('\n');
        let mut file = self.ledger.lock().expect("ledger lock");
        file.write_all(line.as_bytes())
            .and_then(|()| file.sync_data())
            .map_err(|e| TeacherError::io(&self.path, e))
    }

    fn cache_file(&self, key: &str) -> Option<PathBuf> {
        let dir = self.cache_dir.as_ref()?;
        Some(dir.join(&key[..2]).join(format!("{key}.json")))
    }
}

/// Reads every entry of a ledger file (for tests and reports).
pub fn read_ledger(path: &Path) -> Result<Vec<LedgerEntry>, TeacherError> {
    let text = fs::read_to_string(path).map_err(|e| TeacherError::io(path, e))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            serde_json::from_str(l).map_err(|e| {
                TeacherError::Ledger(format!("{} line {}: {e}", path.display(), i + 1))
            })
        })
        .collect()
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Usage;

    fn reply(text: &str) -> Reply {
        Reply {
            content: Some(text.into()),
            finish_reason: Some("stop".into()),
            refusal: None,
            usage: Usage {
                prompt_tokens: 1,
                completion_tokens: 2,
            },
            served_by: None,
        }
    }

    #[test]
    fn answers_survive_a_torn_line_and_come_back_from_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("run");
        let cache = dir.path().join("cache");
        let body = serde_json::json!({"x": 1});
        let key_a = "a".repeat(64);
        let key_b = "b".repeat(64);
        {
            let s = Store::open(&out, Some(&cache), "t").unwrap();
            s.record_answer(&key_a, "plan a", "teacher", &body, &reply("A"), &[])
                .unwrap();
            s.record_answer(&key_a, "plan a", "teacher", &body, &reply("A"), &[])
                .unwrap();
            s.record_failure(&key_b, "plan b", "timed out", &[])
                .unwrap();
        }
        // A crash in the middle of a line.
        let ledger = out.join("ledger.jsonl");
        let mut f = OpenOptions::new().append(true).open(&ledger).unwrap();
        f.write_all(b"{\"key\":\"cc").unwrap();
        drop(f);
        let s = Store::open(&out, Some(&cache), "t").unwrap();
        assert_eq!(s.lookup(&key_a, "x").unwrap(), Some(reply("A")));
        assert_eq!(s.lookup(&key_b, "x").unwrap(), None);
        let entries = read_ledger(&ledger).unwrap();
        assert_eq!(
            entries.len(),
            2,
            "answer once, failure once, torn line gone"
        );

        // A new run folder finds the answer in the shared cache and records it.
        let other = Store::open(&dir.path().join("run2"), Some(&cache), "t").unwrap();
        assert_eq!(other.lookup(&key_a, "x").unwrap(), Some(reply("A")));
        assert_eq!(other.answered(), 1);
        // Another teacher does not see it.
        let foreign = Store::open(&dir.path().join("run3"), Some(&cache), "u").unwrap();
        assert_eq!(foreign.lookup(&key_a, "x").unwrap(), None);
    }

    #[test]
    fn a_damaged_line_in_the_middle_is_named() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("ledger.jsonl"), "not json\n{}\n").unwrap();
        let err = Store::open(dir.path(), None, "t")
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("ledger.jsonl line 1"), "{err}");
    }
}
