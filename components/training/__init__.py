"""SFT warm start and MENTOR RL (stages 3 and 4)."""
