"""Evolve core: pick parents, ask the policy for rewrites, clean and filter them into new prompts."""

from __future__ import annotations

import math
import random
from collections import Counter

from selfplay.config import EvolveConfig
from selfplay.data.prompts import prompt_id_for
from selfplay.data.records import Completion, Pair, Prompt
from selfplay.evolve.filters import filter_rewrites, strip_preamble
from selfplay.evolve.templates import render


def choose_parents(prompts: list[Prompt], pairs: list[Pair], cfg: EvolveConfig) -> list[Prompt]:
    """All prompts, or those of the top `top_fraction` of scored seed pairs (best first)."""
    if cfg.parents == "all":
        return prompts
    scored = sorted((p for p in pairs if p.score is not None), key=lambda p: (p.rank, p.pair_id))
    top = {p.prompt_id for p in scored[: math.ceil(cfg.top_fraction * len(scored))]}
    return [p for p in prompts if p.prompt_id in top]


def rewrite_requests(
    parents: list[Prompt], templates: dict[str, str], cfg: EvolveConfig, seed: int, iteration: int
) -> list[tuple[Prompt, Prompt, str]]:
    """(parent, rewrite-instruction prompt, strategy) triples; strategies drawn per parent, seeded."""
    out = []
    names = list(templates)
    for parent in parents:
        rng = random.Random(f"{seed}/{iteration}/{parent.prompt_id}/evolve")
        for strategy in rng.sample(names, min(cfg.rewrites_per_prompt, len(names))):
            instruction = render(templates[strategy], parent.messages[-1]["content"])
            request = Prompt(
                f"{parent.prompt_id}~{strategy}", [{"role": "user", "content": instruction}], iteration
            )
            out.append((parent, request, strategy))
    return out


def evolved_prompts(
    triples: list[tuple[Prompt, Prompt, str]],
    rewrites: dict[str, Completion],
    cfg: EvolveConfig,
    too_long,
    iteration: int,
) -> tuple[list[Prompt], list[dict], Counter]:
    """Clean and filter the rewrites; returns the new prompts, one row per rewrite (kept or why not),
    and the counts."""
    counts: Counter = Counter()
    cleaned, truncated = [], []
    for parent, request, _ in triples:
        c = rewrites.get(request.prompt_id)
        text = c.text if c is not None else ""
        truncated.append(c is not None and c.truncated)
        if cfg.preamble == "strip":
            text, stripped = strip_preamble(text)
            counts["preamble_stripped"] += stripped
        cleaned.append((parent.messages[-1]["content"], text))
    existing = [parent.messages[-1]["content"] for parent, _, _ in triples]
    keep, drops = filter_rewrites(
        cleaned, existing, cfg.min_length_ratio, cfg.max_length_ratio, str(cfg.preamble), too_long, truncated
    )
    counts.update(drops)
    kept = set(keep)
    prompts, rows = [], []
    for i, ((parent, _, strategy), (_, text)) in enumerate(zip(triples, cleaned)):
        rows.append({"parent_id": parent.prompt_id, "strategy": strategy, "rewrite": text, "kept": i in kept})
        if i in kept:
            system = [m for m in parent.messages[:-1] if m["role"] == "system"]
            messages = [*system, {"role": "user", "content": text}]
            prompts.append(
                Prompt(
                    prompt_id_for(messages),
                    messages,
                    iteration,
                    "evolved",
                    "evolved",
                    parent.prompt_id,
                    strategy,
                )
            )
    return prompts, rows, counts
