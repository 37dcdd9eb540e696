//! Security suite: hostile programs against the sandboxed judge.
//!
//! Every test submits one or more attacks as ordinary samples through the real [`Pool`]
//! (all isolation layers required) and then checks four things:
//!
//! 1. **the verdict is right**: the sample does not pass, and its status is the specific one the
//!    attack should earn (`Timeout`, `MemoryLimit`, `RuntimeError`, `OutputLimit` …), never the
//!    engine's `InternalError`;
//! 2. **no process is left behind**: no host process carries this test binary's worker scratch
//!    path (`/tmp/codeplan-w<pid>-…`, the argument every worker and every fork of it carries) or
//!    the attack's unique marker (which escape attempts put into a re-exec'd command line), no
//!    child of the test process survives, and the per-worker cgroups and host scratch folders
//!    are gone;
//! 3. **nothing is written outside the scratch**: uniquely named files the attacks try to
//!    create in the project folder and in the host's `/tmp` (and `/dev/shm`) do not exist;
//! 4. **the engine is still healthy**: a correct and an incorrect program judged right after,
//!    on the same pool, get `Passed` and `Failed`.
//!
//! Safety rule: an attack that could harm the machine if a layer were missing (fork and thread
//! bombs, signals, memory bombs, escapes) runs only after [`require_isolation`] has checked,
//! on a freshly started worker, that the layers it relies on are in force; otherwise the test
//! fails without running the attack. Every test here goes through [`hostile_pool`], which does
//! that check.
//!
//! The tests run one at a time (a process-wide lock), so that "nothing left behind" can be
//! checked against everything this test binary started.

#[path = "../common/mod.rs"]
mod common;

mod endurance;
mod files_and_network;
mod harness;
mod processes;
mod protocol;

use std::collections::BTreeSet;
use std::fs;
use std::io::ErrorKind;
use std::net::{TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use codeplan_data::Problem;
use codeplan_exec::judge::{JudgeKind, JudgeLimits, SampleStatus, SampleVerdict, TestStatus};
use codeplan_exec::pool::Pool;
use codeplan_exec::sandbox::SandboxLimits;
use codeplan_exec::worker::Worker;

use JudgeKind::{Apps, Strict};

// ------------------------------------------------------------------------------------------
// Harness
// ------------------------------------------------------------------------------------------

use harness::*;
