"""Selection core: candidates -> pairs -> margins -> metric scores -> top-k, with stats."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import numpy as np

from selfplay.config import SelectionConfig
from selfplay.data.records import Completion, Judgment, Pair, Prompt, SequenceLogprob
from selfplay.errors import SelfplayError
from selfplay.selection.implicit import implicit_form
from selfplay.selection.metrics import MetricParams, score_rank_keep
from selfplay.selection.pairing import Candidate, make_pairs


def implicit_reward(
    logprob_sum: float, num_tokens: int, form: str, reference_sum: float | None = None
) -> float:
    """A response's implicit reward in `form` (selfplay/selection/implicit.py)."""
    return implicit_form(form).value(logprob_sum, num_tokens, reference_sum)


def candidates(
    completions: list[Completion],
    judgments: list[Judgment],
    form: str,
    logprobs: dict[tuple[str, int], SequenceLogprob] | None = None,
) -> list[Candidate]:
    """Join completions with rewards and log-probs (the logprobs stage's records when given)."""
    rewards = {(j.prompt_id, j.sample_index): j.value for j in judgments}
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


class ScoredPool:
    """A pool of pairs with their scores, ranks and kept flags held column-wise (numpy arrays beside the
    unscored Pair records): scoring and ranking a million pairs builds no per-pair objects. Iterating
    yields the scored Pair records; `rows()` yields them as JSON-ready dicts for writing."""

    def __init__(self, pairs: list[Pair], scores: np.ndarray, rank: np.ndarray, kept: np.ndarray):
        self.pairs, self.scores, self.rank, self.kept = pairs, scores, rank, kept

    def __len__(self) -> int:
        return len(self.pairs)

    def __iter__(self):
        for p, s, r, k in zip(self.pairs, self.scores.tolist(), self.rank.tolist(), self.kept.tolist()):
            yield replace(p, score=s, rank=r, kept=k)

    def rows(self):
        for p, s, r, k in zip(self.pairs, self.scores.tolist(), self.rank.tolist(), self.kept.tolist()):
            row = dict(p.__dict__)  # field order, like asdict, without its deep copy
            row["score"], row["rank"], row["kept"] = s, r, k
            yield row

    def kept_pairs(self) -> list[Pair]:
        """The kept pairs, scored, best first."""
        idx = np.flatnonzero(self.kept)
        idx = idx[np.argsort(self.rank[idx], kind="stable")]
        return [
            replace(self.pairs[i], score=float(self.scores[i]), rank=int(self.rank[i]), kept=True)
            for i in idx
        ]


def margins(pairs: list[Pair]) -> tuple[np.ndarray, np.ndarray]:
    """The explicit and implicit margins of the pairs as two arrays."""
    n = len(pairs)
    return (
        np.fromiter((p.explicit_margin for p in pairs), dtype=float, count=n),
        np.fromiter((p.implicit_margin for p in pairs), dtype=float, count=n),
    )


def select_pool(pairs: list[Pair], cfg: SelectionConfig, seed_salt: int = 0) -> ScoredPool:
    """Score the whole pool and mark the top-k kept; every pair gets its score and rank."""
    d_ex, d_im = margins(pairs)
    params = MetricParams(weight=cfg.weight, implicit_abs=cfg.implicit_abs, seed=cfg.seed + seed_salt)
    scores, rank, kept = score_rank_keep(
        d_ex, d_im, str(cfg.metric), params, cfg.ratio, cfg.count, lambda: [p.pair_id for p in pairs]
    )
    return ScoredPool(pairs, scores, rank, kept)


def select_pairs(pairs: list[Pair], cfg: SelectionConfig, seed_salt: int = 0) -> list[Pair]:
    """`select_pool` as scored Pair records (for small pools and tests)."""
    return list(select_pool(pairs, cfg, seed_salt))


def selection_stats(pool: ScoredPool) -> dict[str, Any]:
    """Pool and kept sizes, and the margin distributions before (pool) and after (kept) selection."""
    return margin_stats(*margins(pool.pairs), pool.kept)


def margin_stats(d_ex: np.ndarray, d_im: np.ndarray, kept: np.ndarray) -> dict[str, Any]:
    """`selection_stats` of a pool given as its margin arrays and kept flags."""
    n = len(d_ex)
    stats: dict[str, Any] = {"pool": n, "kept": int(kept.sum())}
    for name, mask in (("pool", np.ones(n, dtype=bool)), ("kept", kept)):
        if not mask.any():
            continue
        ex, im = d_ex[mask], d_im[mask]
        stats[f"{name}_mean_explicit_margin"] = float(ex.mean())
        stats[f"{name}_mean_implicit_margin"] = float(im.mean())
        stats[f"{name}_mean_abs_implicit_margin"] = float(np.abs(im).mean())
        for q, a, b in zip(
            ("p10", "p50", "p90"), np.quantile(ex, [0.1, 0.5, 0.9]), np.quantile(im, [0.1, 0.5, 0.9])
        ):
            stats[f"{name}_explicit_margin_{q}"] = float(a)
            stats[f"{name}_implicit_margin_{q}"] = float(b)
    return stats


def pair_and_select(
    prompts: list[Prompt],
    cands: list[Candidate],
    cfg: SelectionConfig,
    iteration: int,
    earlier: list[Pair] = (),  # type: ignore[assignment]
) -> tuple[ScoredPool, dict[str, Any]]:
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
        prompts,
        cands,
        iteration,
        cfg.exclude_truncated,
        str(cfg.pairing),
        cfg.min_margin,
        cfg.seed,
        cfg.keep_ties,
    )
    selected = select_pool([*earlier, *pairs], cfg, seed_salt=iteration)  # earlier pairs are re-scored
    return selected, {**pair_counts, "pool_from_earlier": len(earlier), **selection_stats(selected)}
