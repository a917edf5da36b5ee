"""Selection core: candidates -> pairs -> margins -> metric scores -> top-k, with stats."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from selfplay.config import SelectionConfig
from selfplay.data.records import Completion, Judgment, Pair, Prompt, SequenceLogprob
from selfplay.errors import SelfplayError
from selfplay.selection.metrics import MetricParams, resolve_k, score, top_k
from selfplay.selection.pairing import Candidate, make_pairs


def implicit_reward(
    logprob_sum: float, num_tokens: int, form: str, reference_sum: float | None = None
) -> float:
    """avg_logp = sum / |y| (end-of-sequence included); sum_logp = sum; dpo = sum - reference sum.
    No tokens (or no reference for dpo) -> NaN, which pairing drops and counts."""
    if form == "sum_logp":
        return logprob_sum
    if form == "dpo":
        return logprob_sum - reference_sum if reference_sum is not None else math.nan
    return logprob_sum / num_tokens if num_tokens > 0 else math.nan


def candidates(
    completions: list[Completion],
    judgments: list[Judgment],
    form: str,
    logprobs: dict[tuple[str, int], SequenceLogprob] | None = None,
) -> list[Candidate]:
    """Join completions with rewards and log-probs (the logprobs stage's records when given)."""
    rewards = {(j.prompt_id, j.sample_index): j.reward for j in judgments}
    out = []
    for c in completions:
        key = (c.prompt_id, c.sample_index)
        if logprobs is not None:
            r = logprobs[key]
            value = implicit_reward(r.logprob_sum, r.num_tokens, form, r.reference_logprob_sum)
        else:
            value = implicit_reward(c.logprob_sum, c.num_tokens, form)
        out.append(Candidate(c.prompt_id, c.sample_index, c.text, rewards[key], value, c.truncated))
    return out


def select_pairs(pairs: list[Pair], cfg: SelectionConfig, seed_salt: int = 0) -> list[Pair]:
    """Score the whole pool and mark the top-k kept; every pair gets its score and rank."""
    if not pairs:
        return []
    d_ex = np.array([p.explicit_margin for p in pairs])
    d_im = np.array([p.implicit_margin for p in pairs])
    params = MetricParams(weight=cfg.weight, implicit_abs=cfg.implicit_abs, seed=cfg.seed + seed_salt)
    scores = score(str(cfg.metric), d_ex, d_im, params)
    ids = [p.pair_id for p in pairs]
    ranked = top_k(scores, ids, len(pairs))
    k = resolve_k(len(pairs), cfg.ratio, cfg.count)
    rank_of = {i: r for r, i in enumerate(ranked)}
    return [
        replace(p, score=float(scores[i]), rank=rank_of[i], kept=rank_of[i] < k) for i, p in enumerate(pairs)
    ]


def selection_stats(pairs: list[Pair]) -> dict[str, float]:
    """Pool and kept sizes, and the margin distributions before (pool) and after (kept) selection."""
    kept = [p for p in pairs if p.kept]
    stats: dict[str, float] = {"pool": len(pairs), "kept": len(kept)}
    for name, group in (("pool", pairs), ("kept", kept)):
        if not group:
            continue
        d_ex = np.array([p.explicit_margin for p in group])
        d_im = np.array([p.implicit_margin for p in group])
        stats[f"{name}_mean_explicit_margin"] = float(d_ex.mean())
        stats[f"{name}_mean_implicit_margin"] = float(d_im.mean())
        stats[f"{name}_mean_abs_implicit_margin"] = float(np.abs(d_im).mean())
        for q, ex, im in zip(
            ("p10", "p50", "p90"), np.quantile(d_ex, [0.1, 0.5, 0.9]), np.quantile(d_im, [0.1, 0.5, 0.9])
        ):
            stats[f"{name}_explicit_margin_{q}"] = float(ex)
            stats[f"{name}_implicit_margin_{q}"] = float(im)
    return stats


def pair_and_select(
    prompts: list[Prompt],
    cands: list[Candidate],
    cfg: SelectionConfig,
    iteration: int,
    earlier: list[Pair] = (),  # type: ignore[assignment]
) -> tuple[list[Pair], dict[str, float]]:
    """Pair this iteration's candidates and select over the pool: these pairs, plus `earlier` ones
    (re-scored together with them) when `selection.pool=all`."""
    if cfg.on_nonfinite == "error":
        bad = next((c for c in cands if not (math.isfinite(c.reward) and math.isfinite(c.implicit))), None)
        if bad is not None:
            raise SelfplayError(
                f"selection: prompt {bad.prompt_id} response {bad.sample_index} has reward {bad.reward} and "
                f"implicit reward {bad.implicit} (selection.on_nonfinite=error; use drop to skip them)"
            )
    pairs, pair_counts = make_pairs(
        prompts, cands, iteration, cfg.exclude_truncated, str(cfg.pairing), cfg.min_margin, cfg.seed
    )
    pool = [replace(p, score=None, rank=None, kept=False) for p in earlier] + pairs
    selected = select_pairs(pool, cfg, seed_salt=iteration)
    return selected, {**pair_counts, "pool_from_earlier": len(earlier), **selection_stats(selected)}
