"""Sampling K responses per prompt with the current policy: vLLM (main path) or transformers."""
