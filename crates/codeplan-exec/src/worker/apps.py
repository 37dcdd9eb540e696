# Part of the codeplan worker; the parts are concatenated in order (see worker.rs).

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
        method_name = fn_name
    else:
        sol += rewrite_stdin_program(test)
        method_name = "code"
    arm(timeout)
    try:
        tmp = load_module(sol)
        # Call-based only: the reference instantiates Solution at load time, under the alarm.
        if fn_name is not None and "class Solution" in test:
            tmp = tmp.Solution()
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
        if fn_name is not None:
            # Expected outputs reach the child only for call-based tests, whose comparison is
            # Python equality on the returned object; stdio outputs are compared in Rust.
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
            if any("\ud800" <= ch <= "\udfff" for ch in text):
                # Lone surrogates cannot cross as UTF-8; they never match expected text anyway.
                text = text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
            emit({"t": "test", "i": index, "status": "ok", "stdout": text,
                  "time_s": elapsed, "maxrss_kb": maxrss_kb()})
