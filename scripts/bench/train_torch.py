#!/usr/bin/env python3
"""PyTorch side of the training benchmark (scripts/bench/training.py drives it).

Runs the same training loop as codeplan's `cargo bench -p codeplan-train --bench training` and
prints ONE JSON line on stdout:

  {"engine": "pytorch", "mode", "model", "batch": 2, "seq_len": 512, "steps", "tokens_per_s",
   "step_seconds": [...timed steps...], "losses": [...all steps incl. warm-up...], "torch",
   plus extras: "warmup", "grad_norms" (pre-clip, all steps), "phase_seconds" (mean seconds per
   timed step of forward / backward / clip / optimizer / zero_grad), "trainable_params",
   "total_params", "load_s", "attn", "rss_after_load_mib", "peak_rss_mib_before_train",
   "peak_rss_mib" (this process's own ru_maxrss at the end), "versions", "cpu_util" (process
   CPU seconds / wall seconds over the timed steps: about 2 when it had both cores to itself,
   less when other work took the CPUs), "loadavg_before_after" (1-min load averages)}

The model is the GGUF loaded by transformers' GGUF support (dequantised to f32; llama q/k rows
are un-permuted back to the HF layout by transformers).

  full: every parameter trained (the tied embedding / lm_head once), f32
  lora: peft LoRA r=16, alpha=32, dropout 0 on q,k,v,o,gate,up,down projections; base frozen

Both: AdamW(lr 1e-5, betas (0.9, 0.999), eps 1e-8, weight_decay 0) with torch's default
implementation choice, clip_grad_norm_(trainable, 1.0), batch 2 rows x 512 tokens, loss = mean
cross-entropy of logits[:, :-1] against ids[:, 1:] (2 x 511 targets). Step i uses rows
[2i, 2i+1] of the rows file (cycled if short). The first `--warmup` steps are not timed.
tokens/s = steps * 2 * 512 / (sum of timed step wall seconds), a step being
forward + loss + backward + clip + optimizer.step + zero_grad(set_to_none=True).
2 intra-op threads, 1 inter-op thread.

Environment (/work/venv-torch, `python3 -m venv /work/venv-torch && /work/venv-torch/bin/pip
install torch transformers peft gguf safetensors numpy`), versions measured with:
  torch 2.15.0, transformers 5.24.0, peft 0.21.2, gguf 0.19.0, safetensors 0.8.0,
  numpy 2.4.6 (accelerate 1.15.0, tokenizers 0.23.3 pulled in)

Usage:
  /work/venv-torch/bin/python scripts/bench/train_torch.py \
      --model ~/.cache/codeplan/models/smollm2-135m/model.gguf --mode full \
      --data rows.json --steps 10 --warmup 2
"""
import argparse
import json
import os
import resource
import sys
import time

BATCH = 2
SEQ_LEN = 512
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def rss_mib():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def maxrss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_model(path):
    import torch
    from transformers import AutoModelForCausalLM

    path = os.path.expanduser(path)
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(path), gguf_file=os.path.basename(path), dtype=torch.float32)
    model.config.use_cache = False
    return model


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", required=True, help="GGUF file")
    ap.add_argument("--mode", choices=["full", "lora"], required=True)
    ap.add_argument("--data", required=True, help='JSON {"rows": [[ids...], ...]}, rows of 512 ids')
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps before the timed ones")
    args = ap.parse_args()

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(2)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)

    rows = json.load(open(args.data))["rows"]
    assert rows and all(len(r) == SEQ_LEN for r in rows), "rows must hold 512 ids each"

    t = time.perf_counter()
    model = load_model(args.model)
    if args.mode == "lora":
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            r=16, lora_alpha=32, lora_dropout=0.0, target_modules=LORA_TARGETS, bias="none",
            task_type="CAUSAL_LM"))
    else:
        for p in model.parameters():
            p.requires_grad_(True)
    model.train()
    load_s = time.perf_counter() - t
    vocab = model.get_input_embeddings().weight.shape[0]
    assert max(max(r) for r in rows) < vocab, "token id out of the model's vocabulary"
    params = [p for p in model.parameters() if p.requires_grad]  # parameters() dedups ties
    opt = torch.optim.AdamW(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    rss_after_load = rss_mib()
    peak_before_train = maxrss_mib()

    losses, norms, step_s, cpu_s = [], [], [], 0.0
    load_before = os.getloadavg()
    phases = {k: 0.0 for k in ("forward", "backward", "clip", "optimizer", "zero_grad")}
    for i in range(args.warmup + args.steps):
        ids = torch.tensor([rows[(2 * i) % len(rows)], rows[(2 * i + 1) % len(rows)]],
                           dtype=torch.long)
        c0 = time.process_time()
        t0 = time.perf_counter()
        logits = model(input_ids=ids).logits
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                               ids[:, 1:].reshape(-1))
        t1 = time.perf_counter()
        loss.backward()
        t2 = time.perf_counter()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        t3 = time.perf_counter()
        opt.step()
        t4 = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        t5 = time.perf_counter()
        losses.append(loss.item())
        norms.append(norm.item())
        del logits, loss
        if i >= args.warmup:
            step_s.append(t5 - t0)
            cpu_s += time.process_time() - c0
            for k, d in zip(phases, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                phases[k] += d
        print(f"step {i}: loss {losses[-1]:.5f} grad_norm {norms[-1]:.4f} {t5 - t0:.2f}s",
              file=sys.stderr)

    from importlib.metadata import version

    timed = args.steps * BATCH * SEQ_LEN
    print(json.dumps({
        "engine": "pytorch", "mode": args.mode, "model": args.model, "batch": BATCH,
        "seq_len": SEQ_LEN, "steps": args.steps, "warmup": args.warmup,
        "tokens_per_s": timed / sum(step_s) if step_s else None,
        "step_seconds": step_s, "losses": losses, "grad_norms": norms,
        "phase_seconds": {k: v / max(args.steps, 1) for k, v in phases.items()},
        "trainable_params": sum(p.numel() for p in params),
        "total_params": sum(p.numel() for p in model.parameters()),
        "cpu_util": cpu_s / sum(step_s) if step_s else None,
        "loadavg_before_after": [load_before[0], os.getloadavg()[0]],
        "load_s": load_s, "attn": model.config._attn_implementation,
        "rss_after_load_mib": rss_after_load, "peak_rss_mib_before_train": peak_before_train,
        "peak_rss_mib": maxrss_mib(), "torch": torch.__version__,
        "versions": {k: version(k) for k in ("transformers", "peft", "gguf", "numpy")},
    }))


if __name__ == "__main__":
    main()
