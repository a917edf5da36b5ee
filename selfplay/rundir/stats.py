"""Typed statistics of every stage: one dataclass per stage, written flat into the stage's marker and
into metrics.jsonl, read back typed by every consumer (summaries, cards, report, plots, export,
tracking, manifest, API). A statistic a record does not declare is refused in one line, both when a
stage returns it and when a marker or metrics file holds it: a renamed statistic cannot pass unseen."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from selfplay.errors import SelfplayError
from selfplay.rundir import stage_names as sn

S = TypeVar("S", bound="StageStats")


@dataclass
class StageStats:
    """What every stage records. Subclasses declare their statistics as fields (None = not measured:
    left out of the marker)."""

    DROPS: ClassVar[dict[str, str]] = {}
    """Statistics that count dropped or degraded items, and how to say them (printed when not zero)."""
    SHORT: ClassVar[tuple[str, ...]] = ()
    """Statistics of the stage's one-line summary in the log."""

    placement: list[dict[str, Any]] | None = None
    """Where each process the stage launched ran (node, devices, shard or rank)."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    @classmethod
    def from_dict(cls: type[S], data: dict[str, Any], where: str = "") -> S:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SelfplayError(
                f"{where or cls.__name__}: unknown statistic(s) {', '.join(unknown)} for {cls.__name__} "
                "(written by another version of selfplay?)"
            )
        return cls(**data)

    def merged(self: S, other: StageStats) -> S:
        """These statistics with every statistic `other` measured (train: the data preparation's and
        the training processes')."""
        return replace(self, **other.to_dict())

    def drops(self) -> str:
        """One line of every non-zero drop count: "12 prompts whose ..., 3 pairs ..."."""
        return ", ".join(f"{getattr(self, k)} {what}" for k, what in self.DROPS.items() if getattr(self, k))

    def short(self) -> str:
        values = [(k, getattr(self, k)) for k in self.SHORT if getattr(self, k) is not None]
        return " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in values)

    def numbers(self) -> dict[str, float]:
        """Every numeric statistic (booleans and text left out), for trackers."""
        return {
            k: float(v)
            for k, v in self.to_dict().items()
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }


@dataclass
class PromptsStats(StageStats):
    prompts: int = 0
    pool: int = 0
    duplicates_dropped: int = 0
    heldout_overlap_removed: int = 0
    DROPS: ClassVar[dict[str, str]] = {
        "duplicates_dropped": "duplicate prompts",
        "heldout_overlap_removed": "pool prompts that are also held out (removed from the pool)",
    }


@dataclass
class GenerateStats(StageStats):
    backend: str | None = None
    prompts_too_long: int = 0
    responses: int = 0
    mean_tokens: float | None = None
    truncated: int | None = None
    empty: int | None = None
    SHORT: ClassVar[tuple[str, ...]] = ("responses",)
    DROPS: ClassVar[dict[str, str]] = {
        "prompts_too_long": "prompts too long for generate.max_model_len (no responses)",
        "empty": "empty responses",
    }


@dataclass
class EvolvedGenerateStats(GenerateStats):
    DROPS: ClassVar[dict[str, str]] = {
        "prompts_too_long": "evolved prompts too long (no responses)",
        "empty": "empty responses",
    }


@dataclass
class JudgeStats(StageStats):
    judged: int = 0
    nonfinite: int = 0
    input_truncated: int = 0
    reward_p10: float | None = None
    reward_p50: float | None = None
    reward_p90: float | None = None
    reward_mean: float | None = None
    retries: int | None = None
    """kind=remote: requests retried (timeouts, lost connections, 408/429/5xx, failed connects), every
    shard's together; null for the other kinds."""
    SHORT: ClassVar[tuple[str, ...]] = ("reward_mean",)
    DROPS: ClassVar[dict[str, str]] = {
        "nonfinite": "NaN/inf rewards",
        "input_truncated": "judge inputs truncated at judge.model.max_length",
    }


@dataclass
class LogprobsStats(StageStats):
    sequences: int = 0
    tokens: int = 0
    dpo_implicit_all_zero: bool | None = None
    """selection.implicit_reward=dpo: whether log pi_t - log pi_ref is 0 for every response."""


MARGIN_STATS = (
    "mean_explicit_margin",
    "mean_implicit_margin",
    "mean_abs_implicit_margin",
    "explicit_margin_p10",
    "implicit_margin_p10",
    "explicit_margin_p50",
    "implicit_margin_p50",
    "explicit_margin_p90",
    "implicit_margin_p90",
)
"""The margin distribution recorded for the whole pool (`pool_<name>`) and the kept pairs (`kept_<name>`)."""


@dataclass
class MarginStats(StageStats):
    """Pool and kept sizes, and the margin distribution of the pool and of the kept pairs."""

    pool: int = 0
    kept: int = 0
    pool_mean_explicit_margin: float | None = None
    pool_mean_implicit_margin: float | None = None
    pool_mean_abs_implicit_margin: float | None = None
    pool_explicit_margin_p10: float | None = None
    pool_implicit_margin_p10: float | None = None
    pool_explicit_margin_p50: float | None = None
    pool_implicit_margin_p50: float | None = None
    pool_explicit_margin_p90: float | None = None
    pool_implicit_margin_p90: float | None = None
    kept_mean_explicit_margin: float | None = None
    kept_mean_implicit_margin: float | None = None
    kept_mean_abs_implicit_margin: float | None = None
    kept_explicit_margin_p10: float | None = None
    kept_implicit_margin_p10: float | None = None
    kept_explicit_margin_p50: float | None = None
    kept_implicit_margin_p50: float | None = None
    kept_explicit_margin_p90: float | None = None
    kept_implicit_margin_p90: float | None = None


@dataclass
class SelectionStats(MarginStats):
    prompts: int = 0
    pairs: int = 0
    pool_from_earlier: int = 0
    too_few_responses: int = 0
    nonfinite_responses: int = 0
    truncated_responses: int = 0
    no_pair_over_min_margin: int = 0
    tied: int = 0
    tied_kept: int = 0
    identical: int = 0
    SHORT: ClassVar[tuple[str, ...]] = ("kept", "pool")
    DROPS: ClassVar[dict[str, str]] = {
        "too_few_responses": "prompts with fewer than 2 usable responses",
        "nonfinite_responses": "responses with a NaN/inf reward or log-prob",
        "truncated_responses": "responses cut at generate.max_tokens (selection.exclude_truncated)",
        "tied": "prompts whose best and worst rewards tie",
        "identical": "pairs whose chosen and rejected texts are identical",
        "no_pair_over_min_margin": "prompts with no pair over selection.min_margin",
    }


@dataclass
class EvolveStats(StageStats):
    parents: int = 0
    rewrites: int = 0
    evolved_prompts: int = 0
    preamble_stripped: int = 0
    truncated: int = 0
    empty: int = 0
    preamble: int = 0
    length_ratio: int = 0
    too_long: int = 0
    duplicate: int = 0
    near_duplicate: int = 0
    DROPS: ClassVar[dict[str, str]] = {
        "truncated": "rewrites cut at the token limit",
        "empty": "empty rewrites",
        "preamble": "rewrites with a preamble",
        "length_ratio": "rewrites outside the length ratio",
        "too_long": "rewrites too long for the policy or the judge",
        "duplicate": "duplicate rewrites",
        "near_duplicate": "near-duplicate rewrites",
    }


TRAINER_REWARDS = ("rewards_chosen", "rewards_rejected", "rewards_margins", "rewards_accuracies")
"""TRL's logged rewards whose first and last optimizer step's values are recorded (`first_<name>`,
`last_<name>`)."""


@dataclass
class TrainStats(StageStats):
    # The data preparation (in the orchestrator's process).
    pairs: int | None = None
    reference: str | None = None
    loss: str | None = None
    pairs_prompt_too_long: int | None = None
    responses_sampled_ids: int | None = None
    responses_tokenised_from_text: int | None = None
    ref_logps_from_sampling: int | None = None
    ref_logps_teacher_forced: int | None = None
    # The training processes (rank 0).
    train_loss: float | None = None
    optimizer_steps: int | None = None
    resumed_from_step: int | None = None
    policy_changed: bool | None = None
    first_rewards_chosen: float | None = None
    first_rewards_rejected: float | None = None
    first_rewards_margins: float | None = None
    first_rewards_accuracies: float | None = None
    last_rewards_chosen: float | None = None
    last_rewards_rejected: float | None = None
    last_rewards_margins: float | None = None
    last_rewards_accuracies: float | None = None
    SHORT: ClassVar[tuple[str, ...]] = ("pairs", "optimizer_steps", "train_loss")
    DROPS: ClassVar[dict[str, str]] = {"pairs_prompt_too_long": "pairs whose prompt fills train.max_length"}


@dataclass
class EvaluateStats(StageStats):
    heldout_prompts: int = 0
    heldout_judge: str | None = None
    heldout_reward_before: float | None = None
    heldout_tokens_before: float | None = None
    heldout_reward_before_p10: float | None = None
    heldout_reward_before_p50: float | None = None
    heldout_reward_before_p90: float | None = None
    heldout_reward_length_corr_before: float | None = None
    heldout_reward_after: float | None = None
    heldout_tokens_after: float | None = None
    heldout_reward_after_p10: float | None = None
    heldout_reward_after_p50: float | None = None
    heldout_reward_after_p90: float | None = None
    heldout_reward_length_corr_after: float | None = None
    win_rate_vs_initial: float | None = None
    win_rate_vs_previous: float | None = None
    SHORT: ClassVar[tuple[str, ...]] = ("heldout_reward_after", "win_rate_vs_initial")


@dataclass
class PushStats(StageStats):
    repo_id: str | None = None
    dry_run: bool = False
    uploads: int = 0
    files: int = 0


@dataclass
class ImportStats(StageStats):
    pairs: int = 0
    rows: int = 0
    dropped_tied: int = 0
    dropped_identical: int = 0
    compute_rewards: bool | None = None
    """Offline selection: whether the score stage computes the rewards (the dataset has none)."""
    compute_implicit: bool | None = None
    """Offline selection: whether the score stage computes the implicit rewards (the dataset has none)."""
    DROPS: ClassVar[dict[str, str]] = {
        "dropped_tied": "rows whose rewards all tie",
        "dropped_identical": "rows whose chosen and rejected are identical",
    }


@dataclass
class ScoreStats(StageStats):
    """Offline selection's scoring of a dataset: the rows scored and what was computed for them."""

    rows: int = 0
    rewards_computed: int = 0
    implicit_computed: int = 0
    SHORT: ClassVar[tuple[str, ...]] = ("rows", "rewards_computed", "implicit_computed")


STATS_OF: dict[str, type[StageStats]] = {
    sn.PROMPTS: PromptsStats,
    sn.GENERATE: GenerateStats,
    sn.JUDGE: JudgeStats,
    sn.LOGPROBS: LogprobsStats,
    sn.SELECTION: SelectionStats,
    sn.EVOLVE: EvolveStats,
    sn.EVOLVED_GENERATE: EvolvedGenerateStats,
    sn.EVOLVED_JUDGE: JudgeStats,
    sn.EVOLVED_SELECTION: SelectionStats,
    sn.TRAIN: TrainStats,
    sn.EVALUATE: EvaluateStats,
    sn.PUSH: PushStats,
    sn.IMPORT: ImportStats,
    sn.SCORE: ScoreStats,
}
"""Each stage's statistics record."""


def stats_class(stage: str) -> type[StageStats]:
    try:
        return STATS_OF[stage]
    except KeyError:
        raise SelfplayError(f"no statistics record for stage '{stage}'") from None


@dataclass(frozen=True)
class Finished:
    """A finished stage of a run as its marker (or a metrics.jsonl row) records it."""

    iteration: int
    stage: str
    seconds: float
    stats: StageStats = field(default_factory=StageStats)

    def row(self) -> dict[str, Any]:
        """Its metrics.jsonl row."""
        return {
            "iteration": self.iteration,
            "stage": self.stage,
            "seconds": self.seconds,
            **self.stats.to_dict(),
        }

    @classmethod
    def from_row(cls, row: dict[str, Any], where: str = "") -> Finished:
        rest = {k: v for k, v in row.items() if k not in ("iteration", "stage", "seconds")}
        stage = str(row["stage"])
        return cls(
            int(row["iteration"]), stage, float(row["seconds"]), stats_class(stage).from_dict(rest, where)
        )


def marker_stats(marker: dict[str, Any], stage: str, where: str = "") -> StageStats:
    """A marker's statistics, typed."""
    return stats_class(stage).from_dict(marker.get("stats", {}), where or f"{stage} marker")


def finished(marker: dict[str, Any] | None, iteration: int, stage: str, where: str = "") -> Finished | None:
    if marker is None:
        return None
    return Finished(iteration, stage, float(marker.get("seconds", 0.0)), marker_stats(marker, stage, where))


def typed(found: Finished | None, cls: type[S]) -> S | None:
    """A finished stage's statistics as the record `cls` (None when the stage has not finished)."""
    if found is None:
        return None
    if not isinstance(found.stats, cls):
        raise SelfplayError(f"iteration {found.iteration} {found.stage}: statistics are not {cls.__name__}")
    return found.stats


def read_metrics(path: Path) -> list[Finished]:
    """A run's metrics.jsonl, one typed row per finished stage."""
    rows = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if line.strip():
            rows.append(Finished.from_row(json.loads(line), f"{path}:{i}"))
    return rows
