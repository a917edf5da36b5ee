"""Training stages: the kept pairs as tokenised rows (in the orchestrator's process), TRL training in
every training process, the model card; and a preference file's rows as kept pairs (import)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from selfplay.data.files import read_records, write_records
from selfplay.data.records import Completion, Pair
from selfplay.errors import SelfplayError
from selfplay.rundir import stage_names as sn
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import (
    COMPLETIONS,
    LIVE_HISTORY,
    MODEL,
    PAIRS,
    TRAIN_DATA,
    TRAIN_HISTORY,
    TRAINER,
    RunLayout,
)
from selfplay.rundir.stats import EvaluateStats, ImportStats, SelectionStats, TrainStats, typed

log = logging.getLogger(__name__)

PAIR_SOURCES = (sn.SELECTION, sn.EVOLVED_SELECTION, sn.IMPORT)
"""The stages whose kept pairs an iteration trains on (those of them that ran)."""


def training_pairs(ctx: StageContext) -> list[Pair]:
    """Kept pairs of this iteration, and of earlier ones with `train.accumulate`."""
    sources = tuple(s for s in PAIR_SOURCES if ctx.layout.marker(ctx.iteration, s).is_file())
    pairs = [p for s in sources for p in read_records(ctx.input(s, PAIRS), Pair) if p.kept]
    if ctx.config.train.accumulate:
        pairs += ctx.earlier(sources, PAIRS, Pair, lambda p, t: p.kept and p.iteration == t)
        pairs = list({p.pair_id: p for p in pairs}.values())
    return pairs


def prepare_training(ctx: StageContext) -> TrainStats:
    """The training rows, tokenised (the sampled ids of every sampled response; sampled log-probs as
    DPO reference log-probs where exact), as a file-backed dataset every training process reads."""
    import torch
    from datasets import Dataset

    from selfplay.models.loading import default_device, load_tokenizer, torch_dtype
    from selfplay.training.data import sampled_key, training_rows
    from selfplay.training.losses import loss_spec
    from selfplay.training.schedule import check_schedule, planned_schedule

    cfg = ctx.config
    pairs = training_pairs(ctx)
    if not pairs:
        raise SelfplayError(f"{ctx.label}: no kept pairs (see the selection stage's counts)")
    wanted = (sn.GENERATE, sn.EVOLVED_GENERATE) if cfg.evolve.enabled else (sn.GENERATE,)
    sources = tuple(s for s in wanted if ctx.input(s, COMPLETIONS).is_file())  # none when training on a file
    where = ("prompt_id", {p.prompt_id for p in pairs})  # only the kept pairs' rows, with their tokens
    completions = [
        c for s in sources for c in read_records(ctx.input(s, COMPLETIONS), Completion, where=where)
    ]
    if cfg.train.accumulate:
        completions += ctx.earlier(sources, COMPLETIONS, Completion, where=where)
    sampled = {sampled_key(c): c for c in completions}
    exact = torch_dtype(str(cfg.model.dtype), default_device()) == torch.float32
    raw = cfg.generate.logprobs_mode == "raw"  # processed log-probs are not the model's: never a reference
    reuse = ctx.reference if exact and raw and loss_spec(cfg.train).reference else None
    tokenizer = load_tokenizer(ctx.policy, cfg.model.trust_remote_code, chat_template=cfg.model.chat_template)
    rows, row_stats = training_rows(pairs, sampled, tokenizer, cfg.train, reuse)
    if not rows:
        raise SelfplayError(
            f"{ctx.label}: every kept pair's prompt fills train.max_length={cfg.train.max_length}"
        )
    world = ctx.train_world_size  # the schedule the training processes will run, checked before they start
    warning = check_schedule(planned_schedule(len(rows), cfg.train, world), cfg.train, ctx.label)
    if warning:
        log.warning(warning)
    shutil.rmtree(ctx.out / TRAIN_DATA, ignore_errors=True)  # a rerun after a kill keeps the checkpoints only
    Dataset.from_list(rows).save_to_disk(str(ctx.out / TRAIN_DATA))
    return TrainStats(
        pairs=len(pairs), reference=str(cfg.train.reference), loss=str(cfg.train.loss), **row_stats
    )


def train_ranks(ctx: StageContext) -> TrainStats:
    """What every training process runs (one process, or each rank process): train on the prepared
    rows and save the next policy (with its model card); returns the trainer's stats."""
    from functools import partial

    from selfplay.training.trainer import train_policy

    cfg = ctx.config
    follow = (
        None
        if ctx.follow_training is None
        else partial(ctx.follow_training, ctx.iteration, ctx.out / LIVE_HISTORY)
    )
    stats = TrainStats(
        **train_policy(
            ctx.out / TRAIN_DATA,
            ctx.policy,
            ctx.reference,
            cfg.train,
            cfg.model,
            ctx.out / TRAINER,
            ctx.out / MODEL,
            ctx.label,
            ctx.out / TRAIN_HISTORY,
            RunLayout.rendezvous_file(ctx.out),
            cfg.cluster.rendezvous_timeout,
            ctx.out / LIVE_HISTORY,
            follow,  # in this process: to the run's tracker
        )
    )
    if int(os.environ.get("RANK", "0")) == 0:
        from selfplay.rundir.layout import MODEL_CARD

        write_card(ctx, ctx.out / MODEL / MODEL_CARD, stats)
    return stats


def write_card(
    ctx: StageContext, path: Path, train: TrainStats, evaluation: EvaluateStats | None = None
) -> None:
    """The policy's model card, written atomically by the stage that owns `path`'s folder: train into
    its model folder; evaluate, with the held-out results, into its own (the push stage uploads it)."""
    from selfplay.reporting.model_card import model_card

    selection = typed(ctx.layout.finished(ctx.iteration, sn.SELECTION), SelectionStats)
    text = model_card(ctx.config, ctx.iteration, ctx.policy, train, selection, evaluation)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


def import_pairs(ctx: StageContext) -> ImportStats:
    """`python -m selfplay.train input=<file>`: the file's preference rows as this run's kept pairs (the
    system prompt of `prompts.system_prompt` added, as the loop adds it), for the train stage."""
    from selfplay.data.preferences import file_pairs

    cfg = ctx.config
    pairs, stats = file_pairs(
        getattr(cfg, "input", None),
        getattr(cfg, "split", "train"),
        getattr(cfg, "pairs", None),
        cfg.prompts.system_prompt,
    )
    write_records(ctx.out / PAIRS, pairs)
    return ImportStats(**stats)
