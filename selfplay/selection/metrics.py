"""Selection metrics over a pool of pairs (higher = kept) and deterministic top-k.

All metrics work on pool z-scores, so beta, the reward scale and length normalisation do not change
the ranking; only the weight w does. A constant column z-scores to 0 everywhere (not NaN).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MetricParams:
    weight: float = 1.0
    implicit_abs: bool = True
    seed: int = 0


def zscore(values) -> np.ndarray:
    """(v - mean) / population std; all zeros when the std is 0."""
    v = np.asarray(values, dtype=float)
    if v.size == 0:
        return v
    std = v.std()
    if std == 0 or not np.isfinite(std):
        return np.zeros_like(v)
    return (v - v.mean()) / std


def alignment_potential(d_ex, d_im, p: MetricParams) -> np.ndarray:
    implicit = np.abs(d_im) if p.implicit_abs else np.asarray(d_im, dtype=float)
    return zscore(d_ex) - p.weight * zscore(implicit)


MetricFn = Callable[[np.ndarray, np.ndarray, MetricParams], np.ndarray]


@dataclass(frozen=True)
class MetricSpec:
    """A selection metric: scores of a pool (higher = kept) from its explicit and implicit margins."""

    score: MetricFn
    reads_implicit: bool = True
    """Whether it reads the implicit margin (refused with an implicit reward that is identically zero)."""
    weighted: bool = False
    """Whether selection.weight and selection.implicit_abs change it (named on model cards)."""


METRICS: dict[str, MetricSpec] = {
    "alignment_potential": MetricSpec(alignment_potential, weighted=True),
    "explicit": MetricSpec(lambda d_ex, d_im, p: zscore(d_ex), reads_implicit=False),
    "explicit_small": MetricSpec(lambda d_ex, d_im, p: -zscore(d_ex), reads_implicit=False),
    "implicit_small": MetricSpec(lambda d_ex, d_im, p: -zscore(np.abs(d_im))),
    "implicit_large": MetricSpec(lambda d_ex, d_im, p: zscore(np.abs(d_im))),
    "random": MetricSpec(
        lambda d_ex, d_im, p: np.random.default_rng(p.seed).random(len(d_ex)), reads_implicit=False
    ),
}
"""The selection metrics, by name (`selection.metric`); "module:attr" names your own: a MetricSpec, or a
function (explicit margins, implicit margins, MetricParams) -> scores (higher = kept)."""


def metric_spec(name: str, key: str = "selection.metric") -> MetricSpec:
    from selfplay.errors import SelfplayError
    from selfplay.plugins import resolve

    found = resolve(name, METRICS, key)
    if isinstance(found, MetricSpec):
        return found
    if callable(found):
        return MetricSpec(found)
    raise SelfplayError(f"{key}={name}: not a MetricSpec or a function (d_ex, d_im, params) -> scores")


def score(metric: str, d_ex, d_im, params: MetricParams) -> np.ndarray:
    d_ex, d_im = np.asarray(d_ex, dtype=float), np.asarray(d_im, dtype=float)
    scores = np.asarray(metric_spec(metric).score(d_ex, d_im, params), dtype=float)
    if scores.shape != d_ex.shape:
        from selfplay.errors import SelfplayError

        raise SelfplayError(
            f"selection.metric={metric}: gave {scores.shape[0] if scores.ndim else 'a scalar'} scores for {len(d_ex)} pairs"
        )
    return scores


def resolve_k(pool: int, ratio: float | None, count: int | None) -> int:
    """k = count (capped at the pool) when given, else ratio * pool rounded half up."""
    if count is not None:
        return min(count, pool)
    if ratio is None:
        return pool
    return min(pool, int(math.floor(ratio * pool + 0.5)))  # half up, not Python's half-to-even


def rank_order(scores, ids: list[str] | Callable[[], list[str]]) -> np.ndarray:
    """Indices ordered by score, highest first, ties broken by the stable pair id (never by hash or
    arrival order). Column-wise: one argsort of the scores; ids (a list, or a function that
    makes it, called only when there are ties) are compared only inside runs of equal scores (a full id
    sort only when most of the pool ties)."""
    scores = np.asarray(scores, dtype=float)
    order = np.argsort(-scores)  # any order inside a run of equal scores: runs are sorted by id below
    if len(order) < 2:
        return order
    ordered = scores[order]
    same = ordered[1:] == ordered[:-1]
    if not same.any():
        return order
    if callable(ids):
        ids = ids()
    edges = np.flatnonzero(np.diff(np.r_[False, same, False].astype(np.int8)))
    starts, ends = edges[0::2], edges[1::2] + 1  # runs [start, end) of equal scores in `order`
    tied = int((ends - starts).sum())
    if tied > len(order) // 4:  # most of the pool ties: rank the ids once, sort by (score, id rank)
        key = np.array([i.encode() for i in ids])  # UTF-8 bytes sort in code point order, like str
        id_rank = np.empty(len(ids), dtype=np.int64)
        id_rank[np.argsort(key, kind="stable")] = np.arange(len(ids))
        return np.lexsort((id_rank, -scores))
    for a, b in zip(starts.tolist(), ends.tolist()):
        run = order[a:b]
        order[a:b] = sorted(run.tolist(), key=ids.__getitem__)
    return order


def score_rank_keep(
    d_ex, d_im, metric: str, params: MetricParams, ratio: float | None, count: int | None,
    ids: list[str] | Callable[[], list[str]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:  # fmt: skip
    """(scores, ranks (0 = best), kept) of a pool given as two margin arrays: the metric's scores, the
    rank order (ties by id) and the top round(ratio * pool) (half up) or `count` marked kept."""
    n = len(d_ex)
    scores = np.asarray(score(metric, d_ex, d_im, params), dtype=float) if n else np.zeros(0)
    order = rank_order(scores, ids)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    return scores, rank, rank < resolve_k(n, ratio, count)


def top_k(scores, ids: list[str], k: int) -> list[int]:
    """Indices of the k highest scores, ties broken by the stable pair id (never by hash order)."""
    return rank_order(scores, ids)[:k].tolist()
