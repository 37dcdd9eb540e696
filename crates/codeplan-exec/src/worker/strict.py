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
