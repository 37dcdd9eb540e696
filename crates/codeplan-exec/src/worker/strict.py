# Part of the codeplan worker; the parts are concatenated in order (see worker.rs).

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


def run_strict_test(req, index, emit):
    """Runs in the child. Expected outputs are never sent here: Rust compares what comes back
    (stdout, or the returned value as JSON), so the program cannot read the answers."""
    kind = req["kind"]
    code = req["code"]
    # Kept out of `req` while the program runs; see the note on check programs in the README.
    nonce = req.pop("nonce", None)
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
        # The program, then its check(candidate) tests; reaching the end is the pass signal.
        run_as_main(code, "solution.py")
        sys.stdout.flush()
        emit({"t": "verdict", "i": index, "nonce": nonce})
        os._exit(0)
    else:  # call
        fn_name = req["fn_name"]
        module = run_as_main(code, "solution.py")
        target = module.Solution() if hasattr(module, "Solution") else module
        fn = getattr(target, fn_name)
        args = copy.deepcopy(req["inputs"][index])
        out = fn(*args)
        sys.stdout.flush()
        try:
            text = json.dumps(out, allow_nan=False)
        except (TypeError, ValueError, RecursionError):
            emit({"t": "value", "i": index, "unserializable": type(out).__name__})
        else:
            emit({"t": "value", "i": index, "json": text})
        os._exit(0)
