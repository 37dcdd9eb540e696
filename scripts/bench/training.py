#!/usr/bin/env python3
"""Training throughput and peak memory: codeplan's trainer vs PyTorch, same run.

Both engines load the same GGUF (same starting weights), train on the same token rows and run
the same loop: 2 rows x 512 tokens per step, loss = mean next-token cross-entropy (targets are
the ids shifted by one inside each row), AdamW(lr 1e-5, betas 0.9/0.999, eps 1e-8, wd 0),
grad-norm clipping at 1.0, `--warmup` untimed steps then `--steps` timed ones, 2 threads.

  full: full fine-tuning in f32 (meant for smollm2-135m)
  lora: LoRA r=16, alpha=32, dropout 0 on q,k,v,o,gate,up,down, base frozen, f32
        (meant for qwen2.5-coder-0.5b)

  codeplan: cargo bench -p codeplan-train --bench training -- --model GGUF --mode MODE
            --data ROWS --steps N --warmup W  (the bench executable is built with --no-run and
            run directly with `--bench` plus those args, so the measured process is the
            trainer itself; --codeplan-cmd replaces the whole command prefix)
  pytorch:  scripts/bench/train_torch.py (transformers' GGUF loader, peft for LoRA)

Each engine prints one JSON line (see train_torch.py). Each run is its own child process and
its peak RSS comes from os.wait4 (Linux reports the largest of the child and any descendants it
waited for, so a `cargo bench` wrapper would not hide the bench binary's memory). Peak RSS
includes model loading. Engines alternate within each repeat.

The rows file (JSON {"rows": [[512 ids], ...]}, 2 * (warmup + steps) rows, so no cycling) is
made from data/apps/train.jsonl: every problem's question, then each of its reference
solutions, each text + "\\n\\n" tokenised on its own (no special tokens) by the model's
tokenizer as transformers reads it from the GGUF, all ids concatenated and cut into rows.

Needs the venv of train_torch.py (torch, transformers, peft, gguf) for the python running this
script; the PyTorch child runs with the same python unless --python says otherwise.

Usage:
  /work/venv-torch/bin/python scripts/bench/training.py \
      --model ~/.cache/codeplan/models/smollm2-135m/model.gguf --mode full --steps 10 --repeats 2
  /work/venv-torch/bin/python scripts/bench/training.py \
      --model ~/.cache/codeplan/models/qwen2.5-coder-0.5b/model.gguf --mode lora --steps 10 \
      --repeats 2 [--only torch] [--codeplan-cmd "cargo bench -q -p codeplan-train --bench training --"]
"""
import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
BATCH, SEQ_LEN = 2, 512
KEYS = ["engine", "mode", "model", "batch", "seq_len", "steps", "tokens_per_s", "step_seconds",
        "losses"]
PHASES = ["forward", "backward", "clip", "optimizer", "zero_grad"]


def texts():
    """The training texts, in file order: each APPS train problem's question, then solutions."""
    for line in open(os.path.join(ROOT, "data", "apps", "train.jsonl")):
        p = json.loads(line)
        yield p["question"]
        yield from json.loads(p["solutions"] or "[]")


def make_rows(model, n_rows):
    """n_rows rows of SEQ_LEN ids, tokenised by the GGUF's tokenizer."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(os.path.dirname(model), gguf_file=os.path.basename(model))
    ids = []
    for text in texts():
        ids += tok(text + "\n\n", add_special_tokens=False)["input_ids"]
        if len(ids) >= n_rows * SEQ_LEN:
            break
    assert len(ids) >= SEQ_LEN, "not enough text"
    rows = [ids[i:i + SEQ_LEN] for i in range(0, len(ids) - SEQ_LEN + 1, SEQ_LEN)]
    return [rows[i % len(rows)] for i in range(n_rows)]


def codeplan_prefix():
    """[bench executable, "--bench"] built by cargo (the build output goes to stderr)."""
    out = subprocess.run(
        ["cargo", "bench", "--no-run", "--message-format=json", "-p", "codeplan-train",
         "--bench", "training"], cwd=ROOT, stdout=subprocess.PIPE)
    exe = None
    for line in out.stdout.decode().splitlines():
        msg = json.loads(line) if line.startswith("{") else {}
        target = msg.get("target", {})
        if (msg.get("reason") == "compiler-artifact" and target.get("name") == "training"
                and "bench" in target.get("kind", []) and msg.get("executable")):
            exe = msg["executable"]
    if out.returncode != 0 or exe is None:
        sys.exit("could not build the codeplan-train `training` bench (cargo bench --no-run "
                 f"exited {out.returncode}); use --only torch or --codeplan-cmd")
    return [exe, "--bench"]


def run(cmd, env=None):
    """Runs a command, returns (its stdout JSON, peak RSS in MiB) of that process."""
    print("+ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, cwd=ROOT)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    if status != 0:
        sys.exit(f"{cmd[0]} failed with wait status {status}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    missing = [k for k in KEYS if k not in result]
    if missing:
        sys.exit(f"{cmd[0]} printed JSON without {missing}")
    result["peak_rss_mib"] = usage.ru_maxrss / 1024  # replaces any self-reported figure
    return result


def summary(runs):
    tps = [r["tokens_per_s"] for r in runs]
    steps = [s for r in runs for s in r["step_seconds"]]
    rss = [r["peak_rss_mib"] for r in runs]
    s = {"tokens_per_s": statistics.median(tps), "tokens_per_s_each": tps,
         "step_s_median": statistics.median(steps), "peak_rss_mib": max(rss),
         "peak_rss_mib_each": rss, "loss0": runs[0]["losses"][0], "losses": runs[0]["losses"],
         "loss0_each": [r["losses"][0] for r in runs],
         "cpu_util_each": [r.get("cpu_util") for r in runs]}
    if all("phase_seconds" in r for r in runs):
        s["phase_seconds"] = {k: statistics.median(r["phase_seconds"].get(k, 0.0) for r in runs)
                              for k in runs[0]["phase_seconds"]}
    return s


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--mode", choices=["full", "lora"], required=True)
    ap.add_argument("--steps", type=int, default=10, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before the timed ones")
    ap.add_argument("--repeats", type=int, default=2, help="runs (processes) per engine")
    ap.add_argument("--only", choices=["torch", "codeplan"], help="run one engine only")
    ap.add_argument("--codeplan-cmd", help="command prefix for the codeplan side, e.g. "
                    "'cargo bench -q -p codeplan-train --bench training --' (default: the built "
                    "bench executable, run directly)")
    ap.add_argument("--python", default=sys.executable, help="python for train_torch.py")
    ap.add_argument("--json", help="also write all results to this file")
    args = ap.parse_args()
    model = os.path.abspath(os.path.expanduser(args.model))

    tmp = tempfile.mkdtemp(prefix="codeplan-train-bench-")
    data = os.path.join(tmp, "rows.json")
    with open(data, "w") as f:
        json.dump({"rows": make_rows(model, 2 * (args.warmup + args.steps))}, f)
    common = ["--model", model, "--mode", args.mode, "--data", data, "--steps", str(args.steps),
              "--warmup", str(args.warmup)]
    env = dict(os.environ, RAYON_NUM_THREADS="2", OMP_NUM_THREADS="2", MKL_NUM_THREADS="2",
               TOKENIZERS_PARALLELISM="false")
    engines = {}
    if args.only != "torch":
        prefix = shlex.split(args.codeplan_cmd) if args.codeplan_cmd else codeplan_prefix()
        engines["codeplan"] = prefix + common
    if args.only != "codeplan":
        engines["pytorch"] = [args.python, os.path.join(HERE, "train_torch.py")] + common
    runs = {name: [] for name in engines}
    for _ in range(args.repeats):
        for name, cmd in engines.items():
            runs[name].append(run(cmd, env=env))
    sums = {name: summary(rs) for name, rs in runs.items()}

    name_of = os.path.basename(os.path.dirname(model)) or os.path.basename(model)
    print(f"\n{name_of}, mode {args.mode}, {BATCH}x{SEQ_LEN} tokens/step, {args.warmup} warm-up + "
          f"{args.steps} timed steps, {args.repeats} run(s) per engine\n")
    print("| engine | tokens/s (median) | tokens/s (each run) | step s (median) | peak RSS MiB "
          "| step-0 loss | last loss |")
    print("|---|---|---|---|---|---|---|")
    for name, s in sums.items():
        each = ", ".join(f"{t:.1f}" for t in s["tokens_per_s_each"])
        print(f"| {name} | {s['tokens_per_s']:.1f} | {each} | {s['step_s_median']:.2f} "
              f"| {s['peak_rss_mib']:.0f} | {s['loss0']:.5f} | {s['losses'][-1]:.5f} |")
    if any("phase_seconds" in s for s in sums.values()):
        print("\n| engine | " + " | ".join(PHASES) + " |  (mean s per timed step, median of runs)")
        print("|---|" + "---|" * len(PHASES))
        for name, s in sums.items():
            if "phase_seconds" in s:
                ph = s["phase_seconds"]
                total = sum(ph.values()) or 1.0
                print(f"| {name} | " + " | ".join(
                    f"{ph.get(k, 0.0):.3f} ({100 * ph.get(k, 0.0) / total:.0f}%)" for k in PHASES)
                    + " |")
    ratios = {}
    if len(sums) == 2:
        ours, theirs = sums["codeplan"], sums["pytorch"]
        ratios = {
            "tokens_per_s": ours["tokens_per_s"] / theirs["tokens_per_s"],
            "peak_rss": ours["peak_rss_mib"] / theirs["peak_rss_mib"],
            "loss0_diff": ours["loss0"] - theirs["loss0"],
        }
        print(f"\ncodeplan/pytorch: tokens/s {ratios['tokens_per_s']:.3f}, "
              f"peak RSS {ratios['peak_rss']:.3f}")
        ok = "OK" if abs(ratios["loss0_diff"]) <= 1e-3 else "MISMATCH (> 1e-3)"
        print(f"step-0 loss: codeplan {ours['loss0']:.6f}, pytorch {theirs['loss0']:.6f}, "
              f"difference {ratios['loss0_diff']:+.2e} {ok}")
        if args.mode == "full":  # same init, so every step should stay close
            n = min(len(ours["losses"]), len(theirs["losses"]))
            diffs = [abs(a - b) for a, b in zip(ours["losses"][:n], theirs["losses"][:n])]
            print(f"max |loss difference| over all {n} steps: {max(diffs):.2e}")
    for name, s in sums.items():
        if len(set(s["loss0_each"])) > 1:
            print(f"note: {name}'s step-0 loss varies between runs: {s['loss0_each']}")
        if all(u is not None for u in s["cpu_util_each"]):
            print(f"{name}: CPU seconds per wall second over the timed steps, each run: "
                  + ", ".join(f"{u:.2f}" for u in s["cpu_util_each"])
                  + " (2 threads: about 2.0 when nothing else competed for the cores)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"model": model, "mode": args.mode, "data": data, "runs": runs,
                       "summary": sums, "ratios": ratios}, f, indent=1)


if __name__ == "__main__":
    main()
