# What the bench/*/run.sh harnesses share: logging, a work directory and background processes
# (PIDS) that are cleaned up however the run ends, a free-port check, starting and waiting for
# ollamanet processes, and how busy the machine is. Sourced with BENCH set to the harness's name,
# after its parameters.

log() { printf '[bench/%s %(%H:%M:%S)T] %s\n' "$BENCH" -1 "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Call once the harness is about to start processes; they go in PIDS.
start_work() {
  WORK=$(mktemp -d "/tmp/ollamanet-bench-$BENCH.XXXXXX")
  PIDS=()
  trap cleanup EXIT
  trap 'exit 130' INT TERM
}

cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  if [[ ${KEEP_WORK:-0} == 1 ]]; then log "work files kept in $WORK"; else rm -rf "$WORK"; fi
}

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits up to 60 s until URL answers 200.
wait_http() {
  local url=$1 i
  for i in $(seq 1 600); do
    [[ $(curl -s -o /dev/null -w '%{http_code}' "$url") == 200 ]] && return 0
    sleep 0.1
  done
  return 1
}

# ollamanet without the environment's database, cache, broker or OLLAMANET_* settings:
# "${clean_env[@]}" "$BIN" ...
clean_env=(env -u DATABASE_URL -u REDIS_URL -u AMQP_URL -u RUST_LOG -u OLLAMANET_CONFIG)
for v in $(env | grep -o '^OLLAMANET_[A-Z0-9_]*' || true); do clean_env+=(-u "$v"); done
clean_env+=(OLLAMANET_LOG__LEVEL=warn)

# start_process NAME CPUS CMD... : runs CMD in the background (pinned when CPUS is not "all"),
# output in $WORK/NAME.out, pid in PID_NAME.
start_process() {
  local name=$1 cpus=$2
  shift 2
  if [[ $cpus == all ]]; then
    "$@" >"$WORK/$name.out" 2>&1 &
  else
    taskset -c "$cpus" "$@" >"$WORK/$name.out" 2>&1 &
  fi
  PIDS+=($!)
  eval "PID_${name}=$!"
}
stop_process() {
  local pid
  pid=$(eval "echo \${PID_$1:-}")
  [[ -n $pid ]] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# How busy the CPUs are over the next 2 s, in percent (the load average lags by minutes, e.g.
# after a previous run).
cpu_busy_pct() {
  local a b
  read -r -a a < <(head -1 /proc/stat)
  sleep 2
  read -r -a b < <(head -1 /proc/stat)
  local total=0 idle i
  for i in 1 2 3 4 5 6 7 8; do total=$((total + b[i] - a[i])); done
  idle=$((b[4] - a[4] + b[5] - a[5]))
  echo $((total > 0 ? 100 * (total - idle) / total : 0))
}
