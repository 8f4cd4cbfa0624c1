#!/usr/bin/env python3
"""Explore search latency over a large catalog (bench/explore/run.sh).

1. seed     --models catalog models through the admin API (names, descriptions of words from a
            fixed vocabulary, families, parameter counts, capabilities) and --tags tags, each model
            carrying one to three; --seed makes it the same catalog every run.
2. queries  --queries distinct explore list requests: one or two words, a tag, a family, a
            parameter range, a capability, combinations, each order, first pages and next pages.
3. cold     an admin edit (every cached answer is then stale), then each query once: every answer
            is computed from the database.
4. warm     each query --repeat more times, in rotating order: answers from the cache.
5. floor    GET /health --repeat × --queries times on the same connection: what any request costs.

Every answer must be 200 with a page; a warm answer must equal its cold one. Sequential requests on
one keep-alive connection (HTTP/1.1), so each sample is one request's latency. Writes samples and
percentiles as JSON to --out. Standard library only.
"""

import argparse
import concurrent.futures
import http.client
import json
import os
import random
import sys
import time
import urllib.parse

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from benchlib import fail, pct  # noqa: E402

VOCABULARY = (
    "fast small large tiny quick accurate multilingual code chat reasoning vision tools math "
    "instruct base distilled quantized efficient long context summarise translate story poem "
    "science medicine law finance music image audio video retrieval embedding agent planner "
    "assistant helpful safe open research edge mobile server cloud local private secure"
).split()
FAMILIES = ["llama", "qwen2", "gemma", "phi3", "mistral", "falcon", "bert", "nomic", "granite", "olmo"]
CAPABILITIES = ["completion", "tools", "vision", "embedding", "insert", "thinking"]


class Client:
    def __init__(self, host, port, token=None):
        self.conn = http.client.HTTPConnection(host, port, timeout=60)
        self.token = token

    def call(self, method, path, body=None):
        headers = {"content-type": "application/json"} if body is not None else {}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        data = json.dumps(body).encode() if body is not None else None
        start = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        resp = self.conn.getresponse()
        raw = resp.read()
        return resp.status, raw, (time.perf_counter() - start) * 1000


def seed(args, rng):
    tags = []
    admin = Client(args.host, args.port, args.token)
    for i in range(args.tags):
        status, raw, _ = admin.call("POST", "/api/admin/tags", {"name": f"tag{i:02d}"})
        if status != 201:
            fail(f"create tag: {status} {raw[:200]!r}")
        tags.append(json.loads(raw)["id"])
    models = []
    for i in range(args.models):
        family = rng.choice(FAMILIES)
        models.append({
            "name": f"{family}-{rng.choice(VOCABULARY)}-{i}:{rng.choice([1, 3, 7, 8, 13, 70])}b",
            "description": " ".join(rng.choice(VOCABULARY) for _ in range(12)),
            "family": family,
            "parameter_count": rng.randrange(10**8, 10**11),
            "capabilities": rng.sample(CAPABILITIES, rng.randint(1, 3)),
            "tags": rng.sample(tags, rng.randint(1, 3)),
        })

    def create(chunk):
        c = Client(args.host, args.port, args.token)
        for m in chunk:
            body = {k: v for k, v in m.items() if k != "tags"}
            status, raw, _ = c.call("POST", "/api/admin/models", body)
            if status != 201:
                fail(f"create model: {status} {raw[:200]!r}")
            for tag in m["tags"]:
                path = f"/api/admin/tags/{tag}/models"
                status, raw, _ = c.call("POST", path, {"model": m["name"]})
                if status != 204:
                    fail(f"tag model: {status} {raw[:200]!r}")

    chunks = [models[i :: args.seeders] for i in range(args.seeders)]
    with concurrent.futures.ThreadPoolExecutor(args.seeders) as pool:
        list(pool.map(create, chunks))
    return models


def queries(args, rng):
    """Distinct list requests; next pages are added once their cursor is known (in the cold pass)."""
    out = []
    for i in range(args.queries):
        q = {"limit": rng.choice([20, 50])}
        kind = i % 8
        if kind == 0:
            q["q"] = rng.choice(VOCABULARY)
        elif kind == 1:
            q["q"] = " ".join(rng.sample(VOCABULARY, 2))
        elif kind == 2:
            q["tags"] = f"tag{rng.randrange(args.tags):02d}"
        elif kind == 3:
            q["family"] = rng.choice(FAMILIES)
        elif kind == 4:
            lo = rng.randrange(10**8, 5 * 10**10)
            q["min_parameters"], q["max_parameters"] = lo, lo + 10**10
        elif kind == 5:
            q["capabilities"] = rng.choice(CAPABILITIES)
        elif kind == 6:
            q["q"] = rng.choice(VOCABULARY)[:3]
            q["capabilities"] = rng.choice(CAPABILITIES)
            q["tags"] = f"tag{rng.randrange(args.tags):02d}"
        q["sort"] = rng.choice(["name", "newest", "most_used"])
        out.append("/api/explore/models?" + urllib.parse.urlencode(q))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True, help="an admin's access token")
    ap.add_argument("--models", type=int, default=10000)
    ap.add_argument("--tags", type=int, default=20)
    ap.add_argument("--queries", type=int, default=400)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--seeders", type=int, default=4)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rng = random.Random(args.seed)

    t0 = time.time()
    models = seed(args, rng)
    seed_secs = time.time() - t0
    print(f"seeded {len(models)} models in {seed_secs:.0f} s", file=sys.stderr)

    admin = Client(args.host, args.port, args.token)
    reader = Client(args.host, args.port)
    paths = queries(args, rng)
    # Make every answer cached during seeding stale, then read each query once (cold), adding
    # the next page of every query that has one.
    target = urllib.parse.quote(models[0]["name"], safe=":")
    status, raw, _ = admin.call("PATCH", f"/api/admin/models/{target}", {"description": "changed before the cold pass"})
    if status != 200:
        fail(f"admin edit: {status} {raw[:200]!r}")
    cold, answers, i = [], {}, 0
    while i < len(paths):
        status, raw, ms = reader.call("GET", paths[i])
        if status != 200:
            fail(f"{paths[i]}: {status} {raw[:200]!r}")
        page = json.loads(raw)
        cold.append(ms)
        answers[paths[i]] = raw
        if page.get("next_cursor") and "cursor=" not in paths[i] and len(paths) < 2 * args.queries:
            paths.append(paths[i] + "&cursor=" + urllib.parse.quote(page["next_cursor"]))
        i += 1
    warm = []
    for r in range(args.repeat):
        order = paths[r % len(paths):] + paths[: r % len(paths)]
        for p in order:
            status, raw, ms = reader.call("GET", p)
            if status != 200 or raw != answers[p]:
                fail(f"{p}: a warm answer differs from its cold one ({status})")
            warm.append(ms)
    floor = []
    for _ in range(len(warm)):
        status, raw, ms = reader.call("GET", "/health")
        if status != 200:
            fail(f"/health: {status}")
        floor.append(ms)
    hits = sum(1 for raw in answers.values() if json.loads(raw)["items"])
    summary = {
        name: {"n": len(xs), "p50": pct(xs, 0.5), "p90": pct(xs, 0.9), "p99": pct(xs, 0.99), "max": max(xs)}
        for name, xs in [("cold", cold), ("warm", warm), ("floor", floor)]
    }
    result = {
        "models": len(models), "tags": args.tags, "queries": len(paths), "queries_with_results": hits,
        "seed_secs": seed_secs, "summary": summary, "samples": {"cold": cold, "warm": warm, "floor": floor},
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    print(json.dumps({"queries": len(paths), "with_results": hits, **summary}, indent=1))


if __name__ == "__main__":
    main()
