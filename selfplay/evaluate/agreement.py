"""How often a judge orders two samples of one prompt as a reference (gold) judge does: the pairwise
agreement of a learned reward model with the gold rule, on any policy's samples (its drift as the
policy moves away from the samples it was trained on)."""

from __future__ import annotations

import math
from collections.abc import Iterable
from itertools import combinations
from typing import Any


def pairwise_agreement(
    rows: Iterable[dict[str, Any]], gold: str = "gold", judge: str = "judge"
) -> dict[str, Any]:
    """Over every pair of samples of the same prompt whose `gold` rewards differ (a gold tie says
    nothing about order), the share that `judge` orders the same way (a `judge` tie counts 1/2).
    Rows: dicts with `prompt_id` and both rewards; a row without a finite value of either is left out.
    Returns `pairs`, `agreement` (NaN without pairs) and `prompts` (prompts with at least one pair)."""
    by_prompt: dict[str, list[tuple[float, float]]] = {}
    for r in rows:
        g, j = r.get(gold), r.get(judge)
        if g is None or j is None or not (math.isfinite(g) and math.isfinite(j)):
            continue
        by_prompt.setdefault(str(r["prompt_id"]), []).append((float(g), float(j)))
    score, pairs, prompts = 0.0, 0, 0
    for samples in by_prompt.values():
        counted = 0
        for (g1, j1), (g2, j2) in combinations(samples, 2):
            if g1 == g2:
                continue
            counted += 1
            score += 0.5 if j1 == j2 else float((g1 > g2) == (j1 > j2))
        pairs += counted
        prompts += counted > 0
    return {"pairs": pairs, "agreement": score / pairs if pairs else math.nan, "prompts": prompts}
