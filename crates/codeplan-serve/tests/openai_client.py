"""The official `openai` Python package talking to `codeplan serve` (run by tests/server.rs).

Usage: python3 openai_client.py BASE_URL   (e.g. http://127.0.0.1:8080/v1)
Prints one JSON object with what it saw; exits non-zero on any mismatch.
"""
import json
import sys

import openai

base_url = sys.argv[1]
client = openai.OpenAI(base_url=base_url, api_key="not-needed", max_retries=0, timeout=300)
seen = {}

models = client.models.list()
seen["models"] = [m.id for m in models.data]
name = seen["models"][0]

chat = client.chat.completions.create(
    model=name,
    messages=[{"role": "user", "content": "Say hello."}],
    max_tokens=8,
    temperature=0,
    n=2,
)
assert chat.object == "chat.completion", chat
assert len(chat.choices) == 2, chat
assert chat.choices[0].message.role == "assistant"
assert chat.choices[0].message.content == chat.choices[1].message.content
assert chat.usage.total_tokens == chat.usage.prompt_tokens + chat.usage.completion_tokens
seen["chat"] = chat.choices[0].message.content

stream = client.chat.completions.create(
    model=name,
    messages=[{"role": "user", "content": "Say hello."}],
    max_tokens=8,
    temperature=0,
    stream=True,
)
streamed = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
assert streamed == seen["chat"], (streamed, seen["chat"])
seen["stream"] = streamed

comp = client.completions.create(model=name, prompt="def add(a, b):\n", max_tokens=8, temperature=0.8, seed=3)
comp2 = client.completions.create(model=name, prompt="def add(a, b):\n", max_tokens=8, temperature=0.8, seed=3)
assert comp.choices[0].text == comp2.choices[0].text
seen["completion"] = comp.choices[0].text

try:
    client.chat.completions.create(model=name, messages=[{"role": "user", "content": "x"}], n=0)
    raise SystemExit("n=0 was accepted")
except openai.BadRequestError as e:
    seen["bad_request"] = {"status": e.status_code, "code": e.code, "message": e.message}

try:
    client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    raise SystemExit("an unknown model was accepted")
except openai.NotFoundError as e:
    seen["not_found"] = {"status": e.status_code, "code": e.code}

print(json.dumps(seen))
