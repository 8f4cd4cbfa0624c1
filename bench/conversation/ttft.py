#!/usr/bin/env python3
"""Time to first delta of a conversation reply, against the engine asked directly
(bench/conversation/run.sh).

Three targets, each on one keep-alive connection (benchlib.Target), the same model, prompt
("Hi") and options (num_predict 1, greedy):

  direct        POST /api/chat (stream) on the engine; until the first NDJSON line whose
                message.content is not empty.
  ollama        POST /ollama/api/chat through the platform's gateway (gateway -> inference ->
                engine); the same measure, for comparison with bench/engine.
  conversation  POST /api/conversations/{id}/messages through the gateway (gateway ->
                conversation -> inference -> engine), server-sent events; until the first
                `delta` event. Every request goes to a new conversation (made untimed just
                before), so that each sends the model the same single message.

Rounds run the three in turn, the order rotating every round, so that drift and ordering effects
fall on all alike. Writes {"direct": [ms...], "ollama": [...], "conversation": [...]} (rounds in
order) to --out. Standard library only.
"""

import argparse
import json
import os
import sys

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import Target, pct, sse_first_delta  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engine", required=True, help="base URL of the engine (its /api/chat)")
    ap.add_argument("--platform", required=True, help="base URL of the platform's gateway")
    ap.add_argument("--token", required=True, help="bearer access token for the gateway")
    ap.add_argument("--model", default="smollm2:135m")
    ap.add_argument("--runs", type=int, default=50, help="measured requests per target")
    ap.add_argument("--warmup", type=int, default=5, help="untimed requests per target first")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    options = {"num_predict": 1, "temperature": 0}
    messages = [{"role": "user", "content": "Hi"}]
    chat = json.dumps({"model": args.model, "messages": messages, "options": options}).encode()
    send = json.dumps({"content": messages[0]["content"], "options": options}).encode()
    auth = {"Authorization": f"Bearer {args.token}"}
    direct = Target("direct", f"{args.engine}/api/chat", {})
    ollama = Target("ollama", f"{args.platform}/ollama/api/chat", auth)
    conv = Target("conversation", f"{args.platform}/api/conversations", auth, first_of=sse_first_delta)

    def once(t: Target) -> float:
        if t is conv:
            c = conv.call("POST", "/api/conversations", {"model": args.model, "title": "bench"})
            return conv.ttft(send, f"/api/conversations/{c['id']}/messages")
        return t.ttft(chat)

    targets = [direct, ollama, conv]
    for _ in range(args.warmup):
        for t in targets:
            once(t)
    res = {t.name: [] for t in targets}
    for i in range(args.runs):
        k = i % len(targets)
        for t in targets[k:] + targets[:k]:
            res[t.name].append(once(t) * 1000)
    with open(args.out, "w") as f:
        json.dump(res, f)
    for name, xs in res.items():
        print(f"ttft.py: {name}: median {pct(xs, 0.5):.3f} ms, p90 {pct(xs, 0.9):.3f} ms", file=sys.stderr)


if __name__ == "__main__":
    main()
