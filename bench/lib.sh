# What the bench/*/run.sh harnesses share: logging, a work directory and background processes
# (PIDS) that are cleaned up however the run ends, and a free-port check. Sourced with BENCH set
# to the harness's name, after its parameters.

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
