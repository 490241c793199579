"""Stage ``sft``: the supervised warm start on verified teacher trajectories (TRL ``SFTTrainer``)."""
