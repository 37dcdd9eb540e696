//! Landlock through raw syscalls, so the restriction can be applied between fork and exec
//! without allocating (the `landlock` crate allocates, which is unsafe after fork).

use std::ffi::CString;

const CREATE_RULESET_VERSION: u32 = 1;
const RULE_PATH_BENEATH: u32 = 1;

/// Landlock filesystem access rights (kernel ABI values).
pub mod access {
    pub const EXECUTE: u64 = 1 << 0;
    pub const WRITE_FILE: u64 = 1 << 1;
    pub const READ_FILE: u64 = 1 << 2;
    pub const READ_DIR: u64 = 1 << 3;
    pub const REMOVE_DIR: u64 = 1 << 4;
    pub const REMOVE_FILE: u64 = 1 << 5;
    pub const MAKE_CHAR: u64 = 1 << 6;
    pub const MAKE_DIR: u64 = 1 << 7;
    pub const MAKE_REG: u64 = 1 << 8;
    pub const MAKE_SOCK: u64 = 1 << 9;
    pub const MAKE_FIFO: u64 = 1 << 10;
    pub const MAKE_BLOCK: u64 = 1 << 11;
    pub const MAKE_SYM: u64 = 1 << 12;
    pub const REFER: u64 = 1 << 13;
    pub const TRUNCATE: u64 = 1 << 14;
    pub const IOCTL_DEV: u64 = 1 << 15;
    /// Rights that may be granted on a regular file (not a directory).
    pub const FILE_ONLY: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;
    /// Reading and executing.
    pub const READ: u64 = EXECUTE | READ_FILE | READ_DIR;
    /// Everything up to ABI 5.
    pub const ALL: u64 = (1 << 16) - 1;
}

/// Landlock network rights (ABI 4).
const NET_BIND_TCP: u64 = 1 << 0;
const NET_CONNECT_TCP: u64 = 1 << 1;
/// Landlock scopes (ABI 6): no abstract-socket connects, no signals outside the domain.
const SCOPE_ABSTRACT_UNIX: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

/// One path and the rights granted beneath it.
#[derive(Debug, Clone)]
pub struct Rule {
    /// Path as a C string, prepared before fork.
    pub path: CString,
    /// Rights granted beneath it.
    pub access: u64,
}

/// The kernel's Landlock ABI version, or `None` when Landlock is unavailable.
pub fn abi_version() -> Option<u32> {
    // SAFETY: the documented version query takes a null attribute pointer and size 0.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as u32)
}

fn handled_fs(abi: u32) -> u64 {
    let mut all = access::ALL;
    if abi < 2 {
        all &= !access::REFER;
    }
    if abi < 3 {
        all &= !access::TRUNCATE;
    }
    if abi < 5 {
        all &= !access::IOCTL_DEV;
    }
    all
}

/// Restricts the calling process. Async-signal-safe: only syscalls, no allocation.
///
/// Paths that do not exist are skipped. Returns the errno on failure.
pub fn restrict_self(abi: u32, rules: &[Rule]) -> Result<(), i32> {
    let handled = handled_fs(abi);
    let attr = RulesetAttr {
        handled_access_fs: handled,
        handled_access_net: if abi >= 4 {
            NET_BIND_TCP | NET_CONNECT_TCP
        } else {
            0
        },
        scoped: if abi >= 6 {
            SCOPE_ABSTRACT_UNIX | SCOPE_SIGNAL
        } else {
            0
        },
    };
    let size = match abi {
        1..=3 => 8,
        4 | 5 => 16,
        _ => std::mem::size_of::<RulesetAttr>(),
    };
    // SAFETY: attr outlives the call and size never exceeds the struct.
    let ruleset = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            &attr as *const RulesetAttr,
            size,
            0u32,
        )
    };
    if ruleset < 0 {
        return Err(errno());
    }
    let ruleset = ruleset as i32;
    for rule in rules {
        // SAFETY: the path is a valid C string prepared before fork.
        let fd = unsafe { libc::open(rule.path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if fd < 0 {
            continue;
        }
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fd is open and st is a valid out-pointer.
        let is_dir = unsafe { libc::fstat(fd, &mut st) } == 0
            && (st.st_mode & libc::S_IFMT) == libc::S_IFDIR;
        let mut allowed = rule.access & handled;
        if !is_dir {
            allowed &= access::FILE_ONLY;
        }
        let beneath = PathBeneathAttr {
            allowed_access: allowed,
            parent_fd: fd,
        };
        // SAFETY: beneath is a valid attribute for RULE_PATH_BENEATH.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                ruleset,
                RULE_PATH_BENEATH,
                &beneath as *const PathBeneathAttr,
                0u32,
            )
        };
        let err = errno();
        // SAFETY: closing the fd we opened.
        unsafe { libc::close(fd) };
        if r < 0 {
            unsafe { libc::close(ruleset) };
            return Err(err);
        }
    }
    // SAFETY: plain prctl/syscall on our own process.
    let r = unsafe {
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            -1
        } else {
            libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32)
        }
    };
    let err = errno();
    unsafe { libc::close(ruleset) };
    if r < 0 {
        Err(err)
    } else {
        Ok(())
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}
