"""The multi-GPU launch configs load in accelerate as the documented modes."""

from __future__ import annotations

from pathlib import Path

import pytest

ACCELERATE = Path(__file__).resolve().parents[2] / "infra" / "accelerate"


@pytest.mark.parametrize(("name", "kind"), [("ddp.yaml", "MULTI_GPU"), ("zero2.yaml", "DEEPSPEED")])
def test_config_loads_as_cluster_config(name: str, kind: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    config = load_config_from_file(str(ACCELERATE / name))
    assert isinstance(config, ClusterConfig)
    assert config.distributed_type.name == kind
    assert config.num_processes > 1 and config.num_machines == 1
    assert config.mixed_precision == "bf16"
    if kind == "DEEPSPEED":
        assert config.deepspeed_config["zero_stage"] == 2
        # Left to the trainer (sft.grad_accum / rl.grad_accum); a fixed value here would have to match.
        assert "gradient_accumulation_steps" not in config.deepspeed_config
