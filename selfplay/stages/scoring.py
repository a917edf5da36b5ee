"""Offline selection's stages (`python -m selfplay.select` on a dataset whose rewards or implicit rewards
are computed): the dataset's usable rows (import), then their missing rewards and implicit rewards in
shards (score), on the loop's machinery: on the engine slots of `cluster=`, resumable by shard, with
checksummed records and progress lines. Values the dataset's columns hold are never copied here: the
command reads them from the dataset itself."""

from __future__ import annotations

import math
from pathlib import Path

from selfplay.data.files import read_records, write_records
from selfplay.data.preferences import Row
from selfplay.data.records import PreferenceRow, Prompt, RowScores
from selfplay.errors import SelfplayError
from selfplay.rundir import stage_names as sn
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import PROMPTS, ROWS
from selfplay.rundir.stats import ImportStats, ScoreStats, typed


def _select_config(ctx: StageContext):
    from selfplay.schema.offline import SelectRunConfig

    if not isinstance(ctx.config, SelectRunConfig):
        raise SelfplayError(f"{ctx.label}: runs only for python -m selfplay.select (internal)")
    return ctx.config


def import_rows(ctx: StageContext) -> ImportStats:
    """The dataset's usable rows (and one Prompt per row: what the score stage shards), and what is to
    be computed for them."""
    from selfplay.data.preferences import read_preference_table
    from selfplay.selection.offline import missing_scores, offline_rows

    cfg = _select_config(ctx)
    rows, counts = offline_rows(read_preference_table(str(cfg.input), cfg.split), cfg)
    need = missing_scores(rows, cfg)
    write_records(ctx.out / ROWS, [PreferenceRow(r.row_id, r.messages, r.chosen, r.rejected) for r in rows])
    write_records(ctx.out / PROMPTS, [Prompt(r.row_id, r.messages) for r in rows])
    return ImportStats(
        pairs=len(rows),
        rows=len(rows) + counts["dropped_tied"],
        dropped_tied=counts["dropped_tied"],
        compute_rewards="rewards" in need,
        compute_implicit="implicit_rewards" in need,
    )


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None


def score_shard(ctx: StageContext, prompts: list[Prompt]) -> list[RowScores]:
    """This slice's missing rewards (the judge) and implicit rewards (teacher forcing of the policy),
    in the slice's order."""
    from selfplay.selection.offline import compute_implicit, compute_rewards

    cfg = _select_config(ctx)
    plan = typed(ctx.layout.finished(ctx.iteration, sn.IMPORT), ImportStats) or ImportStats()
    ids = [p.prompt_id for p in prompts]
    found = {
        r.row_id: r for r in read_records(ctx.input(sn.IMPORT, ROWS), PreferenceRow, where=("row_id", ids))
    }
    rows = [Row(found[i].row_id, {}, found[i].messages, found[i].chosen, found[i].rejected) for i in ids]
    none: list[tuple[float | None, float | None]] = [(None, None)] * len(rows)
    rewards = compute_rewards(rows, cfg, ctx.label) if plan.compute_rewards and rows else none
    implicit = compute_implicit(rows, cfg, ctx.policy, ctx.label) if plan.compute_implicit and rows else none
    return [
        RowScores(r.row_id, *(None if v is None else _finite(v) for v in (*rw, *im)))
        for r, rw, im in zip(rows, rewards, implicit)
    ]


def score_stats(ctx: StageContext, prompts: list[Prompt], output: Path) -> ScoreStats:
    plan = typed(ctx.layout.finished(ctx.iteration, sn.IMPORT), ImportStats) or ImportStats()
    rows = len(read_records(output, RowScores))
    return ScoreStats(
        rows=rows,
        rewards_computed=rows if plan.compute_rewards else 0,
        implicit_computed=rows if plan.compute_implicit else 0,
    )
