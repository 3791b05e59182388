#!/usr/bin/env bash
# benchmarks/bench_gpu.py on one GPU machine without network, in one command of at most 8 minutes:
# installs the wheels of .whl/ (made by scripts/device/fetch_wheels.sh) into /tmp/site, runs the
# benchmark on omniactor from this working tree (PYTHONPATH=src, nothing built), and keeps its log
# and JSON under $OUT (default outputs/bench_gpu). Extra arguments go to bench_gpu.py.
#
#   bash scripts/device/bench_gpu.sh                       # qwen2-vl-7b, bf16, SDPA
#   BENCH_GPU_PRESET=qwen2.5-vl-7b bash scripts/device/bench_gpu.sh --batch 16
#
# Time: installing the wheels takes seconds; the benchmark starts no new measurement after
# BENCH_GPU_BUDGET_S (default 300 s) and is interrupted (SIGINT: it still prints what it measured)
# at BENCH_GPU_LIMIT_S (default 390 s), so the whole command ends inside 480 s.
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-outputs/bench_gpu}
mkdir -p "$OUT"
LOG="$OUT/bench_gpu.log"
PRESET=${BENCH_GPU_PRESET:-qwen2-vl-7b}
BUDGET=${BENCH_GPU_BUDGET_S:-300}
LIMIT=${BENCH_GPU_LIMIT_S:-390}
PYTHON=${PYTHON:-python3}
: >"$LOG"
say() { echo "$@" | tee -a "$LOG"; }

say "== $(date -u +%FT%TZ) $(uname -m), $("$PYTHON" --version 2>&1)"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,temperature.gpu --format=csv 2>&1 | tee -a "$LOG"
if compgen -G ".whl/*.whl" >/dev/null; then
    say "== installing $(ls .whl | tr '\n' ' ')"
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
        .whl/*.whl 2>&1 | tee -a "$LOG"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { say "wheel install failed"; exit 1; }
    export PYTHONPATH=/tmp/site
else
    say "== no .whl/ folder: using the machine's packages (bash scripts/device/fetch_wheels.sh makes it)"
fi
export PYTHONPATH="${PYTHONPATH:+$PYTHONPATH:}$PWD/src"
export PYTHONUNBUFFERED=1 PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True TOKENIZERS_PARALLELISM=false
"$PYTHON" - <<'PY' 2>&1 | tee -a "$LOG"
import importlib.metadata as m, torch
print("torch", torch.__version__, "cuda", torch.version.cuda, "gpu", torch.cuda.is_available() and torch.cuda.get_device_name(0))
for name in ("transformers", "tokenizers", "peft", "accelerate", "huggingface_hub", "safetensors", "regex", "numpy", "pillow"):
    try:
        print(f"{name} {m.version(name)}")
    except m.PackageNotFoundError:
        print(f"{name} MISSING")
import omniactor.agent, omniactor.models.presets, omniactor.training.loop  # noqa: F401  (fails here, not later)
print("omniactor from", omniactor.agent.__file__)
PY
[ "${PIPESTATUS[0]}" -eq 0 ] || { say "the environment check failed"; exit 1; }

say "== bench_gpu.py --preset $PRESET --random-init --dtype bf16 --budget-s $BUDGET $*"
timeout -s INT -k 30 "$LIMIT" "$PYTHON" benchmarks/bench_gpu.py --preset "$PRESET" --random-init --dtype bf16 \
    --budget-s "$BUDGET" --out "$OUT/bench_gpu.json" "$@" 2>&1 | tee -a "$LOG"
rc=${PIPESTATUS[0]}
nvidia-smi --query-gpu=clocks.sm,temperature.gpu,memory.used --format=csv 2>&1 | tee -a "$LOG"
say "== exit $rc; JSON in $OUT/bench_gpu.json"
exit "$rc"
