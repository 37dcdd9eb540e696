//! Attacks on processes and resources: bombs, endless loops, output floods, recursion,
//! signals, ptrace and escape by double fork.

use super::*;

/// Fork bombs. Stopped by the pids cgroup (64 tasks per worker) and RLIMIT_NPROC; the pid
/// namespace confines them; the wall-clock backstop (strict) or the sample limit or per-test alarm
/// (apps) ends them; killing the worker tears the namespace down.
#[test]
fn fork_bomb_is_capped_and_reaped() {
    let _serial = serial();
    let pool = hostile_pool(2, SandboxLimits::default());
    let m = marker("forkbomb");
    let strict =
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n";
    // A bomb whose children let go of the result pipe and sleep: the program itself dies of
    // the cap (BlockingIOError) and the worker must reap the sleepers.
    let capped = "import os, time\nwhile True:\n    if os.fork() == 0:\n        os.closerange(3, 4096)\n        time.sleep(60)\n";
    // Under apps the reliability guard removes os.fork; posix.fork is the real thing.
    let apps = "import posix\nwhile True:\n    try:\n        posix.fork()\n    except OSError:\n        pass\n";
    let t = Instant::now();
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![
            (add_problem("forkbomb-strict"), strict.to_owned()),
            (add_problem("forkbomb-capped"), capped.to_owned()),
        ],
    );
    expect(
        &v[0],
        "strict fork bomb",
        SampleStatus::Failed,
        TestStatus::Timeout,
    );
    expect(
        &v[1],
        "capped fork bomb",
        SampleStatus::Failed,
        TestStatus::RuntimeError,
    );
    expect_stderr(
        &v[1],
        "capped fork bomb",
        &["BlockingIOError", "Resource temporarily unavailable"],
    );
    let v = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![(add_problem("forkbomb-apps"), apps.to_owned())],
    );
    // Which limit ends the apps bomb first is a race: the sample's wall clock kills the worker
    // (GlobalTimeout), or the harness's own per-test alarm reaches the parent first (a test
    // Timeout, result -1; seen on a faster CI machine). Either way the bomb failed on time.
    expect_any(
        &v[0],
        "apps fork bomb",
        &[
            (SampleStatus::GlobalTimeout, TestStatus::Timeout),
            (SampleStatus::Failed, TestStatus::Timeout),
        ],
    );
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "fork bombs took {:?}",
        t.elapsed()
    );
    assert_nothing_left(&[&m], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// Memory bombs. Stopped by RLIMIT_AS (a `MemoryError` → `MemoryLimit`); a bomb spread over
/// forked children is stopped by the worker's memory cgroup (the OOM killer takes a child).
#[test]
fn memory_bomb_hits_memory_limit() {
    let _serial = serial();
    let pool = hostile_pool(2, small_memory());
    let bomb = "chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n";
    let huge = "x = bytearray(1 << 40)\n";
    // Four children each fill almost their whole 1 GiB address space (touching every page):
    // together far past the worker's 1.5 GiB memory cgroup. The parent stays small and
    // prints a wrong answer once they are gone.
    let spread = "import os\nkids = []\nfor _ in range(4):\n    pid = os.fork()\n    if pid == 0:\n        chunks = []\n        try:\n            while True:\n                chunks.append(bytearray(32 << 20))\n        except MemoryError:\n            pass\n        os._exit(0)\n    kids.append(pid)\nfor k in kids:\n    os.waitpid(k, 0)\nprint('survived')\n";
    // Zeroing pages counts as CPU time: give the bomb room to hit the memory cap first.
    let limits = JudgeLimits {
        test_timeout_s: 3.0,
        ..fast_limits()
    };
    let v = common::judge(
        &pool,
        Strict,
        limits,
        vec![
            (add_problem("membomb-strict"), bomb.to_owned()),
            (add_problem("membomb-huge"), huge.to_owned()),
            (add_problem("membomb-spread"), spread.to_owned()),
        ],
    );
    expect(
        &v[0],
        "strict memory bomb",
        SampleStatus::Failed,
        TestStatus::MemoryLimit,
    );
    expect(
        &v[1],
        "one huge allocation",
        SampleStatus::Failed,
        TestStatus::MemoryLimit,
    );
    expect(
        &v[2],
        "memory bomb over forked children",
        SampleStatus::Failed,
        TestStatus::WrongAnswer,
    );
    // apps has no memory verdict: the reference reports the MemoryError as a runtime error (-1).
    let v = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![(add_problem("membomb-apps"), bomb.to_owned())],
    );
    expect(
        &v[0],
        "apps memory bomb",
        SampleStatus::Failed,
        TestStatus::RuntimeError,
    );
    assert_eq!(
        v[0].apps_result,
        Some(vec![serde_json::json!(-1)]),
        "{}",
        show(&v[0])
    );
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// An infinite loop that swallows every exception. strict: RLIMIT_CPU (SIGXCPU, then the hard
/// limit's SIGKILL when SIGXCPU is ignored). apps: the alarm's `TimeoutException` is swallowed,
/// so the per-sample limit kills the worker (`GlobalTimeout`, `[-1] * 21`).
#[test]
fn infinite_loop_in_bare_except_times_out() {
    let _serial = serial();
    let pool = hostile_pool(2, SandboxLimits::default());
    let looping =
        "while True:\n    try:\n        while True:\n            pass\n    except:\n        pass\n";
    let ignores_xcpu = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    try:\n        while True:\n            pass\n    except:\n        pass\n";
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![
            (add_problem("bare-except-strict"), looping.to_owned()),
            (
                add_problem("bare-except-ignore-xcpu"),
                ignores_xcpu.to_owned(),
            ),
        ],
    );
    expect(
        &v[0],
        "strict bare-except loop",
        SampleStatus::Failed,
        TestStatus::Timeout,
    );
    expect(
        &v[1],
        "strict loop ignoring SIGXCPU",
        SampleStatus::Failed,
        TestStatus::Timeout,
    );
    let v = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![(add_problem("bare-except-apps"), looping.to_owned())],
    );
    expect(
        &v[0],
        "apps bare-except loop",
        SampleStatus::GlobalTimeout,
        TestStatus::Timeout,
    );
    assert_eq!(
        v[0].apps_result.as_ref().map(Vec::len),
        Some(21),
        "{}",
        show(&v[0])
    );
    assert_eq!(
        v[0].no_result_cause.as_deref(),
        Some("killed_after_join_timeout")
    );
    assert!(
        v[0].wall_s < 6.0,
        "the sample limit was not enforced: {}",
        show(&v[0])
    );
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// Sleeping forever uses no CPU. strict: the wall-clock backstop owned by Rust kills the
/// worker. apps: the per-test alarm; with SIGALRM blocked, the per-sample limit.
#[test]
fn sleep_forever_times_out() {
    let _serial = serial();
    let pool = hostile_pool(2, SandboxLimits::default());
    let sleep = "import time\ntime.sleep(10 ** 6)\n";
    let blocks_alarm = "import signal, time\nsignal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGALRM])\ntime.sleep(10 ** 6)\n";
    let t = Instant::now();
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![(add_problem("sleep-strict"), sleep.to_owned())],
    );
    expect(
        &v[0],
        "strict sleep",
        SampleStatus::Failed,
        TestStatus::Timeout,
    );
    let v = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![
            (add_problem("sleep-apps"), sleep.to_owned()),
            (
                add_problem("sleep-apps-blocked-alarm"),
                blocks_alarm.to_owned(),
            ),
        ],
    );
    expect(
        &v[0],
        "apps sleep",
        SampleStatus::Failed,
        TestStatus::Timeout,
    );
    assert_eq!(
        v[0].apps_result,
        Some(vec![serde_json::json!(-1)]),
        "{}",
        show(&v[0])
    );
    expect(
        &v[1],
        "apps sleep with SIGALRM blocked",
        SampleStatus::GlobalTimeout,
        TestStatus::Timeout,
    );
    assert!(
        t.elapsed() < Duration::from_secs(20),
        "sleepers took {:?}",
        t.elapsed()
    );
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// A gigabyte of output. strict: RLIMIT_FSIZE on the captured stdout file (and the size-capped
/// private tmpfs) stop it; apps: the capped capture raises `OutputLimitExceeded`.
#[test]
fn gigabyte_of_output_hits_output_limit() {
    let _serial = serial();
    let pool = hostile_pool(2, SandboxLimits::default());
    let printed =
        "import sys\nline = 'x' * (1 << 20)\nfor _ in range(1024):\n    sys.stdout.write(line)\n";
    let raw =
        "import os\nblock = b'x' * (1 << 20)\nfor _ in range(1024):\n    os.write(1, block)\n";
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![
            (add_problem("output-print"), printed.to_owned()),
            (add_problem("output-raw"), raw.to_owned()),
        ],
    );
    expect(
        &v[0],
        "strict 1 GB printed",
        SampleStatus::Failed,
        TestStatus::OutputLimit,
    );
    expect(
        &v[1],
        "strict 1 GB os.write",
        SampleStatus::Failed,
        TestStatus::OutputLimit,
    );
    let v = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![(add_problem("output-apps"), printed.to_owned())],
    );
    expect(
        &v[0],
        "apps 1 GB printed",
        SampleStatus::Failed,
        TestStatus::OutputLimit,
    );
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// Thread bombs. The pids cgroup counts threads too: `RuntimeError: can't start new thread`.
/// Non-daemon threads are not joined either (the child leaves through `os._exit`), and the
/// worker kills the sleepers.
#[test]
fn thread_bomb_is_capped() {
    let _serial = serial();
    let pool = hostile_pool(2, SandboxLimits::default());
    let daemon = "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n";
    let joined = "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,)).start()\n";
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![
            (add_problem("threads-daemon"), daemon.to_owned()),
            (add_problem("threads-joined"), joined.to_owned()),
        ],
    );
    expect(
        &v[0],
        "daemon thread bomb",
        SampleStatus::Failed,
        TestStatus::RuntimeError,
    );
    expect_stderr(&v[0], "daemon thread bomb", &["can't start new thread"]);
    expect(
        &v[1],
        "non-daemon thread bomb",
        SampleStatus::Failed,
        TestStatus::RuntimeError,
    );
    let v = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![(add_problem("threads-apps"), daemon.to_owned())],
    );
    expect(
        &v[0],
        "apps thread bomb",
        SampleStatus::Failed,
        TestStatus::RuntimeError,
    );
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// Unbounded recursion through C frames with the recursion limit lifted overflows the C stack
/// (SIGSEGV): a runtime error of the child only; the worker survives and keeps judging.
#[test]
fn unbounded_recursion_crashes_only_the_child() {
    let _serial = serial();
    let pool = hostile_pool(1, SandboxLimits::default());
    let deep = "import sys\nsys.setrecursionlimit(10 ** 9)\ndef f(n):\n    return list(map(f, [n + 1]))\nf(0)\n";
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![
            (add_problem("recursion-strict"), deep.to_owned()),
            (add_problem("recursion-then-ok"), ADD_OK.to_owned()),
        ],
    );
    expect(
        &v[0],
        "strict deep recursion",
        SampleStatus::Failed,
        TestStatus::RuntimeError,
    );
    assert_eq!(
        v[0].attempts,
        1,
        "the crash took the worker down\n{}",
        show(&v[0])
    );
    assert!(v[1].passed, "{}", show(&v[1]));
    // apps: the child dies without reporting, as the reference's would.
    let v = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![(add_problem("recursion-apps"), deep.to_owned())],
    );
    expect(
        &v[0],
        "apps deep recursion",
        SampleStatus::NoResult,
        TestStatus::NotRun,
    );
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// Signals to the parent and to pid 1 (both the worker), and to "every process". The pid
/// namespace hides the host's processes (a host pid means nothing inside; `kill(-1)` reaches
/// only the sandbox), and the kernel drops SIGKILL/SIGSTOP, and any signal without a handler,
/// sent to a namespace's init from inside. A decoy process on the host must survive.
#[test]
fn kill_of_parent_and_pid1_is_harmless() {
    let _serial = serial();
    let pool = hostile_pool(1, SandboxLimits::default());
    let mut decoy = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("start a decoy");
    let decoy_pid = decoy.id();
    let strict = format!(
        "import os, signal\nfor sig in (signal.SIGKILL, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1, signal.SIGUSR2, signal.SIGALRM, signal.SIGSTOP, signal.SIGSEGV, signal.SIGCONT):\n    for pid in (os.getppid(), 1, -1, {decoy_pid}, -{decoy_pid}):\n        try:\n            os.kill(pid, sig)\n        except OSError:\n            pass\nprint('still here')\n"
    );
    let apps = strict.replace("import os, signal", "import posix as os, signal");
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![
            (add_problem("kill-strict"), strict),
            (census_problem("kill-census"), NS_CENSUS.to_owned()),
        ],
    );
    expect(
        &v[0],
        "strict kill of parent/pid 1",
        SampleStatus::Failed,
        TestStatus::WrongAnswer,
    );
    assert_eq!(v[0].attempts, 1, "the worker died\n{}", show(&v[0]));
    assert!(
        v[1].passed,
        "processes left in the namespace\n{}",
        show(&v[1])
    );
    let v = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![(add_problem("kill-apps"), apps)],
    );
    expect(
        &v[0],
        "apps kill of parent/pid 1",
        SampleStatus::Failed,
        TestStatus::WrongAnswer,
    );
    assert_eq!(v[0].attempts, 1, "the worker died\n{}", show(&v[0]));
    assert!(
        decoy.try_wait().unwrap().is_none(),
        "the sandbox killed a host process"
    );
    let _ = decoy.kill();
    let _ = decoy.wait();
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// SIGINT to pid 1. Python installs a handler for SIGINT in the worker (it is not ignored by
/// the kernel like the signals above): a judged program must not be able to interrupt the
/// worker and turn its own verdict into the engine's `InternalError`.
#[test]
fn sigint_to_pid1_does_not_break_the_worker() {
    let _serial = serial();
    let pool = hostile_pool(1, SandboxLimits::default());
    // Landlock's signal scope refuses the kill (PermissionError); the worker also ignores
    // SIGINT, so even a delivered signal would not end it.
    let strict = "import os, signal\ntry:\n    os.kill(1, signal.SIGINT)\nexcept PermissionError:\n    pass\nimport time\ntime.sleep(0.2)\nprint('still here')\n";
    let apps = "import posix, signal\ntry:\n    posix.kill(1, signal.SIGINT)\nexcept PermissionError:\n    pass\nimport time\ntime.sleep(0.2)\nprint('still here')\n";
    let vs = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![(add_problem("sigint-strict"), strict.to_owned())],
    );
    let va = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![(add_problem("sigint-apps"), apps.to_owned())],
    );
    expect_all(&[
        mismatch(
            &vs[0],
            "strict SIGINT to pid 1",
            SampleStatus::Failed,
            TestStatus::WrongAnswer,
        ),
        mismatch(
            &va[0],
            "apps SIGINT to pid 1",
            SampleStatus::Failed,
            TestStatus::WrongAnswer,
        ),
    ]);
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// ptrace (attach to the worker, and PTRACE_TRACEME). The seccomp filter answers EPERM.
#[test]
fn ptrace_is_denied() {
    let _serial = serial();
    let pool = hostile_pool(2, SandboxLimits::default());
    let attach = "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nlibc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]\nr = libc.ptrace(16, os.getppid(), None, None)\nif r != 0:\n    e = ctypes.get_errno()\n    raise OSError(e, os.strerror(e))\nprint('attached')\n";
    let traceme = attach.replace(
        "libc.ptrace(16, os.getppid(), None, None)",
        "libc.ptrace(0, 0, None, None)",
    );
    let apps = attach.replace("os.getppid()", "1");
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![
            (add_problem("ptrace-attach"), attach.to_owned()),
            (add_problem("ptrace-traceme"), traceme),
        ],
    );
    for (i, v) in v.iter().enumerate() {
        expect(
            v,
            &format!("ptrace #{i}"),
            SampleStatus::Failed,
            TestStatus::RuntimeError,
        );
        expect_stderr(v, "ptrace", &["Operation not permitted"]);
    }
    let v = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![(add_problem("ptrace-apps"), apps)],
    );
    expect(
        &v[0],
        "apps ptrace",
        SampleStatus::Failed,
        TestStatus::RuntimeError,
    );
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// `setsid` + double fork + re-exec with a marker in its command line: the grandchild
/// detaches from the program's session and lets go of every descriptor, then, after the
/// program has finished, tries to write files outside the scratch and spins. The worker (pid 1
/// of the namespace) kills everything after each test; the namespace dies with the worker.
#[test]
fn setsid_double_fork_escape_is_reaped() {
    let _serial = serial();
    let pool = hostile_pool(1, SandboxLimits::default());
    let m = marker("daemon");
    let targets = escape_targets(&m);
    let grandchild = format!(
        "import time\ntime.sleep(1.0)\nfor p in {}:\n    try:\n        open(p, 'w').write('pwned')\n    except OSError:\n        pass\nwhile True:\n    pass\n",
        py_paths(&targets)
    );
    let attack = |posix: &str| {
        format!(
            "import {posix} as os, sys\npid = os.fork()\nif pid == 0:\n    os.setsid()\n    if os.fork() == 0:\n        os.closerange(0, 4096)\n        os.execv(sys.executable, [sys.executable, '-c', {grandchild:?}, {m:?}])\n    os._exit(0)\nos.waitpid(pid, 0)\nprint('detached')\n"
        )
    };
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![
            (add_problem("daemon-strict"), attack("os")),
            (census_problem("daemon-census"), NS_CENSUS.to_owned()),
        ],
    );
    expect(
        &v[0],
        "strict double fork",
        SampleStatus::Failed,
        TestStatus::WrongAnswer,
    );
    assert!(
        v[1].passed,
        "the daemon survived its program\n{}",
        show(&v[1])
    );
    let v = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![(add_problem("daemon-apps"), attack("posix"))],
    );
    expect(
        &v[0],
        "apps double fork",
        SampleStatus::Failed,
        TestStatus::WrongAnswer,
    );
    // Give a surviving grandchild time to act before looking.
    std::thread::sleep(Duration::from_millis(1500));
    assert_not_written(&targets);
    assert_nothing_left(&[&m], Duration::from_secs(3));
    assert_healthy(&pool);
}

// ------------------------------------------------------------------------------------------
// Judge integrity: the harness shares an interpreter with the program
