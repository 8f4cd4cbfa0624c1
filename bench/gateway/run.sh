#!/usr/bin/env bash
# Gateway benchmark (ARCHITECTURE.md §8): an authenticated proxied GET through the OllamaNet
# gateway, against the same upstream reached directly and through nginx as a plain reverse proxy.
#
# Targets, all answering GET /bench from one upstream (nginx returning a fixed 200):
#   direct        load generator -> upstream
#   gateway       load generator -> ollamanet gateway (Bearer token, authenticated route) -> upstream
#   gateway_anon  the same gateway route declared `auth = "anonymous"`, no token (proxy cost alone)
#   nginx         load generator -> nginx plain reverse proxy (keepalive upstream) -> upstream
#   floor         (optional) load generator -> bench/gateway/floor, the gateway's HTTP stack
#                 (axum + hyper server loop + hyper-util pooled client) with none of its logic
#
# For each: latency at a fixed open-loop rate (oha -q with --latency-correction, so queueing
# behind a slow response counts), then unthrottled throughput at a few connection counts.
# Servers share core SERVER_CPU, the load generator has core LOAD_CPU.
#
# Run as root on Debian from anywhere: bench/gateway/run.sh. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)

# --- parameters (environment overrides) --------------------------------------------------------
RATE=${RATE:-2000}                    # open-loop rate of the latency runs, req/s
LAT_SECS=${LAT_SECS:-15}              # duration of each latency run
LAT_CONNS=${LAT_CONNS:-32}            # connections of the latency runs
TPUT_SECS=${TPUT_SECS:-10}            # duration of each throughput run
TPUT_CONNS=${TPUT_CONNS:-"16 64"}     # connection counts tried for max throughput (best is kept)
WARMUP_SECS=${WARMUP_SECS:-3}         # unthrottled warm-up per target before measuring
TARGETS=${TARGETS:-"direct gateway gateway_anon nginx floor"}
SERVER_CPU=${SERVER_CPU:-0}           # gateway, nginx proxy and upstream
LOAD_CPU=${LOAD_CPU:-1}               # load generator
SPIN=${SPIN:-0}                       # 1: a SCHED_IDLE busy loop on each core keeps the vCPUs out
                                      #    of idle, whose wake-up latency dominates tails on some VMs
PORT_UPSTREAM=${PORT_UPSTREAM:-19081}
PORT_GATEWAY=${PORT_GATEWAY:-19080}
PORT_NGINX=${PORT_NGINX:-19082}
PORT_FLOOR=${PORT_FLOOR:-19083}
OHA_VERSION=${OHA_VERSION:-1.16.0}    # pinned so that runs are comparable
INSTALL=${INSTALL:-1}                 # 0: do not apt-get / cargo install anything
BUILD=${BUILD:-1}                     # 0: use the existing target/release/ollamanet
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
BIN=${OLLAMANET_BIN:-$ROOT/target/release/ollamanet}

BENCH=gateway
. "$ROOT/bench/lib.sh"

[[ $(id -u) == 0 ]] || [[ $INSTALL == 0 ]] || die "run as root (it installs packages), or set INSTALL=0"

# --- install -----------------------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if [[ $INSTALL == 1 ]]; then
  missing=()
  command -v nginx >/dev/null || missing+=(nginx)
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  command -v taskset >/dev/null || missing+=(util-linux)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  if ! oha --version 2>/dev/null | grep -q "$OHA_VERSION"; then
    log "installing oha $OHA_VERSION (cargo install --locked)"
    # Without this harness's INSTALL in the environment: jemalloc's Makefile (built by oha's
    # dependencies) takes $INSTALL as its install program.
    env -u INSTALL cargo install --locked --quiet "oha@$OHA_VERSION"
  fi
fi
for tool in nginx curl python3 taskset oha; do
  command -v "$tool" >/dev/null || die "$tool is missing (run with INSTALL=1 as root)"
done
if [[ $BUILD == 1 ]]; then
  log "building ollamanet (release)"
  (cd "$ROOT" && cargo build --release --quiet -p ollamanet)
fi
[[ -x $BIN ]] || die "$BIN does not exist (run with BUILD=1)"
FLOOR_BIN=$ROOT/target/release/gateway-floor
if [[ " $TARGETS " == *" floor "* ]]; then
  if [[ $BUILD == 1 ]]; then
    log "building the floor proxy (release)"
    cargo build --release --quiet -p gateway-floor
  fi
  [[ -x $FLOOR_BIN ]] || die "$FLOOR_BIN does not exist (run with BUILD=1)"
fi

# --- processes and cleanup ---------------------------------------------------------------------
start_work
for p in "$PORT_UPSTREAM" "$PORT_GATEWAY" "$PORT_NGINX" "$PORT_FLOOR"; do
  port_free "$p" || die "port $p is in use (set PORT_UPSTREAM / PORT_GATEWAY / PORT_NGINX / PORT_FLOOR)"
done

# Waits up to 20 s until URL answers (any HTTP status).
wait_http() {
  local url=$1 i
  for i in $(seq 1 200); do
    curl -s -o /dev/null "$url" && return 0
    sleep 0.1
  done
  return 1
}

# Runs a server in the background pinned to SERVER_CPU and remembers its pid.
start_server() {
  local name=$1
  shift
  taskset -c "$SERVER_CPU" "$@" >"$WORK/$name.out" 2>&1 &
  PIDS+=($!)
  eval "PID_${name}=$!"
}

# User+system CPU time (clock ticks) of a process and its children (nginx's worker).
cpu_ticks() {
  local pid=$1 total=0 p stat rest
  for p in "$pid" $(cat /proc/"$pid"/task/*/children 2>/dev/null); do
    stat=$(cat /proc/"$p"/stat 2>/dev/null) || continue
    rest=${stat##*) }                 # fields from 3 on; utime and stime are fields 14 and 15
    read -r -a f <<<"$rest"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# --- upstream: nginx answering a fixed 200 ------------------------------------------------------
nginx_common() {
  cat <<EOF
worker_processes 1;
daemon off;
pid $WORK/$1.pid;
error_log $WORK/$1-error.log warn;
events { worker_connections 8192; }
EOF
}
nginx_http_common() {
  cat <<EOF
  access_log off;
  keepalive_requests 1000000;
  keepalive_timeout 75s;
  client_body_temp_path $WORK/$1-body;
  proxy_temp_path $WORK/$1-proxy;
  fastcgi_temp_path $WORK/$1-fastcgi;
  uwsgi_temp_path $WORK/$1-uwsgi;
  scgi_temp_path $WORK/$1-scgi;
EOF
}

{
  nginx_common upstream
  echo "http {"
  nginx_http_common upstream
  cat <<EOF
  server {
    listen 127.0.0.1:$PORT_UPSTREAM backlog=4096;
    location / {
      default_type application/json;
      return 200 '{"ok":true}';
    }
  }
}
EOF
} >"$WORK/upstream.conf"

# --- nginx as a plain reverse proxy --------------------------------------------------------------
{
  nginx_common proxy
  echo "http {"
  nginx_http_common proxy
  cat <<EOF
  upstream bench_upstream {
    server 127.0.0.1:$PORT_UPSTREAM;
    keepalive 128;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:$PORT_NGINX backlog=4096;
    location / {
      proxy_pass http://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
EOF
} >"$WORK/proxy.conf"

# --- ollamanet: all-in-one, embedded backends, default routes + /bench ---------------------------
mkdir -p "$WORK/data"
{
  cat "$ROOT/services/gateway/src/default_routes.toml"
  cat <<'EOF'

# --- bench: the same upstream as the direct and nginx targets ----------------------------------
[[route]]
path = "/bench"
methods = ["GET"]
service = "bench"

[[route]]
path = "/bench-anon"
methods = ["GET"]
service = "bench"
auth = "anonymous"
upstream = "/bench"
EOF
} >"$WORK/routes.toml"
cat >"$WORK/ollamanet.toml" <<EOF
listen = "127.0.0.1:$PORT_GATEWAY"
data_dir = "$WORK/data"

[log]
level = "warn"

[upstreams]
bench = ["http://127.0.0.1:$PORT_UPSTREAM"]

[auth]
access_token_ttl = "2h"

[gateway]
routes_file = "$WORK/routes.toml"

[gateway.rate_limits.authenticated]
per_minute = 100000000
burst = 100000000

[gateway.rate_limits.anonymous]
per_minute = 100000000
burst = 100000000
EOF

log "starting upstream nginx :$PORT_UPSTREAM, proxy nginx :$PORT_NGINX, gateway :$PORT_GATEWAY (cpu $SERVER_CPU)"
for n in upstream proxy; do mkdir -p "$WORK/$n-body" "$WORK/$n-proxy"; done
start_server upstream nginx -p "$WORK" -e "$WORK/upstream-error.log" -c "$WORK/upstream.conf"
start_server proxy nginx -p "$WORK" -e "$WORK/proxy-error.log" -c "$WORK/proxy.conf"
# Embedded backends only: none of the environment's database, cache or broker URLs.
start_server gateway env -u DATABASE_URL -u REDIS_URL -u AMQP_URL -u RUST_LOG \
  $(env | grep -o '^OLLAMANET_[A-Z0-9_]*' | sed 's/^/-u /') \
  "$BIN" --config "$WORK/ollamanet.toml" serve
# shellcheck disable=SC2154 # set by start_server
GATEWAY_PID=$PID_gateway
if [[ " $TARGETS " == *" floor "* ]]; then
  start_server floor "$FLOOR_BIN" "127.0.0.1:$PORT_FLOOR" "http://127.0.0.1:$PORT_UPSTREAM"
  wait_http "http://127.0.0.1:$PORT_FLOOR/bench" || { cat "$WORK/floor.out" >&2; die "the floor proxy did not start"; }
fi

wait_http "http://127.0.0.1:$PORT_UPSTREAM/bench" || { cat "$WORK"/upstream* >&2; die "the upstream did not start"; }
wait_http "http://127.0.0.1:$PORT_NGINX/bench" || { cat "$WORK"/proxy* >&2; die "the nginx proxy did not start"; }
wait_http "http://127.0.0.1:$PORT_GATEWAY/health" || { cat "$WORK/gateway.out" >&2; die "the gateway did not start"; }

log "registering the bench user"
password="pw-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
register=$(curl -sS -X POST "http://127.0.0.1:$PORT_GATEWAY/api/auth/register" \
  -H 'content-type: application/json' \
  -d "{\"username\":\"bench\",\"email\":\"bench@example.com\",\"password\":\"$password\"}")
TOKEN=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$register" 2>/dev/null) ||
  die "registration failed: $register"
AUTH="Authorization: Bearer $TOKEN"

declare -A URL HEADER SERVER_PID
URL[direct]="http://127.0.0.1:$PORT_UPSTREAM/bench"
URL[gateway]="http://127.0.0.1:$PORT_GATEWAY/bench"
URL[gateway_anon]="http://127.0.0.1:$PORT_GATEWAY/bench-anon"
URL[nginx]="http://127.0.0.1:$PORT_NGINX/bench"
URL[floor]="http://127.0.0.1:$PORT_FLOOR/bench"
# The same header everywhere except on the anonymous route, whose point is to skip authentication
# (the gateway authenticates any bearer token it is given, even on an anonymous route).
HEADER[direct]=$AUTH
HEADER[gateway]=$AUTH
HEADER[gateway_anon]="X-Bench: anonymous"
HEADER[nginx]=$AUTH
HEADER[floor]=$AUTH
# shellcheck disable=SC2154
SERVER_PID[direct]=$PID_upstream
SERVER_PID[gateway]=$GATEWAY_PID
SERVER_PID[gateway_anon]=$GATEWAY_PID
# shellcheck disable=SC2154
SERVER_PID[nginx]=$PID_proxy
SERVER_PID[floor]=${PID_floor:-}

for t in $TARGETS; do
  [[ -n ${URL[$t]:-} ]] || die "unknown target $t (known: ${!URL[*]})"
  code=$(curl -s -o "$WORK/check.body" -w '%{http_code}' -H "${HEADER[$t]}" "${URL[$t]}")
  [[ $code == 200 ]] || die "$t: GET ${URL[$t]} answered $code: $(cat "$WORK/check.body")"
done

# --- measurements -------------------------------------------------------------------------------
OUT="$WORK/out"
mkdir -p "$OUT"
oha_run() { # name secs conns [extra oha args...]
  local name=$1 secs=$2 conns=$3 target=$4
  shift 4
  taskset -c "$LOAD_CPU" oha --no-tui --output-format json -z "${secs}s" -c "$conns" \
    -H "${HEADER[$target]}" "$@" "${URL[$target]}" >"$OUT/$name.json"
}

LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
if [[ $SPIN == 1 ]]; then
  # SCHED_IDLE: runs only when nothing else on the core wants to, so it takes (almost) no time
  # from the servers or the generator; per-process CPU accounting is unaffected.
  for cpu in "$SERVER_CPU" "$LOAD_CPU"; do
    chrt -i 0 taskset -c "$cpu" sh -c 'while :; do :; done' &
    PIDS+=($!)
  done
fi
if awk -v l="${LOADAVG_BEFORE%% *}" 'BEGIN { exit !(l > 0.5) }'; then
  log "warning: load average is $LOADAVG_BEFORE; other work on this machine will skew the numbers"
fi

for t in $TARGETS; do
  log "$t: warm-up ${WARMUP_SECS}s"
  oha_run "$t-warmup" "$WARMUP_SECS" 16 "$t"
  log "$t: latency at $RATE req/s open loop, $LAT_CONNS connections, ${LAT_SECS}s"
  before=$(cpu_ticks "${SERVER_PID[$t]}")
  oha_run "$t-latency" "$LAT_SECS" "$LAT_CONNS" "$t" -q "$RATE" --latency-correction
  after=$(cpu_ticks "${SERVER_PID[$t]}")
  echo $((after - before)) >"$OUT/$t-latency.cpu_ticks"
  for c in $TPUT_CONNS; do
    log "$t: max throughput, $c connections, ${TPUT_SECS}s"
    oha_run "$t-tput-c$c" "$TPUT_SECS" "$c" "$t"
  done
done

# --- report -------------------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT="$RESULTS_DIR/gateway-$STAMP.json"
export OUT RESULT TARGETS TPUT_CONNS RATE LAT_SECS LAT_CONNS TPUT_SECS WARMUP_SECS SERVER_CPU LOAD_CPU \
  LOADAVG_BEFORE STAMP SPIN
export CPU_MODEL NPROC NGINX_VERSION OHA_VER RUSTC_VERSION COMMIT CLK_TCK
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
NPROC=$(nproc)
NGINX_VERSION=$(nginx -v 2>&1 | sed 's/^nginx version: //')
OHA_VER=$(oha --version | awk '{print $2}')
RUSTC_VERSION=$(rustc --version)
COMMIT=${COMMIT:-$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)}
CLK_TCK=$(getconf CLK_TCK)

python3 - <<'EOF'
import json, os

env = os.environ
out = env["OUT"]
targets = env["TARGETS"].split()
conns = [int(c) for c in env["TPUT_CONNS"].split()]
tck = int(env["CLK_TCK"])

def load(name):
    with open(f"{out}/{name}.json") as f:
        return json.load(f)

def ok_and_errors(r):
    codes = {str(k): v for k, v in r.get("statusCodeDistribution", {}).items()}
    # Requests still in flight when the duration ends are cut off by oha: not failures.
    errors = sum(v for k, v in r.get("errorDistribution", {}).items() if k != "aborted due to deadline")
    non200 = sum(v for k, v in codes.items() if k != "200")
    return codes, errors + non200

ms = lambda s: None if s is None else round(s * 1000, 3)
res = {}
for t in targets:
    lat = load(f"{t}-latency")
    codes, bad = ok_and_errors(lat)
    pct = lat["latencyPercentiles"]
    ticks = int(open(f"{out}/{t}-latency.cpu_ticks").read())
    rps = lat["summary"]["requestsPerSec"]
    entry = {
        "latency": {
            "p50_ms": ms(pct["p50"]), "p99_ms": ms(pct["p99"]), "p99_9_ms": ms(pct["p99.9"]),
            "mean_ms": ms(lat["summary"]["average"]), "achieved_rps": round(rps, 1),
            "status_codes": codes, "failed": bad,
            # CPU time of the server under test (not the upstream) per request at the fixed rate.
            "server_cpu_us_per_req": round(ticks / tck / (rps * float(env["LAT_SECS"])) * 1e6, 1) if rps else None,
        },
        "throughput": {},
    }
    for c in conns:
        r = load(f"{t}-tput-c{c}")
        codes, bad = ok_and_errors(r)
        entry["throughput"][str(c)] = {"rps": round(r["summary"]["requestsPerSec"], 1),
                                       "p99_ms": ms(r["latencyPercentiles"]["p99"]),
                                       "failed": bad}
    entry["max_rps"] = max(v["rps"] for v in entry["throughput"].values())
    res[t] = entry

direct = res.get("direct")
for t, e in res.items():
    if direct and t != "direct":
        e["added_p50_ms"] = round(e["latency"]["p50_ms"] - direct["latency"]["p50_ms"], 3)
        e["added_p99_ms"] = round(e["latency"]["p99_ms"] - direct["latency"]["p99_ms"], 3)
    if "nginx" in res:
        e["throughput_ratio_to_nginx"] = round(e["max_rps"] / res["nginx"]["max_rps"], 3)

verdict = {}
if "gateway" in res and direct:
    verdict["added_p99_le_0.3ms"] = res["gateway"]["added_p99_ms"] <= 0.3
if "gateway" in res and "nginx" in res:
    verdict["throughput_ge_nginx"] = res["gateway"]["max_rps"] >= res["nginx"]["max_rps"]

doc = {
    "bench": "gateway",
    "date": env["STAMP"],
    "commit": env["COMMIT"],
    "machine": {"nproc": int(env["NPROC"]), "cpu": env["CPU_MODEL"], "loadavg_before": env["LOADAVG_BEFORE"]},
    "versions": {"nginx": env["NGINX_VERSION"], "oha": env["OHA_VER"], "rustc": env["RUSTC_VERSION"]},
    "params": {k.lower(): env[k] for k in
               ["RATE", "LAT_SECS", "LAT_CONNS", "TPUT_SECS", "TPUT_CONNS", "WARMUP_SECS", "SERVER_CPU", "LOAD_CPU", "SPIN"]},
    "targets": res,
    "targets_met": verdict,
}
with open(env["RESULT"], "w") as f:
    json.dump(doc, f, indent=2)

fmt = lambda v, spec="{:.3f}": "–" if v is None else spec.format(v)
sign = lambda v: "–" if v is None else f"{v:+.3f}"
print(f"\nGateway bench {env['STAMP']} ({env['COMMIT']}): {env['RATE']} req/s open loop, "
      f"{env['LAT_CONNS']} conns, {env['LAT_SECS']}s; max throughput best of {env['TPUT_CONNS']} conns; "
      f"spin={env['SPIN']}\n")
print("| target | p50 ms | p99 ms | p99.9 ms | added p50 | added p99 | server CPU µs/req | max req/s | ratio to nginx |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
for t, e in res.items():
    l = e["latency"]
    print(f"| {t} | {fmt(l['p50_ms'])} | {fmt(l['p99_ms'])} | {fmt(l['p99_9_ms'])} | {sign(e.get('added_p50_ms'))} "
          f"| {sign(e.get('added_p99_ms'))} | {fmt(l['server_cpu_us_per_req'], '{:.1f}')} | {e['max_rps']:,.0f} "
          f"| {fmt(e.get('throughput_ratio_to_nginx'), '{:.2f}')} |")
failed = {t: (e["latency"]["failed"], [v["failed"] for v in e["throughput"].values()]) for t, e in res.items()}
if any(a or any(b) for a, b in failed.values()):
    print(f"\nWARNING: non-200 responses or errors: {failed}")
print(f"\nTargets: {verdict}")
print(f"Result: {env['RESULT']}")
EOF
