"""Held-out evaluation: sample each policy on the held-out prompts with the same seeds, judge the
samples, and report mean reward and length per policy."""

from __future__ import annotations

from typing import Any

from selfplay.config import GenerateConfig, ModelConfig
from selfplay.data.records import Prompt
from selfplay.judge.judging import Judge, mean_reward

HELDOUT_SALT = "heldout"
"""Seed salt of held-out sampling: the same for every policy, so comparisons use common random numbers."""


def evaluate_policies(
    policies: dict[str, str],
    heldout: list[Prompt],
    gen: GenerateConfig,
    model: ModelConfig,
    num_samples: int,
    iteration: int,
    judge: Judge,
    label: str = "evaluate",
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Stats (`heldout_reward_<name>`, `heldout_tokens_<name>` per policy) and one row per sample."""
    from selfplay.generate.sample import sample_completions

    stats: dict[str, Any] = {"heldout_prompts": len(heldout)}
    rows: list[dict[str, Any]] = []
    for name, path in policies.items():
        completions, _ = sample_completions(
            path, heldout, gen, model, HELDOUT_SALT, num_samples, iteration, f"{label} ({name}: sampling)"
        )
        judgments = judge(heldout, completions, f"{label} ({name}: judging)")
        stats[f"heldout_reward_{name}"] = mean_reward(judgments)
        stats[f"heldout_tokens_{name}"] = sum(c.num_tokens for c in completions) / max(1, len(completions))
        rows += [
            {
                "policy": name,
                "prompt_id": c.prompt_id,
                "sample_index": c.sample_index,
                "text": c.text,
                "reward": j.reward,
            }
            for c, j in zip(completions, judgments)
        ]
    return stats, rows
