#!/usr/bin/env python3
"""Time to first token, direct to an engine and through the gateway (bench/engine/run.sh).

TTFT = from just before the request is sent to the arrival of the first NDJSON line of a
streaming `POST /api/chat` whose `message.content` is not empty. Each target keeps one
keep-alive connection (as a client library would), so connection set-up is not counted
(benchlib.Target).
Requests alternate between the two targets, and the order within each pair alternates too,
so that drift and ordering effects fall on both alike.

Writes {"direct": [ms...], "gateway": [ms...]} (pairs in order) to --out. Standard library only.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import Target, pct  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--direct", required=True, help="URL of the engine's /api/chat")
    ap.add_argument("--gateway", required=True, help="URL of the gateway's /ollama/api/chat")
    ap.add_argument("--token", required=True, help="bearer access token for the gateway")
    ap.add_argument("--model", default="smollm2:135m")
    ap.add_argument("--runs", type=int, default=50, help="measured requests per target")
    ap.add_argument("--warmup", type=int, default=5, help="untimed requests per target first")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    body = json.dumps({
        "model": args.model,
        "messages": [{"role": "user", "content": "Hi"}],
        "options": {"num_predict": 1, "temperature": 0},
    }).encode()
    direct = Target("direct", args.direct, {})
    gateway = Target("gateway", args.gateway, {"Authorization": f"Bearer {args.token}"})

    for _ in range(args.warmup):
        direct.ttft(body)
        gateway.ttft(body)
    res = {"direct": [], "gateway": []}
    for i in range(args.runs):
        pair = (direct, gateway) if i % 2 == 0 else (gateway, direct)
        for t in pair:
            res[t.name].append(t.ttft(body) * 1000)
    with open(args.out, "w") as f:
        json.dump(res, f)
    for name, xs in res.items():
        print(f"ttft.py: {name}: median {pct(xs, 0.5):.3f} ms, p90 {pct(xs, 0.9):.3f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
