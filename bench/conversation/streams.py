#!/usr/bin/env python3
"""Memory per idle open reply stream (bench/conversation/run.sh).

One user's conversation gets a message whose reply waits for its first token (the engine node
behind it, bench/conversation/stub_node.py, accepts the chat and never answers), and that
POST's event stream is held open. Then:

  1. warm-up   --warmup followers are opened and closed (the server's first-use allocations)
  2. before    the server's memory
  3. open      --streams followers: GET /api/conversations/{id}/stream, read until their `start`
               event; then nothing flows but the server's SSE keep-alive comments, which are
               read and counted. --protocol http1: each on a connection of its own (HTTP/1.1);
               http2: --per-conn of them multiplexed on each HTTP/2 connection with prior
               knowledge (h2c, cleartext), so --streams / --per-conn connections
  4. open      the server's memory after --settle seconds, and --hold seconds later
  5. closed    every follower is closed (HTTP/1.1: its connection; HTTP/2: RST_STREAM, then the
               connection once its last stream is gone); once the server has closed the
               connections too (its open file descriptors are back to the baseline), its memory
               after --settle seconds

Each stream really is open and idle: it counts only once the server answered 200 and sent its
`start` event; the server's own count of open reply streams (the `conversation_reply_streams`
gauge of GET /metrics, where the server has it) must be up by exactly --streams while they are
held; and none may end before the client closes it. Otherwise the run fails.

Memory is /proc/PID/smaps_rollup of the server (benchlib.memory_kib). Writes the samples, the
per-stream figures and the timings as JSON to --out. asyncio, standard library only for
HTTP/1.1; HTTP/2 needs the `h2` package (run.sh puts it in a virtualenv). Raise the open-files
limit first (run.sh does).
"""

import argparse
import asyncio
import json
import os
import re
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in the tree
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import fail, memory_kib  # noqa: E402

MAX_STREAMS_PER_CONN = 256  # the server's HTTP/2 max_concurrent_streams (crates/kit/src/server.rs)


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def sample(pid: int) -> dict:
    """The server's memory (KiB) and open file descriptors."""
    return {**memory_kib(pid), "fds": fds(pid)}


def has_event(buf: bytes, until: bytes) -> bool:
    """Whether the event stream so far holds the whole event that starts with `until`."""
    i = buf.find(until)
    return i >= 0 and b"\n\n" in buf[i:]


class Stream:
    """One server-sent events response on a connection of its own (HTTP/1.1)."""

    def __init__(self):
        self.reader = self.writer = None
        self.received = 0
        self.ended = False  # the server ended it before the client closed it
        self.task = None

    async def open(self, host, port, request: bytes, until: bytes) -> None:
        self.reader, self.writer = await asyncio.open_connection(host, port)
        self.writer.write(request)
        buf = b""
        while not has_event(buf, until):
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
        self.ended = True

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
        if self.writer:
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


class H2Conn:
    """One HTTP/2 connection with prior knowledge (h2c) carrying many H2Streams (the `h2` package
    keeps the protocol state; this task reads the socket and hands each stream its events)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self.h2 = self.reader = self.writer = self.task = None
        self.streams = {}  # stream id -> H2Stream, while open
        self.connecting = None
        self.closed = False

    async def ensure_connected(self) -> None:
        """Connects on the first call; later callers wait for that."""
        if self.connecting is None:
            self.connecting = asyncio.ensure_future(self.connect())
        await self.connecting

    async def connect(self) -> None:
        import h2.config
        import h2.connection

        self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.h2 = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.h2.initiate_connection()
        self.flush()
        self.task = asyncio.create_task(self.read())

    def flush(self) -> None:
        if data := self.h2.data_to_send():
            self.writer.write(data)

    async def read(self) -> None:
        import h2.events as ev

        error = ConnectionError("the server closed the connection")
        try:
            while chunk := await self.reader.read(65536):
                for e in self.h2.receive_data(chunk):
                    s = self.streams.get(getattr(e, "stream_id", None))
                    if isinstance(e, ev.ResponseReceived) and s:
                        s.response(dict(e.headers))
                    elif isinstance(e, ev.DataReceived):
                        # Read is read: the windows stay open however long the streams are held.
                        self.h2.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                        if s:
                            s.data(e.data)
                    elif isinstance(e, (ev.StreamEnded, ev.StreamReset)) and s:
                        self.streams.pop(e.stream_id, None)
                        s.end(ConnectionError(f"stream ended by the server: {e!r}"))
                    elif isinstance(e, ev.ConnectionTerminated):
                        error = ConnectionError(f"the server ended the connection: {e!r}")
                self.flush()
        except (OSError, asyncio.IncompleteReadError) as e:
            error = e
        except Exception as e:  # a protocol error of the h2 package
            error = e
        if not self.closed:
            for s in list(self.streams.values()):
                s.end(error)
            self.streams.clear()

    def request(self, s: "H2Stream", headers: list) -> int:
        if self.closed:
            raise ConnectionError("connection closed")
        sid = self.h2.get_next_available_stream_id()
        self.streams[sid] = s
        self.h2.send_headers(sid, headers, end_stream=True)
        self.flush()
        return sid

    def reset(self, sid: int) -> None:
        if self.closed or self.streams.pop(sid, None) is None:
            return
        import h2.errors

        try:
            self.h2.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
            self.flush()
        except Exception:
            pass

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.task:
            self.task.cancel()
        if self.writer:
            try:
                self.h2.close_connection()
                self.flush()
            except Exception:
                pass
            self.writer.close()
            try:
                await self.writer.wait_closed()
            except OSError:
                pass


class H2Stream:
    """One server-sent events response on a stream of a shared H2Conn; the same interface as
    Stream (open, received, ended, close)."""

    def __init__(self, conn: H2Conn):
        self.conn = conn
        self.sid = None
        self.received = 0
        self.ended = False
        self.status = None
        self.buf = b""
        self.until = None
        self.started = None  # future: the `until` event has arrived

    async def open(self, headers: list, until: bytes) -> None:
        self.until = until
        self.started = asyncio.get_running_loop().create_future()
        self.sid = self.conn.request(self, headers)
        await self.started

    def response(self, headers: dict) -> None:
        self.status = headers.get(b":status")
        if self.status != b"200" and not self.started.done():
            self.started.set_exception(ConnectionError(f"answered {headers!r}"))

    def data(self, chunk: bytes) -> None:
        self.received += len(chunk)
        if not self.started.done():
            self.buf += chunk
            if has_event(self.buf, self.until):
                self.buf = b""
                self.started.set_result(None)

    def end(self, error: Exception) -> None:
        if not self.started.done():
            self.started.set_exception(ConnectionError(f"{error} before {self.until!r}: {self.buf[:300]!r}"))
        else:
            self.ended = True

    async def close(self) -> None:
        if self.sid is not None:
            self.conn.reset(self.sid)
        if not self.conn.streams:
            await self.conn.close()


def request(method: str, path: str, host: str, token: str, body: dict | None = None) -> bytes:
    data = b"" if body is None else json.dumps(body).encode()
    head = (
        f"{method} {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Accept: text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def open_many(streams: list, opener, parallel: int) -> list:
    """Opens the streams, at most `parallel` at a time."""
    sem = asyncio.Semaphore(parallel)

    async def one(s):
        async with sem:
            await opener(s)

    results = await asyncio.gather(*(one(s) for s in streams), return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    if errors:
        await asyncio.gather(*(s.close() for s in streams))
        fail(f"{len(errors)} of {len(streams)} streams failed to open; first: {errors[0]!r}")
    return streams


async def fetch(host, port, method, path, token, body=None) -> bytes:
    """One request on a connection of its own (HTTP/1.1); the body of a 2xx answer."""
    reader, writer = await asyncio.open_connection(host, port)
    req = request(method, path, f"{host}:{port}", token, body).replace(b"Accept: text/event-stream", b"Connection: close")
    writer.write(req)
    raw = await reader.read()
    writer.close()
    head, _, payload = raw.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 2"):
        fail(f"{method} {path} answered {raw[:500]!r}")
    return payload


async def call(host, port, method, path, token, body=None) -> dict:
    return json.loads(await fetch(host, port, method, path, token, body))


async def server_streams(host, port, ops_token) -> int | None:
    """The server's count of open reply streams (gauge `conversation_reply_streams`)."""
    text = (await fetch(host, port, "GET", "/metrics", ops_token)).decode()
    m = re.search(r"^conversation_reply_streams(?:\{[^}]*\})? (\S+)$", text, re.M)
    return round(float(m.group(1))) if m else None


def protocol(args, cid: str):
    """(make n streams, opener, connections they use) for args.protocol."""
    host, port = args.host, args.port
    path = f"/api/conversations/{cid}/stream"
    if args.protocol == "http1":
        follow = request("GET", path, f"{host}:{port}", args.token)

        def make(n):
            return [Stream() for _ in range(n)]

        async def opener(s):
            await s.open(host, port, follow, b"event: start")

        return make, opener, lambda n: n

    headers = [
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", f"{host}:{port}"),
        (":path", path),
        ("authorization", f"Bearer {args.token}"),
        ("accept", "text/event-stream"),
    ]
    per = args.per_conn
    conns_for = lambda n: -(-n // per)  # noqa: E731

    def make(n):
        conns = [H2Conn(host, port) for _ in range(conns_for(n))]
        return [H2Stream(conns[i // per]) for i in range(n)]

    async def opener(s):
        await s.conn.ensure_connected()  # a connection's first stream connects it
        await s.open(headers, b"event: start")

    return make, opener, conns_for


async def run(args) -> dict:
    host, port = args.host, args.port
    hostport = f"{host}:{port}"
    conv = await call(host, port, "POST", "/api/conversations", args.token, {"model": args.model, "title": "bench"})
    cid = conv["id"]
    # The reply: it waits for the engine's first token; its own event stream is held open too.
    send = request("POST", f"/api/conversations/{cid}/messages", hostport, args.token, {"content": "Hi"})
    owner = (await open_many([Stream()], lambda s: s.open(host, port, send, b"event: start"), 1))[0]
    make, opener, connections = protocol(args, cid)

    warm = await open_many(make(args.warmup), opener, args.parallel)
    await asyncio.gather(*(s.close() for s in warm))
    await asyncio.sleep(args.settle)
    before = sample(args.pid)
    gauge_before = await server_streams(host, port, args.ops_token)

    t0 = time.monotonic()
    streams = await open_many(make(args.streams), opener, args.parallel)
    open_secs = time.monotonic() - t0
    await asyncio.sleep(args.settle)
    during = sample(args.pid)
    gauge_open = await server_streams(host, port, args.ops_token)
    received_at_settle = sum(s.received for s in streams)
    await asyncio.sleep(args.hold)
    during_late = sample(args.pid)
    gauge_late = await server_streams(host, port, args.ops_token)
    received = sum(s.received for s in streams)
    lost = sum(s.ended for s in streams)

    await asyncio.gather(*(s.close() for s in streams))
    # The server lets go of a connection when it notices the client has gone.
    t0 = time.monotonic()
    while fds(args.pid) > before["fds"] + 16 and time.monotonic() - t0 < 60:
        await asyncio.sleep(0.1)
    closed_secs = time.monotonic() - t0
    await asyncio.sleep(args.settle)
    after = sample(args.pid)
    gauge_after = await server_streams(host, port, args.ops_token)
    await owner.close()

    n = args.streams
    gauge = {"before": gauge_before, "open": gauge_open, "open_late": gauge_late, "closed": gauge_after}
    if lost:
        fail(f"{lost} of {n} streams were ended by the server while held")
    if gauge_before is None:  # a binary older than the gauge
        print("streams.py: the server has no conversation_reply_streams gauge; its count not checked", file=sys.stderr)
    elif gauge_open - gauge_before != n or gauge_late - gauge_before != n:
        fail(f"the server did not count {n} more open reply streams while they were held: {gauge}")
    kib = ("rss", "anon", "file", "private_dirty")
    per = {k: round((during[k] - before[k]) * 1024 / n) for k in kib}
    per_late = {k: round((during_late[k] - before[k]) * 1024 / n) for k in kib}
    return {
        "protocol": args.protocol,
        "streams": n,
        "connections": connections(n),
        "streams_per_connection": 1 if args.protocol == "http1" else args.per_conn,
        "warmup": args.warmup,
        "open_secs": round(open_secs, 2),
        "settle_secs": args.settle,
        "hold_secs": args.hold,
        "kib": {"before": before, "open": during, "open_late": during_late, "closed": after},
        "server_reply_streams": gauge,
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
    ap.add_argument("--ops-token", required=True, help="the server's ops_token (reads /metrics)")
    ap.add_argument("--model", required=True, help="a model only the stub node has")
    ap.add_argument("--pid", type=int, required=True, help="the server process to measure")
    ap.add_argument("--protocol", choices=("http1", "http2"), default="http1",
                    help="http1: a connection per stream; http2: --per-conn streams per h2c connection")
    ap.add_argument("--per-conn", type=int, default=100, help="streams per HTTP/2 connection (1 to 256)")
    ap.add_argument("--streams", type=int, default=10000)
    ap.add_argument("--warmup", type=int, default=1000)
    ap.add_argument("--parallel", type=int, default=64, help="streams being opened at once")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds before each memory sample")
    ap.add_argument("--hold", type=float, default=20.0, help="seconds more the streams stay open, sampled again")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    if not 1 <= args.per_conn <= MAX_STREAMS_PER_CONN:
        fail(f"--per-conn must be 1 to {MAX_STREAMS_PER_CONN} (the server's max_concurrent_streams)")
    if args.protocol == "http2":
        try:
            import h2  # noqa: F401
        except ImportError:
            fail("--protocol http2 needs the h2 package (run.sh installs it in a virtualenv)")
    res = asyncio.run(run(args))
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(
        f"streams.py: {res['streams']} streams over {res['connections']} {args.protocol} connections opened in "
        f"{res['open_secs']} s; {res['bytes_per_stream']['rss']} B RSS per stream "
        f"({res['bytes_per_stream_late']['rss']} after {args.hold} s more)",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
