//! Content hashes of input files, remembered between runs so a 1 GB model is read once.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

use crate::error::{Result, RunError};

/// A remembered hash: valid while the file keeps its size and modification time.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Entry {
    size: u64,
    modified_ns: u128,
    sha256: String,
}

/// sha256 of files and folders, with a memo file (`<run>/.file-hashes.json`).
///
/// Files are remembered by (path, size, modification time); folders are hashed every time
/// (a changed file inside would not change the folder's own time).
#[derive(Debug, Default)]
pub struct FileHashes {
    memo_path: Option<PathBuf>,
    memo: BTreeMap<String, Entry>,
    changed: bool,
}

impl FileHashes {
    /// Hashes remembered in `memo_path` (a missing or unreadable memo starts empty).
    pub fn with_memo(memo_path: &Path) -> FileHashes {
        let memo = std::fs::read(memo_path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default();
        FileHashes {
            memo_path: Some(memo_path.to_owned()),
            memo,
            changed: false,
        }
    }

    /// The hex sha256 of a file's bytes, or of a folder's files (names and contents).
    pub fn sha256(&mut self, path: &Path) -> Result<String> {
        let meta = std::fs::metadata(path).map_err(|e| RunError::io(path, e))?;
        if meta.is_dir() {
            return Ok(codeplan_train::data::sha256_path(path)?);
        }
        let key = std::path::absolute(path)
            .map_err(|e| RunError::io(path, e))?
            .display()
            .to_string();
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        if let Some(e) = self.memo.get(&key) {
            if e.size == meta.len() && e.modified_ns == modified_ns && modified_ns != 0 {
                return Ok(e.sha256.clone());
            }
        }
        let sha256 = codeplan_train::data::sha256_path(path)?;
        self.memo.insert(
            key,
            Entry {
                size: meta.len(),
                modified_ns,
                sha256: sha256.clone(),
            },
        );
        self.changed = true;
        Ok(sha256)
    }

    /// Writes the memo back if it learnt anything (atomically; a failure only costs time later).
    pub fn save(&mut self) -> Result<()> {
        let Some(path) = &self.memo_path else {
            return Ok(());
        };
        if !self.changed {
            return Ok(());
        }
        let bytes = serde_json::to_vec_pretty(&self.memo).expect("hash memo serialises");
        crate::record::write_atomic(path, &bytes)?;
        self.changed = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_and_notices_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.txt");
        std::fs::write(&file, "one").unwrap();
        let memo = dir.path().join("memo.json");
        let mut h = FileHashes::with_memo(&memo);
        let first = h.sha256(&file).unwrap();
        h.save().unwrap();
        let mut again = FileHashes::with_memo(&memo);
        assert_eq!(again.sha256(&file).unwrap(), first);
        assert!(!again.changed, "a remembered file is not read again");
        std::fs::write(&file, "two!").unwrap();
        assert_ne!(again.sha256(&file).unwrap(), first);
    }
}
