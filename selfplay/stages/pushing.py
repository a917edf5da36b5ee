"""The push stage: this iteration's policy and every finished iteration's kept pairs to the Hugging
Face Hub, laid out as the Hub expects (selfplay/reporting/hub_layout.py)."""

from __future__ import annotations

import json
import logging

from selfplay.rundir import stage_names as sn
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import PUSHED
from selfplay.rundir.stats import EvaluateStats, PushStats, SelectionStats, TrainStats, typed

log = logging.getLogger(__name__)


def push_plan(ctx: StageContext):
    """The push stage's uploads: this iteration's policy with the card that has its held-out results,
    and the kept pairs of every finished iteration so far, staged under the stage's folder."""
    import dataclasses
    from pathlib import Path

    from selfplay.reporting.export import dataset_card
    from selfplay.reporting.hub_layout import push_plan as plan
    from selfplay.reporting.model_card import model_card
    from selfplay.rundir.integrity import verify

    t, layout, cfg = ctx.iteration, ctx.layout, ctx.config
    found = layout.kept_pair_splits(t)
    for path in [layout.policy_dir(t), *(p for p, _ in found.values())]:  # uploaded as they were recorded
        verify(layout, Path(path))
    train = typed(layout.finished(t, sn.TRAIN), TrainStats) or TrainStats()
    evaluation = typed(layout.finished(t, sn.EVALUATE), EvaluateStats)
    selection = typed(layout.finished(t, sn.SELECTION), SelectionStats)
    card = model_card(cfg, t, ctx.policy, train, selection, evaluation)
    pairs_card = str(
        dataset_card(
            dataclasses.asdict(cfg),
            {name: stats for name, (_, stats) in found.items()},
            layout.root,
            data_path="data/{split}.parquet",
            license=cfg.hub.license,
        )
    )
    splits = {name: path for name, (path, _) in found.items()}
    return plan(cfg.hub, t, layout.policy_dir(t), card, splits, pairs_card, ctx.out / "staged")


def run_push(ctx: StageContext) -> PushStats:
    from selfplay.models import hub

    cfg = ctx.config
    uploads = push_plan(ctx)
    (ctx.out / PUSHED).write_text(
        json.dumps(
            [
                {"repo_id": u.repo_id, "repo_type": u.repo_type, "revision": u.revision,
                 "branch_after": u.branch_after, "files": u.files()}
                for u in uploads
            ],
            indent=1,
        )
    )  # fmt: skip
    final = str(ctx.layout.stage_dir(ctx.iteration, ctx.stage))  # where the staged files are once it is done
    for u in uploads:
        log.info(
            "hub%s: %s",
            " (dry run: nothing uploaded)" if cfg.hub.dry_run else "",
            u.describe(cfg.hub.private).replace(str(ctx.out), final),
        )
    if not cfg.hub.dry_run:
        hub.push(uploads, cfg.hub.private)
    return PushStats(
        repo_id=cfg.hub.repo_id,
        dry_run=cfg.hub.dry_run,
        uploads=len(uploads),
        files=sum(len(u.files()) for u in uploads),
    )
