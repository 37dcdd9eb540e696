//! OS-level isolation for judged programs: namespaces, a read-only filesystem with a private
//! scratch, Landlock, seccomp, rlimits and cgroups. Each layer is reported; none is assumed.

mod cgroup;
pub mod landlock;
pub mod seccomp;
mod spawn;

use std::ffi::CString;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use cgroup::WorkerCgroup;
pub(crate) use spawn::{install, Plan, StatusPage};

use crate::python::PythonInfo;
use crate::ExecError;

/// Resource limits of the sandbox (per worker and per judged child).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxLimits {
    /// Address-space cap of a judged child, bytes (RLIMIT_AS; also the memory cgroup cap).
    pub memory_bytes: u64,
    /// Processes and threads a worker may hold at once (pids cgroup / RLIMIT_NPROC).
    pub max_processes: u32,
    /// Size of the private tmpfs scratch, bytes.
    pub scratch_bytes: u64,
    /// Largest file a judged program may write (RLIMIT_FSIZE), bytes; also the output cap.
    pub file_bytes: u64,
    /// Open files per process (RLIMIT_NOFILE).
    pub open_files: u64,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        SandboxLimits {
            memory_bytes: 4 << 30,
            max_processes: 64,
            scratch_bytes: 64 << 20,
            file_bytes: 32 << 20,
            open_files: 256,
        }
    }
}

/// Which isolation layers are in force for a worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Layers {
    /// New user namespace (root inside, no capabilities outside).
    pub user_ns: bool,
    /// New pid namespace: the worker is pid 1 and sees no other process.
    pub pid_ns: bool,
    /// New network namespace: no interfaces but a down loopback.
    pub net_ns: bool,
    /// New mount namespace.
    pub mount_ns: bool,
    /// New IPC namespace.
    pub ipc_ns: bool,
    /// New UTS namespace.
    pub uts_ns: bool,
    /// Every mount read-only (recursively).
    pub readonly_root: bool,
    /// A private, size-limited tmpfs on /tmp holding the scratch directory.
    pub private_tmp: bool,
    /// Landlock: reads limited to system and interpreter folders, writes to scratch.
    pub landlock: bool,
    /// The seccomp filter.
    pub seccomp: bool,
    /// `no_new_privs`.
    pub no_new_privs: bool,
    /// rlimits (address space, CPU, file size, open files, core 0, processes).
    pub rlimits: bool,
    /// pids cgroup cap (or RLIMIT_NPROC for an unprivileged user).
    pub process_cap: bool,
    /// memory cgroup cap.
    pub memory_cgroup: bool,
}

impl Layers {
    /// Names of layers that are not in force.
    pub fn missing(&self) -> Vec<&'static str> {
        let all = [
            ("user namespace", self.user_ns),
            ("pid namespace", self.pid_ns),
            ("network namespace", self.net_ns),
            ("mount namespace", self.mount_ns),
            ("ipc namespace", self.ipc_ns),
            ("uts namespace", self.uts_ns),
            ("read-only filesystem", self.readonly_root),
            ("private /tmp scratch", self.private_tmp),
            ("landlock", self.landlock),
            ("seccomp", self.seccomp),
            ("no_new_privs", self.no_new_privs),
            ("rlimits", self.rlimits),
            ("process cap (pids cgroup)", self.process_cap),
            ("memory cgroup", self.memory_cgroup),
        ];
        all.iter().filter(|(_, on)| !on).map(|(n, _)| *n).collect()
    }

    /// Whether every layer is in force.
    pub fn complete(&self) -> bool {
        self.missing().is_empty()
    }

    pub(crate) fn from_bits(bits: u32, cgroup: &WorkerCgroup) -> Layers {
        use spawn::bit;
        let on = |b| bits & b != 0;
        // SAFETY: getuid has no preconditions.
        let unprivileged = unsafe { libc::getuid() } != 0;
        Layers {
            user_ns: on(bit::USER_NS),
            pid_ns: on(bit::PID_NS),
            net_ns: on(bit::NET_NS),
            mount_ns: on(bit::MOUNT_NS),
            ipc_ns: on(bit::IPC_NS),
            uts_ns: on(bit::UTS_NS),
            readonly_root: on(bit::READONLY_ROOT),
            private_tmp: on(bit::PRIVATE_TMP),
            landlock: on(bit::LANDLOCK),
            seccomp: on(bit::SECCOMP),
            no_new_privs: on(bit::NO_NEW_PRIVS),
            rlimits: on(bit::RLIMITS),
            process_cap: (cgroup.has_pids() && on(bit::CGROUP))
                || (unprivileged && on(bit::RLIMITS)),
            memory_cgroup: cgroup.has_memory() && on(bit::CGROUP),
        }
    }
}

fn cstring(s: impl Into<Vec<u8>>) -> Result<CString, ExecError> {
    CString::new(s).map_err(|e| ExecError::Sandbox(format!("path contains NUL: {e}")))
}

/// Builds the pre-fork plan for one worker.
pub(crate) fn plan(
    python: &PythonInfo,
    limits: &SandboxLimits,
    scratch: &std::path::Path,
    cgroup: &WorkerCgroup,
    request_read: i32,
    response_write: i32,
) -> Result<Plan, ExecError> {
    use landlock::access;
    use std::os::unix::ffi::OsStrExt;
    // SAFETY: getuid/getgid have no preconditions.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    if let Some(p) = python.read_paths.iter().find(|p| p.starts_with("/tmp")) {
        return Err(ExecError::Sandbox(format!(
            "the interpreter's folder {} is under /tmp, which the sandbox replaces with a private \
             tmpfs; install the interpreter (or its environment) elsewhere",
            p.display()
        )));
    }
    let mut rules = Vec::new();
    let system_read = [
        "/usr",
        "/lib",
        "/lib32",
        "/lib64",
        "/bin",
        "/sbin",
        "/etc/ld.so.cache",
        "/etc/localtime",
        "/etc/passwd",
        "/etc/group",
        "/etc/nsswitch.conf",
        "/etc/mime.types",
        "/proc",
        "/sys/devices/system/cpu",
        "/dev/urandom",
        "/dev/random",
    ];
    for p in system_read {
        rules.push(landlock::Rule {
            path: cstring(p)?,
            access: access::READ,
        });
    }
    for p in &python.read_paths {
        rules.push(landlock::Rule {
            path: cstring(p.as_os_str().as_bytes())?,
            access: access::READ,
        });
    }
    for p in ["/dev/null", "/dev/zero"] {
        rules.push(landlock::Rule {
            path: cstring(p)?,
            access: access::READ_FILE | access::WRITE_FILE | access::TRUNCATE,
        });
    }
    rules.push(landlock::Rule {
        path: cstring(scratch.as_os_str().as_bytes())?,
        access: access::ALL,
    });
    let filters = seccomp::build_filters().map_err(ExecError::Sandbox)?;
    let procs = cgroup
        .procs_files()
        .into_iter()
        .map(|p| cstring(p.as_os_str().as_bytes()))
        .collect::<Result<_, _>>()?;
    Ok(Plan {
        cgroup_procs: procs,
        uid_map: cstring(format!("0 {uid} 1"))?,
        gid_map: cstring(format!("0 {gid} 1"))?,
        scratch: cstring(scratch.as_os_str().as_bytes())?,
        tmp_options: cstring(format!("size={},mode=1777", limits.scratch_bytes))?,
        landlock: landlock::abi_version().map(|abi| (abi, rules)),
        filters,
        rlimits: vec![
            (libc::RLIMIT_CORE, 0, 0),
            (libc::RLIMIT_NOFILE, limits.open_files, limits.open_files),
            (
                libc::RLIMIT_FSIZE,
                limits.file_bytes + (1 << 20),
                limits.file_bytes + (1 << 20),
            ),
            (
                libc::RLIMIT_NPROC,
                limits.max_processes as u64,
                limits.max_processes as u64,
            ),
        ],
        request_read,
        response_write,
    })
}

/// A host path for a worker's scratch directory (inside the private /tmp when that works).
pub(crate) fn scratch_path(id: u64) -> PathBuf {
    PathBuf::from(format!("/tmp/codeplan-w{}-{id}", std::process::id()))
}
