#!/usr/bin/env bash
# One command that checks stylegen on a CUDA GPU machine (docs/ops.md, "Checking a GPU machine"):
#
#   bash scripts/gpu_check.sh                    # on a machine with a CUDA GPU, < 10 min on an H200
#   bash scripts/gpu_check.sh --rehearse-on-cpu  # every step on the CPU, to test this script itself
#
# Sections: preflight; build (CUDA plugin default + strict, CPU plugin, in parallel); doctor; the
# cuda-marked tests against the default and the strict build (a skip is a failure); the CLI on the
# GPU (sample, mix, project, train, sample the trained snapshot); throughput (generator img/s at
# 256 and 1024 px, one training iteration, cuda vs ref). It always ends with one summary line,
# "gpu_check: PASS ..." (exit 0) or "gpu_check: FAIL ..." (exit 1). Without a CUDA GPU it prints one
# line saying so and exits 0.
#
# Environment: PYTHON (default .venv/bin/python, else python3); GPU_CHECK_OUT (logs, and outputs
# in its work/, replaced each run; default $OUT/gpu_check, else a new temp dir);
# TORCH_EXTENSIONS_DIR (plugin builds; default $TMPDIR/stylegen-gpu-check-ext); GPU_CHECK_BUDGET
# (seconds for all steps, default 570: a step that would start later is failed as "not run").
# TORCH_CUDA_ARCH_LIST is left as given, so the default (the GPU's own architecture) is built.
set -Eeuo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

REHEARSE=0
case "${1:-}" in
  "") ;;
  --rehearse-on-cpu) REHEARSE=1 ;;
  -h | --help) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  *) echo "Error: unknown argument '$1' (see 'bash scripts/gpu_check.sh --help')" >&2; exit 2 ;;
esac

if [[ -n "${PYTHON:-}" ]]; then PY=$PYTHON
elif [[ -x .venv/bin/python ]]; then PY=$PWD/.venv/bin/python
else PY=$(command -v python3 || true)
fi

# --- no GPU: one line, exit 0 ---------------------------------------------------------------------
if (( ! REHEARSE )); then
  gpu_rc=0
  [[ -n "$PY" ]] && { "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 3)' 2>/dev/null || gpu_rc=$?; }
  [[ -z "$PY" ]] && gpu_rc=127
  if (( gpu_rc == 3 )); then
    echo "gpu_check: no CUDA GPU visible to torch (torch.cuda.is_available() is False): nothing to check"
    exit 0
  fi
  if (( gpu_rc != 0 )); then
    if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L 2>/dev/null | grep -q '^GPU'; then
      echo "gpu_check: no CUDA GPU here (and no working torch for '${PY:-python3}'): nothing to check"
      exit 0
    fi
    echo "gpu_check: FAIL (nvidia-smi sees a GPU but '${PY:-python3}' cannot import torch; set PYTHON)"
    exit 1
  fi
fi

DEV=cuda
PROJECT_STEPS=20
TRAIN_KIMG=0.064 # 4 iterations of batch 16, the first with R1
BENCH_ARGS=()
if (( REHEARSE )); then
  DEV=cpu
  PROJECT_STEPS=2
  TRAIN_KIMG=0.016
  BENCH_ARGS=(--resolutions 16 32 --batch 2 --train-res 16 --train-cfg cpu32 --reps 2)
fi
LOGS=${GPU_CHECK_OUT:-}
if [[ -z "$LOGS" ]]; then
  if [[ -n "${OUT:-}" ]]; then LOGS=$OUT/gpu_check; else LOGS=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX"); fi
fi
mkdir -p "$LOGS"
LOGS=$(cd "$LOGS" && pwd)
W=$LOGS/work
rm -rf "$W"
mkdir -p "$W"
export TORCH_EXTENSIONS_DIR=${TORCH_EXTENSIONS_DIR:-${TMPDIR:-/tmp}/stylegen-gpu-check-ext}
mkdir -p "$TORCH_EXTENSIONS_DIR"
export STYLEGEN_REQUIRE_EXT=1 # a CPU plugin that does not build is an error, not a fallback
export PYTHONUNBUFFERED=1
unset STYLEGEN_OPS STYLEGEN_CUDA_STRICT
SG=("$PY" -m stylegen.cli.main)
BUDGET=${GPU_CHECK_BUDGET:-570}
DEADLINE=$((SECONDS + BUDGET))
FALLBACK_WARNING="plugin unavailable, using the slower reference ops"

# --- bookkeeping ------------------------------------------------------------------------------------
RESULTS=()
NFAIL=0
FAILED_NAMES=()
STEP_NO=0
LAST_LOG=/dev/null

header() { printf '\n===== [%s, +%d s] %s =====\n' "$(date +%H:%M:%S)" "$SECONDS" "$1"; }

record() { # record PASS|FAIL NAME [DETAIL]
  RESULTS+=("$1  $2${3:+  ($3)}")
  if [[ $1 != PASS ]]; then
    NFAIL=$((NFAIL + 1))
    [[ " ${FAILED_NAMES[*]-} " == *" $2 "* ]] || FAILED_NAMES+=("$2")
    echo "  -> FAIL: $2${3:+: $3}"
  fi
}

summary() {
  header "summary"
  printf '%s\n' "${RESULTS[@]}"
  if (( NFAIL == 0 )); then
    echo "gpu_check: PASS (${#RESULTS[@]} checks in ${SECONDS} s on $DEV; logs in $LOGS)"
    exit 0
  fi
  local names
  names=$(printf '%s; ' "${FAILED_NAMES[@]}")
  echo "gpu_check: FAIL ($NFAIL of ${#RESULTS[@]} checks failed in ${SECONDS} s: ${names%; }; logs in $LOGS)"
  exit 1
}

# Anything this script did not foresee still ends in a summary line.
trap 'record FAIL "gpu_check.sh itself" "stopped at line $LINENO: $BASH_COMMAND"; trap - ERR; summary' ERR

with_limit() { # with_limit SECONDS CMD...
  if command -v timeout >/dev/null 2>&1; then timeout --kill-after=15 "$@"; else shift; "$@"; fi
}

slug() { tr -c 'A-Za-z0-9\n' '-' <<<"$1" | tr -s '-' | tr 'A-Z' 'a-z'; }

step() { # step NAME LIMIT CMD...: run CMD (output to the terminal and a log), record PASS/FAIL
  local name=$1 limit=$2
  shift 2
  STEP_NO=$((STEP_NO + 1))
  LAST_LOG=$LOGS/$(printf '%02d' "$STEP_NO")-$(slug "$name").log
  header "$name"
  local left=$((DEADLINE - SECONDS))
  if (( left < 15 )); then
    : >"$LAST_LOG"
    record FAIL "$name" "not run: the ${BUDGET} s budget is spent"
    return 0
  fi
  (( limit > left )) && limit=$left
  echo "\$ $*" | tee "$LAST_LOG"
  local t0=$SECONDS rc=0
  with_limit "$limit" "$@" 2>&1 | tee -a "$LAST_LOG" || rc=$?
  local took=$((SECONDS - t0))
  if (( rc == 0 )); then record PASS "$name" "${took} s"
  elif (( rc == 124 || rc == 137 )); then record FAIL "$name" "timed out after ${limit} s, log $LAST_LOG"
  else record FAIL "$name" "exit $rc after ${took} s, log $LAST_LOG"
  fi
}

expect() { # expect NAME WHAT TEST...: one more check on the last step's outputs
  local name=$1 what=$2
  shift 2
  if "$@"; then echo "  ok: $what"; else record FAIL "$name" "$what"; fi
}

no_fallback() { ! grep -q "$FALLBACK_WARNING" "$LAST_LOG"; }
count() { local n=0 f; for f in "$@"; do [[ -s $f ]] && n=$((n + 1)); done; echo "$n"; }

# --- preflight ---------------------------------------------------------------------------------------
header "preflight"
echo "repo: $PWD; python: $PY; device: $DEV; logs: $LOGS; TORCH_EXTENSIONS_DIR=$TORCH_EXTENSIONS_DIR"
echo "TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-unset, from the visible GPUs}; CPU cores: $(nproc 2>/dev/null || echo ?)"
command -v nvidia-smi >/dev/null 2>&1 && { nvidia-smi -L || true; }
if ! "$PY" -c 'import stylegen.cli.main, stylegen.cuda_ops' 2>/dev/null; then
  echo "stylegen is not importable with $PY: installing this checkout (editable, no dependencies)"
  "$PY" -m pip install -q --no-deps --no-build-isolation -e . || true
fi
step "preflight: imports" 120 "$PY" scripts/gpu_check.py preflight

# --- build: both CUDA variants and the CPU plugin at once (the first CUDA build takes minutes) -------
header "build: CUDA plugin (default, strict) and CPU plugin, in parallel"
declare -A BUILD_CMD=(
  [cuda-default]="env STYLEGEN_CUDA_STRICT=0 $PY scripts/check_cuda_build.py"
  [cuda-strict]="$PY scripts/check_cuda_build.py --strict"
  [cpu]="$PY -m stylegen.cuda_ops --no-cuda"
)
declare -A BUILD_PID=()
build_limit=$((DEADLINE - SECONDS))
(( build_limit > 480 )) && build_limit=480
(( build_limit < 15 )) && build_limit=15 # timeout 0 would mean no limit at all
build_t0=$SECONDS
for kind in cuda-default cuda-strict cpu; do
  log=$LOGS/build-$kind.log
  echo "\$ ${BUILD_CMD[$kind]}  > $log"
  # Word splitting of the command is intended (paths without spaces: $PY is checked below).
  # shellcheck disable=SC2086
  with_limit "$build_limit" ${BUILD_CMD[$kind]} >"$log" 2>&1 &
  BUILD_PID[$kind]=$!
done
for kind in cuda-default cuda-strict cpu; do
  rc=0
  wait "${BUILD_PID[$kind]}" || rc=$?
  log=$LOGS/build-$kind.log
  echo "--- build $kind (exit $rc, $((SECONDS - build_t0)) s so far): $log"
  if (( rc == 0 )); then
    tail -n 6 "$log" | cut -c1-400
    record PASS "build $kind" "done at +$((SECONDS - build_t0)) s"
  else
    tail -n 60 "$log" | cut -c1-600
    record FAIL "build $kind" "exit $rc, log $log"
  fi
done
[[ "$PY" != *" "* ]] || record FAIL "build" "the python path '$PY' contains a space"

step "doctor --verbose --require-cuda" 120 "${SG[@]}" doctor --verbose --require-cuda

# --- the cuda-marked tests, against each build; any skip fails -------------------------------------
PYTEST=("$PY" -m pytest -m cuda -rs -q -p no:cacheprovider tests)
if (( REHEARSE )); then
  step "cuda tests: collect (rehearsal: nothing can run)" 120 "${PYTEST[@]}" --collect-only
else
  for variant in default strict; do
    strict=0
    [[ $variant == strict ]] && strict=1
    xml=$LOGS/pytest-$variant.xml
    step "cuda tests ($variant build)" 300 env STYLEGEN_CUDA_STRICT=$strict "${PYTEST[@]}" --junitxml="$xml"
    step "no skipped cuda tests ($variant build)" 30 "$PY" scripts/gpu_check.py skips "$xml"
  done
fi

# --- the CLI on the device ----------------------------------------------------------------------------
name="stylegen sample --device $DEV"
step "$name" 180 "${SG[@]}" sample --seeds 0-15 --device "$DEV" --outdir "$W/sample"
expect "$name" "16 PNGs in $W/sample" test "$(count "$W"/sample/seed*.png)" -eq 16
expect "$name" "no fallback to the reference ops" no_fallback

name="stylegen mix --device $DEV"
step "$name" 120 "${SG[@]}" mix --device "$DEV" --out "$W/mix.png"
expect "$name" "$W/mix.png written" test -s "$W/mix.png"
expect "$name" "no fallback to the reference ops" no_fallback

name="stylegen project --device $DEV"
step "$name" 180 "${SG[@]}" project --target "$W/sample/seed0000.png" --distance offline \
  --steps "$PROJECT_STEPS" --device "$DEV" --outdir "$W/project"
expect "$name" "proj.png and ws.npz in $W/project" test "$(count "$W"/project/proj.png "$W"/project/ws.npz)" -eq 2
expect "$name" "no fallback to the reference ops" no_fallback

name="stylegen train --device $DEV"
step "$name" 240 "${SG[@]}" train --data "$W/sample" --outdir "$W/train" --cfg cpu64 --kimg "$TRAIN_KIMG" \
  --batch 16 --device "$DEV"
snapshot=$(ls -t "$W"/train/network-snapshot-*.pkl 2>/dev/null | head -n 1 || true)
expect "$name" "a snapshot in $W/train" test -n "$snapshot"
expect "$name" "no fallback to the reference ops" no_fallback
if [[ -n "$snapshot" ]]; then
  name="stylegen sample from the trained snapshot"
  step "$name" 120 "${SG[@]}" sample --network "$snapshot" --seeds 0-3 --device "$DEV" --outdir "$W/trained"
  expect "$name" "4 PNGs in $W/trained" test "$(count "$W"/trained/seed*.png)" -eq 4
  rm -f "$W"/train/network-snapshot-*.pkl # tens of MB each: keep the logs dir small to copy back
fi

# --- throughput ---------------------------------------------------------------------------------------
step "throughput: generator img/s and training s/iter, $DEV vs ref" 240 \
  "$PY" scripts/gpu_check.py bench --device "$DEV" ${BENCH_ARGS[@]+"${BENCH_ARGS[@]}"}

trap - ERR
summary
