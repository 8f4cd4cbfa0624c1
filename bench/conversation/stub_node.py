#!/usr/bin/env python3
"""A stand-in engine node whose generations never start (bench/conversation/run.sh).

It speaks just enough of Ollama's API for the inference service to probe it and route to it:
`GET /api/tags` lists one model (--model), `GET /api/ps` and `GET /api/version` answer, and
`POST /api/chat` (or `/api/generate`) is read and then held without a byte of answer until the
caller hangs up — an engine busy with other work, as far as the platform can tell. Every other
request is a 404. asyncio, standard library only.
"""

import argparse
import asyncio
import json


def answer(status: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return (
        f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n".encode() + data
    )


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, model: str) -> None:
    tags = {
        "models": [
            {"name": model, "model": model, "modified_at": "2026-01-01T00:00:00Z", "size": 1, "digest": "0" * 64}
        ]
    }
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            method, path, _ = lines[0].split(" ", 2)
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length:
                await reader.readexactly(length)
            if method == "POST" and path in ("/api/chat", "/api/generate"):
                await reader.read()  # held: until the caller closes
                return
            if path == "/api/tags":
                writer.write(answer("200 OK", tags))
            elif path == "/api/ps":
                writer.write(answer("200 OK", {"models": []}))
            elif path == "/api/version":
                writer.write(answer("200 OK", {"version": "0.0.0-stub"}))
            else:
                writer.write(answer("404 Not Found", {"error": "not found"}))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--model", required=True)
    args = ap.parse_args()
    server = await asyncio.start_server(lambda r, w: serve(r, w, args.model), "127.0.0.1", args.port)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
