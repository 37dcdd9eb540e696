//! Per-worker control groups: a process cap (pids) and a memory cap, and a way to kill all.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// Which cgroup hierarchy a controller lives in.
#[derive(Debug, Clone)]
struct Controller {
    dir: PathBuf,
    v2: bool,
}

/// The cgroups of one worker; removed (after killing what is left) when dropped.
#[derive(Debug)]
pub struct WorkerCgroup {
    pids: Option<Controller>,
    memory: Option<Controller>,
}

fn find_base(v1_name: &str, v2_controller: &str) -> Option<(PathBuf, bool)> {
    let v1 = Path::new("/sys/fs/cgroup").join(v1_name);
    if v1.join("cgroup.procs").exists() && !v1.join("cgroup.controllers").exists() {
        return Some((v1, false));
    }
    let v2 = Path::new("/sys/fs/cgroup");
    let controllers = fs::read_to_string(v2.join("cgroup.controllers")).ok()?;
    controllers
        .split_whitespace()
        .any(|c| c == v2_controller)
        .then(|| (v2.to_path_buf(), true))
}

fn make(base: Option<(PathBuf, bool)>, name: &str) -> Option<Controller> {
    let (base, v2) = base?;
    let parent = base.join("codeplan");
    fs::create_dir_all(&parent).ok()?;
    if v2 {
        // Children of a v2 cgroup get a controller only if the parent delegates it.
        let _ = fs::write(base.join("cgroup.subtree_control"), "+pids +memory");
        let _ = fs::write(parent.join("cgroup.subtree_control"), "+pids +memory");
    }
    let dir = parent.join(name);
    fs::create_dir(&dir).ok()?;
    Some(Controller { dir, v2 })
}

impl WorkerCgroup {
    /// Creates the worker's cgroups where this process may (root, or a delegated hierarchy).
    pub fn create(max_processes: u32, memory_bytes: u64) -> WorkerCgroup {
        let name = format!(
            "w{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let pids = make(find_base("pids", "pids"), &name)
            .filter(|c| fs::write(c.dir.join("pids.max"), max_processes.to_string()).is_ok());
        let memory = make(find_base("memory", "memory"), &name).filter(|c| {
            let file = if c.v2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            };
            fs::write(c.dir.join(file), memory_bytes.to_string()).is_ok()
        });
        WorkerCgroup { pids, memory }
    }

    /// Whether the process cap is in force.
    pub fn has_pids(&self) -> bool {
        self.pids.is_some()
    }

    /// Whether the memory cap is in force.
    pub fn has_memory(&self) -> bool {
        self.memory.is_some()
    }

    /// `cgroup.procs` files the child joins before exec (prepared before fork).
    pub fn procs_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = Vec::new();
        for c in [&self.pids, &self.memory].into_iter().flatten() {
            let f = c.dir.join("cgroup.procs");
            if !v.contains(&f) {
                v.push(f);
            }
        }
        v
    }

    /// Kills every process in the worker's cgroups (`cgroup.kill` on v2, one by one on v1).
    pub fn kill_all(&self) {
        for c in [&self.pids, &self.memory].into_iter().flatten() {
            if c.v2 && fs::write(c.dir.join("cgroup.kill"), "1").is_ok() {
                continue;
            }
            for _ in 0..50 {
                let procs = fs::read_to_string(c.dir.join("cgroup.procs")).unwrap_or_default();
                let pids: Vec<i32> = procs
                    .lines()
                    .filter_map(|l| l.trim().parse().ok())
                    .collect();
                if pids.is_empty() {
                    break;
                }
                for pid in pids {
                    // SAFETY: signalling a pid read from our own cgroup.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                std::thread::sleep(std::time::Duration::from_millis(2));
            }
        }
    }

    /// Number of processes currently in the worker's pids cgroup.
    pub fn process_count(&self) -> io::Result<usize> {
        let c = self
            .pids
            .as_ref()
            .ok_or_else(|| io::Error::other("no pids cgroup"))?;
        Ok(fs::read_to_string(c.dir.join("cgroup.procs"))?
            .lines()
            .count())
    }
}

impl Drop for WorkerCgroup {
    fn drop(&mut self) {
        self.kill_all();
        for c in [&self.pids, &self.memory].into_iter().flatten() {
            for _ in 0..100 {
                if fs::remove_dir(&c.dir).is_ok() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}
