#!/usr/bin/env bash
# Download, into .whl/ (git-ignored), the wheels that scripts/device/bench_gpu.sh installs on a GPU
# machine that has no network. That machine's image has torch, accelerate, tokenizers, safetensors,
# huggingface_hub, numpy, pillow, pyyaml and tqdm; what it lacks are the versions omniactor is tested
# with here (older transformers there), so these travel as wheels for its Python 3.12 on x86-64:
#   transformers  (pure Python; needs huggingface-hub>=1.31, tokenizers>=0.23.1, safetensors>=0.8: there)
#   peft          (pure Python; the LoRA row)
#   regex         (transformers needs regex>=2025.10.22; the constrained decoding's grammars use it)
# Usage: bash scripts/device/fetch_wheels.sh   (from anywhere; needs pip and the network)
set -euo pipefail
cd "$(dirname "$0")/../.."
WHEELS=(transformers==5.24.0 peft==0.21.2 regex==2026.11.19)
PYTHON=${PYTHON:-python3}
rm -rf .whl
mkdir -p .whl
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "${WHEELS[@]}"
ls -l .whl
du -sh .whl
