"""Stage ``rl``: MENTOR and its baselines as TRL GRPO with real multi-turn tool execution.

``stage`` runs an arm; ``rewards`` holds the reward functions (plain callables, as TRL
expects); ``env`` the tool environment of a rollout; ``data`` the prompts;
``grpo_trainer`` our GRPOTrainer subclass; ``callbacks``/``curves`` the training history.
"""
