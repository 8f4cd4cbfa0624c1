#!/usr/bin/env bash
# Explore benchmark (issue 5): search latency over a catalog of MODELS models, on `ollamanet serve`
# all-in-one, per database in DATABASES:
#
#   cold    each of QUERIES distinct list requests (words, tags, family, parameter range,
#           capabilities, orders, next pages) right after an admin edit: computed from the database
#   warm    the same requests REPEAT more times: answered from explore's cache
#   floor   GET /health on the same connection: what any request through the server costs
#
# p50/p90/p99 of each; the budget is warm p99 <= 5 ms. Run as root on Debian: bench/explore/run.sh.
# See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/bench/explore

# --- parameters (environment overrides) --------------------------------------------------------
MODELS=${MODELS:-10000}             # catalog models
TAGS=${TAGS:-20}                    # tags, one to three per model
QUERIES=${QUERIES:-400}             # distinct list requests (plus the next page of each that has one)
REPEAT=${REPEAT:-10}                # warm passes over them
DATABASES=${DATABASES:-"sqlite postgres"}  # sqlite: the embedded default; postgres: POSTGRES_URL
POSTGRES_URL=${POSTGRES_URL:-postgres://postgres@127.0.0.1:5432}  # a server where a database may be created
SERVER_CPU=${SERVER_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PORT=${PORT:-19381}
INSTALL=${INSTALL:-1}               # 0: do not apt-get anything
BUILD=${BUILD:-1}                   # 0: use the existing ollamanet binary
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
BIN=${OLLAMANET_BIN:-$ROOT/target/release/ollamanet}

BENCH=explore
. "$ROOT/bench/lib.sh"

[[ $(id -u) == 0 ]] || [[ $INSTALL == 0 ]] || die "run as root (it installs packages), or set INSTALL=0"
for db in $DATABASES; do [[ $db == sqlite || $db == postgres ]] || die "unknown database $db (known: sqlite postgres)"; done

export PATH="$HOME/.cargo/bin:$PATH"
if [[ $INSTALL == 1 ]]; then
  missing=()
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  command -v taskset >/dev/null || missing+=(util-linux)
  [[ " $DATABASES " == *" postgres "* ]] && ! command -v psql >/dev/null && missing+=(postgresql-client)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
if [[ $BUILD == 1 ]]; then
  log "building ollamanet (release)"
  (cd "$ROOT" && cargo build --release --quiet -p ollamanet)
fi
[[ -x $BIN ]] || die "$BIN does not exist (run with BUILD=1)"

start_work
port_free "$PORT" || die "port $PORT is in use (set PORT)"
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
BUSY=$(cpu_busy_pct)
((BUSY <= 10)) || log "warning: the CPUs are ${BUSY}% busy; other work on this machine will skew the numbers"

cat >"$WORK/bench.toml" <<EOF2
[gateway.rate_limits.authenticated]
per_minute = 100000000
burst = 100000000

[gateway.rate_limits.anonymous]
per_minute = 100000000
burst = 100000000
EOF2

for db in $DATABASES; do
  data=$WORK/data-$db
  mkdir -p "$data"
  env_db=()
  if [[ $db == postgres ]]; then
    name="ollamanet_bench_explore_$$"
    psql "$POSTGRES_URL/postgres" -qc "CREATE DATABASE $name" || die "cannot create a database on $POSTGRES_URL"
    trap 'psql "$POSTGRES_URL/postgres" -qc "DROP DATABASE IF EXISTS '"$name"' WITH (FORCE)" >/dev/null 2>&1; cleanup' EXIT
    env_db=(DATABASE_URL="$POSTGRES_URL/$name")
  fi
  password="pw-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
  "${clean_env[@]}" "${env_db[@]}" "$BIN" --config "$WORK/bench.toml" users create --data-dir "$data" --admin \
    --email bench@example.com --username bench --password-stdin <<<"$password" >"$WORK/users-$db.out" 2>&1 ||
    { cat "$WORK/users-$db.out" >&2; die "ollamanet users create failed"; }
  start_process "serve_$db" "$SERVER_CPU" "${clean_env[@]}" "${env_db[@]}" \
    "$BIN" --config "$WORK/bench.toml" serve --only gateway,auth,admin,explore,inference --listen "127.0.0.1:$PORT" --data-dir "$data"
  wait_http "http://127.0.0.1:$PORT/health" || { cat "$WORK/serve_$db.out" >&2; die "the platform did not start"; }
  login=$(curl -sS -X POST "http://127.0.0.1:$PORT/api/auth/login" -H 'content-type: application/json' \
    -d "{\"login\":\"bench\",\"password\":\"$password\"}")
  token=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$login" 2>/dev/null) ||
    die "login failed: $login"
  log "$db: seeding $MODELS models, then $QUERIES queries cold and $REPEAT times warm; server on cpu $SERVER_CPU, client on cpu $LOAD_CPU"
  out=$RESULTS_DIR/explore-$STAMP-$db.json
  taskset -c "$LOAD_CPU" python3 "$HERE/search.py" --port "$PORT" --token "$token" --models "$MODELS" \
    --tags "$TAGS" --queries "$QUERIES" --repeat "$REPEAT" --out "$out" ||
    { tail -20 "$WORK/serve_$db.out" >&2; die "the search client failed ($db)"; }
  rss=$(awk '/^Rss:/ {print $2}' "/proc/$(eval "echo \$PID_serve_$db")/smaps_rollup")
  python3 - "$out" "$db" "$rss" <<'EOF2'
import json, sys
r = json.load(open(sys.argv[1]))
s = r["summary"]
print(f"\n{sys.argv[2]}: {r['models']} models, {r['queries']} queries ({r['queries_with_results']} with results), "
      f"seeded in {r['seed_secs']:.0f} s; server RSS {int(sys.argv[3]) / 1024:.0f} MiB\n")
print("| pass | n | p50 ms | p90 ms | p99 ms | max ms |")
print("|---|---:|---:|---:|---:|---:|")
for name in ("cold", "warm", "floor"):
    x = s[name]
    print(f"| {name} | {x['n']} | {x['p50']:.2f} | {x['p90']:.2f} | {x['p99']:.2f} | {x['max']:.2f} |")
EOF2
  stop_process "serve_$db"
done
log "results in $RESULTS_DIR/explore-$STAMP-*.json"
