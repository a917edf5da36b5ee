"""Selecting stages: implicit rewards by teacher forcing (logprobs), then pairing and selection by the
configured metric over the pool (selection, evolved_selection)."""

from __future__ import annotations

from pathlib import Path

from selfplay.config import Config
from selfplay.data.files import read_records
from selfplay.data.jsonl import write_jsonl
from selfplay.data.records import COMPLETION_TEXT, Completion, Judgment, Pair, Prompt, SequenceLogprob
from selfplay.data.trl_format import write_trl_pairs
from selfplay.errors import SelfplayError
from selfplay.rundir import stage_names as sn
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import COMPLETIONS, JUDGMENTS, KEPT_PAIRS, LOGPROBS, PAIRS, PROMPTS
from selfplay.rundir.stats import LogprobsStats, SelectionStats
from selfplay.stages.sampling import completions_of


def needs_reference(cfg: Config) -> bool:
    """Whether the implicit-reward form reads the reference policy's log-probs."""
    from selfplay.selection.implicit import implicit_form

    return implicit_form(cfg.selection.implicit_reward).needs_reference


def needs_logprobs_stage(cfg: Config) -> bool:
    return cfg.logprobs.source == "teacher_forcing" or needs_reference(cfg)


def logprobs_shard(ctx: StageContext, prompts: list[Prompt]) -> list[SequenceLogprob]:
    from selfplay.logprobs.responses import teacher_forced_logprobs

    completions = completions_of(ctx, prompts, tokens=True)
    reference = ctx.initial_policy if needs_reference(ctx.config) else None
    return teacher_forced_logprobs(
        ctx.policy, prompts, completions, ctx.config.logprobs, ctx.config.model, reference, ctx.label
    )


def logprobs_stats(ctx: StageContext, prompts: list[Prompt], output: Path) -> LogprobsStats:
    records = read_records(output, SequenceLogprob)
    stats = LogprobsStats(sequences=len(records), tokens=sum(r.num_tokens for r in records))
    if needs_reference(ctx.config):
        # pi_t == pi_0 in iteration 0: a reference-relative implicit reward is then 0 for every response.
        stats.dpo_implicit_all_zero = all(r.logprob_sum == r.reference_logprob_sum for r in records)
    return stats


def run_selection(ctx: StageContext) -> SelectionStats:
    from selfplay.selection.pipeline import candidates, pair_and_select

    cfg = ctx.config
    prompts = read_records(ctx.input(sn.PROMPTS, PROMPTS), Prompt)
    completions = read_records(ctx.input(sn.GENERATE, COMPLETIONS), Completion, COMPLETION_TEXT)
    judgments = read_records(ctx.input(sn.JUDGE, JUDGMENTS), Judgment)
    logprobs: dict | None = None
    if needs_logprobs_stage(cfg):
        records = read_records(ctx.input(sn.LOGPROBS, LOGPROBS), SequenceLogprob)
        logprobs = {(r.prompt_id, r.sample_index): r for r in records}
    cands = candidates(completions, judgments, str(cfg.selection.implicit_reward), logprobs)
    earlier: list[Pair] = []
    if cfg.selection.pool == "all":  # each file holds its iteration's own pairs and earlier ones
        earlier = ctx.earlier((sn.SELECTION,), PAIRS, Pair, lambda p, t: p.iteration == t)
    pool, stats = pair_and_select(prompts, cands, cfg.selection, ctx.iteration, earlier)
    typed = SelectionStats(**stats)
    if not len(pool):
        raise SelfplayError(f"{ctx.label}: no pairs to select from ({no_pairs_reason(typed)})")
    write_jsonl(ctx.out / PAIRS, pool.rows())
    write_trl_pairs(ctx.out / KEPT_PAIRS, pool.kept_pairs())
    return typed


def no_pairs_reason(stats: SelectionStats) -> str:
    """Why a pool is empty, from the pairing counts (e.g. a judge that gives every response the same
    reward ties every prompt)."""
    n = stats.prompts
    if n and stats.tied == n:
        return f"all {n} prompts' responses tie in reward: does the judge give every response the same value?"
    counts = {
        k: getattr(stats, k)
        for k in ("tied", "identical", "too_few_responses", "nonfinite_responses")
        if getattr(stats, k)
    }
    return f"{n} prompts; dropped: {counts or 'nothing'}"


def run_evolved_selection(ctx: StageContext) -> SelectionStats:
    """Pair and select the evolved prompts' responses as their own pool, with `evolve.selection`."""
    from selfplay.selection.pipeline import candidates, pair_and_select

    cfg = ctx.config
    prompts = read_records(ctx.input(sn.EVOLVE, PROMPTS), Prompt)
    completions = read_records(ctx.input(sn.EVOLVED_GENERATE, COMPLETIONS), Completion, COMPLETION_TEXT)
    judgments = read_records(ctx.input(sn.EVOLVED_JUDGE, JUDGMENTS), Judgment)
    cands = candidates(completions, judgments, str(cfg.evolve.selection.implicit_reward))
    pool, stats = pair_and_select(prompts, cands, cfg.evolve.selection, ctx.iteration)
    write_jsonl(ctx.out / PAIRS, pool.rows())
    write_trl_pairs(ctx.out / KEPT_PAIRS, pool.kept_pairs())
    return SelectionStats(**stats)
