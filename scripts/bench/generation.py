#!/usr/bin/env python3
"""Prefill and decode speed and peak memory: codeplan's runtime vs llama.cpp, same run.

Both engines load the same GGUF, get the same prompt token ids (llama.cpp's tokenisation, which
codeplan's tokenizer reproduces), use 2 threads, and decode a fixed number of tokens ignoring
end-of-generation tokens. Each measurement runs in its own process so that its peak RSS is its
own (os.wait4).

  codeplan: cargo bench -p codeplan-model --bench generation (n samples decoded as one batch)
  llama.cpp: llama-cpp-python's Llama.eval / Llama.sample; its API decodes one sequence at a
             time, so n = 10 is 10 sequences after one shared prefill (the KV cache is rewound
             to the prompt between samples).

Usage (llama-cpp-python installed in the python running this script):
  python3 scripts/bench/generation.py --model ~/.cache/codeplan/models/qwen2.5-coder-0.5b/model.gguf \
      --prompt-tokens 512 --new 128 --n 1 --n 10 --repeats 3
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

TEXT = open(os.path.join(os.path.dirname(__file__), "..", "..", "data", "apps", "test.jsonl")).read()


def llama_child(model, ids_path, new, n, repeats):
    """Runs inside a child process: measures llama.cpp and prints JSON."""
    import statistics
    import time

    from llama_cpp import Llama

    ids = json.load(open(ids_path))
    t = time.perf_counter()
    llm = Llama(model_path=model, n_ctx=2048, n_threads=2, n_threads_batch=2, n_batch=512,
                seed=0, verbose=False)
    load_s = time.perf_counter() - t
    prefill, decode = [], []
    for _ in range(repeats):
        llm.reset()
        t = time.perf_counter()
        llm.eval(ids)
        prefill.append(len(ids) / (time.perf_counter() - t))
        steps = 0
        t = time.perf_counter()
        for _ in range(n):
            llm.n_tokens = len(ids)
            for i in range(new):
                if n == 1:
                    tok = llm.sample(temp=0.0)
                else:
                    tok = llm.sample(temp=0.6, top_p=0.95, top_k=0, min_p=0.0)
                if i + 1 < new:  # the last token needs no forward pass
                    llm.eval([tok])
                    steps += 1
        decode.append(steps / (time.perf_counter() - t))
    print(json.dumps({
        "engine": "llama.cpp", "prompt_tokens": len(ids), "new_tokens": new, "n": n,
        "load_s": load_s, "prefill_tok_s": statistics.median(prefill),
        "decode_tok_s": statistics.median(decode), "repeats": repeats,
    }))


def run(cmd, env=None):
    """Runs a command, returns (stdout JSON, peak RSS in MiB) of that process alone."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{cmd[0]} failed with status {status}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result["peak_rss_mib"] = usage.ru_maxrss / 1024
    return result


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--new", type=int, default=128)
    ap.add_argument("--n", type=int, action="append")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--child", nargs=4)
    args = ap.parse_args()
    if args.child:
        ids_path, new, n, repeats = args.child
        llama_child(args.model, ids_path, int(new), int(n), int(repeats))
        return
    from llama_cpp import Llama

    vocab = Llama(model_path=args.model, vocab_only=True, verbose=False)
    ids = vocab.tokenize(TEXT.encode(), add_bos=False, special=False)[: args.prompt_tokens]
    assert len(ids) == args.prompt_tokens, len(ids)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(ids, f)
        ids_path = f.name
    root = os.path.join(os.path.dirname(__file__), "..", "..")
    subprocess.run(["cargo", "bench", "-p", "codeplan-model", "--bench", "generation", "--no-run"],
                   cwd=root, check=True, stderr=subprocess.DEVNULL)
    env = dict(os.environ, RAYON_NUM_THREADS="2")
    results = []
    for n in args.n or [1]:
        ours = run(["cargo", "bench", "-q", "-p", "codeplan-model", "--bench", "generation", "--",
                    args.model, ids_path, str(args.new), str(n), str(args.repeats)], env=env)
        # cargo itself is the measured process's parent; its RSS is small next to the model's.
        theirs = run([sys.executable, __file__, "--model", args.model, "--child", ids_path,
                      str(args.new), str(n), str(args.repeats)])
        results.append({
            "n": n,
            "codeplan": ours,
            "llama.cpp": theirs,
            "decode_ratio": ours["decode_tok_s"] / theirs["decode_tok_s"],
            "prefill_ratio": ours["prefill_tok_s"] / theirs["prefill_tok_s"],
            "memory_ratio": ours["peak_rss_mib"] / theirs["peak_rss_mib"],
        })
    print(json.dumps({"model": args.model, "results": results}, indent=1))


if __name__ == "__main__":
    main()
