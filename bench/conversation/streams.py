#!/usr/bin/env python3
"""Memory per idle open reply stream (bench/conversation/run.sh).

One user's conversation gets a message whose reply waits for its first token (the engine node
behind it, bench/conversation/stub_node.py, accepts the chat and never answers), and that
POST's event stream is held open. Then:

  1. warm-up   --warmup followers are opened and closed (the server's first-use allocations)
  2. before    the server's memory
  3. open      --streams followers: GET /api/conversations/{id}/stream, each on a connection of
               its own, read until their `start` event; then nothing flows but the server's SSE
               keep-alive comments, which are read and counted
  4. open      the server's memory after --settle seconds
  5. closed    every follower closes its connection; once the server has closed them too (its
               open file descriptors are back to the baseline), its memory after --settle seconds

Memory is /proc/PID/smaps_rollup of the server (benchlib.memory_kib). Writes the three samples,
the per-stream figures and the timings as JSON to --out. asyncio, standard library only; raise
the open-files limit first (run.sh does).
"""

import argparse
import asyncio
import json
import os
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import fail, memory_kib  # noqa: E402


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample(pid: int) -> dict:
    """The server's memory (KiB) and open file descriptors."""
    return {**memory_kib(pid), "fds": fds(pid)}


class Stream:
    """One server-sent events response on a connection of its own."""

    def __init__(self):
        self.reader = self.writer = None
        self.received = 0
        self.task = None

    async def open(self, host, port, request: bytes, until: bytes) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.writer.write(request)
        buf = b""
        while (i := buf.find(until)) < 0 or b"\n\n" not in buf[i:]:
            chunk = await self.reader.read(65536)
            if not chunk:
                raise ConnectionError(f"closed before {until!r}: {buf[:300]!r}")
            buf += chunk
            if len(buf) >= 12 and not buf.startswith(b"HTTP/1.1 200"):
                raise ConnectionError(f"answered {buf[:300]!r}")
        self.received = len(buf)
        self.task = asyncio.create_task(self.drain())

    async def drain(self) -> None:
        # Whatever comes now (keep-alive comments) is read and counted, so nothing piles up.
        while chunk := await self.reader.read(4096):
            self.received += len(chunk)

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
        if self.writer:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


def request(method: str, path: str, host: str, token: str, body: dict | None = None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Accept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def open_many(n: int, opener, parallel: int) -> list:
    """Opens n streams, at most `parallel` handshakes at a time."""
    sem = asyncio.Semaphore(parallel)
    streams = [Stream() for _ in range(n)]

    async def one(s):
        async with sem:
            await opener(s)

    results = await asyncio.gather(*(one(s) for s in streams), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        await asyncio.gather(*(s.close() for s in streams))
        fail(f"{len(errors)} of {n} streams failed to open; first: {errors[0]!r}")
    return streams


async def call(host, port, method, path, token, body=None) -> dict:
    reader, writer = await asyncio.open_connection(host, port)
    req = request(method, path, f"{host}:{port}", token, body).replace(b"Accept: text/event-stream", b"Connection: close")
    writer.write(req)
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 2"):
        fail(f"{method} {path} answered {raw[:500]!r}")
    return json.loads(payload)


async def run(args) -> dict:
    host, port = args.host, args.port
    hostport = f"{host}:{port}"
    conv = await call(host, port, "POST", "/api/conversations", args.token, {"model": args.model, "title": "bench"})
    cid = conv["id"]
    # The reply: it waits for the engine's first token; its own event stream is held open too.
    send = request("POST", f"/api/conversations/{cid}/messages", hostport, args.token, {"content": "Hi"})
    owner = (await open_many(1, lambda s: s.open(host, port, send, b"event: start"), 1))[0]
    follow = request("GET", f"/api/conversations/{cid}/stream", hostport, args.token)

    async def opener(s):
        await s.open(host, port, follow, b"event: start")

    t0 = time.monotonic()
    warm = await open_many(args.warmup, opener, args.parallel)
    await asyncio.gather(*(s.close() for s in warm))
    await asyncio.sleep(args.settle)
    before = sample(args.pid)

    t0 = time.monotonic()
    streams = await open_many(args.streams, opener, args.parallel)
    open_secs = time.monotonic() - t0
    await asyncio.sleep(args.settle)
    during = sample(args.pid)
    received_at_settle = sum(s.received for s in streams)
    await asyncio.sleep(args.hold)
    during_late = sample(args.pid)
    received = sum(s.received for s in streams)

    await asyncio.gather(*(s.close() for s in streams))
    # The server lets go of a connection when it notices the client has gone.
    t0 = time.monotonic()
    while fds(args.pid) > before["fds"] + 16 and time.monotonic() - t0 < 60:
        await asyncio.sleep(0.1)
    closed_secs = time.monotonic() - t0
    await asyncio.sleep(args.settle)
    after = sample(args.pid)
    await owner.close()

    n = args.streams
    kib = ("rss", "anon", "file", "private_dirty")
    per = {k: round((during[k] - before[k]) * 1024 / n) for k in kib}
    per_late = {k: round((during_late[k] - before[k]) * 1024 / n) for k in kib}
    return {
        "streams": n,
        "warmup": args.warmup,
        "open_secs": round(open_secs, 2),
        "settle_secs": args.settle,
        "hold_secs": args.hold,
        "kib": {"before": before, "open": during, "open_late": during_late, "closed": after},
        "bytes_per_stream": per,
        "bytes_per_stream_late": per_late,
        "retained_after_close_kib": {k: after[k] - before[k] for k in kib},
        "closed_noticed_secs": round(closed_secs, 2),
        "bytes_received_per_stream": {
            "at_open": round(received_at_settle / n),
            "while_held": round((received - received_at_settle) / n),
        },
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True, help="the platform's gateway")
    ap.add_argument("--token", required=True)
    ap.add_argument("--model", required=True, help="a model only the stub node has")
    ap.add_argument("--pid", type=int, required=True, help="the server process to measure")
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--parallel", type=int, default=64, help="connections being opened at once")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds before each memory sample")
    ap.add_argument("--hold", type=float, default=20.0, help="seconds more the streams stay open, sampled again")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    res = asyncio.run(run(args))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(
        f"streams.py: {res['streams']} streams opened in {res['open_secs']} s; "
        f"{res['bytes_per_stream']['rss']} B RSS per stream ({res['bytes_per_stream_late']['rss']} after {args.hold} s more)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
