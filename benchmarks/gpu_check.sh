#!/usr/bin/env bash
# One prepared GPU check for a lent CUDA machine (target: under 6 minutes on one H200):
#
#   1. the CUDA tests (every test whose name says "cuda", tests/test_gpu_path.py included);
#   2. bench_stream: StyleGAN2 256 and StyleGAN1 256, the generator alone and the stream,
#      float32 with both inference paths (rows, interpolate), bfloat16 autocast with the
#      interpolate path, with the stream / generator ratio and the labels' agreement with
#      the float32 reference;
#   3. bench_precision: labels under TF32 (the CUDA default), bfloat16 and float16 against
#      the float32 reference, on the shipped toyface-14 preset and a calibrated StyleGAN2;
#   4. bench_generator: both generators at batch 16;
#   5. a short demo: dgan-data demo --quick on the device;
#   6. (if time is left) the interpolate path through torch.compile, StyleGAN2 float32.
#
# Usage (from anywhere; the checkout is this script's parent folder):
#   bash benchmarks/gpu_check.sh                  # on the GPU machine
#   bash benchmarks/gpu_check.sh --cpu-dry-run    # the same steps, tiny, on the CPU
# Results go to ${OUT:-out}: gpu_check.json (steps, exit codes, seconds, environment;
# a skipped step as {"step": ..., "skipped": reason}),
# gpu_check.log (all output), bench_stream_fp32.json, bench_stream_bf16.json,
# bench_precision.json, bench_generator.json, demo_results.json, bench_stream_compile.json
# (at most 8 files come back from a device run, so the demo writes to a temporary folder
# and only its results.json is kept). SKIP="demo compile ..." leaves steps out (names:
# tests stream bf16 precision generator demo compile; the CPU dry run skips bf16, which
# is slow on most CPUs, unless SKIP is set).
# Wheels of packages the machine lacks (segmentation-models-pytorch for the demo, kornia,
# albumentations) are installed first from wheels/ or .whl/ in the checkout, if present.
# A failing step is recorded and the next one runs; the exit code is 1 if any failed.
set -u -o pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEVICE="${DEVICE:-cuda}"
if [ "$#" -gt 1 ]; then  # a second flag was ignored, and the whole check ran anyway
  echo "gpu_check.sh: error: $# arguments given; it takes --cpu-dry-run or nothing (see --help)" >&2
  exit 2
fi
case "${1:-}" in
  "") ;;
  --cpu-dry-run) DEVICE=cpu ;;
  -h|--help) sed -n '2,/^set -u/p' "${BASH_SOURCE[0]}" | sed '$d'; exit 0 ;;
  *) echo "gpu_check.sh: error: unknown argument '$1' (only --cpu-dry-run; see --help)" >&2; exit 2 ;;
esac
OUT="${OUT:-out}"   # relative to the folder the script is started from
mkdir -p "$OUT" && OUT="$(cd "$OUT" && pwd)" || exit 2
cd "$REPO" || exit 2
WORK="$(mktemp -d "${TMPDIR:-/tmp}/dgan-gpu-check.XXXXXX")"
# The optional step (compile) is skipped once BUDGET_S seconds have passed (recorded in
# gpu_check.json with the reason; the core steps always run); step time limits are
# multiplied by TIMEOUT_SCALE (the CPU dry run is slow: no budget, limits x 10).
if [ "$DEVICE" = cpu ]; then BUDGET_S="${BUDGET_S:-100000}"; SCALE="${TIMEOUT_SCALE:-10}"
else BUDGET_S="${BUDGET_S:-330}"; SCALE="${TIMEOUT_SCALE:-1}"; fi
LOG="$OUT/gpu_check.log"
: >"$LOG"
export NO_ALBUMENTATIONS_UPDATE=1 PYTHONUNBUFFERED=1
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
PY="${PYTHON:-python3}"
START=$(date +%s)
STEPS_JSON=""
FAILED=0

say() { echo "== $*" | tee -a "$LOG"; }

# run NAME TIMEOUT_S COMMAND...: run a step, log it, record its exit code and duration.
run() {
  local name="$1" limit="$2" t0 rc
  shift 2
  say "$name: $(echo "$*" | head -c 300 | tr '\n' ' ')"
  t0=$(date +%s)
  timeout $((limit * SCALE)) "$@" 2>&1 | tee -a "$LOG"
  rc=$?
  [ "$rc" -ne 0 ] && FAILED=1
  say "$name: exit $rc after $(($(date +%s) - t0)) s"
  STEPS_JSON="$STEPS_JSON${STEPS_JSON:+,}{\"step\": \"$name\", \"exit\": $rc, \"seconds\": $(($(date +%s) - t0))}"
}

# want KEY NAME: whether to run step NAME (KEY: its name in $SKIP). A step in $SKIP is
# skipped, and so is an optional step (OPTIONAL) once BUDGET_S has passed; the core steps
# always run. A skipped step is recorded in gpu_check.json with the reason.
OPTIONAL="compile"
want() {
  local reason="" elapsed=$(($(date +%s) - START))
  if [[ " ${SKIP:-} " == *" $1 "* ]]; then
    reason="in SKIP"
  elif [[ " $OPTIONAL " == *" $1 "* ]] && [ "$elapsed" -ge "$BUDGET_S" ]; then
    reason="optional, and the time budget BUDGET_S=$BUDGET_S s was spent ($elapsed s)"
  fi
  [ -z "$reason" ] && return 0
  say "$2: skipped ($reason)"
  STEPS_JSON="$STEPS_JSON${STEPS_JSON:+,}{\"step\": \"$2\", \"skipped\": \"$reason\"}"
  return 1
}

# ------------------------------------------------------------------ wheels
for dir in wheels .whl; do
  if compgen -G "$dir/*.whl" >/dev/null; then
    run "wheels" 120 "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \
      --upgrade --target "$WORK/site" "$dir"/*.whl
    export PYTHONPATH="$PYTHONPATH:$WORK/site"
    break
  fi
done

# ---------------------------------------------------------------- settings
if [ "$DEVICE" = cpu ]; then   # the same steps, tiny (bfloat16 is slow on most CPUs)
  PYTEST_ARGS=(-x)
  STREAM_ARGS=(--quick --batches 1 --batch-size 2 --no-naive)
  BF16_ARGS=(--arch stylegan2)
  SKIP="${SKIP-bf16}"
  COMPILE_ARGS=(--quick --batches 1 --batch-size 2 --no-naive --arch stylegan2 --impl interpolate)
  PRECISION_ARGS=(--models toyface-14 --seeds 4 --batch 4 --settings float32)
  GEN_ARGS=(--configs stylegan2-256 --batch-sizes 1 --repeats 1)
else
  PYTEST_ARGS=()
  "$PY" -c "import xdist" 2>/dev/null && PYTEST_ARGS=(-n 4)
  STREAM_ARGS=(--batch-size 16 --batches 5)
  BF16_ARGS=()
  COMPILE_ARGS=(--batch-size 16 --batches 5 --arch stylegan2 --impl interpolate)
  PRECISION_ARGS=(--models toyface-14 stylegan2-256 --seeds 32 --batch 16)
  GEN_ARGS=(--configs stylegan2-256 stylegan1-256 --batch-sizes 16 --repeats 5)
fi

run "environment" 60 "$PY" -c "
import json, platform, torch
info = {'python': platform.python_version(), 'torch': torch.__version__,
        'cuda': torch.version.cuda, 'device': '$DEVICE'}
if torch.cuda.is_available():
    info['gpu'] = torch.cuda.get_device_name(0)
for name in ('segmentation_models_pytorch', 'kornia', 'albumentations', 'xdist', 'triton'):
    try:
        info[name] = __import__(name).__version__
    except Exception as exc:
        info[name] = 'missing (' + type(exc).__name__ + ')'
print(json.dumps(info))
open('$WORK/environment.json', 'w').write(json.dumps(info))
"

# ------------------------------------------------------------------- steps
if want tests cuda-tests; then
  run "cuda-tests" 240 "$PY" -m pytest -q -p no:cacheprovider -rs "${PYTEST_ARGS[@]}" \
    --continue-on-collection-errors -k cuda tests/
fi

if want stream bench-stream-fp32; then
  run "bench-stream-fp32" 150 "$PY" benchmarks/bench_stream.py --device "$DEVICE" \
    "${STREAM_ARGS[@]}" --dtype float32 --json "$OUT/bench_stream_fp32.json"
fi
if want bf16 bench-stream-bf16; then
  run "bench-stream-bf16" 120 "$PY" benchmarks/bench_stream.py --device "$DEVICE" \
    "${STREAM_ARGS[@]}" "${BF16_ARGS[@]}" --dtype bfloat16 --impl interpolate \
    --json "$OUT/bench_stream_bf16.json"
fi

if want precision bench-precision; then
  run "bench-precision" 120 "$PY" benchmarks/bench_precision.py --device "$DEVICE" \
    "${PRECISION_ARGS[@]}" --json "$OUT/bench_precision.json"
fi

if want generator bench-generator; then
  run "bench-generator" 90 "$PY" benchmarks/bench_generator.py --device "$DEVICE" \
    "${GEN_ARGS[@]}" --json "$OUT/bench_generator.json"
fi

if want demo demo; then
  run "demo" 150 "$PY" -m dgan_data.cli demo --quick --device "$DEVICE" --no-progress \
    --out "$WORK/demo"
  [ -f "$WORK/demo/results.json" ] && cp "$WORK/demo/results.json" "$OUT/demo_results.json"
fi

if want compile bench-stream-compile; then
  run "bench-stream-compile" 180 "$PY" benchmarks/bench_stream.py --device "$DEVICE" \
    "${COMPILE_ARGS[@]}" --compile --json "$OUT/bench_stream_compile.json"
fi

# ----------------------------------------------------------------- summary
ENV_JSON="$(cat "$WORK/environment.json" 2>/dev/null || echo '{}')"
# a temp file renamed into place: an interrupted or failed write keeps the last summary
echo "{\"device\": \"$DEVICE\", \"seconds\": $(($(date +%s) - START)), \"failed\": $FAILED," \
  "\"environment\": $ENV_JSON, \"steps\": [$STEPS_JSON]}" >"$OUT/gpu_check.json.tmp" &&
  mv -f "$OUT/gpu_check.json.tmp" "$OUT/gpu_check.json" || rm -f "$OUT/gpu_check.json.tmp"
say "done in $(($(date +%s) - START)) s; results in $OUT (failed: $FAILED)"
rm -rf "$WORK"
exit "$FAILED"
