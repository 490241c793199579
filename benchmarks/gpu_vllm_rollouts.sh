#!/usr/bin/env bash
# What a session with a lent GPU runs (< 5 min on one H100/H200 with the venv ready and SmolLM2 prepared):
# the GPU-only test (one GRPO step with colocated vLLM) and the rollout throughput table,
# transformers vs vLLM, written to $OUT (or ./gpu-results).
#   benchmarks/gpu_vllm_rollouts.sh
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-results}
mkdir -p "$out"
py=${PYTHON:-.venv/bin/python}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/gpu.txt"
$py -c "import vllm; print('vllm', vllm.__version__)" 2>&1 | tail -1 | tee -a "$out/gpu.txt"
timeout 150 $py -m pytest tests/training/test_vllm_gpu.py -q -rs 2>&1 | tail -15 | tee "$out/tests.txt"
timeout 240 $py benchmarks/gpu_vllm_rollouts.py --profile gpu --rounds 3 --json "$out/rollouts.json" \
  2>&1 | tail -12 | tee "$out/rollouts.md"
