"""Stage 1: teacher trajectories (scripted expert, local HF model or OpenAI-compatible endpoint)."""
