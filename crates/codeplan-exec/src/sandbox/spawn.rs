//! Starting a worker inside the sandbox: everything between fork and exec.
//!
//! The closure given to `pre_exec` runs in the forked child, where only async-signal-safe
//! calls are allowed: everything it needs (paths, maps, BPF programs) is prepared before fork
//! and it makes raw syscalls only.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

use super::landlock::{self, Rule};

/// Bits the sandboxed child sets in a shared page as each layer takes effect.
pub mod bit {
    pub const USER_NS: u32 = 1 << 0;
    pub const PID_NS: u32 = 1 << 1;
    pub const NET_NS: u32 = 1 << 2;
    pub const MOUNT_NS: u32 = 1 << 3;
    pub const IPC_NS: u32 = 1 << 4;
    pub const UTS_NS: u32 = 1 << 5;
    pub const READONLY_ROOT: u32 = 1 << 6;
    pub const PRIVATE_TMP: u32 = 1 << 7;
    pub const PROC: u32 = 1 << 8;
    pub const LANDLOCK: u32 = 1 << 9;
    pub const SECCOMP: u32 = 1 << 10;
    pub const NO_NEW_PRIVS: u32 = 1 << 11;
    pub const RLIMITS: u32 = 1 << 12;
    pub const CGROUP: u32 = 1 << 13;
}

/// Everything the child needs, prepared before fork.
pub struct Plan {
    /// `cgroup.procs` files to join.
    pub cgroup_procs: Vec<CString>,
    /// Host uid/gid, mapped to root inside the user namespace.
    pub uid_map: CString,
    pub gid_map: CString,
    /// Scratch directory (inside the private /tmp when the mount namespace works).
    pub scratch: CString,
    /// tmpfs options for the private /tmp.
    pub tmp_options: CString,
    /// Landlock ABI and rules, when Landlock is available.
    pub landlock: Option<(u32, Vec<Rule>)>,
    /// BPF programs to install (deny list, clone3).
    pub filters: Vec<Vec<seccompiler::sock_filter>>,
    /// Resource limits for the worker: (resource, soft, hard).
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64, u64)>,
    /// Protocol pipe ends that become fds 3 (requests) and 4 (responses) in the child.
    pub request_read: i32,
    pub response_write: i32,
}

/// A page shared with the child across fork, where it records which layers took effect.
pub struct StatusPage(*mut u32);

// SAFETY: the page is only read by the parent after the child has exec'd.
unsafe impl Send for StatusPage {}

impl StatusPage {
    /// Maps a fresh shared anonymous page.
    pub fn new() -> io::Result<StatusPage> {
        // SAFETY: anonymous shared mapping of one page, checked for failure.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        Ok(StatusPage(p as *mut u32))
    }

    /// The layer bits the child recorded.
    pub fn read(&self) -> u32 {
        // SAFETY: the page is mapped and aligned.
        unsafe { std::ptr::read_volatile(self.0) }
    }

    /// The child's last failing step (errno in the low 16 bits, step in the high 16).
    pub fn failure(&self) -> u32 {
        // SAFETY: the page is mapped; offset 1 is within it.
        unsafe { std::ptr::read_volatile(self.0.add(1)) }
    }

    fn ptr(&self) -> usize {
        self.0 as usize
    }
}

impl Drop for StatusPage {
    fn drop(&mut self) {
        // SAFETY: unmapping the page we mapped.
        unsafe { libc::munmap(self.0 as *mut libc::c_void, 4096) };
    }
}

/// Installs the sandbox as the `pre_exec` step of `cmd`.
pub fn install(cmd: &mut Command, plan: Plan, status: &StatusPage) {
    let page = status.ptr();
    // SAFETY: the closure only makes async-signal-safe syscalls on data prepared above.
    unsafe {
        cmd.pre_exec(move || enter(&plan, page as *mut u32));
    }
}

fn set(page: *mut u32, b: u32) {
    // SAFETY: page points at the shared status page.
    unsafe { std::ptr::write_volatile(page, std::ptr::read_volatile(page) | b) };
}

fn fail(page: *mut u32, step: u32) {
    let e = io::Error::last_os_error().raw_os_error().unwrap_or(0) as u32;
    // SAFETY: offset 1 is within the page.
    unsafe { std::ptr::write_volatile(page.add(1), (step << 16) | (e & 0xffff)) };
}

unsafe fn write_file(path: &CStr, data: &[u8]) -> bool {
    let fd = libc::open(path.as_ptr(), libc::O_WRONLY);
    if fd < 0 {
        return false;
    }
    let ok =
        libc::write(fd, data.as_ptr() as *const libc::c_void, data.len()) == data.len() as isize;
    libc::close(fd);
    ok
}

/// `mount(2)` with C-string arguments; true on success.
unsafe fn mount(
    source: &CStr,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> bool {
    libc::mount(
        source.as_ptr(),
        target.as_ptr(),
        fstype.map_or(std::ptr::null(), CStr::as_ptr),
        flags,
        data.map_or(std::ptr::null(), |d| d.as_ptr() as *const libc::c_void),
    ) == 0
}

/// Makes every mount under `path` read-only (`mount_setattr`, Linux 5.12+).
unsafe fn readonly_recursive(path: &CStr) -> bool {
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 1;
    const AT_RECURSIVE: u32 = 0x8000;
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_RDONLY,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    libc::syscall(
        libc::SYS_mount_setattr,
        libc::AT_FDCWD,
        path.as_ptr(),
        AT_RECURSIVE,
        &attr as *const MountAttr,
        std::mem::size_of::<MountAttr>(),
    ) == 0
}

unsafe fn enter(plan: &Plan, page: *mut u32) -> io::Result<()> {
    // Protocol pipes to fds 3 and 4 (via high fds so neither clobbers the other).
    let r = libc::fcntl(plan.request_read, libc::F_DUPFD, 10);
    let w = libc::fcntl(plan.response_write, libc::F_DUPFD, 10);
    if r < 0 || w < 0 || libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
        return Err(io::Error::last_os_error());
    }
    libc::close(r);
    libc::close(w);
    // Die with the thread that started us: no worker outlives codeplan.
    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    libc::setsid();

    if !plan.cgroup_procs.is_empty() {
        let mut all = true;
        for f in &plan.cgroup_procs {
            all &= write_file(f, b"0");
        }
        if all {
            set(page, bit::CGROUP);
        }
    }

    // User namespace first, so the others are owned by it and we hold capabilities there.
    if libc::unshare(libc::CLONE_NEWUSER) == 0 {
        let ok = write_file(c"/proc/self/setgroups", b"deny")
            & write_file(c"/proc/self/uid_map", plan.uid_map.as_bytes())
            & write_file(c"/proc/self/gid_map", plan.gid_map.as_bytes());
        if ok {
            set(page, bit::USER_NS);
        } else {
            fail(page, 1);
        }
    } else {
        fail(page, 2);
    }
    for (flag, b) in [
        (libc::CLONE_NEWNS, bit::MOUNT_NS),
        (libc::CLONE_NEWNET, bit::NET_NS),
        (libc::CLONE_NEWIPC, bit::IPC_NS),
        (libc::CLONE_NEWUTS, bit::UTS_NS),
        (libc::CLONE_NEWPID, bit::PID_NS),
    ] {
        if libc::unshare(flag) == 0 {
            set(page, b);
        } else {
            fail(page, 3);
        }
    }

    if std::ptr::read_volatile(page) & bit::PID_NS != 0 {
        // The next child is pid 1 of the new namespace; this process only waits for it, so
        // that killing this process (or that child) tears the whole namespace down.
        let pid = libc::fork();
        if pid < 0 {
            return Err(io::Error::last_os_error());
        }
        if pid > 0 {
            libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32);
            let mut status = 0;
            loop {
                let r = libc::waitpid(pid, &mut status, 0);
                if r == pid {
                    break;
                }
                if r < 0 && *libc::__errno_location() != libc::EINTR {
                    break;
                }
            }
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            libc::_exit(code);
        }
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
    }

    if std::ptr::read_volatile(page) & bit::MOUNT_NS != 0 {
        if mount(c"none", c"/", None, libc::MS_REC | libc::MS_PRIVATE, None) {
            if readonly_recursive(c"/") {
                set(page, bit::READONLY_ROOT);
            } else {
                fail(page, 4);
            }
            let flags = libc::MS_NOSUID | libc::MS_NODEV;
            if mount(
                c"tmpfs",
                c"/tmp",
                Some(c"tmpfs"),
                flags,
                Some(&plan.tmp_options),
            ) {
                set(page, bit::PRIVATE_TMP);
            } else {
                fail(page, 5);
            }
            // Small private tmpfs over shared-memory and runtime-socket folders.
            let flags = flags | libc::MS_NOEXEC;
            mount(
                c"tmpfs",
                c"/dev/shm",
                Some(c"tmpfs"),
                flags,
                Some(c"size=8m,mode=1777"),
            );
            mount(
                c"tmpfs",
                c"/run",
                Some(c"tmpfs"),
                flags,
                Some(c"size=1m,mode=755"),
            );
            if std::ptr::read_volatile(page) & bit::PID_NS != 0
                && mount(c"proc", c"/proc", Some(c"proc"), flags, None)
            {
                set(page, bit::PROC);
            }
        } else {
            fail(page, 6);
        }
    }

    libc::mkdir(plan.scratch.as_ptr(), 0o777);
    if libc::chdir(plan.scratch.as_ptr()) != 0 {
        return Err(io::Error::last_os_error());
    }

    let mut limits_ok = true;
    for &(res, soft, hard) in &plan.rlimits {
        let lim = libc::rlimit {
            rlim_cur: soft,
            rlim_max: hard,
        };
        limits_ok &= libc::setrlimit(res, &lim) == 0;
    }
    if limits_ok {
        set(page, bit::RLIMITS);
    }

    if let Some((abi, rules)) = &plan.landlock {
        match landlock::restrict_self(*abi, rules) {
            Ok(()) => set(page, bit::LANDLOCK),
            Err(_) => fail(page, 7),
        }
    }
    if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0 {
        set(page, bit::NO_NEW_PRIVS);
    }
    let mut seccomp_ok = !plan.filters.is_empty();
    for f in &plan.filters {
        let prog = libc::sock_fprog {
            len: f.len() as u16,
            filter: f.as_ptr() as *mut libc::sock_filter,
        };
        seccomp_ok &= libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &prog as *const libc::sock_fprog,
        ) == 0;
    }
    if seccomp_ok {
        set(page, bit::SECCOMP);
    } else {
        fail(page, 8);
    }
    Ok(())
}
