"""Evolve-then-select: the policy rewrites prompts; filters keep the usable rewrites."""
