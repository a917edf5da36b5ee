"""Judging stages: every response's explicit reward (judge, evolved_judge)."""

from __future__ import annotations

from pathlib import Path

from selfplay.config import Config
from selfplay.data.files import read_records
from selfplay.data.jsonl import read_jsonl, write_jsonl
from selfplay.data.records import Judgment, Prompt
from selfplay.rundir import stage_names as sn
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import RunLayout
from selfplay.rundir.stats import JudgeStats
from selfplay.stages.sampling import completions_of


def judge_runtime(ctx: StageContext):
    """What a judge may use of this run: the iteration's policy, the generation and model settings."""
    from selfplay.judge.kinds import JudgeRuntime

    return JudgeRuntime(ctx.policy, ctx.config.generate, ctx.config.model)


def judge_shard(
    ctx: StageContext, prompts: list[Prompt], completions_from: str = sn.GENERATE
) -> list[Judgment]:
    from selfplay.judge.judging import load_judge

    with load_judge(ctx.config.judge, runtime=judge_runtime(ctx)) as judge:
        judgments = judge(prompts, completions_of(ctx, prompts, completions_from), ctx.label)
        retries = judge.retries
    if retries is not None:  # summed by judge_stats, wherever this shard ran (here, a shard process)
        import xxhash

        key = xxhash.xxh3_64_hexdigest("\n".join(p.prompt_id for p in prompts).encode())
        write_jsonl(RunLayout.retries_file(ctx.out, key), [{"retries": retries}])
    return judgments


def judge_stats(ctx: StageContext, prompts: list[Prompt], output: Path) -> JudgeStats:
    from selfplay.judge.judging import judgment_stats

    stats = JudgeStats(**judgment_stats(read_records(output, Judgment)))
    counts = RunLayout.retries_files(ctx.out)
    if counts:
        stats.retries = sum(int(row["retries"]) for f in counts for row in read_jsonl(f))
        for f in counts:
            f.unlink()
    return stats


def evaluation_judge(cfg: Config):
    """The judge of held-out evaluation: evaluate.judge when it names a kind, else the selection judge."""
    return cfg.judge if cfg.evaluate.judge.kind is None else cfg.evaluate.judge
