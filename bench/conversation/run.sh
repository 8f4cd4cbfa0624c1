#!/usr/bin/env bash
# Conversation benchmark (issue 4), on `ollamanet serve` all-in-one:
#
#   1. TTFT     time to the first `delta` event of a reply (POST /api/conversations/{id}/messages,
#               gateway -> conversation -> inference -> embedded engine) against the first NDJSON
#               chunk with content of POST /api/chat asked of an engine directly, same model
#               (SmolLM2-135M from `ollamanet models demo`), prompt and options; median and p90.
#   2. memory   RSS of the serve process before, while and after STREAMS idle reply streams are
#               open: followers (GET /api/conversations/{id}/stream) of one reply that waits for
#               an engine node that never answers (bench/conversation/stub_node.py). Once per
#               protocol in PROTOCOLS, each against a fresh serve process: http1, a connection
#               per stream; http2, STREAMS_PER_CONN streams per HTTP/2 connection (h2c, prior
#               knowledge; the client needs the `h2` package from PyPI, put in a virtualenv).
#
# Run as root on Debian from anywhere: bench/conversation/run.sh. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/bench/conversation

# --- parameters (environment overrides) --------------------------------------------------------
PARTS=${PARTS:-"ttft memory"}         # what to measure
TTFT_RUNS=${TTFT_RUNS:-50}            # TTFT requests per target (direct, ollama, conversation)
TTFT_WARMUP=${TTFT_WARMUP:-5}         # untimed TTFT requests per target first
TTFT_THREADS=${TTFT_THREADS:-1}       # engine threads of both engines (they share a core)
STREAMS=${STREAMS:-10000}             # idle reply streams held open
WARMUP_STREAMS=${WARMUP_STREAMS:-1000}  # streams opened and closed before the "before" sample
PARALLEL=${PARALLEL:-64}              # streams being opened at once
PROTOCOLS=${PROTOCOLS:-"http1 http2"}  # memory part: one connection per stream, and/or h2c
STREAMS_PER_CONN=${STREAMS_PER_CONN:-100}  # http2: streams per connection (server allows 256)
SETTLE_SECS=${SETTLE_SECS:-5}         # wait before each memory sample
HOLD_SECS=${HOLD_SECS:-20}            # streams stay open this much longer, sampled again
NOFILE=${NOFILE:-65536}               # open-files limit of the processes (root may raise it)
SERVER_CPU=${SERVER_CPU:-0}           # the engine and the platform
LOAD_CPU=${LOAD_CPU:-1}               # the clients and the stub node
PORT_ENGINE=${PORT_ENGINE:-19280}
PORT_PLATFORM=${PORT_PLATFORM:-19281}
PORT_STUB=${PORT_STUB:-19282}
MODEL=${MODEL:-smollm2:135m}
STUB_MODEL=${STUB_MODEL:-stub:latest}  # the model only the stub node has (memory part)
INSTALL=${INSTALL:-1}                 # 0: do not apt-get or pip-install anything
BUILD=${BUILD:-1}                     # 0: use the existing ollamanet binary
BENCH_VENV=${BENCH_VENV:-$ROOT/target/bench-venv}  # virtualenv with `h2` (http2 client)
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
BIN=${OLLAMANET_BIN:-$ROOT/target/release/ollamanet}

BENCH=conversation
. "$ROOT/bench/lib.sh"

[[ $(id -u) == 0 ]] || [[ $INSTALL == 0 ]] || die "run as root (it installs packages), or set INSTALL=0"
for p in $PARTS; do [[ $p == ttft || $p == memory ]] || die "unknown part $p (known: ttft memory)"; done
for p in $PROTOCOLS; do [[ $p == http1 || $p == http2 ]] || die "unknown protocol $p (known: http1 http2)"; done
[[ $STREAMS_PER_CONN =~ ^[0-9]+$ ]] && ((STREAMS_PER_CONN >= 1 && STREAMS_PER_CONN <= 256)) ||
  die "STREAMS_PER_CONN must be 1 to 256 (the server's HTTP/2 max_concurrent_streams)"
MEMORY=0 H2=0
[[ " $PARTS " == *" memory "* ]] && MEMORY=1
((MEMORY)) && [[ " $PROTOCOLS " == *" http2 "* ]] && H2=1

# --- install -----------------------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if [[ $INSTALL == 1 ]]; then
  missing=()
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  command -v taskset >/dev/null || missing+=(util-linux)
  if ((H2)) && [[ ! -x $BENCH_VENV/bin/python ]] && ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    missing+=(python3-venv)
  fi
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
for tool in curl python3 taskset; do
  command -v "$tool" >/dev/null || die "$tool is missing (run with INSTALL=1 as root)"
done
# The HTTP/2 client's `h2` (PyPI) goes in a virtualenv of the bench's own (under target/ by default).
H2_PYTHON=$BENCH_VENV/bin/python
if ((H2)) && ! "$H2_PYTHON" -c 'import h2' 2>/dev/null; then
  [[ $INSTALL == 1 ]] || die "no h2 package in $BENCH_VENV (run with INSTALL=1, or set BENCH_VENV)"
  log "installing the h2 package into $BENCH_VENV"
  [[ -x $H2_PYTHON ]] || python3 -m venv "$BENCH_VENV" || die "python3 -m venv $BENCH_VENV failed"
  "$BENCH_VENV/bin/pip" install --quiet --disable-pip-version-check 'h2>=4.1,<5' ||
    die "pip install h2 failed"
fi

# --- build ---------------------------------------------------------------------------------------
if [[ $BUILD == 1 ]]; then
  command -v cargo >/dev/null || die "cargo is missing"
  log "building ollamanet (release)"
  (cd "$ROOT" && cargo build --release --quiet -p ollamanet)
fi
[[ -x $BIN ]] || die "$BIN does not exist (run with BUILD=1)"

# Over HTTP/1.1 every stream is a connection: a file descriptor in the server and one in the client.
ulimit -n "$NOFILE" 2>/dev/null || ulimit -n "$(ulimit -Hn)"
if ((MEMORY)) && [[ " $PROTOCOLS " == *" http1 "* ]] && (($(ulimit -n) < STREAMS + WARMUP_STREAMS + 1024)); then
  die "the open-files limit is $(ulimit -n): too low for $STREAMS streams (run as root, or lower STREAMS)"
fi

# --- processes and cleanup ---------------------------------------------------------------------
start_work
for p in "$PORT_ENGINE" "$PORT_PLATFORM" "$PORT_STUB"; do
  port_free "$p" || die "port $p is in use (set PORT_ENGINE / PORT_PLATFORM / PORT_STUB)"
done
OUT=$WORK/out
mkdir -p "$OUT"

# write_config FILE EXTRA: the platform's settings: no titles (they would be a second generation
# after each reply), rate limits out of the way, then EXTRA.
write_config() {
  cat >"$1" <<EOF
[conversation]
generate_titles = false

[gateway.rate_limits.authenticated]
per_minute = 100000000
burst = 100000000

$2
EOF
}

# Reads the server's /metrics.
OPS_TOKEN="ops-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"

# start_platform NAME CONFIG: `ollamanet serve` (all-in-one) on SERVER_CPU with a user; sets TOKEN.
start_platform() {
  local name=$1 config=$2 data=$WORK/$1 password login
  mkdir -p "$data"
  password="pw-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
  "${clean_env[@]}" "$BIN" --config "$config" users create --data-dir "$data" \
    --email bench@example.com --username bench --password-stdin <<<"$password" >"$WORK/$name-users.out" 2>&1 ||
    { cat "$WORK/$name-users.out" >&2; die "ollamanet users create failed"; }
  start_process "$name" "$SERVER_CPU" "${clean_env[@]}" OLLAMANET_ENGINE__THREADS="$TTFT_THREADS" \
    OLLAMANET_OPS_TOKEN="$OPS_TOKEN" "$BIN" --config "$config" serve --listen "127.0.0.1:$PORT_PLATFORM" --data-dir "$data"
  wait_http "http://127.0.0.1:$PORT_PLATFORM/health" || { cat "$WORK/$name.out" >&2; die "the platform did not start"; }
  login=$(curl -sS -X POST "http://127.0.0.1:$PORT_PLATFORM/api/auth/login" -H 'content-type: application/json' \
    -d "{\"login\":\"bench\",\"password\":\"$password\"}")
  TOKEN=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$login" 2>/dev/null) ||
    die "login failed: $login"
}

# wait_model MODEL: until the platform's inference service routes MODEL (it probes every 2 s).
wait_model() {
  local i tags
  for i in $(seq 1 150); do
    tags=$(curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT_PLATFORM/ollama/api/tags" || true)
    [[ $tags == *"\"$1\""* ]] && return 0
    sleep 0.2
  done
  die "the platform does not list $1: $tags"
}

LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_BEFORE=$(cpu_busy_pct)
if ((BUSY_BEFORE > 10)); then
  log "warning: the CPUs are ${BUSY_BEFORE}% busy (load average $LOADAVG_BEFORE); other work on this machine will skew the numbers"
fi

# --- 1. TTFT: the engine directly, and a conversation reply through the platform ----------------
if [[ " $PARTS " == *" ttft "* ]]; then
  log "installing the demo models into $WORK/engine (ollamanet models demo)"
  "${clean_env[@]}" "$BIN" models demo --data-dir "$WORK/engine" >"$WORK/demo.out" 2>&1 ||
    { cat "$WORK/demo.out" >&2; die "ollamanet models demo failed"; }
  [[ -d $WORK/engine/models ]] || die "no model store in $WORK/engine/models"
  log "TTFT: engine and platform ($TTFT_THREADS engine thread each) on cpu $SERVER_CPU, client on cpu $LOAD_CPU"
  start_process engine "$SERVER_CPU" "${clean_env[@]}" OLLAMANET_ENGINE__THREADS="$TTFT_THREADS" \
    "$BIN" serve --only engine --listen "127.0.0.1:$PORT_ENGINE" --data-dir "$WORK/engine"
  wait_http "http://127.0.0.1:$PORT_ENGINE/api/version" || { cat "$WORK/engine.out" >&2; die "the engine did not start"; }
  # The platform's embedded engine serves the same model store.
  write_config "$WORK/ttft.toml" "[engine]
models_dir = \"$WORK/engine/models\""
  start_platform platform_ttft "$WORK/ttft.toml"
  wait_model "$MODEL"
  taskset -c "$LOAD_CPU" python3 "$HERE/ttft.py" --model "$MODEL" \
    --engine "http://127.0.0.1:$PORT_ENGINE" --platform "http://127.0.0.1:$PORT_PLATFORM" \
    --token "$TOKEN" --runs "$TTFT_RUNS" --warmup "$TTFT_WARMUP" --out "$OUT/ttft.json" 2>"$OUT/ttft.err" ||
    { cat "$OUT/ttft.err" "$WORK/platform_ttft.out" "$WORK/engine.out" >&2; die "the TTFT client failed"; }
  stop_process platform_ttft
  stop_process engine
fi

# --- 2. memory: STREAMS idle followers of a reply that waits for its engine --------------------
if ((MEMORY)); then
  start_process stub "$LOAD_CPU" python3 "$HERE/stub_node.py" --port "$PORT_STUB" --model "$STUB_MODEL"
  write_config "$WORK/memory.toml" "[inference]
nodes = [\"http://127.0.0.1:$PORT_STUB\"]
first_byte_timeout = \"1h\""
  for proto in $PROTOCOLS; do
    # A fresh serve process per protocol: each starts from the same state.
    name=platform_memory_$proto py=python3 how="a connection each"
    [[ $proto == http2 ]] && py=$H2_PYTHON how="$STREAMS_PER_CONN per h2c connection"
    log "memory, $proto: $STREAMS idle streams ($how); platform on cpu $SERVER_CPU, client and stub node on cpu $LOAD_CPU"
    start_platform "$name" "$WORK/memory.toml"
    wait_model "$STUB_MODEL"
    pid=$(eval "echo \$PID_$name")
    taskset -c "$LOAD_CPU" "$py" "$HERE/streams.py" --port "$PORT_PLATFORM" --token "$TOKEN" --ops-token "$OPS_TOKEN" \
      --model "$STUB_MODEL" --pid "$pid" --protocol "$proto" --per-conn "$STREAMS_PER_CONN" \
      --streams "$STREAMS" --warmup "$WARMUP_STREAMS" --parallel "$PARALLEL" --settle "$SETTLE_SECS" \
      --hold "$HOLD_SECS" --out "$OUT/memory-$proto.json" 2>"$OUT/memory-$proto.err" ||
      { cat "$OUT/memory-$proto.err" >&2; tail -20 "$WORK/$name.out" >&2; die "the stream client failed ($proto)"; }
    stop_process "$name"
  done
  stop_process stub
fi

# --- report -------------------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT="$RESULTS_DIR/conversation-$STAMP.json"
export ROOT OUT RESULT STAMP PARTS PROTOCOLS STREAMS_PER_CONN TTFT_RUNS TTFT_THREADS SERVER_CPU LOAD_CPU LOADAVG_BEFORE BUSY_BEFORE MODEL
export CPU_MODEL NPROC RUSTC_VERSION COMMIT BIN_BYTES
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
NPROC=$(nproc)
RUSTC_VERSION=$(rustc --version 2>/dev/null || echo unknown)
COMMIT=${COMMIT:-$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)}
BIN_BYTES=$(stat -c %s "$BIN")

python3 - <<'EOF'
import json, os, sys

env = os.environ
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.join(env["ROOT"], "bench"))
from benchlib import pct

parts = env["PARTS"].split()

res, verdict = {}, {}
if "ttft" in parts:
    t = json.load(open(f"{env['OUT']}/ttft.json"))
    d = t["direct"]
    summary = {k: {"median": round(pct(v, .5), 3), "p90": round(pct(v, .9), 3), "min": round(min(v), 3), "n": len(v)}
               for k, v in t.items()}
    for k in ("ollama", "conversation"):
        diffs = [b - a for a, b in zip(d, t[k])]
        summary[k]["added_median"] = round(pct(t[k], .5) - pct(d, .5), 3)
        summary[k]["added_p90"] = round(pct(t[k], .9) - pct(d, .9), 3)
        summary[k]["median_of_round_differences"] = round(pct(diffs, .5), 3)
    res["ttft_ms"] = {**summary, "samples": t}
    verdict["ttft_added_median_le_2ms"] = summary["conversation"]["added_median"] <= 2.0
    verdict["ttft_added_p90_le_2ms"] = summary["conversation"]["added_p90"] <= 2.0
# The memory results: "memory" is HTTP/1.1 (one connection per stream), "memory_http2" HTTP/2.
mem_keys = {"http1": "memory", "http2": "memory_http2"}
protocols = env["PROTOCOLS"].split() if "memory" in parts else []
for proto in protocols:
    m = json.load(open(f"{env['OUT']}/memory-{proto}.json"))
    res[mem_keys[proto]] = m
    verdict["idle_stream_le_8KiB" + ("" if proto == "http1" else "_http2")] = m["bytes_per_stream"]["rss"] <= 8192

doc = {
    "bench": "conversation",
    "date": env["STAMP"],
    "commit": env["COMMIT"],
    "machine": {"nproc": int(env["NPROC"]), "cpu": env["CPU_MODEL"], "loadavg_before": env["LOADAVG_BEFORE"],
                "cpu_busy_pct_before": int(env["BUSY_BEFORE"])},
    "versions": {"rustc": env["RUSTC_VERSION"], "binary_bytes": int(env["BIN_BYTES"])},
    "model": env["MODEL"],
    "params": {k.lower(): env[k] for k in ["TTFT_RUNS", "TTFT_THREADS", "SERVER_CPU", "LOAD_CPU", "PROTOCOLS",
                                            "STREAMS_PER_CONN"]},
    **res,
    "targets_met": verdict,
}
with open(env["RESULT"], "w") as f:
    json.dump(doc, f, indent=2)

print(f"\nConversation bench {env['STAMP']} ({env['COMMIT']}), {env['MODEL']}\n")
if "ttft_ms" in res:
    t = res["ttft_ms"]
    print(f"Time to first content, {t['direct']['n']} requests each, rotating order:\n")
    print("| path | median ms | p90 ms | min ms | added median | added p90 | median of round differences |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print(f"| engine directly (`/api/chat`, first NDJSON content) | {t['direct']['median']:.3f} | {t['direct']['p90']:.3f} | {t['direct']['min']:.3f} | | | |")
    for k, label in (("ollama", "gateway → inference → engine (`/ollama/api/chat`)"),
                     ("conversation", "gateway → conversation → inference → engine (first `delta`)")):
        s = t[k]
        bold = "**" if k == "conversation" else ""
        print(f"| {label} | {s['median']:.3f} | {s['p90']:.3f} | {s['min']:.3f} | {bold}{s['added_median']:+.3f}{bold} "
              f"| {bold}{s['added_p90']:+.3f}{bold} | {s['median_of_round_differences']:+.3f} |")
    print()
for proto in protocols:
    m = res[mem_keys[proto]]
    k = m["kib"]
    mib = lambda v: f"{v / 1024:.1f}"
    how = ("HTTP/1.1, a connection each" if proto == "http1" else
           f"HTTP/2 (h2c), {m['streams_per_connection']} per connection, {m['connections']} connections")
    print(f"Memory of the serve process, {m['streams']} idle reply streams over {how} "
          f"(opened in {m['open_secs']} s):\n")
    print("| | RSS MiB | anonymous MiB | file-backed MiB | open fds |")
    print("|---|---:|---:|---:|---:|")
    rows = [("before", f"before (after {m['warmup']} streams opened and closed)"),
            ("open", f"{m['streams']} streams open ({m['settle_secs']} s)"),
            ("open_late", f"still open ({m['hold_secs']} s later)"),
            ("closed", f"all closed (noticed in {m['closed_noticed_secs']} s, then {m['settle_secs']} s)")]
    for key, label in rows:
        v = k[key]
        print(f"| {label} | {mib(v['rss'])} | {mib(v['anon'])} | {mib(v['file'])} | {v['fds']} |")
    per, late = m["bytes_per_stream"], m["bytes_per_stream_late"]
    print(f"\n**Per idle stream: {per['rss'] / 1024:.2f} KiB RSS** ({per['anon'] / 1024:.2f} KiB anonymous; "
          f"{late['rss'] / 1024:.2f} KiB after {m['hold_secs']} s more); retained after closing: "
          f"{m['retained_after_close_kib']['rss'] / 1024:.1f} MiB. Bytes each client received while idle: "
          f"{m['bytes_received_per_stream']['while_held']}. Open reply streams the server counted: "
          f"{m['server_reply_streams']}.\n")
print(f"\nTargets: {verdict}")
print(f"Result: {env['RESULT']}")
EOF
