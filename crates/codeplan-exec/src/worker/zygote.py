# Part of the codeplan worker; the parts are concatenated in order (see worker.rs).

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

            # Python's own SIGINT handler, as in the reference process (the worker ignores it).
            signal.signal(signal.SIGINT, signal.default_int_handler)
            confine_child()
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


def collect(pid, r, limit=MAX_CHILD_BYTES):
    """Read the child's output until it exits, then kill whatever it left behind.

    Waiting for the child's exit (not for end-of-file) means a leftover process holding the
    pipe cannot stall the verdict. Returns (status, rusage, bytes, overflowed).
    """
    os.set_blocking(r, False)
    buf = bytearray()
    overflow = False
    status = usage = None
    while True:
        ready, _, _ = select.select([r], [], [], 0.05 if status is None else 1.0)
        if ready:
            try:
                chunk = os.read(r, 1 << 20)
            except BlockingIOError:
                chunk = None
            if chunk == b"":
                break
            if chunk:
                if len(buf) + len(chunk) > limit:
                    overflow = True
                    if status is None:
                        os.kill(pid, signal.SIGKILL)
                else:
                    buf += chunk
        elif status is not None:
            break
        if status is None:
            p, st, ru = os.wait4(pid, os.WNOHANG)
            if p == pid:
                status, usage = st, ru
                reap_everything(pid)
    if status is None:
        _, status, usage = os.wait4(pid, 0)
    reap_everything(pid)
    return status, usage, bytes(buf), overflow


def frames(data, allowed, n_tests):
    """Parse the child's frames, keeping only well-formed ones: a known type, a test index in
    range, the first frame per (type, index). The program shares the child's process and could
    write frames itself; a malformed one must fail its sample, not look like an engine fault."""
    out = []
    seen = set()
    pos = 0
    while pos + 4 <= len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        body = data[pos + 4:pos + 4 + n]
        pos += 4 + n
        if len(body) < n:
            break
        try:
            msg = json.loads(body)
        except ValueError:
            continue
        if not isinstance(msg, dict) or msg.get("t") not in allowed:
            continue
        index = msg.get("i")
        if msg["t"] != "load" and msg["t"] != "probe":
            if type(index) is not int or not 0 <= index < n_tests:
                continue
        key = (msg["t"], index)
        if key in seen:
            continue
        seen.add(key)
        out.append(msg)
    return out


def handle_apps(req, scratch):
    limits = req["limits"]

    def body(emit):
        apply_limits(limits)
        run_apps(req, emit)

    pid, r = fork_child(scratch, body)
    status, _, data, overflow = collect(pid, r)
    os.close(r)
    for msg in frames(data, ("load", "test"), len(req["inputs"])):
        write_frame(PROTO_OUT, msg)
    info = describe_status(status)
    info.update({"t": "exit", "protocol_error": overflow,
                 "stderr": read_tail(os.path.join(scratch, ".stderr"))})
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
            # A file-size overrun kills the program (Python ignores SIGXFSZ by default, which
            # would turn the output cap into an ordinary write error).
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)
            run_strict_test(req, index, emit)

        t0 = time.perf_counter()
        pid, r = fork_child(scratch, body, stdin_path=stdin_path, stdout_path=stdout_path)
        status, usage, data, _ = collect(pid, r, limit=64 << 20)
        os.close(r)
        elapsed = time.perf_counter() - t0
        for msg in frames(data, ("value", "verdict"), n):
            if msg.get("i") == index:
                write_frame(PROTO_OUT, msg)
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
    # The worker outlives many programs: a stray SIGINT must not end it, and its memory and
    # file descriptors must not be reachable through /proc by a program that drops to the
    # same uid (children also lose every capability, see confine_child).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    LIBC.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
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
            status, _, data, _ = collect(pid, r)
            os.close(r)
            for msg in frames(data, ("probe",), 0):
                write_frame(PROTO_OUT, msg)
            info = describe_status(status)
            info.update({"t": "exit", "stderr": read_tail(os.path.join(scratch, ".stderr"))})
            write_frame(PROTO_OUT, info)
            clean_scratch(scratch)
        else:
            write_frame(PROTO_OUT, {"t": "error", "error": "unknown op %r" % (op,)})


if __name__ == "__main__":
    main()
