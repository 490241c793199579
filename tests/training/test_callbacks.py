"""Trainer callbacks shared by the stages, on a real (tiny) Trainer."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.mark.parametrize("skip", [False, True])
def test_skip_final_checkpoint_keeps_the_periodic_ones_and_drops_the_last(
    tiny_model_dir: Path, tmp_path: Path, skip: bool
) -> None:
    from transformers.trainer_utils import SaveStrategy

    from components.training.callbacks import SkipFinalCheckpoint
    from tests.training.sft.test_sft_trainer import make_trainer

    trainer = make_trainer(tiny_model_dir, tmp_path, compact=True, max_steps=3)
    trainer.args.save_strategy = SaveStrategy.STEPS
    trainer.args.save_steps = 2
    if skip:
        trainer.add_callback(SkipFinalCheckpoint())
    trainer.train()
    saved = sorted(p.name for p in Path(trainer.args.output_dir).glob("checkpoint-*"))
    # transformers saves at step 2 (save_steps) and again when training ends (step 3).
    assert saved == (["checkpoint-2"] if skip else ["checkpoint-2", "checkpoint-3"])
    assert trainer.state.global_step == 3
