"""Per-prompt pairing of judged responses into (chosen, rejected), with every drop counted."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

from selfplay.data.records import Pair, Prompt


@dataclass(frozen=True)
class Candidate:
    """One judged response with its implicit reward under pi_t."""

    prompt_id: str
    sample_index: int
    text: str
    reward: float
    implicit: float
    truncated: bool = False


def best_vs_worst(cands: list[Candidate]) -> tuple[Candidate, Candidate]:
    """Chosen = highest reward, rejected = lowest; ties go to the lowest sample index."""
    chosen = min(cands, key=lambda c: (-c.reward, c.sample_index))
    rejected = min(cands, key=lambda c: (c.reward, c.sample_index))
    return chosen, rejected


def make_pairs(
    prompts: list[Prompt], candidates: list[Candidate], iteration: int, exclude_truncated: bool = False
) -> tuple[list[Pair], dict[str, int]]:
    """One best-vs-worst pair per prompt. Dropped and counted: non-finite rewards or implicit
    rewards, truncated responses (if excluded), prompts with < 2 responses left, all-tied rewards,
    identical chosen/rejected text."""
    counts: Counter[str] = Counter()
    by_prompt: dict[str, list[Candidate]] = {}
    for c in candidates:
        if not (math.isfinite(c.reward) and math.isfinite(c.implicit)):
            counts["nonfinite_responses"] += 1
            continue
        if exclude_truncated and c.truncated:
            counts["truncated_responses"] += 1
            continue
        by_prompt.setdefault(c.prompt_id, []).append(c)
    pairs = []
    for p in prompts:
        cands = by_prompt.get(p.prompt_id, [])
        if len(cands) < 2:
            counts["too_few_responses"] += 1
            continue
        chosen, rejected = best_vs_worst(cands)
        if chosen.reward == rejected.reward:
            counts["all_tied"] += 1
            continue
        if chosen.text == rejected.text:
            counts["identical"] += 1
            continue
        pairs.append(
            Pair(
                pair_id=f"{iteration:03d}-{p.prompt_id}",
                prompt_id=p.prompt_id,
                messages=p.messages,
                chosen=chosen.text,
                rejected=rejected.text,
                chosen_index=chosen.sample_index,
                rejected_index=rejected.sample_index,
                chosen_reward=chosen.reward,
                rejected_reward=rejected.reward,
                chosen_implicit=chosen.implicit,
                rejected_implicit=rejected.implicit,
                explicit_margin=chosen.reward - rejected.reward,
                implicit_margin=chosen.implicit - rejected.implicit,
                iteration=iteration,
            )
        )
    stats = {"prompts": len(prompts), "pairs": len(pairs), **dict(counts)}
    return pairs, stats
