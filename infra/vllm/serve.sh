#!/usr/bin/env bash
# TRL's vLLM generation server for `rl.use_vllm=true rl.vllm_mode=server` (GRPO rollouts on GPUs of their own).
#
#   CUDA_VISIBLE_DEVICES=7 infra/vllm/serve.sh outputs/gpu/sft/model            # 1 GPU serves, port 8000
#   CUDA_VISIBLE_DEVICES=0-6 mentor stage rl --profile gpu \
#       --set rl.use_vllm=true --set rl.vllm_mode=server --set orchestration.num_processes=7
#
# The server must serve the model RL starts from (the SFT model, or the base student with sft.enabled=false)
# and stay up for the whole RL stage: the trainer pushes its weights to it after every optimizer step (NCCL,
# group port 51216). Needs the `vllm` package (not in the CPU lock: `pip install vllm` on the GPU image).
# Settings: $1 model dir, $2 port (rl.vllm_server_port, default 8000), $3 host (rl.vllm_server_host, default
# 127.0.0.1; 0.0.0.0 to serve another pod/node), VLLM_TP / VLLM_DP tensor/data parallel GPUs, extra args after.
set -euo pipefail
model=${1:?usage: infra/vllm/serve.sh MODEL_DIR [PORT] [HOST] [extra trl vllm-serve args]}
port=${2:-8000}
host=${3:-127.0.0.1}
shift $(( $# < 3 ? $# : 3 ))
if ! python -c "import vllm" 2>/dev/null; then
  echo "error: the vllm package is not installed in $(command -v python); pip install vllm on the GPU machine" >&2
  exit 2
fi
exec trl vllm-serve --model "$model" --host "$host" --port "$port" \
  --tensor-parallel-size "${VLLM_TP:-1}" --data-parallel-size "${VLLM_DP:-1}" "$@"
