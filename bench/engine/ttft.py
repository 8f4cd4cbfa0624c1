#!/usr/bin/env python3
"""Time to first token, direct to an engine and through the gateway (bench/engine/run.sh).

TTFT = from just before the request is sent to the arrival of the first NDJSON line of a
streaming `POST /api/chat` whose `message.content` is not empty. Each target keeps one
keep-alive connection (as a client library would), so connection set-up is not counted.
Requests alternate between the two targets, and the order within each pair alternates too,
so that drift and ordering effects fall on both alike.

Writes {"direct": [ms...], "gateway": [ms...]} (pairs in order) to --out. Standard library only.
"""

import argparse
import http.client
import json
import socket
import sys
import time
import urllib.parse


class Target:
    def __init__(self, name: str, url: str, headers: dict):
        u = urllib.parse.urlsplit(url)
        self.name = name
        self.host, self.port, self.path = u.hostname, u.port or 80, u.path
        self.headers = {"Content-Type": "application/json", **headers}
        self.conn = None

    def connect(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def ttft(self, body: bytes) -> float:
        """One request; returns the TTFT in seconds (the response is read to its end)."""
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.connect()
                return self._once(body)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                # The server closed an idle keep-alive connection: reconnect once, untimed.
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _once(self, body: bytes) -> float:
        start = time.perf_counter()
        self.conn.request("POST", self.path, body=body, headers=self.headers)
        resp = self.conn.getresponse()
        if resp.status != 200:
            sys.exit(f"ttft.py: {self.name}: {self.path} answered {resp.status}: {resp.read()[:500]!r}")
        first = None
        done = False
        while True:
            line = resp.readline()
            if not line:
                break
            if not line.strip():
                continue
            obj = json.loads(line)
            if obj.get("error"):
                sys.exit(f"ttft.py: {self.name}: error in stream: {obj['error']}")
            if first is None and obj.get("message", {}).get("content"):
                first = time.perf_counter() - start
            done = done or bool(obj.get("done"))
        if first is None or not done:
            sys.exit(f"ttft.py: {self.name}: the stream had no content or no final object")
        return first


def pct(xs, p):
    s = sorted(xs)
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


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
