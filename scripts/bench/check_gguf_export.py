#!/usr/bin/env python3
"""Checks GGUF files written by `codeplan train --export gguf-f16,gguf-q8_0` with llama.cpp
(by hand; CI has no llama.cpp).

For each file: llama-cpp-python loads it, reports its type and metadata, tokenises a ChatML
prompt, and greedily generates from it. The first file is the reference: every other file's
last-position logits are compared with its (max and mean |Δlogit|, same next token), and, given
`--codeplan-logits` (JSON from `cargo run -p codeplan-train --example dump_logits` on the
merged Hugging Face folder), the reference's logits and token ids are compared with codeplan's.

Usage (python with llama-cpp-python):
  python3 scripts/bench/check_gguf_export.py runs/x/model-f16.gguf runs/x/model-q8_0.gguf \
      --prompt prompt.txt --codeplan-logits codeplan.json
"""
import argparse
import json

import numpy as np
from llama_cpp import Llama

FILE_TYPES = {0: "all F32", 1: "mostly F16", 7: "mostly Q8_0"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf", nargs="+")
    ap.add_argument("--prompt", required=True, help="file with the prompt text")
    ap.add_argument("--codeplan-logits", help="dump_logits JSON of the merged model")
    ap.add_argument("--new", type=int, default=24, help="greedy tokens to generate")
    args = ap.parse_args()
    text = open(args.prompt).read()
    reference = None
    for path in args.gguf:
        # logits_all: llama-cpp-python keeps logits (llm.scores) only with it.
        llm = Llama(model_path=path, n_ctx=512, n_threads=2, logits_all=True, verbose=False)
        meta = llm.metadata
        ft = int(meta.get("general.file_type", -1))
        print(f"== {path}")
        print(f"   loaded: arch {meta.get('general.architecture')}, file_type {ft} ({FILE_TYPES.get(ft, '?')}), "
              f"{llm.n_vocab()} tokens vocab, chat template {'present' if 'tokenizer.chat_template' in meta else 'MISSING'}")
        ids = llm.tokenize(text.encode(), add_bos=False, special=True)
        llm.reset()
        llm.eval(ids)
        logits = np.array(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        out = llm.create_completion(text, max_tokens=args.new, temperature=0.0, top_k=1)
        print(f"   {len(ids)} prompt ids; greedy: {out['choices'][0]['text']!r}")
        if reference is None:
            reference = (ids, logits)
            if args.codeplan_logits:
                ref = json.load(open(args.codeplan_logits))
                c = np.array(ref["logits"], dtype=np.float32)
                print(f"   token ids equal codeplan's: {ref['ids'] == ids}")
                print(f"   vs codeplan's f32 merged model: max |Δlogit| {np.abs(c - logits).max():.3f}, "
                      f"mean {np.abs(c - logits).mean():.4f}, next token {int(logits.argmax())} vs {int(c.argmax())}")
        else:
            rids, rlogits = reference
            d = np.abs(rlogits - logits)
            print(f"   vs {args.gguf[0]}: same ids {rids == ids}, max |Δlogit| {d.max():.3f}, mean {d.mean():.4f}, "
                  f"next token {int(logits.argmax())} vs {int(rlogits.argmax())}")
        del llm


if __name__ == "__main__":
    main()
