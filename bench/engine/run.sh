#!/usr/bin/env bash
# Engine benchmark (ARCHITECTURE.md §8), on one GGUF (SmolLM2-135M-Instruct Q4_1 from
# `ollamanet models demo`):
#
#   1. tokens/s   the embedded engine (`ollamanet serve --only engine`, Ollama's counters from
#                 POST /api/generate) against llama.cpp itself: bench/engine/llama-ref, a small
#                 llama-bench-style driver built with cmake from the very llama.cpp sources that
#                 the llama-cpp-sys-2 crate vendors, with the crate's own build settings. Prompt
#                 processing (pp) and generation (tg); ratio engine / llama.cpp of the medians.
#   2. TTFT       time to first token of a streaming POST /api/chat, direct to the engine and
#                 through the platform (`serve --only gateway,auth,inference`, bearer token, route
#                 /ollama/api/chat) to the same engine; median, p90 and the difference.
#
# Run as root on Debian from anywhere: bench/engine/run.sh. See bench/README.md.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$ROOT/bench/engine

# --- parameters (environment overrides) --------------------------------------------------------
PROMPT_TOKENS=${PROMPT_TOKENS:-512}   # prompt length of the pp measurement
GEN_TOKENS=${GEN_TOKENS:-128}         # generated tokens of the tg measurement
THREADS=${THREADS:-$(nproc)}          # llama.cpp threads, the same on both sides
REPS=${REPS:-3}                       # measured repetitions per round and side
ROUNDS=${ROUNDS:-5}                   # rounds, alternating llama.cpp and the engine
NUM_CTX=${NUM_CTX:-2048}              # context of both sides (n_batch = n_ubatch = 512 on both)
TTFT_RUNS=${TTFT_RUNS:-50}            # TTFT requests per target (direct, gateway), alternating
TTFT_WARMUP=${TTFT_WARMUP:-5}         # untimed TTFT requests per target first
TTFT_THREADS=${TTFT_THREADS:-1}       # engine threads during the TTFT part (it shares a core)
SERVER_CPU=${SERVER_CPU:-0}           # TTFT part: engine and gateway process
LOAD_CPU=${LOAD_CPU:-1}               # TTFT part: the client
PARTS=${PARTS:-"tps ttft"}            # what to measure
PORT_ENGINE=${PORT_ENGINE:-19180}
PORT_GATEWAY=${PORT_GATEWAY:-19181}
MODEL=${MODEL:-smollm2:135m}
INSTALL=${INSTALL:-1}                 # 0: do not apt-get anything
BUILD=${BUILD:-1}                     # 0: use the existing ollamanet binary and llama-ref build
BUILD_OLLAMANET=${BUILD_OLLAMANET:-$BUILD}  # each of the two separately
BUILD_REF=${BUILD_REF:-$BUILD}
RESULTS_DIR=${RESULTS_DIR:-$ROOT/bench/results}
BIN=${OLLAMANET_BIN:-$ROOT/target/release/ollamanet}
REF_DIR=${REF_DIR:-$ROOT/target/bench-llama.cpp}   # cmake build directory of llama-ref
JOBS=${JOBS:-$(nproc)}                # parallel compile jobs for llama-ref

BENCH=engine
. "$ROOT/bench/lib.sh"

[[ $(id -u) == 0 ]] || [[ $INSTALL == 0 ]] || die "run as root (it installs packages), or set INSTALL=0"
for p in $PARTS; do [[ $p == tps || $p == ttft ]] || die "unknown part $p (known: tps ttft)"; done

# --- install -----------------------------------------------------------------------------------
export PATH="$HOME/.cargo/bin:$PATH"
if [[ $INSTALL == 1 ]]; then
  missing=()
  command -v cmake >/dev/null || missing+=(cmake)
  command -v c++ >/dev/null || missing+=(g++)
  command -v clang >/dev/null || missing+=(clang libclang-dev)   # llama-cpp-sys-2's bindgen
  command -v curl >/dev/null || missing+=(curl)
  command -v python3 >/dev/null || missing+=(python3)
  command -v taskset >/dev/null || missing+=(util-linux)
  if ((${#missing[@]})); then
    log "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi
for tool in cmake c++ curl python3 taskset cargo; do
  command -v "$tool" >/dev/null || die "$tool is missing (run with INSTALL=1 as root)"
done

# --- build: ollamanet, then llama-ref on the crate's llama.cpp with the crate's settings ---------
if [[ $BUILD_OLLAMANET == 1 ]]; then
  log "building ollamanet (release)"
  (cd "$ROOT" && cargo build --release --quiet -p ollamanet)
fi
[[ -x $BIN ]] || die "$BIN does not exist (run with BUILD=1)"

# The llama-cpp-sys-2 crate the workspace resolves, and the llama.cpp it vendors.
SYS_DIR=$(cd "$ROOT" && cargo metadata --format-version 1 2>/dev/null | python3 -c '
import json, os, sys
pkgs = [p for p in json.load(sys.stdin)["packages"] if p["name"] == "llama-cpp-sys-2"]
if pkgs:
    print(os.path.dirname(pkgs[0]["manifest_path"]) + "\t" + pkgs[0]["version"])
') || true
[[ -n $SYS_DIR ]] || die "cargo metadata does not list llama-cpp-sys-2"
SYS_VERSION=${SYS_DIR#*$'\t'}
SYS_DIR=${SYS_DIR%$'\t'*}
LLAMA_SRC=$SYS_DIR/llama.cpp
[[ -f $LLAMA_SRC/include/llama.h ]] || die "$LLAMA_SRC has no include/llama.h"

# The crate's build script runs cmake with its own settings; its cache (from the release build of
# ollamanet) is the authority: build type, compilers, C/C++ flags and every GGML_* option. Without
# one, the crate's build.rs rules are applied: GGML_NATIVE=ON only with target-cpu=native
# (RUSTFLAGS, else .cargo/config.toml); otherwise OFF, -march=<target-cpu> and the GGML_* options
# of Rust's target features; the `openmp` feature the workspace enables, static libraries,
# Release, and cc's default flags.
CRATE_CACHE=$(ls -t "$ROOT"/target/release/build/llama-cpp-sys-2-*/out/build/CMakeCache.txt 2>/dev/null | head -1 || true)
CMAKE_ARGS=(-DLLAMA_CPP_DIR="$LLAMA_SRC" -DLLAMA_CURL=OFF -DGGML_OPENMP=ON -DBUILD_SHARED_LIBS=OFF)
if [[ -n $CRATE_CACHE ]]; then
  FLAGS_FROM="the crate's CMakeCache.txt (target/release)"
  while IFS= read -r line; do
    CMAKE_ARGS+=("-D$line")
  done < <(grep -E '^(CMAKE_BUILD_TYPE|CMAKE_C_COMPILER|CMAKE_CXX_COMPILER|CMAKE_C_FLAGS|CMAKE_CXX_FLAGS|BUILD_SHARED_LIBS|GGML_[A-Z0-9_]+):(BOOL|STRING|FILEPATH)=' "$CRATE_CACHE" |
    grep -v -E '^GGML_(CCACHE_FOUND|SCCACHE_FOUND)')
else
  FLAGS_FROM="the crate's build.rs rules (no release build of the crate found)"
  # Rust's target CPU: RUSTFLAGS, else the workspace's .cargo/config.toml (as cargo resolves it).
  if [[ -n ${RUSTFLAGS:-} ]]; then rustflags=$RUSTFLAGS; else
    rustflags=$(grep -v '^[[:space:]]*#' "$ROOT/.cargo/config.toml" 2>/dev/null | tr -d '",[]' |
      grep -o 'target-cpu=[^ ]*' | head -1 || true)
  fi
  cpu=$(grep -o 'target-cpu=[^ ]*' <<<"$rustflags" | head -1 | cut -d= -f2 || true)
  cflags="-ffunction-sections -fdata-sections -fPIC -m64"
  if [[ $cpu == native ]]; then
    CMAKE_ARGS+=(-DGGML_NATIVE=ON)
  else
    CMAKE_ARGS+=(-DGGML_NATIVE=OFF)
    cflags+=" -march=${cpu:-x86-64}"
    # build.rs turns Rust's target features into GGML options.
    for f in $(rustc --print cfg ${cpu:+-C target-cpu=$cpu} 2>/dev/null | sed -n 's/^target_feature="\(.*\)"$/\1/p'); do
      case $f in
        avx) CMAKE_ARGS+=(-DGGML_AVX=ON) ;; avx2) CMAKE_ARGS+=(-DGGML_AVX2=ON) ;;
        avx512bf16) CMAKE_ARGS+=(-DGGML_AVX512_BF16=ON) ;; avx512vbmi) CMAKE_ARGS+=(-DGGML_AVX512_VBMI=ON) ;;
        avx512vnni) CMAKE_ARGS+=(-DGGML_AVX512_VNNI=ON) ;; avxvnni) CMAKE_ARGS+=(-DGGML_AVX_VNNI=ON) ;;
        bmi2) CMAKE_ARGS+=(-DGGML_BMI2=ON) ;; f16c) CMAKE_ARGS+=(-DGGML_F16C=ON) ;;
        fma) CMAKE_ARGS+=(-DGGML_FMA=ON) ;; sse4.2) CMAKE_ARGS+=(-DGGML_SSE42=ON) ;;
      esac
    done
  fi
  CMAKE_ARGS+=(-DCMAKE_BUILD_TYPE=Release "-DCMAKE_C_FLAGS=$cflags -w" "-DCMAKE_CXX_FLAGS=$cflags -w")
fi
REF_BIN=$REF_DIR/llama-ref
if [[ $BUILD_REF == 1 ]]; then
  log "building llama-ref on $LLAMA_SRC (settings from $FLAGS_FROM)"
  mkdir -p "$REF_DIR"
  cmake -S "$HERE/llama-ref" -B "$REF_DIR" "${CMAKE_ARGS[@]}" >"$REF_DIR/configure.log" 2>&1 ||
    { tail -30 "$REF_DIR/configure.log" >&2; die "cmake configure failed"; }
  cmake --build "$REF_DIR" --target llama-ref -j "$JOBS" >"$REF_DIR/build.log" 2>&1 ||
    { tail -30 "$REF_DIR/build.log" >&2; die "cmake build failed"; }
fi
[[ -x $REF_BIN ]] || die "llama-ref is not built in $REF_DIR (run with BUILD=1)"
# What llama-ref was actually built with, for the record.
REF_SETTINGS=$(grep -E '^(CMAKE_BUILD_TYPE|CMAKE_C_FLAGS|GGML_(NATIVE|OPENMP|AVX|AVX2|AVX512|FMA|F16C|BMI2|SSE42|CPU_REPACK|LLAMAFILE)):' \
  "$REF_DIR/CMakeCache.txt" | sed 's/:[A-Z]*=/=/' | paste -sd ';' -)
if [[ -n $CRATE_CACHE ]]; then
  CRATE_SETTINGS=$(grep -E '^(CMAKE_BUILD_TYPE|CMAKE_C_FLAGS|GGML_(NATIVE|OPENMP|AVX|AVX2|AVX512|FMA|F16C|BMI2|SSE42|CPU_REPACK|LLAMAFILE)):' \
    "$CRATE_CACHE" | sed 's/:[A-Z]*=/=/' | paste -sd ';' -)
  [[ $CRATE_SETTINGS == "$REF_SETTINGS" ]] ||
    log "warning: llama-ref's settings differ from the crate's (rebuild with BUILD=1): $REF_SETTINGS vs $CRATE_SETTINGS"
fi

# --- processes and cleanup ---------------------------------------------------------------------
start_work
for p in "$PORT_ENGINE" "$PORT_GATEWAY"; do
  port_free "$p" || die "port $p is in use (set PORT_ENGINE / PORT_GATEWAY)"
done

# start_engine NAME CPUS THREADS
start_engine() {
  start_process "$1" "$2" "${clean_env[@]}" OLLAMANET_ENGINE__THREADS="$3" \
    "$BIN" serve --only engine --listen "127.0.0.1:$PORT_ENGINE" --data-dir "$WORK/engine"
  wait_http "http://127.0.0.1:$PORT_ENGINE/api/version" || { cat "$WORK/$1.out" >&2; die "the engine did not start"; }
}

# --- the model ------------------------------------------------------------------------------------
log "installing the demo models into $WORK/engine (ollamanet models demo)"
"${clean_env[@]}" "$BIN" models demo --data-dir "$WORK/engine" >"$WORK/demo.out" 2>&1 ||
  { cat "$WORK/demo.out" >&2; die "ollamanet models demo failed"; }
GGUF=$(python3 - "$WORK/engine" "$MODEL" <<'EOF'
import glob, json, os, sys
root, model = sys.argv[1], sys.argv[2]
name, _, tag = model.partition(":")
for manifest in glob.glob(os.path.join(root, "**", "manifests", "*", "*", name, tag or "latest"), recursive=True):
    layers = json.load(open(manifest))["layers"]
    for layer in layers:
        if layer["mediaType"] == "application/vnd.ollama.image.model":
            blobs = os.path.join(os.path.dirname(manifest), *[".."] * 4, "blobs")
            print(os.path.normpath(os.path.join(blobs, layer["digest"].replace(":", "-"))))
            sys.exit(0)
sys.exit(1)
EOF
) || die "no manifest for $MODEL under $WORK/engine"
[[ -f $GGUF ]] || die "the GGUF $GGUF does not exist"
log "model $MODEL: $GGUF ($(stat -c %s "$GGUF") bytes)"

LOADAVG_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
BUSY_BEFORE=$(cpu_busy_pct)
if ((BUSY_BEFORE > 10)); then
  log "warning: the CPUs are ${BUSY_BEFORE}% busy (load average $LOADAVG_BEFORE); other work on this machine will skew the numbers"
fi
OUT=$WORK/out
mkdir -p "$OUT"

# --- 1. tokens/s: llama-ref and the engine, alternating rounds -----------------------------------
if [[ " $PARTS " == *" tps "* ]]; then
  log "tokens/s: pp$PROMPT_TOKENS, tg$GEN_TOKENS, $THREADS threads, $ROUNDS rounds x $REPS reps"
  start_engine engine_tps all "$THREADS"
  offset=0
  numbers=()   # from the second round on, the prompt length calibrated in the first
  for round in $(seq 1 "$ROUNDS"); do
    log "round $round: llama-ref"
    # tg from an empty cache (llama-bench's tg) and after PROMPT_TOKENS (where the engine's is).
    "$REF_BIN" -m "$GGUF" -p "$PROMPT_TOKENS" -n "$GEN_TOKENS" -d 0 -d "$PROMPT_TOKENS" -t "$THREADS" \
      -r "$REPS" -c "$NUM_CTX" -b 512 -ub 512 >"$OUT/ref-$round.json" 2>"$OUT/ref-$round.err" ||
      { cat "$OUT/ref-$round.err" >&2; die "llama-ref failed"; }
    log "round $round: engine"
    python3 "$HERE/tps.py" --url "http://127.0.0.1:$PORT_ENGINE" --model "$MODEL" \
      --prompt-tokens "$PROMPT_TOKENS" --gen-tokens "$GEN_TOKENS" --num-ctx "$NUM_CTX" --reps "$REPS" \
      --offset "$offset" "${numbers[@]}" --out "$OUT/engine-$round.json" 2>>"$OUT/engine-tps.err" ||
      { cat "$OUT/engine-tps.err" "$WORK/engine_tps.out" >&2; die "the engine requests failed"; }
    read -r offset n < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["next_offset"], d["numbers"])' "$OUT/engine-$round.json")
    numbers=(--numbers "$n")
  done
  stop_process engine_tps
fi

# --- 2. TTFT: direct to the engine and through gateway + auth + inference -----------------------
if [[ " $PARTS " == *" ttft "* ]]; then
  log "TTFT: engine ($TTFT_THREADS thread) and platform on cpu $SERVER_CPU, client on cpu $LOAD_CPU"
  start_engine engine_ttft "$SERVER_CPU" "$TTFT_THREADS"
  mkdir -p "$WORK/platform"
  cat >"$WORK/platform.toml" <<EOF
[inference]
nodes = ["http://127.0.0.1:$PORT_ENGINE"]

[gateway.rate_limits.authenticated]
per_minute = 100000000
burst = 100000000
EOF
  password="pw-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
  "${clean_env[@]}" "$BIN" --config "$WORK/platform.toml" users create --data-dir "$WORK/platform" \
    --email bench@example.com --username bench --password-stdin <<<"$password" >"$WORK/users.out" 2>&1 ||
    { cat "$WORK/users.out" >&2; die "ollamanet users create failed"; }
  start_process platform "$SERVER_CPU" "${clean_env[@]}" "$BIN" --config "$WORK/platform.toml" \
    serve --only gateway,auth,inference --listen "127.0.0.1:$PORT_GATEWAY" --data-dir "$WORK/platform"
  wait_http "http://127.0.0.1:$PORT_GATEWAY/health" || { cat "$WORK/platform.out" >&2; die "the platform did not start"; }
  login=$(curl -sS -X POST "http://127.0.0.1:$PORT_GATEWAY/api/auth/login" -H 'content-type: application/json' \
    -d "{\"login\":\"bench\",\"password\":\"$password\"}")
  TOKEN=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' <<<"$login" 2>/dev/null) ||
    die "login failed: $login"
  # The inference service probes its nodes every 2 s: wait until it routes the model.
  for i in $(seq 1 150); do
    tags=$(curl -s -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT_GATEWAY/ollama/api/tags" || true)
    [[ $tags == *"\"$MODEL\""* ]] && break
    [[ $i == 150 ]] && { cat "$WORK/platform.out" >&2; die "the gateway does not list $MODEL: $tags"; }
    sleep 0.2
  done
  taskset -c "$LOAD_CPU" python3 "$HERE/ttft.py" --model "$MODEL" \
    --direct "http://127.0.0.1:$PORT_ENGINE/api/chat" --gateway "http://127.0.0.1:$PORT_GATEWAY/ollama/api/chat" \
    --token "$TOKEN" --runs "$TTFT_RUNS" --warmup "$TTFT_WARMUP" --out "$OUT/ttft.json" 2>"$OUT/ttft.err" ||
    { cat "$OUT/ttft.err" "$WORK/platform.out" "$WORK/engine_ttft.out" >&2; die "the TTFT client failed"; }
  stop_process platform
  stop_process engine_ttft
fi

# --- report -------------------------------------------------------------------------------------
mkdir -p "$RESULTS_DIR"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
RESULT="$RESULTS_DIR/engine-$STAMP.json"
export OUT RESULT STAMP PARTS ROUNDS REPS THREADS PROMPT_TOKENS GEN_TOKENS NUM_CTX TTFT_RUNS TTFT_THREADS \
  SERVER_CPU LOAD_CPU LOADAVG_BEFORE BUSY_BEFORE MODEL FLAGS_FROM REF_SETTINGS SYS_VERSION
export CPU_MODEL NPROC RUSTC_VERSION COMMIT GGUF_SIZE GGML_VERSION
CPU_MODEL=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
NPROC=$(nproc)
RUSTC_VERSION=$(rustc --version)
COMMIT=${COMMIT:-$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)}
GGUF_SIZE=$(stat -c %s "$GGUF")
GGML_VERSION=$(grep -oE 'GGML_VERSION_(MAJOR|MINOR|PATCH) [0-9]+' "$LLAMA_SRC/ggml/CMakeLists.txt" | awk '{print $2}' | paste -sd. -)

python3 - <<'EOF'
import glob, json, os, statistics as st

env = os.environ
out = env["OUT"]
parts = env["PARTS"].split()
P, G = int(env["PROMPT_TOKENS"]), int(env["GEN_TOKENS"])

def pct(xs, p):
    s = sorted(xs)
    k = (len(s) - 1) * p
    lo = int(k); hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)

r2 = lambda v: None if v is None else round(v, 2)
res = {}
if "tps" in parts:
    ref = {"pp": [], "tg_d0": [], f"tg_d{P}": []}
    for f in sorted(glob.glob(f"{out}/ref-*.json")):
        for t in json.load(open(f))["tests"]:
            key = "pp" if t["name"] == "pp" else f"tg_d{t['n_depth']}"
            ref[key] += t["samples_ts"]
        system_info = json.load(open(f))["system_info"]
    eng = []
    for f in sorted(glob.glob(f"{out}/engine-*.json")):
        eng += json.load(open(f))["requests"]
    e_pp = [r["pp_ts"] for r in eng]
    e_tg = [r["tg_ts"] for r in eng]
    med = {k: st.median(v) for k, v in ref.items()}
    res["tokens_per_s"] = {
        "llama_ref": {k: {"median": r2(med[k]), "min": r2(min(v)), "max": r2(max(v)), "n": len(v)} for k, v in ref.items()},
        "llama_ref_system_info": system_info,
        "engine": {
            "pp": {"median": r2(st.median(e_pp)), "min": r2(min(e_pp)), "max": r2(max(e_pp)), "n": len(e_pp)},
            "tg": {"median": r2(st.median(e_tg)), "min": r2(min(e_tg)), "max": r2(max(e_tg)), "n": len(e_tg)},
            "prompt_eval_count": sorted({r["prompt_eval_count"] for r in eng}),
            "eval_count": sorted({r["eval_count"] for r in eng}),
            "done_reason": sorted({str(r["done_reason"]) for r in eng}),
        },
        "ratio": {
            "pp": round(st.median(e_pp) / med["pp"], 3),
            "tg_vs_same_depth": round(st.median(e_tg) / med[f"tg_d{P}"], 3),
            "tg_vs_d0": round(st.median(e_tg) / med["tg_d0"], 3),
        },
        "engine_requests": eng,
    }
if "ttft" in parts:
    t = json.load(open(f"{out}/ttft.json"))
    d, g = t["direct"], t["gateway"]
    diffs = [b - a for a, b in zip(d, g)]
    res["ttft_ms"] = {
        "direct": {"median": round(pct(d, .5), 3), "p90": round(pct(d, .9), 3), "min": round(min(d), 3), "n": len(d)},
        "gateway": {"median": round(pct(g, .5), 3), "p90": round(pct(g, .9), 3), "min": round(min(g), 3), "n": len(g)},
        "added_median_ms": round(pct(g, .5) - pct(d, .5), 3),
        "added_p90_ms": round(pct(g, .9) - pct(d, .9), 3),
        "median_of_pair_differences_ms": round(pct(diffs, .5), 3),
        "samples": t,
    }

verdict = {}
if "tokens_per_s" in res:
    ratio = res["tokens_per_s"]["ratio"]
    verdict["pp_ge_0.95x"] = ratio["pp"] >= 0.95
    verdict["tg_ge_0.95x"] = ratio["tg_vs_same_depth"] >= 0.95
if "ttft_ms" in res:
    verdict["ttft_added_le_2ms"] = res["ttft_ms"]["added_median_ms"] <= 2.0

doc = {
    "bench": "engine",
    "date": env["STAMP"],
    "commit": env["COMMIT"],
    "machine": {"nproc": int(env["NPROC"]), "cpu": env["CPU_MODEL"], "loadavg_before": env["LOADAVG_BEFORE"],
                "cpu_busy_pct_before": int(env["BUSY_BEFORE"])},
    "versions": {"rustc": env["RUSTC_VERSION"], "llama_cpp_sys_2": env["SYS_VERSION"], "ggml": env["GGML_VERSION"]},
    "llama_ref_build": {"settings_from": env["FLAGS_FROM"], "cmake": env["REF_SETTINGS"]},
    "model": {"name": env["MODEL"], "gguf_bytes": int(env["GGUF_SIZE"])},
    "params": {k.lower(): env[k] for k in ["PROMPT_TOKENS", "GEN_TOKENS", "THREADS", "REPS", "ROUNDS", "NUM_CTX",
                                          "TTFT_RUNS", "TTFT_THREADS", "SERVER_CPU", "LOAD_CPU"]},
    **res,
    "targets_met": verdict,
}
with open(env["RESULT"], "w") as f:
    json.dump(doc, f, indent=2)

print(f"\nEngine bench {env['STAMP']} ({env['COMMIT']}), {env['MODEL']}, {env['THREADS']} threads\n")
if "tokens_per_s" in res:
    tp = res["tokens_per_s"]
    e, l, ra = tp["engine"], tp["llama_ref"], tp["ratio"]
    print(f"Tokens/s, median of {e['pp']['n']} requests (engine) and {l['pp']['n']} runs (llama.cpp):\n")
    print("| test | llama.cpp t/s | engine t/s | engine / llama.cpp |")
    print("|---|---:|---:|---:|")
    pc = e["prompt_eval_count"]
    print(f"| pp{P} (engine prompts: {pc[0]}–{pc[-1]} tokens) | {l['pp']['median']:.1f} | {e['pp']['median']:.1f} | **{ra['pp']:.3f}** |")
    ec = e["eval_count"]
    print(f"| tg{G} after {P} prompt tokens (engine: {ec[0]}–{ec[-1]} tokens) | {l[f'tg_d{P}']['median']:.1f} "
          f"| {e['tg']['median']:.1f} | **{ra['tg_vs_same_depth']:.3f}** |")
    print(f"| tg{G} from an empty cache (llama-bench's tg) | {l['tg_d0']['median']:.1f} | – | ({ra['tg_vs_d0']:.3f}) |")
    print()
if "ttft_ms" in res:
    t = res["ttft_ms"]
    print(f"Time to first token, streaming /api/chat, {t['direct']['n']} requests each, alternating:\n")
    print("| path | median ms | p90 ms | min ms |")
    print("|---|---:|---:|---:|")
    print(f"| direct to the engine | {t['direct']['median']:.3f} | {t['direct']['p90']:.3f} | {t['direct']['min']:.3f} |")
    print(f"| gateway → inference → engine | {t['gateway']['median']:.3f} | {t['gateway']['p90']:.3f} | {t['gateway']['min']:.3f} |")
    print(f"| **added** | **{t['added_median_ms']:+.3f}** | {t['added_p90_ms']:+.3f} | |")
    print(f"\nMedian of the pairwise differences: {t['median_of_pair_differences_ms']:+.3f} ms")
print(f"\nTargets: {verdict}")
print(f"Result: {env['RESULT']}")
EOF
