#!/usr/bin/env bash
# The arms study on one H100/H200 in one step: SFT, then the RL arms mentor, sparse, strict and
# mentor-notool from the same SFT model, then every arm evaluated in and out of domain, with the
# paired differences, and all tables and curves copied into one folder.
#
#   benchmarks/gpu_study.sh                      # into $OUT/gpu-study-<time> (or ./gpu-study-<time>)
#   STUDY_DIR=/tmp/study benchmarks/gpu_study.sh --set rl.difficulties=[2,3]   # extra --set passes through
#   benchmarks/gpu_study.sh --params-only        # print the study's effective params and exit (no GPU needed)
#
# It refuses at once, before anything is installed or loaded, where no CUDA GPU is visible.
#
# Budget: the whole study must finish in under 9 minutes of wall time (a device lease is 15 minutes,
# start-up included). Nothing here has been measured on a GPU yet (no GPU was lent to the sessions that
# wrote it); the sizes below are estimates for SmolLM2-135M in bf16 with transformers generation (no
# vLLM: its engine start-up, ~1 min per arm, does not fit), where one decoding step of a 30-layer
# 135M model is launch-bound at roughly 10-20 ms whatever the batch:
#
#   set-up: imports, Prefect API, SmolLM2 from its wheel, 2000 scripted teacher tasks, validation  ~ 60 s
#   SFT: SFT_STEPS=120 steps x 32 rows (~1.9 epochs of the 2000 rows)                              ~ 40 s
#   RL: 4 arms x RL_STEPS=5 steps x 4 prompts x 10 rollouts (the authors' group), <= 256 tokens     ~200 s
#       (one step ~ 2-3 generation rounds of <= 256 tokens for all 40 rollouts, plus the update)
#   evaluation: 6 arms (base, SFT, the 4 RL arms) x 6 suites x EVAL_LIMIT=32 items, one batch per
#       suite, <= 160 new tokens a turn, failing episodes stopped early (eval.max_consecutive_errors)  ~180 s
#   register                                                                                        ~ 10 s
#
# so ~8.2 min by estimate. STUDY_BUDGET_S (default 510 s) is a hard stop for the pipeline: past it
# the run is interrupted and whatever exists (finished arms' curves, the stage table so far) is still
# collected, so the script ends inside 9 minutes. At these sizes each RL arm sees 20 prompts: the
# study measures step times, curves and whether the arms already separate; a longer run is sized
# from its timings (the stage table at the end of console.txt).
# Every size is an environment variable (SFT_STEPS, RL_STEPS, RL_COMPLETION, EVAL_LIMIT,
# EVAL_NEW_TOKENS, STUDY_BUDGET_S, ARMS), and further --set overrides may follow on the command line.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if [[ -z "${PYTHON:-}" ]]; then
    PYTHON="$REPO/.venv/bin/python"
    [[ -x "$PYTHON" ]] || PYTHON="$(command -v python3 || true)"
fi
ARMS="${ARMS:-mentor,sparse,strict,mentor-notool}"
SFT_STEPS="${SFT_STEPS:-120}"
RL_STEPS="${RL_STEPS:-5}"
RL_COMPLETION="${RL_COMPLETION:-256}"
EVAL_LIMIT="${EVAL_LIMIT:-32}"
EVAL_NEW_TOKENS="${EVAL_NEW_TOKENS:-160}"
STUDY_BUDGET_S="${STUDY_BUDGET_S:-510}"

die() {
    echo "gpu_study: $*" >&2
    exit 2
}

PARAMS_ONLY=0
if [[ "${1:-}" == "--params-only" ]]; then
    PARAMS_ONLY=1
    shift
fi
STAMP="$(date +%Y%m%d-%H%M%S)"
STUDY_DIR="${STUDY_DIR:-${OUT:-$REPO}/gpu-study-$STAMP}"
WORK="$STUDY_DIR/work"  # the pipeline's outputs (models included); only tables and curves are copied up
OUTPUTS="$WORK/outputs"
SETS=(
    --set "project.output_dir=$OUTPUTS"
    --set "rl.compare_arms=[${ARMS}]"
    --set "sft.max_steps=$SFT_STEPS"
    --set "rl.max_steps=$RL_STEPS"
    --set "rl.save_steps=$RL_STEPS"
    --set "rl.max_completion_length=$RL_COMPLETION"
    --set "eval.limit=$EVAL_LIMIT"
    --set "eval.max_new_tokens=$EVAL_NEW_TOKENS"
)
cd "$REPO"
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
if [[ $PARAMS_ONLY -eq 1 ]]; then
    [[ -n "$PYTHON" && -x "$PYTHON" ]] || die "no Python environment (${PYTHON:-none found}); set PYTHON=/path/to/python"
    exec "$PYTHON" -m components.cli.main params show --profile gpu "${SETS[@]}" "$@"
fi

# ---------------------------------------------------------------- refuse early without a CUDA GPU
if [[ "${CUDA_VISIBLE_DEVICES-unset}" == "" || "${CUDA_VISIBLE_DEVICES-unset}" == "-1" ]]; then
    die "no CUDA GPU: CUDA_VISIBLE_DEVICES='${CUDA_VISIBLE_DEVICES}' hides every GPU. This study needs one H100/H200; on CPU run \`make run PROFILE=cpu-demo\` (or \`mentor run --profile cpu-demo --compare\`) instead."
fi
if ! command -v nvidia-smi >/dev/null 2>&1; then
    die "no CUDA GPU: nvidia-smi is not on PATH, so no NVIDIA driver is installed here. This study needs one H100/H200; on CPU run \`make run PROFILE=cpu-demo\` (or \`mentor run --profile cpu-demo --compare\`) instead."
fi
if ! nvidia-smi -L >/dev/null 2>&1; then
    die "no CUDA GPU: nvidia-smi finds no usable GPU ($(nvidia-smi -L 2>&1 | head -n 1)). This study needs one H100/H200."
fi
[[ -n "$PYTHON" && -x "$PYTHON" ]] || die "no Python environment (${PYTHON:-none found}): install first (README, 'GPU installs': the CUDA torch build, then \`make install\`), or set PYTHON=/path/to/python"
if ! "$PYTHON" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    die "no CUDA GPU for torch: torch.cuda.is_available() is False in $PYTHON (a CPU-only torch build?). Install the CUDA build as README 'GPU installs' says: pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
fi
missing="$("$PYTHON" - <<'PY'
import importlib.util
needed = ["transformers", "trl", "peft", "datasets", "accelerate", "mlflow", "prefect", "great_expectations", "pydantic",
          "typer", "gguf", "math_verify", "bfcl_eval", "matplotlib"]
print(" ".join(name for name in needed if importlib.util.find_spec(name) is None))
PY
)"
[[ -z "$missing" ]] || die "$PYTHON lacks the pipeline's packages: $missing. Install the lock into it (README, 'GPU installs'), or point PYTHON at the environment that has them."

# ---------------------------------------------------------------- the run
mkdir -p "$STUDY_DIR"
CMD=("$PYTHON" -m components.cli.main run --profile gpu --compare "${SETS[@]}" "$@")
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}" TRANSFORMERS_OFFLINE="${TRANSFORMERS_OFFLINE:-1}"
export PREFECT_SERVER_ANALYTICS_ENABLED=false TOKENIZERS_PARALLELISM=false

{
    echo "started: $(date -Is)"
    echo "git: $(git -C "$REPO" rev-parse HEAD 2>/dev/null || echo unknown)$(git -C "$REPO" diff --quiet 2>/dev/null || echo ' (dirty)')"
    echo "command: ${CMD[*]}"
    echo "budget: ${STUDY_BUDGET_S}s"
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$PYTHON" -c 'import torch, transformers, trl; print(f"torch {torch.__version__} cuda {torch.version.cuda}, transformers {transformers.__version__}, trl {trl.__version__}")'
} | tee "$STUDY_DIR/environment.txt"
"$PYTHON" -m components.cli.main params show --profile gpu "${SETS[@]}" "$@" > "$STUDY_DIR/params.json" \
    || die "the study's params are invalid (see above); fix the --set overrides"

collect() {
    # Tables and curves into the study folder, whatever state the run ended in.
    local root="$OUTPUTS/gpu"
    mkdir -p "$STUDY_DIR/reports" "$STUDY_DIR/eval" "$STUDY_DIR/rl"
    cp -r "$root/reports/." "$STUDY_DIR/reports/" 2>/dev/null || true
    cp "$root"/eval/*.json "$STUDY_DIR/eval/" 2>/dev/null || true
    for arm_dir in "$root"/rl/*/; do
        [[ -d "$arm_dir" ]] || continue
        local arm
        arm="$(basename "$arm_dir")"
        mkdir -p "$STUDY_DIR/rl/$arm"
        cp "$arm_dir"/curves.png "$arm_dir"/history.csv "$STUDY_DIR/rl/$arm/" 2>/dev/null || true
    done
    echo "finished: $(date -Is) (exit $1, $SECONDS s)" >> "$STUDY_DIR/environment.txt"
    echo "gpu_study: tables and curves in $STUDY_DIR (console.txt, reports/, rl/<arm>/curves.png, eval/)" >&2
}

set +e
timeout --signal=INT --kill-after=30 "$STUDY_BUDGET_S" "${CMD[@]}" 2>&1 | tee "$STUDY_DIR/console.txt"
status=${PIPESTATUS[0]}
set -e
if [[ $status -eq 124 ]]; then
    echo "gpu_study: stopped at the ${STUDY_BUDGET_S}s budget; lower RL_STEPS/EVAL_LIMIT (the stage table in console.txt shows where the time went)" >&2
fi
collect "$status"
exit "$status"
