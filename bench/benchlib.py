"""What the bench/*/ Python clients share (standard library only): percentiles, a keep-alive
HTTP connection that times a streamed answer to its first piece of content, readers for
Ollama's NDJSON and for server-sent events, and a process's memory from /proc.

Imported by scripts one directory down: sys.path.insert(0, <bench dir>); import benchlib.
"""

import http.client
import json
import socket
import sys
import time
import urllib.parse


def pct(xs, p):
    """The p-quantile (0..1) of xs, interpolated linearly between the two nearest samples."""
    s = sorted(xs)
    k = (len(s) - 1) * p
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def fail(msg: str) -> None:
    sys.exit(f"{sys.argv[0].rsplit('/', 1)[-1]}: {msg}")


def ndjson_first_content(name: str, resp) -> float:
    """Reads an Ollama `/api/chat` NDJSON stream to its end; returns perf_counter() at the first
    line whose `message.content` is not empty."""
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
            fail(f"{name}: error in stream: {obj['error']}")
        if first is None and obj.get("message", {}).get("content"):
            first = time.perf_counter()
        done = done or bool(obj.get("done"))
    if first is None or not done:
        fail(f"{name}: the stream had no content or no final object")
    return first


def sse_events(resp):
    """Yields (event, data) of a `text/event-stream` response as each event completes."""
    event, data = "message", []
    while True:
        line = resp.readline()
        if not line:
            return
        line = line.rstrip(b"\r\n")
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = "message", []
        elif line.startswith(b":"):
            continue
        else:
            field, _, value = line.decode().partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)


def sse_first_delta(name: str, resp) -> float:
    """Reads a conversation reply's events to their end; returns perf_counter() at the first
    `delta` event with content."""
    first = None
    done = False
    for event, data in sse_events(resp):
        if event == "error":
            fail(f"{name}: error event: {data}")
        if event == "delta" and first is None and json.loads(data).get("content"):
            first = time.perf_counter()
        done = done or event == "done"
    if first is None or not done:
        fail(f"{name}: the reply had no delta or no done event")
    return first


class Target:
    """One keep-alive connection to a server (as a client library would keep), so that
    connection set-up is not counted; an idle connection the server closed is reopened once,
    untimed."""

    def __init__(self, name: str, url: str, headers: dict, first_of=ndjson_first_content):
        u = urllib.parse.urlsplit(url)
        self.name = name
        self.host, self.port, self.path = u.hostname, u.port or 80, u.path
        self.headers = {"Content-Type": "application/json", **headers}
        self.first_of = first_of
        self.conn = None

    def connect(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
        self.conn.connect()
        self.conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _retrying(self, call):
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.connect()
                return call()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def call(self, method: str, path: str, body=None) -> dict:
        """An untimed JSON request; the decoded answer."""

        def once():
            data = None if body is None else json.dumps(body).encode()
            self.conn.request(method, path, body=data, headers=self.headers)
            resp = self.conn.getresponse()
            raw = resp.read()
            if resp.status >= 300:
                fail(f"{self.name}: {method} {path} answered {resp.status}: {raw[:500]!r}")
            return json.loads(raw) if raw else {}

        return self._retrying(once)

    def ttft(self, body: bytes, path: str | None = None) -> float:
        """One streamed request (POST); seconds from just before sending to the first content
        (self.first_of decides what that is; the response is read to its end)."""
        path = path or self.path

        def once():
            start = time.perf_counter()
            self.conn.request("POST", path, body=body, headers=self.headers)
            resp = self.conn.getresponse()
            if resp.status != 200:
                fail(f"{self.name}: {path} answered {resp.status}: {resp.read()[:500]!r}")
            return self.first_of(self.name, resp) - start

        return self._retrying(once)


def memory_kib(pid: int) -> dict:
    """A process's memory in KiB from /proc/PID/smaps_rollup: rss, anon (anonymous: heap and
    stacks), file (mapped files, e.g. model weights) and private_dirty."""
    want = {"Rss": "rss", "Anonymous": "anon", "Private_Dirty": "private_dirty"}
    out = {}
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in want:
                out[want[key]] = int(rest.split()[0])
    out["file"] = out["rss"] - out["anon"]
    return out
