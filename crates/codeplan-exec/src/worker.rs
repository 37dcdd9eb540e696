//! One warm, sandboxed Python worker and the framed protocol spoken with it.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::python::PythonInfo;
use crate::sandbox::{self, Layers, SandboxLimits, StatusPage, WorkerCgroup};
use crate::ExecError;

/// The in-sandbox worker program (Python), embedded in the binary: framing and imports, the
/// APPS harness, the strict harness, and the zygote loop that forks children for them.
pub const SOURCE: &str = concat!(
    include_str!("worker/common.py"),
    "\n\n",
    include_str!("worker/apps.py"),
    "\n\n",
    include_str!("worker/strict.py"),
    "\n\n",
    include_str!("worker/zygote.py"),
);
/// The largest frame a worker may send; anything bigger is a protocol error.
const MAX_FRAME: usize = 256 << 20;
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// What a worker reports about itself when it starts.
#[derive(Debug, Clone, Deserialize)]
pub struct Hello {
    /// Python version inside the sandbox.
    pub python: String,
    /// numpy version inside the sandbox.
    pub numpy: String,
    /// The integer-to-string digit limit.
    pub int_max_str_digits: i64,
    /// The worker's pid as it sees it (1 in its own pid namespace).
    pub pid: i64,
    /// Its uid as it sees it.
    pub uid: i64,
    /// `Seccomp:` from /proc/self/status (2 = filter mode).
    pub seccomp: Option<String>,
}

/// Why reading from a worker failed.
#[derive(Debug)]
pub enum ReadError {
    /// The deadline passed with no complete frame.
    Deadline,
    /// The worker closed its end (it died).
    Closed,
    /// The worker sent something that is not a valid frame.
    Protocol(String),
}

/// A running worker. Dropping it kills it and everything it started.
pub struct Worker {
    child: Child,
    requests: File,
    responses: File,
    buffer: Vec<u8>,
    /// What the worker reported at start-up.
    pub hello: Hello,
    /// Isolation layers in force.
    pub layers: Layers,
    cgroup: WorkerCgroup,
    scratch: std::path::PathBuf,
}

fn pipe() -> Result<(File, File), ExecError> {
    let mut fds = [0; 2];
    // SAFETY: fds is a valid two-element array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(ExecError::Sandbox(format!(
            "pipe: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: both fds are fresh and owned by us.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

impl Worker {
    /// Starts a worker in the sandbox and waits (up to `start_timeout`) for its hello.
    pub fn start(
        python: &PythonInfo,
        limits: &SandboxLimits,
        start_timeout: Duration,
    ) -> Result<Worker, ExecError> {
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        let scratch = sandbox::scratch_path(id);
        // Without a mount namespace this host folder is the scratch; with one, it is
        // shadowed by the private tmpfs and recreated there.
        std::fs::create_dir_all(&scratch)
            .map_err(|e| ExecError::Sandbox(format!("scratch {}: {e}", scratch.display())))?;
        let cgroup = WorkerCgroup::create(limits.max_processes, limits.memory_bytes + (512 << 20));
        let (req_r, req_w) = pipe()?;
        let (resp_r, resp_w) = pipe()?;
        let plan = sandbox::plan(
            python,
            limits,
            &scratch,
            &cgroup,
            req_r.as_raw_fd(),
            resp_w.as_raw_fd(),
        )?;
        let status =
            StatusPage::new().map_err(|e| ExecError::Sandbox(format!("status page: {e}")))?;
        let mut cmd = Command::new(&python.executable);
        cmd.arg("-s")
            .arg("-B")
            .arg("-c")
            .arg(SOURCE)
            .arg(&scratch)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("LANG", "C.UTF-8")
            .env("LC_ALL", "C.UTF-8")
            .env("HOME", &scratch)
            .env("TMPDIR", &scratch)
            .env("PYTHONHASHSEED", "0")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("OMP_NUM_THREADS", "1")
            .env("OPENBLAS_NUM_THREADS", "1")
            .env("MKL_NUM_THREADS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        sandbox::install(&mut cmd, plan, &status);
        let child = cmd.spawn().map_err(|e| {
            ExecError::Sandbox(format!("cannot start {}: {e}", python.executable.display()))
        })?;
        drop(req_r);
        drop(resp_w);
        let layers = Layers::from_bits(status.read(), &cgroup);
        let mut worker = Worker {
            child,
            requests: req_w,
            responses: resp_r,
            buffer: Vec::new(),
            hello: Hello {
                python: String::new(),
                numpy: String::new(),
                int_max_str_digits: 0,
                pid: 0,
                uid: 0,
                seccomp: None,
            },
            layers,
            cgroup,
            scratch,
        };
        let deadline = Instant::now() + start_timeout;
        let hello = match worker.read(deadline) {
            Ok(v) => v,
            Err(e) => {
                let stderr = worker.kill_and_stderr();
                return Err(ExecError::Sandbox(format!(
                    "worker did not start ({e:?}); sandbox step failure code {:#x}; stderr: {}",
                    status.failure(),
                    stderr.trim()
                )));
            }
        };
        worker.hello = serde_json::from_value(hello)
            .map_err(|e| ExecError::Sandbox(format!("bad hello from worker: {e}")))?;
        Ok(worker)
    }

    /// Sends one request frame.
    pub fn send(&mut self, request: &Value) -> Result<(), ReadError> {
        let body = serde_json::to_vec(request).map_err(|e| ReadError::Protocol(e.to_string()))?;
        let mut frame = Vec::with_capacity(body.len() + 4);
        frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
        frame.extend_from_slice(&body);
        self.requests
            .write_all(&frame)
            .map_err(|_| ReadError::Closed)
    }

    /// Reads the next frame, waiting no later than `deadline`.
    pub fn read(&mut self, deadline: Instant) -> Result<Value, ReadError> {
        loop {
            if self.buffer.len() >= 4 {
                let n = u32::from_le_bytes(self.buffer[..4].try_into().unwrap()) as usize;
                if n > MAX_FRAME {
                    return Err(ReadError::Protocol(format!("frame of {n} bytes")));
                }
                if self.buffer.len() >= 4 + n {
                    let value = serde_json::from_slice(&self.buffer[4..4 + n])
                        .map_err(|e| ReadError::Protocol(e.to_string()));
                    self.buffer.drain(..4 + n);
                    return value;
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(ReadError::Deadline);
            }
            let wait = (deadline - now).as_millis().min(i32::MAX as u128) as i32;
            let mut pfd = libc::pollfd {
                fd: self.responses.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: pfd is a valid pollfd.
            let r = unsafe { libc::poll(&mut pfd, 1, wait.max(1)) };
            if r < 0 {
                if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(ReadError::Closed);
            }
            if r == 0 {
                continue;
            }
            let mut chunk = [0u8; 65536];
            match self.responses.read(&mut chunk) {
                Ok(0) => return Err(ReadError::Closed),
                Ok(k) => self.buffer.extend_from_slice(&chunk[..k]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return Err(ReadError::Closed),
            }
        }
    }

    /// Kills the worker and everything in its namespace and cgroups; returns its stderr.
    pub fn kill_and_stderr(&mut self) -> String {
        self.kill();
        let mut s = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let mut buf = Vec::new();
            let _ = e.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf[buf.len().saturating_sub(4000)..]).into_owned();
        }
        s
    }

    fn kill(&mut self) {
        let pid = self.child.id() as i32;
        // SAFETY: signalling our own child and its process group.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::kill(-pid, libc::SIGKILL);
        }
        self.cgroup.kill_all();
        let _ = self.child.wait();
    }

    /// Number of processes in the worker's pids cgroup (for tests: nothing left behind).
    pub fn process_count(&self) -> Option<usize> {
        self.cgroup.process_count().ok()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}
