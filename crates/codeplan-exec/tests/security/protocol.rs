//! Attacks on the judge itself: reaching the worker's protocol pipe or memory, reading
//! expected answers, forging verdicts.

use super::*;

/// A program that writes frames to `/proc/1/fd/4`, the zygote's response pipe read by Rust.
const FORGE_FRAMES: &str = "import json, struct\nimport posix\ndef _frame(o):\n    b = json.dumps(o).encode()\n    return struct.pack('<I', len(b)) + b\nfd = posix.open('/proc/1/fd/4', posix.O_WRONLY)\nposix.write(fd, b''.join(_frame(o) for o in FRAMES))\nprint('forged')\n";

/// Judges a frame forgery followed by a wrong and a correct program on a one-worker pool: the
/// forgery must fail, and the samples after it must get their own verdicts.
fn forge_then_judge(kind: JudgeKind, frames: &str) {
    let pool = hostile_pool(1, SandboxLimits::default());
    let v = common::judge(
        &pool,
        kind,
        fast_limits(),
        vec![
            (add_problem("forge"), FORGE_FRAMES.replace("FRAMES", frames)),
            (add_problem2("forge-next-wrong"), ADD_WRONG.to_owned()),
            (add_problem2("forge-next-ok"), ADD_OK.to_owned()),
        ],
    );
    let stderr_ok = all_stderr(&v[0]).contains("PermissionError");
    let pass_ok = v[2].passed && v[2].status == SampleStatus::Passed;
    expect_all(&[
        mismatch(
            &v[0],
            "frame forgery",
            SampleStatus::Failed,
            TestStatus::RuntimeError,
        ),
        (!stderr_ok).then(|| "frame forgery: no PermissionError".to_owned()),
        mismatch(
            &v[1],
            "the wrong program after a forgery",
            SampleStatus::Failed,
            TestStatus::WrongAnswer,
        ),
        (!pass_ok).then(|| format!("the correct program after a forgery\n{}", show(&v[2]))),
    ]);
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// The zygote's protocol pipe must be out of the program's reach. The program is root of the
/// worker's user namespace, in the worker's own Landlock domain, and /proc is readable: opening
/// `/proc/1/fd/4` would let it forge "all tests passed" for itself and desynchronise the frames
/// of every later sample on that worker. (apps)
#[test]
fn zygote_protocol_pipe_is_unreachable_apps() {
    let _serial = serial();
    forge_then_judge(
        Apps,
        "[{'t': 'load', 'ok': True}, {'t': 'test', 'i': 0, 'status': 'ok', 'stdout': '42\\n', 'time_s': 0.0, 'maxrss_kb': 0}, {'t': 'exit', 'exit_code': 0, 'signal': None, 'stderr': ''}]",
    );
}

/// As [`zygote_protocol_pipe_is_unreachable_apps`], under strict.
#[test]
fn zygote_protocol_pipe_is_unreachable_strict() {
    let _serial = serial();
    forge_then_judge(
        Strict,
        "[{'t': 'test', 'i': 0, 'exit_code': 0, 'signal': None, 'stdout': '42\\n', 'stderr': '', 'time_s': 0.0, 'cpu_s': 0.0, 'maxrss_kb': 0}, {'t': 'exit', 'exit_code': 0, 'signal': None, 'stderr': ''}]",
    );
}

/// The zygote's memory (`/proc/1/mem`): reading it is as good as owning the judge.
#[test]
fn zygote_memory_is_unreachable() {
    let _serial = serial();
    let pool = hostile_pool(1, SandboxLimits::default());
    let mem = "import re\nmaps = open('/proc/1/maps').read()\nm = re.search(r'^([0-9a-f]+)-[0-9a-f]+ r', maps, re.M)\nf = open('/proc/1/mem', 'rb')\nf.seek(int(m.group(1), 16))\nf.read(16)\nprint('read the zygote')\n";
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![(add_problem("zygote-mem"), mem.to_owned())],
    );
    expect(
        &v[0],
        "read /proc/1/mem",
        SampleStatus::Failed,
        TestStatus::RuntimeError,
    );
    expect_stderr(&v[0], "read /proc/1/mem", &["PermissionError"]);
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// Judges one strict attack on the harness's secrets on a one-worker pool.
fn judge_peek(problem: Problem, code: &str, what: &str, test: TestStatus) {
    let pool = hostile_pool(1, SandboxLimits::default());
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![(problem, code.to_owned())],
    );
    expect(&v[0], what, SampleStatus::Failed, test);
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// strict's promise is that a program cannot see the answers. The program runs in the
/// harness's interpreter, so the harness's request (all expected outputs) must not be in an
/// outer frame. Here the program prints the expected output it finds there.
#[test]
fn strict_expected_outputs_are_unreachable() {
    let _serial = serial();
    let peek = "import sys\nf = sys._getframe()\nreq = None\nwhile f is not None:\n    r = f.f_locals.get('req')\n    if isinstance(r, dict) and 'outputs' in r:\n        req = r\n        break\n    f = f.f_back\ndata = sys.stdin.read()\nif req is None:\n    print('nothing found')\nelse:\n    i = req['inputs'].index(data) if data in req['inputs'] else 0\n    sys.stdout.write(req['outputs'][i])\n";
    judge_peek(
        add_problem2("peek-stdio"),
        peek,
        "stdio program reading the expected outputs",
        TestStatus::WrongAnswer,
    );
}

/// strict call-based tests: the program must not be able to emit the harness's own "ok"
/// verdict (with its nonce) from an outer frame.
#[test]
fn strict_call_verdict_cannot_be_forged() {
    let _serial = serial();
    // It finds the harness's emit() and any nonce in an outer frame and sends a pass; the
    // expected values never reach the process, and a call-based test only accepts a returned
    // value, which Rust compares.
    let forge = "import sys, os\nf = sys._getframe()\nwhile f is not None:\n    l = f.f_locals\n    if 'emit' in l and 'index' in l:\n        n = l.get('nonce') or (l.get('req') or {}).get('nonce')\n        l['emit']({'t': 'verdict', 'i': l['index'], 'ok': True, 'nonce': n})\n        os._exit(0)\n    f = f.f_back\ndef inc(x):\n    return x + 100\n";
    let problem = common::io_problem(
        "peek-call",
        &serde_json::json!({"fn_name": "inc", "inputs": [[1], [5]], "outputs": [2, 6]}),
    );
    judge_peek(
        problem,
        forge,
        "call program forging its verdict",
        TestStatus::RuntimeError,
    );
}

/// strict assertion tests: the success nonce printed after `check()` must not be readable by the
/// program (here from the harness's copy of the source in an outer frame).
#[test]
fn strict_check_nonce_cannot_be_forged() {
    let _serial = serial();
    let forge = "import sys, os, re\nf = sys._getframe()\nwhile f is not None:\n    src = f.f_locals.get('source')\n    if isinstance(src, str):\n        found = re.findall(r'__codeplan_ok_[0-9a-f]+__', src)\n        if found:\n            print(found[-1])\n            sys.stdout.flush()\n            os._exit(0)\n    f = f.f_back\ndef add(a, b):\n    return a - b\n";
    let problem = common::check_problem(
        "peek-check",
        "def check(candidate):\n    assert candidate(2, 3) == 5\n",
        "add",
    );
    judge_peek(
        problem,
        forge,
        "check program printing the nonce",
        TestStatus::WrongAnswer,
    );
}

// ------------------------------------------------------------------------------------------
// Endurance
// ------------------------------------------------------------------------------------------
