"""The evaluate stage: held-out prompts sampled by pi_0 and the new policy, judged, summarised as mean
rewards, shares at full marks and win rates; the model card with the held-out results."""

from __future__ import annotations

from pathlib import Path

from selfplay.data.files import read_records
from selfplay.data.jsonl import read_jsonl, write_jsonl
from selfplay.data.records import Prompt
from selfplay.rundir import stage_names as sn
from selfplay.rundir.context import StageContext
from selfplay.rundir.integrity import verify
from selfplay.rundir.layout import COMPLETION_TABLE, EVALUATED_CARD, HELDOUT, HELDOUT_PROMPTS
from selfplay.rundir.stats import EvaluateStats, TrainStats, typed
from selfplay.stages.judging import evaluation_judge, judge_runtime
from selfplay.stages.training import write_card


def heldout_prompts(ctx: StageContext) -> list[Prompt]:
    """What evaluate shards: the held-out prompts the prompts stage wrote."""
    return read_records(ctx.input(sn.PROMPTS, HELDOUT_PROMPTS), Prompt)


def _evaluated_policies(ctx: StageContext) -> dict[str, str]:
    """pi_{t+1} ("after"), and pi_0 ("before") in iteration 0: later iterations reuse pi_0's and pi_t's
    held-out samples from earlier evaluations (the same seeds, not regenerated)."""
    after = {"after": str(ctx.layout.policy_dir(ctx.iteration))}
    return {"before": ctx.initial_policy, **after} if ctx.iteration == 0 else after


def evaluate_shard(ctx: StageContext, heldout: list[Prompt]) -> list[dict]:
    """Sample and judge these held-out prompts with each evaluated policy: one row per sample."""
    from selfplay.evaluate.heldout import evaluate_policies
    from selfplay.generate.engine_pool import POOL
    from selfplay.judge.judging import load_judge

    cfg = ctx.config
    key = "judge" if cfg.evaluate.judge.kind is None else "evaluate.judge"
    policies = _evaluated_policies(ctx)
    for path in policies.values():  # the new policy is this iteration's: checked against its train marker
        verify(ctx.layout, Path(path))
    _, rows = evaluate_policies(
        policies,
        heldout,
        cfg.generate,
        cfg.model,
        cfg.evaluate.num_samples,
        ctx.iteration,
        lambda: load_judge(evaluation_judge(cfg), key, judge_runtime(ctx)),  # loaded once sampling is over...
        ctx.label,
        POOL.release_memory,  # ...and the engine asleep (GPUs): the judge never shares with it
    )
    return rows


def evaluate_finish(ctx: StageContext, heldout: list[Prompt], output: Path) -> EvaluateStats:
    """Over every shard's rows (put back in the unsharded order: policy, prompt, sample): each policy's
    summary and the win rates vs pi_0 and vs pi_t; the model card with the held-out results."""
    from selfplay.evaluate.heldout import completion_table, summary, win_rate
    from selfplay.judge.judging import full_marks, judge_name

    cfg, t = ctx.config, ctx.iteration
    names = list(_evaluated_policies(ctx))
    position = {p.prompt_id: i for i, p in enumerate(heldout)}
    rows = sorted(
        read_jsonl(output),
        key=lambda r: (names.index(r["policy"]), position[r["prompt_id"]], r["sample_index"]),
    )
    write_jsonl(output, rows)
    figures: dict = {}
    full = full_marks(evaluation_judge(cfg))  # None for a judge without full marks: no strict share
    for name in names:
        figures.update(summary([r for r in rows if r["policy"] == name], name, full))
    after = [r for r in rows if r["policy"] == "after"]
    if t == 0:
        initial = previous = [r for r in rows if r["policy"] == "before"]
    else:
        first, last = (
            ctx.layout.stage_dir(0, sn.EVALUATE) / HELDOUT,
            ctx.layout.stage_dir(t - 1, sn.EVALUATE) / HELDOUT,
        )
        verify(ctx.layout, first)
        verify(ctx.layout, last)
        initial = [r for r in read_jsonl(first) if r["policy"] == "before"]
        previous = [r for r in read_jsonl(last) if r["policy"] == "after"]
    stats = EvaluateStats(
        heldout_prompts=len(heldout),
        heldout_judge=judge_name(evaluation_judge(cfg)),
        win_rate_vs_initial=win_rate(after, initial),
        win_rate_vs_previous=win_rate(after, previous),
        **figures,
    )
    write_jsonl(
        ctx.out / COMPLETION_TABLE, completion_table(heldout, initial, after, cfg.evaluate.completions)
    )
    train = typed(ctx.layout.finished(t, sn.TRAIN), TrainStats) or TrainStats()
    write_card(ctx, ctx.out / EVALUATED_CARD, train, stats)  # the train stage's card + held-out results
    return stats
