"""Pairing, margins, the selection metric and top-k."""

from __future__ import annotations

from dataclasses import dataclass

from selfplay.schema.choices import ImplicitReward, Nonfinite, SelectionPool


@dataclass
class SelectionConfig:
    """Pairing per prompt, margins, the selection metric and top-k."""

    pairing: str = "best_vs_worst"
    """best_vs_worst: highest vs lowest reward; best_vs_random: highest vs a random other;
    random_pair: two random responses; all_pairs: every pair whose margin >= min_margin; or
    "module:attr" for your own rule (selfplay/selection/pairing.py: a PairingSpec, or a function
    (candidates, rng, min_margin) -> [(chosen, rejected), ...])."""
    min_margin: float = 0.0
    """all_pairs only: smallest explicit margin a pair needs (ties never pair)."""
    exclude_truncated: bool = False
    """Drop responses cut at max_tokens before pairing."""
    keep_ties: bool = False
    """Keep a prompt whose responses all tie in reward as a pair with margin 0 (its last response chosen,
    its first rejected), as the reference code does; false drops and counts it (`tied`). Offline
    selection keeps a given pair whose rewards tie either way (the metrics rank it)."""
    on_nonfinite: Nonfinite = Nonfinite.drop
    """NaN/inf rewards or log-probs: drop and count them, or stop with an error."""
    pool: SelectionPool = SelectionPool.iteration
    """Rank this iteration's pairs (iteration) or all pairs of this and earlier iterations (all)."""
    metric: str = "alignment_potential"
    """Score used to rank pairs (higher = kept): alignment_potential, explicit, explicit_small,
    implicit_small, implicit_large, random; or "module:attr" for your own (selfplay/selection/metrics.py:
    a MetricSpec, or a function (explicit margins, implicit margins, MetricParams) -> scores)."""
    weight: float = 1.0
    """w in M_AP = z(d_ex) - w * z(|d_im|)."""
    implicit_abs: bool = True
    """Use |d_im| (true) or the signed d_im (false) in alignment potential."""
    implicit_reward: ImplicitReward = ImplicitReward.avg_logp
    """avg_logp / sum_logp: mean / sum of response-token log-probs under pi_t; dpo: log pi_t(y|x) -
    log pi_0(y|x) (needs train.reference=initial; pi_0's log-probs come from a teacher-forced pass). dpo
    is refused with a metric that reads it: at iteration 0 pi_t = pi_0 and it is identically zero."""
    ratio: float | None = 0.4
    """Keep round(ratio * pool) pairs; used when `count` is null (the paper: 0.4)."""
    count: int | None = None
    """Keep exactly this many pairs (at most the pool)."""
    seed: int = 0
    """Seed of the `random` metric and of the random pairing strategies."""
