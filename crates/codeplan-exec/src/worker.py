# codeplan sandbox worker: a warm interpreter that forks one child per unit of work.
#
# Started by codeplan-exec (Rust) inside the sandbox. It imports the APPS prelude (numpy
# included) once; every sample then runs in a forked child, so the import cost is paid per
# worker, not per test. Rust owns every deadline: it kills this whole worker (and its pid
# namespace) when a request runs past its limit. This file is trusted code; the program under
# test only ever runs in a forked child, after rlimits are set.
#
# Protocol: frames of a 4-byte little-endian length followed by UTF-8 JSON, on fds 3 (in) and
# 4 (out). fds 0/1/2 are /dev/null so a program cannot reach the protocol by accident.

import sys
import time
import itertools
from itertools import accumulate, product, permutations, combinations
import collections
from collections import Counter, OrderedDict, deque, defaultdict, ChainMap
from functools import lru_cache
import math
from math import sqrt, sin, cos, tan, ceil, fabs, floor, gcd, exp, log, log2
import fractions
from typing import List, Tuple
import numpy as np
import random
import heapq
from heapq import *

import builtins
import copy
import faulthandler
import io
import json
import os
import resource
import signal
import shutil
import struct
import subprocess
import traceback
import types
from io import StringIO
from unittest.mock import patch, mock_open

PROTO_IN = 3
PROTO_OUT = 4
MAX_CHILD_BYTES = 512 * 1024 * 1024
# Exit status of a strict-mode child whose program does not compile.
EXIT_COMPILE_ERROR = 71
APPS_PRELUDE = (
    "import sys\nimport time\nimport itertools\n"
    "from itertools import accumulate, product, permutations, combinations\n"
    "import collections\n"
    "from collections import Counter, OrderedDict, deque, defaultdict, ChainMap\n"
    "from functools import lru_cache\nimport math\n"
    "from math import sqrt, sin, cos, tan, ceil, fabs, floor, gcd, exp, log, log2\n"
    "import fractions\nfrom typing import List, Tuple\nimport numpy as np\n"
    "import random\nimport heapq\nfrom heapq import *\n"
)


def read_exact(fd, n):
    chunks = []
    while n > 0:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def read_frame(fd):
    head = read_exact(fd, 4)
    if head is None:
        return None
    (n,) = struct.unpack("<I", head)
    body = read_exact(fd, n)
    return None if body is None else json.loads(body)


def write_frame(fd, obj):
    body = json.dumps(obj, ensure_ascii=False).encode("utf-8", "surrogatepass")
    data = struct.pack("<I", len(body)) + body
    view = memoryview(data)
    while view:
        k = os.write(fd, view)
        view = view[k:]


def tail(text, limit=2000):
    return text if len(text) <= limit else text[-limit:]


def error_text(e):
    """The last line of a traceback: what a user needs to see why a test errored."""
    try:
        return tail("".join(traceback.format_exception_only(type(e), e)).strip(), 500)
    except BaseException:
        return type(e).__name__


def maxrss_kb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


# ----------------------------------------------------------------------------------------
# Child side: limits and the APPS reference semantics.
# ----------------------------------------------------------------------------------------


def apply_limits(limits):
    os.setsid()
    mem = limits.get("memory_bytes")
    if mem:
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    cpu = limits.get("cpu_s")
    if cpu:
        used = resource.getrusage(resource.RUSAGE_SELF)
        base = int(used.ru_utime + used.ru_stime)
        resource.setrlimit(resource.RLIMIT_CPU, (base + int(math.ceil(cpu)), base + int(math.ceil(cpu)) + 1))
    fsize = limits.get("file_bytes")
    if fsize:
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    nofile = limits.get("open_files")
    if nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    nproc = limits.get("processes")
    if nproc:
        resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


class TimeoutException(Exception):
    pass


class OutputLimitExceeded(Exception):
    pass


def timeout_handler(signum, frame):
    # The reference prints this before raising; it lands in the captured output, so a
    # program that swallows the alarm and then prints its answer is judged wrong.
    print("alarm went off")
    raise TimeoutException


def arm(seconds):
    """The reference's `arm(timeout)`, with fractional seconds allowed."""
    signal.setitimer(signal.ITIMER_REAL, seconds)


def disarm():
    signal.setitimer(signal.ITIMER_REAL, 0)


class CappedStringIO(StringIO):
    """The reference's StringIO capture, with a cap so a program printing gigabytes is stopped."""

    def __init__(self, cap):
        super().__init__()
        self._cap = cap
        self._size = 0

    def write(self, s):
        self._size += len(s)
        if self._size > self._cap:
            raise OutputLimitExceeded("output limit of %d characters exceeded" % self._cap)
        return super().write(s)


def reliability_guard():
    """The reference harness's guard: part of APPS semantics (exit() fails, os.getcwd fails...)."""
    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in (
        "kill system putenv remove removedirs rmdir fchdir setuid fork forkpty killpg rename "
        "renames truncate replace unlink fchmod fchown chmod chown chroot lchflags lchmod "
        "lchown getcwd chdir"
    ).split():
        setattr(os, name, None)
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


class LoadClash(Exception):
    pass


def load_module(source):
    """Execute like the reference's pyext loader: a fresh dict, then the names become a module.

    pyext passes the dict as keyword arguments next to its own `name` and `docstring`
    parameters, so a program defining either at module level fails to load.
    """
    d = {}
    exec(source, d)
    for clash in ("name", "docstring"):
        if clash in d:
            raise LoadClash("got multiple values for argument '%s'" % clash)
    module = types.ModuleType("tmp_sol", "")
    module.__dict__.update(d)
    module.__file__ = "<runtime_module>"
    sys.modules["tmp_sol"] = module
    return module


def rewrite_stdin_program(test):
    """The reference's line-based rewrite of a standard-input program into `def code():`."""
    lines = []
    for x in test.split("\n"):
        if (not x.startswith("from ")) and (not x.startswith("import ")):
            lines.append("\t" + x + "\n")
        else:
            lines.append(x + "\n")
    out = ""
    started = False
    for i in lines:
        if i.startswith("\t") and not started:
            out += "stdin = sys.stdin\nstdout = sys.stdout\n"
            out += "def code():\n"
            out += i
            started = True
        elif started and (i.startswith("from ") or i.startswith("import ")):
            out += "\t" + i
        else:
            out += i
    return out


def call_with_stdin(method, inputs):
    """Run `code()` with the reference's stdin emulation (unittest.mock patches, same order)."""
    if isinstance(inputs, list):
        inputs = "\n".join(inputs)
    inputs_line_iterator = iter(inputs.split("\n"))

    @patch("builtins.open", mock_open(read_data=inputs))
    @patch("sys.stdin", StringIO(inputs))
    @patch("sys.stdin.readline", lambda *args: next(inputs_line_iterator))
    @patch("sys.stdin.readlines", lambda *args: inputs.split("\n"))
    @patch("sys.stdin.read", lambda *args: inputs)
    def inner(_method):
        try:
            return _method()
        except SystemExit:
            pass

    return inner(method)


def normalise_result(r):
    """Report a per-test result with the reference's types (True/False, or the -1 code)."""
    if r is True or r is False:
        return r
    if isinstance(r, np.bool_):
        return bool(r)
    if type(r) is int:
        return r
    try:
        return bool(r)
    except BaseException:
        return False


def run_apps(req, emit):
    """One sample, all tests in this process, exactly as the APPS reference runs it."""
    timeout = req["test_timeout_s"]
    out_cap = req["output_chars"]
    inputs_all = req["inputs"]
    outputs_all = req["outputs"]
    fn_name = req.get("fn_name")
    test = req["code"]
    signal.signal(signal.SIGALRM, timeout_handler)
    reliability_guard()

    sol = APPS_PRELUDE
    t0 = time.perf_counter()
    if fn_name is not None:
        sol += test
        arm(timeout)
        try:
            tmp_sol = load_module(sol)
            tmp = tmp_sol if "class Solution" not in test else tmp_sol.Solution()
            disarm()
        except Exception as e:
            disarm()
            emit({"t": "load", "ok": False, "error": error_text(e), "timeout": isinstance(e, TimeoutException)})
            return
        disarm()
        method_name = fn_name
    else:
        sol += rewrite_stdin_program(test)
        method_name = "code"
        arm(timeout)
        try:
            tmp = load_module(sol)
            disarm()
        except Exception as e:
            disarm()
            emit({"t": "load", "ok": False, "error": error_text(e), "timeout": isinstance(e, TimeoutException)})
            return
        disarm()
    try:
        method = getattr(tmp, method_name)
    except BaseException as e:
        disarm()
        emit({"t": "load", "ok": False, "error": "unable to get function: " + error_text(e)})
        return
    emit({"t": "load", "ok": True, "time_s": time.perf_counter() - t0})

    for index, inputs in enumerate(inputs_all):
        # JSON forces dictionaries to have string keys; the reference undoes it like this.
        try:
            if isinstance(inputs[0], dict):
                inputs = [{int(k): v for k, v in inputs[0].items()}]
        except BaseException:
            pass
        try:
            if isinstance(outputs_all[index], dict):
                outputs_all[index] = [{int(k): v for k, v in outputs_all[index].items()}]
        except BaseException:
            pass
        try:
            if isinstance(outputs_all[index][0], dict):
                outputs_all[index] = [{int(k): v for k, v in outputs_all[index][0].items()}]
        except BaseException:
            pass

        start = time.perf_counter()
        if fn_name is not None:
            arm(timeout)
            try:
                output = method(*inputs)
                if isinstance(output, tuple):
                    output = list(output)
                expected = outputs_all[index]
                tmp_result = output == expected
                if isinstance(expected, list) and expected:
                    tmp_result = tmp_result or (output == expected[0])
                try:
                    if isinstance(output[0], tuple):
                        tmp_result = tmp_result or ([list(x) for x in output] == expected[0])
                except BaseException:
                    pass
                result = normalise_result(tmp_result)
                disarm()
            except Exception as e:
                disarm()
                emit({
                    "t": "test", "i": index, "status": "timeout" if isinstance(e, TimeoutException) else "error",
                    "error": error_text(e), "time_s": time.perf_counter() - start, "maxrss_kb": maxrss_kb(),
                })
                continue
            disarm()
            emit({
                "t": "test", "i": index, "status": "ok", "result": result,
                "time_s": time.perf_counter() - start, "maxrss_kb": maxrss_kb(),
            })
        else:
            arm(timeout)
            passed = False
            if isinstance(inputs, list):
                inputs = "\n".join(inputs)
            if isinstance(outputs_all[index], list):
                outputs_all[index] = "\n".join(outputs_all[index])
            saved_stdout = sys.stdout
            capture = CappedStringIO(out_cap)
            capture.close = lambda x: 1
            sys.stdout = capture
            error = None
            try:
                call_with_stdin(method, inputs)
                disarm()
                passed = True
            except Exception as e:
                disarm()
                error = e
            disarm()
            text = capture.getvalue()
            sys.stdout = saved_stdout
            elapsed = time.perf_counter() - start
            if not passed:
                status = "error"
                if isinstance(error, TimeoutException):
                    status = "timeout"
                elif isinstance(error, OutputLimitExceeded):
                    status = "output_limit"
                emit({"t": "test", "i": index, "status": status, "error": error_text(error),
                      "time_s": elapsed, "maxrss_kb": maxrss_kb()})
                continue
            if not isinstance(outputs_all[index], str):
                # The reference's comparison calls str methods on it and dies with no result.
                raise AttributeError("expected output of test %d is not text" % index)
            if any("\ud800" <= ch <= "\udfff" for ch in text):
                # Lone surrogates cannot cross as UTF-8; they never match expected text anyway.
                text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            emit({"t": "test", "i": index, "status": "ok", "stdout": text,
                  "time_s": elapsed, "maxrss_kb": maxrss_kb()})


# ----------------------------------------------------------------------------------------
# Child side: strict mode, one test per child, the program as a real __main__ script.
# ----------------------------------------------------------------------------------------


def fresh_stdio():
    sys.stdin = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)), encoding="utf-8",
                                 errors="surrogateescape", newline="\n")
    sys.stdout = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)), encoding="utf-8",
                                  errors="strict", newline="\n")
    sys.stderr = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)), encoding="utf-8",
                                  errors="backslashreplace", newline="\n", line_buffering=True)


def run_as_main(source, filename):
    module = types.ModuleType("__main__")
    module.__file__ = filename
    module.__builtins__ = builtins
    sys.modules["__main__"] = module
    sys.argv = [filename]
    try:
        code = compile(source, filename, "exec")
    except (SyntaxError, ValueError):
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(EXIT_COMPILE_ERROR)
    exec(code, module.__dict__)
    return module


def strict_equal(out, expected, tol):
    """Python equality, with tuples as lists and a tolerance only where a float is expected."""
    if isinstance(out, tuple):
        out = list(out)
    if isinstance(expected, float) and isinstance(out, (int, float)) and not isinstance(out, bool):
        if math.isnan(expected) or math.isinf(expected):
            return out == expected
        return abs(out - expected) <= tol * max(1.0, abs(expected))
    if isinstance(expected, list) and isinstance(out, list):
        return len(out) == len(expected) and all(strict_equal(a, b, tol) for a, b in zip(out, expected))
    if isinstance(expected, dict) and isinstance(out, dict):
        return out.keys() == expected.keys() and all(strict_equal(out[k], expected[k], tol) for k in expected)
    if out != expected:
        return False
    # `True == 1` in Python; strict mode does not accept a bool where a number is expected.
    return type(out) is not bool or type(expected) is bool


def run_strict_test(req, index, emit):
    """Runs in the child; reports through the exit status and the result fd (call-based only)."""
    kind = req["kind"]
    code = req["code"]
    fresh_stdio()
    if kind == "stdio":
        try:
            run_as_main(code, "solution.py")
        except SystemExit as e:
            sys.stdout.flush()
            code_ = e.code
            os._exit(0 if code_ is None else (code_ if isinstance(code_, int) else 1))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
    elif kind == "check":
        run_as_main(code, "solution.py")
        sys.stdout.flush()
        os._exit(0)
    else:  # call
        fn_name = req["fn_name"]
        module = run_as_main(code, "solution.py")
        target = module.Solution() if hasattr(module, "Solution") else module
        fn = getattr(target, fn_name)
        args = copy.deepcopy(req["inputs"][index])
        expected = req["outputs"][index]
        out = fn(*args)
        ok = strict_equal(out, expected, req["float_tol"])
        if not ok and isinstance(expected, list) and len(expected) == 1:
            ok = strict_equal(out, expected[0], req["float_tol"])
        sys.stdout.flush()
        emit({"t": "verdict", "i": index, "ok": bool(ok), "nonce": req["nonce"]})
        os._exit(0)


# ----------------------------------------------------------------------------------------
# Worker (zygote) side.
# ----------------------------------------------------------------------------------------

IS_INIT = os.getpid() == 1


def reap_everything(child_pid):
    """Leave no process behind: as pid 1 of the sandbox namespace, kill all; else the group."""
    for _ in range(100):
        try:
            if IS_INIT:
                os.kill(-1, signal.SIGKILL)
            else:
                os.killpg(child_pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            while True:
                pid, _ = os.waitpid(-1, 0)
        except ChildProcessError:
            return


def clean_scratch(scratch):
    for entry in os.listdir(scratch):
        path = os.path.join(scratch, entry)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass


def read_tail(path, limit=2000):
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - limit))
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def describe_status(status):
    if os.WIFSIGNALED(status):
        return {"exit_code": None, "signal": os.WTERMSIG(status)}
    return {"exit_code": os.WEXITSTATUS(status), "signal": None}


def fork_child(scratch, body, stdin_path=None, stdout_path=None):
    """Fork a child that runs `body(emit)` with its own fds; returns (pid, read end of results)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            os.close(PROTO_IN)
            os.close(PROTO_OUT)
            os.chdir(scratch)
            fd_in = os.open(stdin_path or os.devnull, os.O_RDONLY)
            fd_out = os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600) if stdout_path else os.open(os.devnull, os.O_WRONLY)
            fd_err = os.open(os.path.join(scratch, ".stderr"), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(fd_in, 0)
            os.dup2(fd_out, 1)
            os.dup2(fd_err, 2)
            for fd in (fd_in, fd_out, fd_err):
                if fd > 2:
                    os.close(fd)
            sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8",
                                          errors="backslashreplace", line_buffering=True)
            out = os.fdopen(w, "wb", buffering=0)

            def emit(obj):
                body_ = json.dumps(obj).encode("utf-8", "surrogatepass")
                out.write(struct.pack("<I", len(body_)) + body_)

            body(emit)
            os._exit(0)
        except BaseException:
            try:
                traceback.print_exc()
                sys.stderr.flush()
            finally:
                os._exit(70)
    os.close(w)
    return pid, r


def relay(r, allowed, limit=MAX_CHILD_BYTES):
    """Forward the child's frames to Rust, validated; stop reading past the size limit."""
    total = 0
    while True:
        head = read_exact(r, 4)
        if head is None:
            return True
        (n,) = struct.unpack("<I", head)
        total += n
        if total > limit:
            return False
        body = read_exact(r, n)
        if body is None:
            return True
        try:
            msg = json.loads(body)
        except ValueError:
            return False
        if isinstance(msg, dict) and msg.get("t") in allowed:
            write_frame(PROTO_OUT, msg)


def handle_apps(req, scratch):
    limits = req["limits"]

    def body(emit):
        apply_limits(limits)
        run_apps(req, emit)

    pid, r = fork_child(scratch, body)
    ok = relay(r, ("load", "test"))
    os.close(r)
    if not ok:
        reap_everything(pid)
        write_frame(PROTO_OUT, {"t": "exit", "exit_code": None, "signal": None, "protocol_error": True,
                                "stderr": read_tail(os.path.join(scratch, ".stderr"))})
        return
    _, status = os.waitpid(pid, 0)
    info = describe_status(status)
    info.update({"t": "exit", "stderr": read_tail(os.path.join(scratch, ".stderr"))})
    reap_everything(pid)
    write_frame(PROTO_OUT, info)


def handle_strict(req, scratch):
    limits = req["limits"]
    start = req.get("start", 0)
    n = len(req["inputs"]) if req["kind"] != "check" else 1
    stdin_path = os.path.join(scratch, ".stdin")
    stdout_path = os.path.join(scratch, ".stdout")
    for index in range(start, n):
        if req["kind"] == "stdio":
            data = req["inputs"][index]
            if isinstance(data, list):
                data = "\n".join(data)
            with open(stdin_path, "wb") as f:
                f.write(str(data).encode("utf-8", "surrogateescape"))
        else:
            with open(stdin_path, "wb"):
                pass

        def body(emit, index=index):
            apply_limits(limits)
            run_strict_test(req, index, emit)

        t0 = time.perf_counter()
        pid, r = fork_child(scratch, body, stdin_path=stdin_path, stdout_path=stdout_path)
        relay(r, ("verdict",), limit=1 << 16)
        os.close(r)
        _, status, usage = os.wait4(pid, 0)
        elapsed = time.perf_counter() - t0
        reap_everything(pid)
        info = describe_status(status)
        cap = limits.get("file_bytes") or (1 << 30)
        try:
            with open(stdout_path, "rb") as f:
                stdout = f.read(cap + 1)
        except OSError:
            stdout = b""
        info.update({
            "t": "test", "i": index, "time_s": elapsed, "cpu_s": usage.ru_utime + usage.ru_stime,
            "maxrss_kb": usage.ru_maxrss, "stdout": stdout.decode("latin-1"),
            "stderr": read_tail(os.path.join(scratch, ".stderr")),
        })
        write_frame(PROTO_OUT, info)
        clean_scratch(scratch)
    write_frame(PROTO_OUT, {"t": "exit", "exit_code": 0, "signal": None, "stderr": ""})


def hello():
    return {
        "t": "hello",
        "python": sys.version.split()[0],
        "implementation": sys.implementation.name,
        "executable": sys.executable,
        "numpy": np.__version__,
        "int_max_str_digits": sys.get_int_max_str_digits(),
        "pid": os.getpid(),
        "uid": os.getuid(),
        "seccomp": read_status_field("Seccomp"),
        "no_new_privs": read_status_field("NoNewPrivs"),
    }


def read_status_field(name):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(name + ":"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def main():
    scratch = sys.argv[1] if len(sys.argv) > 1 else os.getcwd()
    os.makedirs(scratch, exist_ok=True)
    write_frame(PROTO_OUT, hello())
    while True:
        req = read_frame(PROTO_IN)
        if req is None:
            return
        op = req.get("op")
        if op == "ping":
            write_frame(PROTO_OUT, hello())
        elif op == "apps":
            handle_apps(req, scratch)
            clean_scratch(scratch)
        elif op == "strict":
            handle_strict(req, scratch)
        elif op == "exec":
            # A diagnostic probe: run trusted code in a child (used by the sandbox self-test).
            def body(emit, src=req["code"]):
                apply_limits(req.get("limits", {}))
                g = {"emit": emit}
                exec(src, g)

            pid, r = fork_child(scratch, body)
            relay(r, ("probe",))
            os.close(r)
            _, status = os.waitpid(pid, 0)
            reap_everything(pid)
            info = describe_status(status)
            info.update({"t": "exit", "stderr": read_tail(os.path.join(scratch, ".stderr"))})
            write_frame(PROTO_OUT, info)
            clean_scratch(scratch)
        else:
            write_frame(PROTO_OUT, {"t": "error", "error": "unknown op %r" % (op,)})


if __name__ == "__main__":
    main()
