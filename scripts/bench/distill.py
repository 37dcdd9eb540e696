#!/usr/bin/env python3
"""Throughput of `codeplan distill` (issue 5's benchmarks), one section at a time:

  local   plans per minute with the in-process teacher (default qwen2.5-coder-1.5b)
  http    plans per minute through the HTTP client against `codeplan serve`, concurrency 1 vs 4
  client  the client's own cost per request: a stub server on 127.0.0.1 that answers every
          request at once (so the time is codeplan's, plus the stub's own, an upper bound)
  cached  wall time of a fully cached rerun over the 154 APPS train problems (answers put in
          the cache by the stub first), with and without judging the validation code

  python3 scripts/bench/distill.py --sections local,http,client,cached

Needs a release build (cargo build --release -p codeplan) and the fetched models.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.join(ROOT, "target", "release", "codeplan")
DATA = os.path.join(ROOT, "data", "apps", "train.jsonl")


class Stub(BaseHTTPRequestHandler):
    """Answers plan requests with a fixed plan and code requests with a fixed program."""

    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: without this, Nagle and delayed ACKs add 40 ms.
    disable_nagle_algorithm = True

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        text = body["messages"][-1]["content"]
        content = (
            "```python\nprint(0)\n```"
            if "PLAN:" in text
            else "1. Read the input.\n2. Work out the answer.\n3. Print it."
        )
        out = json.dumps({
            "id": "x", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120},
        }).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def log_message(self, *args):
        pass


def stub():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


def distill(args, out):
    start = time.time()
    p = subprocess.run([BIN, "distill", "--data", DATA, "--out", out] + args, cwd=ROOT,
                       capture_output=True, text=True)
    wall = time.time() - start
    if p.returncode != 0:
        sys.exit(f"distill failed ({' '.join(args)}):\n{p.stderr[-3000:]}")
    with open(os.path.join(out, "summary.json")) as f:
        return wall, json.load(f)


def served(model):
    proc = subprocess.Popen([BIN, "serve", "--model", model, "--port", "0"], cwd=ROOT,
                            stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if "http://" in line:
            return proc, line[line.index("http://"):].strip() + "/v1"
    sys.exit("serve exited before listening")


def row(name, wall, s):
    plans = s["plan_stage"]["sent"] + s["plan_stage"]["reused"]
    code = s["code_stage"]["sent"] + s["code_stage"]["reused"]
    print(f"| {name} | {s['problems']} | {plans} | {code} | {s['plans_kept']} | "
          f"{s['tokens']['completion_tokens']} | {wall:.2f} | {60 * plans / wall:.2f} |", flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sections", default="local,http,client,cached")
    ap.add_argument("--teacher", default="qwen2.5-coder-1.5b")
    ap.add_argument("--served", default="qwen2.5-coder-0.5b")
    ap.add_argument("--problems", type=int, default=3)
    args = ap.parse_args()
    sections = args.sections.split(",")
    tmp = tempfile.mkdtemp(prefix="codeplan-bench-distill-")
    common = ["--limit", str(args.problems), "--plans-per-problem", "2", "--max-tokens", "256",
              "--code-max-tokens", "384", "--no-cache", "--when-none-pass", "best"]
    print("| run | problems | plan answers | code answers | plans kept | completion tokens | wall s | plans/min |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    if "local" in sections:
        wall, s = distill(common + ["--teacher", f"local:{args.teacher}"], os.path.join(tmp, "local"))
        row(f"local {args.teacher}", wall, s)
    if "http" in sections:
        proc, url = served(args.served)
        try:
            for c in (1, 4):
                wall, s = distill(common + ["--teacher-url", url, "--teacher-model", args.served,
                                            "--concurrency", str(c)], os.path.join(tmp, f"http{c}"))
                row(f"http → serve {args.served}, concurrency {c}", wall, s)
        finally:
            proc.terminate()
            proc.wait()
    if "client" in sections or "cached" in sections:
        server, url = stub()
        base = ["--teacher-url", url, "--teacher-model", "stub", "--plans-per-problem", "2",
                "--concurrency", "4", "--cache-dir", os.path.join(tmp, "cache")]
        if "client" in sections:
            for c in ("1", "4"):
                a = [x if x != "4" else c for x in base] + ["--no-validate", "--no-cache"]
                wall, s = distill(a, os.path.join(tmp, f"client{c}"))
                n = s["plan_stage"]["sent"]
                print(f"| stub, no validation, concurrency {c} | {s['problems']} | {n} | 0 | {s['plans_kept']} | – | {wall:.2f} | "
                      f"{60 * n / wall:.0f} ({1000 * wall / n:.2f} ms/request) |", flush=True)
        if "cached" in sections:
            for validate in (False, True):
                extra = [] if validate else ["--no-validate"]
                label = "with validation" if validate else "no validation"
                out = os.path.join(tmp, f"cached-{label}")
                wall, s = distill(base + extra, out)
                row(f"stub, {label}, first run (fills the cache)", wall, s)
                wall, s = distill(base + extra, out)
                assert s["plan_stage"]["sent"] == 0 and s["code_stage"]["sent"] == 0
                row(f"stub, {label}, rerun (same folder: ledger)", wall, s)
                wall, s = distill(base + extra, out + "-new")
                assert s["plan_stage"]["sent"] == 0 and s["code_stage"]["sent"] == 0
                row(f"stub, {label}, rerun (new folder: shared cache)", wall, s)
        server.shutdown()
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
