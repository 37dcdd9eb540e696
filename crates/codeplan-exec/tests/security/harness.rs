//! Shared machinery of the security suite: the safety check, verdict expectations, and the
//! scans for leftovers.

use super::*;

pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

/// One attack at a time: leftovers are checked against everything this binary started.
pub(crate) fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// A string unique to this run and attack, embedded in what the attack creates.
pub(crate) fn marker(tag: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("cpsec_{tag}_{}_{nanos}", std::process::id())
}

/// Limits short enough for a quick suite: 1 s CPU per strict test and a 2 s wall backstop;
/// a 1 s alarm and a 3 s sample limit under apps.
pub(crate) fn fast_limits() -> JudgeLimits {
    JudgeLimits {
        test_timeout_s: 1.0,
        sample_timeout_s: 3.0,
        wall_factor: 1.0,
        ..JudgeLimits::default()
    }
}

/// Sandbox limits for attacks on memory: a 1 GiB address-space cap per judged child (the memory
/// cgroup of a worker is that plus 512 MiB).
pub(crate) fn small_memory() -> SandboxLimits {
    SandboxLimits {
        memory_bytes: 1 << 30,
        ..SandboxLimits::default()
    }
}

/// The safety rule: the layers an attack relies on must be in force before it runs.
///
/// Checks the pool's probe and a freshly started worker: user, pid, network and mount
/// namespaces, read-only root with a private /tmp, Landlock, seccomp (filter mode),
/// `no_new_privs`, rlimits, the pids cgroup and the memory cgroup; the worker must be pid 1 of
/// its own pid namespace and sit in its own pids cgroup. Panics — before any attack — otherwise.
pub(crate) fn require_isolation(pool: &Pool) {
    let check =
        |who: &str, layers: codeplan_exec::sandbox::Layers, pid: i64, seccomp: Option<&str>| {
            let needed = [
                ("user namespace", layers.user_ns),
                ("pid namespace", layers.pid_ns),
                ("network namespace", layers.net_ns),
                ("mount namespace", layers.mount_ns),
                ("read-only root", layers.readonly_root),
                ("private /tmp", layers.private_tmp),
                ("landlock", layers.landlock),
                ("seccomp", layers.seccomp),
                ("no_new_privs", layers.no_new_privs),
                ("rlimits", layers.rlimits),
                ("process cap (pids cgroup)", layers.process_cap),
                ("memory cgroup", layers.memory_cgroup),
            ];
            let missing: Vec<&str> = needed
                .iter()
                .filter(|(_, on)| !on)
                .map(|(n, _)| *n)
                .collect();
            assert!(
                missing.is_empty(),
                "REFUSING TO RUN THE ATTACK: {who} lacks {missing:?} ({layers:?})"
            );
            assert_eq!(
                pid, 1,
                "REFUSING TO RUN THE ATTACK: {who} is not pid 1 of its own pid namespace"
            );
            assert_eq!(
                seccomp,
                Some("2"),
                "REFUSING TO RUN THE ATTACK: {who} is not in seccomp filter mode"
            );
        };
    check(
        "the pool's probe worker",
        pool.layers(),
        pool.hello().pid,
        pool.hello().seccomp.as_deref(),
    );
    let config = pool.config();
    let worker = Worker::start(&config.python, &config.limits, Duration::from_secs(30))
        .expect("REFUSING TO RUN THE ATTACK: a fresh worker does not start");
    check(
        "a fresh worker",
        worker.layers,
        worker.hello.pid,
        worker.hello.seccomp.as_deref(),
    );
    let n = worker.process_count();
    assert!(
        matches!(n, Some(k) if k >= 1),
        "REFUSING TO RUN THE ATTACK: the worker is not in its pids cgroup ({n:?} processes)"
    );
}

/// A pool for attacks: every layer required, and checked by [`require_isolation`].
pub(crate) fn hostile_pool(jobs: usize, limits: SandboxLimits) -> Pool {
    let pool = common::pool_with_limits(jobs, limits);
    require_isolation(&pool);
    pool
}

/// A program reading two integers and printing their sum; its tests.
pub(crate) const ADD_OK: &str = "a, b = map(int, input().split())\nprint(a + b)\n";
pub(crate) const ADD_WRONG: &str = "a, b = map(int, input().split())\nprint(a - b)\n";

pub(crate) fn add_problem(id: &str) -> Problem {
    common::stdio_problem(id, &[("20 22\n", "42\n")])
}

pub(crate) fn add_problem2(id: &str) -> Problem {
    common::stdio_problem(id, &[("20 22\n", "42\n"), ("1 2\n", "3\n")])
}

/// The number of processes in the judged program's pid namespace, as the program sees it: the
/// worker (pid 1) and the program itself, so `2` when nothing was left behind.
pub(crate) const NS_CENSUS: &str =
    "import os\nprint(len([p for p in os.listdir('/proc') if p.isdigit()]))\n";

pub(crate) fn census_problem(id: &str) -> Problem {
    common::stdio_problem(id, &[("\n", "2\n")])
}

pub(crate) fn show(v: &SampleVerdict) -> String {
    let tests: Vec<String> = v
        .tests
        .iter()
        .map(|t| {
            format!(
                "{:?} ({:.2}s) {}",
                t.status,
                t.time_s,
                t.stderr_tail
                    .as_deref()
                    .unwrap_or("")
                    .chars()
                    .rev()
                    .take(300)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect::<String>()
            )
        })
        .collect();
    format!(
        "problem {} #{}: passed={} status={:?} apps_result={:?} cause={:?} internal={:?} attempts={} wall={:.2}s\n  tests: {:?}\n  stderr: {}",
        v.problem_id,
        v.sample_idx,
        v.passed,
        v.status,
        v.apps_result,
        v.no_result_cause,
        v.internal_error,
        v.attempts,
        v.wall_s,
        tests,
        v.stderr_tail.chars().take(600).collect::<String>()
    )
}

/// Why `v` is not a failure with `status` overall and `test` as its first test's status.
pub(crate) fn mismatch(
    v: &SampleVerdict,
    what: &str,
    status: SampleStatus,
    test: TestStatus,
) -> Option<String> {
    let got = v.tests.first().map(|t| t.status);
    if v.passed {
        Some(format!("{what}: the attack PASSED\n{}", show(v)))
    } else if v.status != status || got != Some(test) {
        Some(format!(
            "{what}: expected {status:?}/{test:?}, got {:?}/{got:?}\n{}",
            v.status,
            show(v)
        ))
    } else {
        None
    }
}

/// Asserts the sample failed with `status` overall and `test` as its first test's status.
#[track_caller]
pub(crate) fn expect(v: &SampleVerdict, what: &str, status: SampleStatus, test: TestStatus) {
    if let Some(m) = mismatch(v, what, status, test) {
        panic!("{m}");
    }
}

/// Asserts the sample failed with one of the `(overall, first test)` status pairs in `allowed`.
#[track_caller]
pub(crate) fn expect_any(v: &SampleVerdict, what: &str, allowed: &[(SampleStatus, TestStatus)]) {
    let misses: Vec<String> = allowed
        .iter()
        .filter_map(|&(status, test)| mismatch(v, what, status, test))
        .collect();
    if misses.len() == allowed.len() {
        panic!("{}", misses.join("\n\nor\n"));
    }
}

/// Asserts every check, reporting all failures together.
#[track_caller]
pub(crate) fn expect_all(checks: &[Option<String>]) {
    let failed: Vec<&str> = checks.iter().flatten().map(String::as_str).collect();
    assert!(failed.is_empty(), "{}", failed.join("\n\n"));
}

/// All stderr text of a verdict (sample and tests).
pub(crate) fn all_stderr(v: &SampleVerdict) -> String {
    let mut s = v.stderr_tail.clone();
    for t in &v.tests {
        s.push('\n');
        s.push_str(t.stderr_tail.as_deref().unwrap_or(""));
    }
    s
}

#[track_caller]
pub(crate) fn expect_stderr(v: &SampleVerdict, what: &str, needles: &[&str]) {
    let s = all_stderr(v);
    assert!(
        needles.iter().any(|n| s.contains(n)),
        "{what}: stderr mentions none of {needles:?}\n{}",
        show(v)
    );
}

/// Host processes that belong to this test binary's sandboxes or carry one of `markers`, and
/// surviving children of the test process.
pub(crate) fn stray_processes(markers: &[&str]) -> Vec<String> {
    let me = std::process::id();
    let scratch_prefix = format!("/tmp/codeplan-w{me}-");
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name.to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        let cmd = fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        let hit = cmd.contains(&scratch_prefix) || markers.iter().any(|m| cmd.contains(m));
        if hit || ppid == Some(me) {
            let state = stat
                .rsplit_once(')')
                .map_or("", |(_, r)| r.trim())
                .chars()
                .next();
            let short: String = cmd
                .chars()
                .rev()
                .take(160)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            out.push(format!(
                "pid {pid} (ppid {ppid:?}, state {state:?}): …{short}"
            ));
        }
    }
    out
}

/// Cgroups and host scratch folders this test binary's workers created and did not remove.
pub(crate) fn stray_resources() -> Vec<String> {
    let prefix = format!("w{}-", std::process::id());
    let mut out = Vec::new();
    for ctl in ["pids", "memory"] {
        let dir = Path::new("/sys/fs/cgroup").join(ctl).join("codeplan");
        for e in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&prefix) {
                out.push(e.path().display().to_string());
            }
        }
    }
    let scratch = format!("codeplan-{prefix}");
    for e in fs::read_dir("/tmp").into_iter().flatten().flatten() {
        if e.file_name().to_string_lossy().starts_with(&scratch) {
            out.push(e.path().display().to_string());
        }
    }
    out
}

/// Asserts that nothing the attacks started survives (waiting up to `grace` for teardown).
#[track_caller]
pub(crate) fn assert_nothing_left(markers: &[&str], grace: Duration) {
    let deadline = Instant::now() + grace;
    loop {
        let procs = stray_processes(markers);
        let res = stray_resources();
        if procs.is_empty() && res.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "left behind after the attack:\nprocesses: {procs:#?}\ncgroups/scratch: {res:#?}"
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[track_caller]
pub(crate) fn assert_not_written(paths: &[PathBuf]) {
    for p in paths {
        assert!(
            !p.exists(),
            "the attack wrote {} outside its scratch",
            p.display()
        );
    }
}

/// The engine still judges right on this pool: a correct program passes, a wrong one fails,
/// under both judges.
#[track_caller]
pub(crate) fn assert_healthy(pool: &Pool) {
    for kind in [Strict, Apps] {
        let v = common::judge(
            pool,
            kind,
            JudgeLimits::default(),
            vec![
                (add_problem2("healthy-ok"), ADD_OK.to_owned()),
                (add_problem2("healthy-wrong"), ADD_WRONG.to_owned()),
            ],
        );
        assert!(
            v[0].passed,
            "{kind:?}: a correct program no longer passes\n{}",
            show(&v[0])
        );
        assert_eq!(v[0].status, SampleStatus::Passed, "{}", show(&v[0]));
        assert!(
            !v[1].passed,
            "{kind:?}: a wrong program passes\n{}",
            show(&v[1])
        );
        assert_eq!(v[1].status, SampleStatus::Failed, "{}", show(&v[1]));
        assert_eq!(
            v[1].tests[0].status,
            TestStatus::WrongAnswer,
            "{}",
            show(&v[1])
        );
    }
}

/// Files under the project folder and the host /tmp that an attack tagged `m` tries to create.
pub(crate) fn escape_targets(m: &str) -> Vec<PathBuf> {
    vec![
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("{m}.pwned")),
        PathBuf::from(format!("/tmp/{m}.pwned")),
    ]
}

/// A Python list literal of the given paths.
pub(crate) fn py_paths(paths: &[PathBuf]) -> String {
    let items: Vec<String> = paths
        .iter()
        .map(|p| format!("{:?}", p.display().to_string()))
        .collect();
    format!("[{}]", items.join(", "))
}

/// Removes the listed files and folders when dropped (secrets planted by a test).
pub(crate) struct Planted(pub(crate) Vec<PathBuf>);

impl Drop for Planted {
    fn drop(&mut self) {
        for p in &self.0 {
            if p.is_dir() {
                let _ = fs::remove_dir_all(p);
            } else {
                let _ = fs::remove_file(p);
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Resource exhaustion
// ------------------------------------------------------------------------------------------
