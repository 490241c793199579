"""Token generation shared by evaluation, the ``hf`` teacher and GRPO rollouts (one engine)."""
