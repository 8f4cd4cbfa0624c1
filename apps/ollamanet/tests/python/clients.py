"""Drives OllamaNet with the official Python clients: `ollama` against an engine and against the
gateway's Ollama face, `openai` against the engine's and the gateway's OpenAI face.

Environment: ENGINE_URL, GATEWAY_URL, TOKEN (a bearer token for the gateway), MODEL.
Prints one JSON object with what each client saw; apps/ollamanet/tests/api/python_clients.rs
asserts on it.
"""

import json
import os

import ollama
import openai

ENGINE = os.environ["ENGINE_URL"]
GATEWAY = os.environ["GATEWAY_URL"]
TOKEN = os.environ["TOKEN"]
MODEL = os.environ["MODEL"]
HELLO = [{"role": "user", "content": "Hello"}]


def with_ollama(client):
    seen = {"list": [m.model for m in client.list().models]}
    seen["family"] = client.show(MODEL).details.family
    chunks = list(client.chat(model=MODEL, messages=HELLO, stream=True, options={"num_predict": 6, "seed": 1}))
    seen["chat_chunks"] = len(chunks)
    seen["chat_done_reason"] = chunks[-1].done_reason
    seen["chat_eval_count"] = chunks[-1].eval_count
    generated = client.generate(model=MODEL, prompt="Once", options={"num_predict": 4, "seed": 1})
    seen["generate_eval_count"] = generated.eval_count
    seen["generate_done"] = generated.done
    try:
        client.chat(model="no-such-model", messages=HELLO)
        seen["missing_status"] = None
    except ollama.ResponseError as e:
        seen["missing_status"] = e.status_code
    return seen


def with_openai(client):
    seen = {"models": [m.id for m in client.models.list().data]}
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=HELLO,
            max_tokens=5,
            seed=1,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    seen["finish_reasons"] = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    seen["completion_tokens"] = chunks[-1].usage.completion_tokens
    whole = client.chat.completions.create(model=MODEL, messages=HELLO, max_tokens=3, seed=1)
    seen["whole_completion_tokens"] = whole.usage.completion_tokens
    seen["whole_role"] = whole.choices[0].message.role
    completion = client.completions.create(model=MODEL, prompt="Once", max_tokens=3, seed=1)
    seen["completion_completion_tokens"] = completion.usage.completion_tokens
    try:
        client.chat.completions.create(model="no-such-model", messages=HELLO)
        seen["missing_status"] = None
    except openai.NotFoundError as e:
        seen["missing_status"] = e.status_code
    return seen


print(
    json.dumps(
        {
            "ollama_engine": with_ollama(ollama.Client(host=ENGINE)),
            "ollama_gateway": with_ollama(
                ollama.Client(host=GATEWAY + "/ollama", headers={"Authorization": f"Bearer {TOKEN}"})
            ),
            "openai_engine": with_openai(openai.OpenAI(base_url=ENGINE + "/v1", api_key="unused")),
            "openai_gateway": with_openai(openai.OpenAI(base_url=GATEWAY + "/v1", api_key=TOKEN)),
        }
    )
)
