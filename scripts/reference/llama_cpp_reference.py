#!/usr/bin/env python3
"""Record llama.cpp's behaviour on the real models as golden data for codeplan-model's tests.

Writes crates/codeplan-model/tests/fixtures/llama_cpp_reference.json with, per model:
  * vocabulary facts as llama.cpp sees them: n_vocab, bos, eos, add_bos, the end-of-generation set;
  * chat prompts rendered by the model's own template (Jinja2 configured as Hugging Face
    transformers configures it) and llama.cpp's token ids for them
    (tokenize(text, add_bos=False, special=True));
  * llama.cpp's token ids for llama.cpp's tokenizer test inputs (the `.inp` file next to the
    vocab fixtures; add_special=False, parse_special=False, as test-tokenizer-0 calls it) and for
    a few code-shaped strings, with and without special-token parsing;
  * greedy completions (temperature 0, top_k 1, seed 0, 2 threads, 48 new tokens) for three fixed
    prompts, for the runtime's tests.

How the committed file was made (llama-cpp-python 0.3.36 built from its sdist):
    python3 -m venv /work/venv-lcp
    CMAKE_ARGS="-DGGML_NATIVE=ON" CMAKE_BUILD_PARALLEL_LEVEL=2 \
        /work/venv-lcp/bin/pip install llama_cpp_python-0.3.36.tar.gz
    /work/venv-lcp/bin/python scripts/reference/llama_cpp_reference.py

Models are looked up in $CODEPLAN_MODELS, then ~/.cache/codeplan/models (<name>/model.gguf).
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment
import llama_cpp
from llama_cpp import Llama

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "crates" / "codeplan-model" / "tests" / "fixtures"
OUT = FIXTURES / "llama_cpp_reference.json"
CASES_INP = FIXTURES / "vocab" / "ggml-vocab-qwen2.gguf.inp"

MODELS = ["qwen2.5-coder-0.5b", "smollm2-135m"]
MAX_NEW_TOKENS = 48

SYSTEM = "You are a careful Python programmer. Answer with code only."
USER = (
    "Write a function `mean(xs)` that returns the average of a list — or None if it's empty.\n"
    "```python\ndef mean(xs):\n    pass\n```\n"
    "Tests: mean([1, 2, 3]) == 2.0; mean([]) is None. Café, naïve, 日本語, 🦀 → ok?"
)
CHATS = {
    "system_user": [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER},
    ],
    "user_only": [{"role": "user", "content": "print('hello')\tand\r\nbye  "}],
}

CODEPLAN_PROMPT = (
    "[GEN_CODE]\nQUESTION:\nGiven two integers a and b on one line, print their sum.\n\n"
    "Use Standard Input format\nANSWER:\n"
)
RAW_PROMPT = "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"

EXTRA_TEXTS = [
    "def f(x):\n\tif x > 10_000:\n\t\treturn x ** 2  # square\r\n    return -x\n",
    "for i in range(12345678):\n        print(f\"{i:>4}\")\n\n\n",
    "   leading and trailing spaces   ",
    "émoji 🦙🦀 and 中文字符 and русский текст",
    "<|im_start|>user\nhi<|im_end|>\n<|endoftext|>",
    "<tool_call>\n{\"name\": \"f\"}\n</tool_call>",
    "x = '''it's' + \"don't\" ; y='LL'\nI'M 'Ve",
]


def models_dir() -> Path:
    env = os.environ.get("CODEPLAN_MODELS")
    return Path(env) if env else Path.home() / ".cache" / "codeplan" / "models"


def render(template: str, messages, add_generation_prompt: bool, bos: str, eos: str) -> str:
    # transformers' _compile_jinja_template: ImmutableSandboxedEnvironment(trim_blocks=True,
    # lstrip_blocks=True, extensions=[loopcontrols]) with raise_exception and tojson helpers.
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(
        messages=messages,
        add_generation_prompt=add_generation_prompt,
        bos_token=bos,
        eos_token=eos,
        tools=None,
        documents=None,
    )


def read_cases(path: Path):
    raw = path.read_text(encoding="utf-8")
    sep = "\n__ggml_vocab_test__\n"
    cases, pos = [], 0
    while pos < len(raw):
        nxt = raw.find(sep, pos)
        if nxt == -1:
            cases.append(raw[pos:])
            break
        cases.append(raw[pos:nxt])
        pos = nxt + len(sep)
    return cases


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def record_model(name: str, path: Path) -> dict:
    llm = Llama(
        model_path=str(path), n_ctx=2048, n_threads=2, n_threads_batch=2, seed=0, verbose=False
    )
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
    eog = [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)]
    bos_id = llama_cpp.llama_vocab_bos(vocab)
    eos_id = llama_cpp.llama_vocab_eos(vocab)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(vocab))
    template = llm.metadata["tokenizer.chat_template"]
    piece = lambda i: llm.detokenize([i], special=True).decode("utf-8", "replace")
    bos_text = piece(bos_id) if bos_id >= 0 else ""
    eos_text = piece(eos_id) if eos_id >= 0 else ""

    def tok(text: str, add_special: bool, special: bool):
        return llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=special)

    chats = []
    for chat_name, messages in CHATS.items():
        for agp in (True, False):
            text = render(template, messages, agp, bos_text, eos_text)
            chats.append(
                {
                    "name": chat_name,
                    "messages": messages,
                    "add_generation_prompt": agp,
                    "text": text,
                    "ids": tok(text, False, True),
                }
            )

    cases = read_cases(CASES_INP)
    vocab_cases = [tok(c, False, False) for c in cases]
    extra = [
        {"text": t, "parse_special": ps, "ids": tok(t, False, ps)}
        for t in EXTRA_TEXTS
        for ps in (False, True)
    ]

    chat_prompt = next(c["text"] for c in chats if c["name"] == "system_user" and c["add_generation_prompt"])
    completions = []
    for kind, prompt in (("chat", chat_prompt), ("raw", RAW_PROMPT), ("codeplan", CODEPLAN_PROMPT)):
        # add_special=True: llama.cpp prepends BOS only if the model's add_bos says so.
        prompt_ids = tok(prompt, True, True)
        generated, stopped = [], False
        for t in llm.generate(
            prompt_ids, top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0, reset=True
        ):
            generated.append(int(t))
            if llama_cpp.llama_vocab_is_eog(vocab, t):
                stopped = True
                break
            if len(generated) >= MAX_NEW_TOKENS:
                break
        completions.append(
            {
                "kind": kind,
                "prompt": prompt,
                "prompt_tokenize": {"add_special": True, "parse_special": True},
                "prompt_ids": prompt_ids,
                "generated_ids": generated,
                "stopped_at_eog": stopped,
                "generated_text": llm.detokenize(generated).decode("utf-8", "replace"),
                "generated_text_with_special": llm.detokenize(generated, special=True).decode(
                    "utf-8", "replace"
                ),
            }
        )

    return {
        "model_file_sha256": sha256(path),
        "n_vocab": n_vocab,
        "bos_id": bos_id,
        "eos_id": eos_id,
        "add_bos": add_bos,
        "eog_ids": eog,
        "chat_template_sha256": hashlib.sha256(template.encode("utf-8")).hexdigest(),
        "bos_text": bos_text,
        "eos_text": eos_text,
        "chats": chats,
        "vocab_cases": {"inp": "vocab/ggml-vocab-qwen2.gguf.inp", "flags": {"add_special": False, "parse_special": False}, "ids": vocab_cases},
        "extra_cases": extra,
        "completions": completions,
    }


def main() -> int:
    root = models_dir()
    out = {
        "generator": "scripts/reference/llama_cpp_reference.py",
        "llama_cpp_python_version": llama_cpp.__version__,
        # The sdist's vendored llama.cpp carries no commit id; the shared-library versions pin it.
        "llama_cpp_libraries": sorted(
            p.name for p in (Path(llama_cpp.__file__).parent / "lib").glob("*.so.*.*.*")
        ),
        "system_info": llama_cpp.llama_print_system_info().decode("utf-8", "replace").strip(),
        "sampling": {"temperature": 0.0, "top_k": 1, "top_p": 1.0, "min_p": 0.0, "repeat_penalty": 1.0,
                     "seed": 0, "n_threads": 2, "n_ctx": 2048, "max_new_tokens": MAX_NEW_TOKENS},
        "models": {},
    }
    for name in MODELS:
        path = root / name / "model.gguf"
        if not path.exists():
            print(f"missing {path}", file=sys.stderr)
            return 1
        print(f"recording {name} ...", file=sys.stderr)
        out["models"][name] = record_model(name, path)
    OUT.write_text(json.dumps(out, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
