"""Per-prompt pairing of judged responses into (chosen, rejected) by a chosen strategy, with every
drop counted."""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from selfplay.data.records import Pair, Prompt
from selfplay.errors import SelfplayError


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


def _ordered(a: Candidate, b: Candidate) -> tuple[Candidate, Candidate]:
    """(higher reward, lower reward); equal rewards keep the lower sample index first."""
    return (a, b) if (-a.reward, a.sample_index) <= (-b.reward, b.sample_index) else (b, a)


PairRule = Callable[[list[Candidate], random.Random, float], list[tuple[Candidate, Candidate]]]
"""(a prompt's candidates in sample order, its seeded generator, selection.min_margin) -> (chosen,
rejected) pairs."""


@dataclass(frozen=True)
class PairingSpec:
    """A pairing rule and how its pairs are named and counted."""

    pairs: PairRule
    many: bool = False
    """Several pairs per prompt: each pair id gets its sample indices, and a prompt with none is counted
    (`no_pair_over_min_margin`)."""
    ties_as_reference: bool = False
    """With selection.keep_ties, an all-tied prompt pairs its last response (chosen) with its first
    (rejected), as the reference code's stable argsort of equal rewards does."""


def _best_vs_random(cands, rng, min_margin):
    best = best_vs_worst(cands)[0]
    return [(best, rng.choice([c for c in cands if c is not best]))]


def _all_pairs(cands, rng, min_margin):
    return [
        (a, b)
        for a in cands
        for b in cands
        if a is not b and a.reward - b.reward >= min_margin and a.reward > b.reward
    ]


PAIRINGS: dict[str, PairingSpec] = {
    "best_vs_worst": PairingSpec(lambda cands, rng, m: [best_vs_worst(cands)], ties_as_reference=True),
    "best_vs_random": PairingSpec(_best_vs_random),
    "random_pair": PairingSpec(lambda cands, rng, m: [_ordered(*rng.sample(cands, 2))]),
    "all_pairs": PairingSpec(_all_pairs, many=True),
}
"""The pairing rules, by name (`selection.pairing`); "module:attr" names your own: a PairingSpec, or a
function (candidates, rng, min_margin) -> [(chosen, rejected), ...] (taken as several pairs per prompt)."""


def pairing_spec(name: str, key: str = "selection.pairing") -> PairingSpec:
    from selfplay.plugins import resolve

    found = resolve(name, PAIRINGS, key)
    if isinstance(found, PairingSpec):
        return found
    if callable(found):
        return PairingSpec(found, many=True)
    raise SelfplayError(
        f"{key}={name}: not a PairingSpec or a function (candidates, rng, min_margin) -> pairs"
    )


def make_pairs(
    prompts: list[Prompt],
    candidates: list[Candidate],
    iteration: int,
    exclude_truncated: bool = False,
    strategy: str = "best_vs_worst",
    min_margin: float = 0.0,
    seed: int = 0,
    keep_ties: bool = False,
) -> tuple[list[Pair], dict[str, int]]:
    """Pairs per prompt under `strategy`. Dropped and counted: responses with non-finite reward or
    implicit reward, truncated responses (if excluded), prompts with < 2 responses left, pairs whose
    rewards tie (unless `keep_ties`: then kept, with margin 0, and counted as `tied_kept`, as the
    reference code keeps them; with best-vs-worst a tie means every response ties, and the pair is then
    the last response (chosen) and the first (rejected), as the reference's stable argsort of equal
    rewards gives), pairs with identical chosen and rejected text, and (all_pairs) prompts with no pair
    reaching `min_margin`. Random strategies draw from a generator seeded by (seed,
    iteration, prompt)."""
    spec = pairing_spec(strategy)
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
        rng = random.Random(f"{seed}/{iteration}/{p.prompt_id}")
        found = spec.pairs(sorted(cands, key=lambda c: c.sample_index), rng, min_margin)
        if spec.many and not found:
            counts["no_pair_over_min_margin"] += 1
        for chosen, rejected in found:
            if chosen.reward == rejected.reward:
                counts["tied_kept" if keep_ties else "tied"] += 1
                if not keep_ties:
                    continue
                if spec.ties_as_reference:  # the reference's stable argsort: last chosen, first rejected
                    order = sorted(cands, key=lambda c: c.sample_index)
                    chosen, rejected = order[-1], order[0]
            if chosen.text == rejected.text:
                counts["identical"] += 1
                continue
            suffix = f"-{chosen.sample_index}-{rejected.sample_index}" if spec.many else ""
            pairs.append(to_pair(p, chosen, rejected, iteration, f"{iteration:03d}-{p.prompt_id}{suffix}"))
    stats = {"prompts": len(prompts), "pairs": len(pairs), **dict(counts)}
    return pairs, stats


def to_pair(p: Prompt, chosen: Candidate, rejected: Candidate, iteration: int, pair_id: str) -> Pair:
    return Pair(
        pair_id=pair_id,
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
        origin=p.origin,
        parent_id=p.parent_id,
        strategy=p.strategy,
    )
