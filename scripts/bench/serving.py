#!/usr/bin/env python3
"""Serving throughput and latency: `codeplan serve` vs `llama_cpp.server`, same model, same run.

Each server is started alone (so they never share the 2 cores), warmed up with one request,
then loaded by C concurrent clients (C = 1, 4, 16), each sending requests back to back; every
request is a greedy chat completion with max_tokens = 32 whose user message starts with a
request number, so that no server can answer from a cached prompt (a real workload's prompts
differ). Reported per C: requests/s,
p50 and p99 latency, generated tokens/s. Needs llama-cpp-python with its server extras in the
python that runs this script, and a release build of codeplan.

  python3 scripts/bench/serving.py --model ~/.cache/codeplan/models/qwen2.5-coder-0.5b/model.gguf
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

BODY = {
    "messages": [{"role": "user", "content": "Write a Python function that returns the n-th Fibonacci number."}],
    "max_tokens": 32,
    "temperature": 0,
}


def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=600) as r:
        return json.loads(r.read())


def wait_ready(base, proc, timeout=300):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            urllib.request.urlopen(base + "/v1/models", timeout=2).read()
            return
        except Exception:
            time.sleep(0.5)
    sys.exit("server did not start")


def load(base, clients, per_client):
    url = base + "/v1/chat/completions"
    latencies, tokens, errors = [], [], []
    lock = threading.Lock()

    def client(c):
        for i in range(per_client):
            body = json.loads(json.dumps(BODY))
            body["messages"][0]["content"] = f"Task {c}-{i}: " + body["messages"][0]["content"]
            t = time.perf_counter()
            try:
                r = post(url, body)
            except Exception as e:  # noqa: BLE001 - reported, never hidden
                with lock:
                    errors.append(str(e))
                continue
            dt = time.perf_counter() - t
            with lock:
                latencies.append(dt)
                tokens.append(r["usage"]["completion_tokens"])

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(round(0.99 * (len(latencies) - 1))))]
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": len(errors),
        "req_s": len(latencies) / wall,
        "p50_s": statistics.median(latencies),
        "p99_s": p99,
        "gen_tok_s": sum(tokens) / wall,
        "mean_completion_tokens": sum(tokens) / max(1, len(tokens)),
    }


def bench(name, cmd, base, levels, env=None):
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        wait_ready(base, proc)
        post(base + "/v1/chat/completions", BODY)  # warm-up
        return [dict(load(base, c, max(2, 32 // c)), engine=name) for c in levels]
    finally:
        proc.terminate()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--codeplan", default=os.path.join(os.path.dirname(__file__), "..", "..", "target", "release", "codeplan"))
    ap.add_argument("--levels", default="1,4,16")
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]
    ours = bench("codeplan", [args.codeplan, "serve", "--model", args.model, "--port", "18080", "--max-batch", "16"],
                 "http://127.0.0.1:18080", levels, env=dict(os.environ, RAYON_NUM_THREADS="2"))
    theirs = bench("llama.cpp", [sys.executable, "-m", "llama_cpp.server", "--model", args.model, "--port", "18081",
                                 "--n_threads", "2", "--n_threads_batch", "2", "--n_ctx", "4096"],
                   "http://127.0.0.1:18081", levels)
    rows = []
    for a, b in zip(ours, theirs):
        rows.append({"clients": a["clients"], "codeplan": a, "llama.cpp": b, "req_s_ratio": a["req_s"] / b["req_s"]})
    print(json.dumps({"model": args.model, "results": rows}, indent=1))


if __name__ == "__main__":
    main()
