#!/usr/bin/env python3
"""Checks `codeplan train` exports with transformers and PEFT (by hand; CI has neither).

  1. transformers loads the merged Hugging Face folder (`<run>/model`) and its tokenizer;
     its last-position logits on a chat prompt equal codeplan's runtime's on the same folder
     (given as JSON by `cargo run -p codeplan-train --example dump_logits`), and its token ids
     equal codeplan's.
  2. PEFT loads the adapter (`<run>/adapter`) onto the base model's Hugging Face folder
     (`cargo run -p codeplan-train --example export_base -- MODEL.gguf DIR`, then DIR/model), and
     base + adapter gives the merged folder's logits, before and after merge_and_unload().

Usage (python with torch, transformers and peft):
  python3 scripts/bench/check_hf_export.py --run runs/x --base /tmp/base/model \
      --prompt prompt.txt --codeplan-logits codeplan.json
"""
import argparse
import json

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer


def logits_of(model, ids):
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0, -1].float()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", required=True, help="codeplan train --out folder")
    ap.add_argument("--base", required=True, help="the base model as a Hugging Face folder")
    ap.add_argument("--prompt", required=True, help="file with the prompt text")
    ap.add_argument("--codeplan-logits", help="dump_logits JSON for <run>/model")
    args = ap.parse_args()
    text = open(args.prompt).read()
    torch.set_num_threads(2)

    merged_dir = f"{args.run}/model"
    tok = AutoTokenizer.from_pretrained(merged_dir)
    ids = tok(text, add_special_tokens=True)["input_ids"]
    rendered = tok.apply_chat_template(
        [{"role": "user", "content": "Write a Python function that adds two numbers."}],
        tokenize=False,
        add_generation_prompt=True,
    )
    print(f"transformers tokenizer: {type(tok).__name__}, {len(ids)} prompt ids; chat template renders {rendered!r}")
    merged = AutoModelForCausalLM.from_pretrained(merged_dir, dtype=torch.float32)
    print(f"transformers loaded {merged_dir}: {type(merged).__name__}, "
          f"{sum(p.numel() for p in merged.parameters())} parameters, tied={merged.config.tie_word_embeddings}")
    m = logits_of(merged, ids)
    if args.codeplan_logits:
        ref = json.load(open(args.codeplan_logits))
        same_ids = ref["ids"] == ids
        print(f"token ids equal codeplan's: {same_ids}")
        c = torch.tensor(ref["logits"])
        print(f"merged folder, transformers vs codeplan: max |Δlogit| {(m - c).abs().max():.2e}, "
              f"argmax {int(m.argmax())} vs {int(c.argmax())}")

    base = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32)
    b = logits_of(base, ids)
    peft_model = PeftModel.from_pretrained(base, f"{args.run}/adapter")
    peft_model.eval()
    p = logits_of(peft_model, ids)
    print(f"PEFT loaded {args.run}/adapter: {peft_model.peft_config['default'].peft_type}, "
          f"r={peft_model.peft_config['default'].r}, targets={sorted(peft_model.peft_config['default'].target_modules)}")
    print(f"base + adapter (PEFT) vs merged folder: max |Δlogit| {(p - m).abs().max():.2e}")
    print(f"base alone vs merged folder:            max |Δlogit| {(b - m).abs().max():.2e}  (what the adapter changes)")
    folded = peft_model.merge_and_unload()
    f = logits_of(folded, ids)
    print(f"PEFT merge_and_unload vs merged folder: max |Δlogit| {(f - m).abs().max():.2e}")


if __name__ == "__main__":
    main()
