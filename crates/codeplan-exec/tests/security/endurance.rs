//! A thousand hostile samples in a row, then the pool must still judge correctly.

use super::*;

/// 1,000 hostile samples in a row (fast attacks only), then a mix of correct and incorrect
/// programs under both judges: every verdict right, nothing left behind.
#[test]
fn thousand_hostile_samples_in_a_row() {
    let _serial = serial();
    let pool = hostile_pool(2, small_memory());
    struct Attack {
        name: &'static str,
        code: &'static str,
        test: TestStatus,
        /// Also right: a bomb that a loaded machine slows past the wall-clock backstop is
        /// killed and judged a timeout (seen once in CI on a shared 2-core runner).
        or_timeout: bool,
    }
    let attacks = [
        Attack {
            name: "fork bomb",
            code: "import os, time\nwhile True:\n    if os.fork() == 0:\n        os.closerange(3, 4096)\n        time.sleep(60)\n",
            test: TestStatus::RuntimeError,
            or_timeout: true,
        },
        Attack {
            name: "thread bomb",
            code: "import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n",
            test: TestStatus::RuntimeError,
            or_timeout: true,
        },
        Attack {
            name: "memory bomb",
            code: "chunks = []\nwhile True:\n    chunks.append(bytearray(64 << 20))\n",
            test: TestStatus::MemoryLimit,
            or_timeout: false,
        },
        Attack {
            name: "os._exit",
            code: "import os\nos._exit(3)\n",
            test: TestStatus::RuntimeError,
            or_timeout: false,
        },
        Attack {
            name: "kill parent",
            code: "import os, signal\nfor s in (signal.SIGKILL, signal.SIGTERM, signal.SIGSTOP, signal.SIGINT):\n    for pid in (os.getppid(), 1):\n        try:\n            os.kill(pid, s)\n        except PermissionError:\n            pass\nprint(0)\n",
            test: TestStatus::WrongAnswer,
            or_timeout: false,
        },
        Attack {
            name: "/dev/shm",
            code: "open('/dev/shm/x', 'wb').write(b'x' * (100 << 20))\n",
            test: TestStatus::RuntimeError,
            or_timeout: false,
        },
        Attack {
            name: "100 MB output",
            code: "import os\nblock = b'7' * (1 << 20)\nfor _ in range(100):\n    os.write(1, block)\n",
            test: TestStatus::OutputLimit,
            or_timeout: false,
        },
        Attack {
            name: "exception",
            code: "raise ValueError('hostile')\n",
            test: TestStatus::RuntimeError,
            or_timeout: false,
        },
    ];
    let total = 1000;
    let items: Vec<(Problem, String)> = (0..total)
        .map(|i| {
            let a = &attacks[i % attacks.len()];
            (add_problem(&format!("hostile-{i}")), a.code.to_owned())
        })
        .collect();
    // No attack in this run should time out: a generous CPU limit keeps a memory bomb that is
    // slowed down by a busy machine from being judged a timeout.
    let limits = JudgeLimits {
        test_timeout_s: 3.0,
        ..fast_limits()
    };
    let t = Instant::now();
    let verdicts = common::judge(&pool, Strict, limits, items);
    let elapsed = t.elapsed();
    let mut wrong = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, v) in verdicts.iter().enumerate() {
        let a = &attacks[i % attacks.len()];
        let got = v.tests.first().map(|t| t.status);
        seen.insert(format!("{}: {:?}/{:?}", a.name, v.status, got));
        let right_status =
            got == Some(a.test) || (a.or_timeout && got == Some(TestStatus::Timeout));
        if v.passed || v.status != SampleStatus::Failed || !right_status {
            wrong.push(format!(
                "#{i} {}: expected {:?}\n{}",
                a.name,
                a.test,
                show(v)
            ));
        }
    }
    eprintln!("1000 hostile samples judged in {elapsed:?}; outcomes: {seen:?}");
    // The pool still answers correctly: a mix of right and wrong programs, both judges.
    let mut mix = Vec::new();
    for i in 0..20 {
        let (code, pass) = match i % 4 {
            0 => (ADD_OK, true),
            1 => (ADD_WRONG, false),
            2 => (
                "import sys\nprint(sum(map(int, sys.stdin.read().split())))\n",
                true,
            ),
            _ => ("print(42)\n", false),
        };
        mix.push((add_problem2(&format!("after-{i}")), code.to_owned(), pass));
    }
    for kind in [Strict, Apps] {
        let items = mix.iter().map(|(p, c, _)| (p.clone(), c.clone())).collect();
        let v = common::judge(&pool, kind, JudgeLimits::default(), items);
        for (v, (_, _, pass)) in v.iter().zip(&mix) {
            assert_eq!(
                v.passed,
                *pass,
                "{kind:?} after the hostile run\n{}",
                show(v)
            );
            let status = if *pass {
                SampleStatus::Passed
            } else {
                SampleStatus::Failed
            };
            assert_eq!(v.status, status, "{}", show(v));
        }
    }
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
    // Checked last, so that a wrong verdict for one kind of attack does not hide whether the
    // pool survived the run.
    assert!(
        wrong.is_empty(),
        "{} of {total} hostile samples got a wrong verdict (outcomes seen: {seen:#?}); first ones:\n{}",
        wrong.len(),
        wrong.iter().take(8).cloned().collect::<Vec<_>>().join("\n")
    );
}
