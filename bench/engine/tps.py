#!/usr/bin/env python3
"""Tokens/s of an Ollama-compatible server, from Ollama's own counters (bench/engine/run.sh).

Sends non-streaming `POST /api/generate` requests (raw prompt, greedy) and reads the final
object's counters:

    prompt tokens/s     = prompt_eval_count / prompt_eval_duration (ns) * 1e9
    generation tokens/s = eval_count / eval_duration (ns) * 1e9

The prompt is a counting sequence ("Juniper 4821: 1, 2, 3, ..."), which keeps a small model
generating (it goes on counting) instead of stopping at an end-of-sequence token. The engine keeps
its KV cache and reuses the longest common prompt prefix, so every request starts with a
different word: nothing is reused and the whole prompt is evaluated each time.

Before the measured requests, calibration requests (which also warm the server up; the first one
loads the model) find how many numbers make about --prompt-tokens tokens; with --numbers, one
warm-up request instead.

Writes a JSON list of per-request records to --out. Standard library only.
"""

import argparse
import http.client
import json
import random
import sys
import urllib.parse

# Distinct first letters: two consecutive prompts never share their first token.
WORDS = [
    "Amber", "Birch", "Cedar", "Dune", "Ember", "Fjord", "Garnet", "Harbor", "Iris", "Juniper",
    "Kestrel", "Lagoon", "Maple", "Nectar", "Orchid", "Pebble", "Quartz", "Raven", "Sierra",
    "Tundra", "Umber", "Violet", "Willow", "Xenon", "Yarrow", "Zephyr",
]


def prompt(index: int, numbers: int, rng: random.Random) -> str:
    word = WORDS[index % len(WORDS)]
    return f"{word} {rng.randrange(1000, 10000)}: " + ", ".join(str(i) for i in range(1, numbers + 1)) + ","


def generate(conn: http.client.HTTPConnection, model: str, text: str, num_predict: int, num_ctx: int) -> dict:
    body = {
        "model": model,
        "prompt": text,
        "raw": True,
        "stream": False,
        "options": {"num_predict": num_predict, "temperature": 0, "num_ctx": num_ctx, "seed": 1},
    }
    conn.request("POST", "/api/generate", body=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        sys.exit(f"tps.py: /api/generate answered {resp.status}: {data[:500]!r}")
    out = json.loads(data)
    for key in ("prompt_eval_count", "prompt_eval_duration", "eval_count", "eval_duration"):
        if not isinstance(out.get(key), int):
            sys.exit(f"tps.py: the final object has no {key}: {data[:500]!r}")
    return out


def record(out: dict, text: str) -> dict:
    return {
        "prompt_chars": len(text),
        "prompt_eval_count": out["prompt_eval_count"],
        "prompt_eval_duration_ns": out["prompt_eval_duration"],
        "eval_count": out["eval_count"],
        "eval_duration_ns": out["eval_duration"],
        "load_duration_ns": out.get("load_duration"),
        "total_duration_ns": out.get("total_duration"),
        "done_reason": out.get("done_reason"),
        "pp_ts": out["prompt_eval_count"] / out["prompt_eval_duration"] * 1e9 if out["prompt_eval_duration"] else None,
        "tg_ts": out["eval_count"] / out["eval_duration"] * 1e9 if out["eval_duration"] else None,
        "response_head": out.get("response", "")[:80],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True, help="server base URL, e.g. http://127.0.0.1:19180")
    ap.add_argument("--model", default="smollm2:135m")
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--gen-tokens", type=int, default=128)
    ap.add_argument("--num-ctx", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--offset", type=int, default=0, help="first word index (keep consecutive runs distinct)")
    ap.add_argument("--numbers", type=int, help="skip the calibration: this many numbers (one warm-up request)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    u = urllib.parse.urlsplit(args.url)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=600)
    rng = random.Random(args.offset)
    index = args.offset

    if args.numbers:
        numbers = args.numbers
        generate(conn, args.model, prompt(index, numbers, rng), args.gen_tokens, args.num_ctx)  # warm-up
        index += 1
    else:
        # Calibration (and warm-up): numbers → tokens is close to linear.
        numbers = max(8, args.prompt_tokens // 4)
        for _ in range(3):
            text = prompt(index, numbers, rng)
            index += 1
            got = generate(conn, args.model, text, args.gen_tokens, args.num_ctx)["prompt_eval_count"]
            if abs(got - args.prompt_tokens) <= max(2, args.prompt_tokens // 100):
                break
            numbers = max(1, round(numbers + (args.prompt_tokens - got) / (got / numbers)))
        print(f"tps.py: {numbers} numbers ≈ {got} prompt tokens (target {args.prompt_tokens})", file=sys.stderr)

    records = []
    for _ in range(args.reps):
        text = prompt(index, numbers, rng)
        index += 1
        records.append(record(generate(conn, args.model, text, args.gen_tokens, args.num_ctx), text))
        r = records[-1]
        print(
            f"tps.py: pp {r['prompt_eval_count']} tok {r['pp_ts']:.1f} t/s, "
            f"tg {r['eval_count']} tok {r['tg_ts']:.1f} t/s ({r['done_reason']})",
            file=sys.stderr,
        )
    with open(args.out, "w") as f:
        json.dump({"numbers": numbers, "next_offset": index, "requests": records}, f, indent=1)


if __name__ == "__main__":
    main()
