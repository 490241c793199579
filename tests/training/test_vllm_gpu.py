"""vLLM rollouts: the params reach TRL's GRPOConfig (everywhere); a real GRPO step with colocated vLLM (GPU only).

The GPU test skips with its reason on CPU machines and where the ``vllm`` package
is missing (it is not in the CPU lock); ``benchmarks/gpu_vllm_rollouts.sh`` runs it
on a lent GPU together with the rollout throughput comparison.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from components.config import Params, load_params, run_paths
from components.errors import StageError

REPO = Path(__file__).resolve().parents[2]


def _smoke(tmp_path: Path, *overrides: str) -> Params:
    return load_params(REPO / "params.yaml", "smoke", [f"project.output_dir={tmp_path}", *overrides])


def test_vllm_modes_reach_grpo_config(tmp_path: Path) -> None:
    from trl import GRPOConfig

    from components.training.rl.stage import vllm_kwargs_for

    server = _smoke(tmp_path, "rl.vllm_mode=server", "rl.vllm_server_host=10.0.0.7", "rl.vllm_server_port=8011")
    config = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, **vllm_kwargs_for(server))
    assert (config.vllm_mode, config.vllm_server_host, config.vllm_server_port) == ("server", "10.0.0.7", 8011)
    colocate = _smoke(tmp_path, "rl.vllm_gpu_memory_utilization=0.45")
    config = GRPOConfig(output_dir=str(tmp_path), use_cpu=True, **vllm_kwargs_for(colocate))
    assert (config.vllm_mode, config.vllm_gpu_memory_utilization) == ("colocate", 0.45)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on machines without a GPU")
def test_vllm_without_a_gpu_is_refused_with_the_fix(tmp_path: Path) -> None:
    from components.training.rl.stage import grpo_config

    with pytest.raises(StageError, match=r"needs a CUDA GPU and the vllm package \(server mode\).*use_vllm=false"):
        grpo_config(_smoke(tmp_path, "rl.use_vllm=true", "rl.vllm_mode=server"), tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("vllm") is None,
    reason="needs the vllm package (not in the CPU lock): pip install vllm on the GPU machine",
)
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU: vLLM rollouts do not run on CPU")
def test_one_grpo_step_with_colocated_vllm(smoke_params: Params) -> None:
    from components.teacher.stage import run_teacher_stage
    from components.training.rl.stage import train_rl

    updates = {"enabled": False}
    params = smoke_params.model_copy(update={"sft": smoke_params.sft.model_copy(update=updates)})
    params = params.model_copy(
        update={
            "rl": params.rl.model_copy(
                update={
                    "use_vllm": True,
                    "vllm_mode": "colocate",
                    "vllm_gpu_memory_utilization": 0.2,
                    "max_steps": 1,
                    "save_steps": 1,
                }
            )
        }
    )
    run_teacher_stage(params)
    summary = train_rl(params, "mentor")
    assert summary["global_step"] == 1
    assert (run_paths(params).rl_model("mentor") / "model.safetensors").exists()
    assert summary["curves"]["completions/mean_length"]["end"] > 0  # vLLM generated the rollouts
