"""How many optimizer steps a training run will take and how many of them warm up, computed the way
the transformers Trainer computes them, so that a schedule that cannot train is caught before it runs."""

from __future__ import annotations

import math
from dataclasses import dataclass

from selfplay.config import TrainConfig
from selfplay.errors import SelfplayError
from selfplay.training.trl_args import gradient_accumulation

FEW_STEPS = 5
"""Fewer optimizer steps than this is warned about."""


@dataclass(frozen=True)
class Schedule:
    pairs: int
    steps: int
    warmup: int
    per_step: int
    """Pairs per optimizer step over all processes."""

    def describe(self, cfg: TrainConfig) -> str:
        return (
            f"{self.pairs} pairs make {self.steps} optimizer step(s) of {self.per_step} pairs "
            f"(train.batch_size x processes x accumulation) over {cfg.epochs:g} epoch(s), "
            f"{self.warmup} of them warmup (train.warmup_ratio={cfg.warmup_ratio:g})"
        )


def planned_schedule(pairs: int, cfg: TrainConfig, world_size: int) -> Schedule:
    """Steps as the Trainer counts them: batches per process per epoch, divided by the accumulation
    (rounded up, at least 1), times the epochs (rounded up); warmup = ceil(ratio x steps)."""
    accumulation = gradient_accumulation(cfg, world_size)
    batches = math.ceil(pairs / (cfg.batch_size * world_size)) if pairs else 0
    per_epoch = max(batches // accumulation + int(batches % accumulation > 0), 1)
    steps = math.ceil(cfg.epochs * per_epoch)
    ratio = cfg.warmup_ratio
    warmup = int(ratio) if ratio >= 1 else math.ceil(steps * ratio)
    return Schedule(pairs, steps, warmup, cfg.batch_size * world_size * accumulation)


def check_schedule(s: Schedule, cfg: TrainConfig, where: str) -> str | None:
    """Refuse a schedule whose warmup takes every step (the learning rate never reaches its peak, and
    the first step runs at 0: one step trains nothing); return a warning for one of few steps."""
    if s.warmup >= s.steps and cfg.learning_rate > 0:
        raise SelfplayError(
            f"{where}: {s.describe(cfg)}: warmup takes every step, so training barely moves the policy "
            f"(one step runs at learning rate 0). Lower train.warmup_ratio (e.g. 0) or train.batch_size / "
            "train.gradient_accumulation_steps / train.global_batch_size, or raise train.epochs or the kept pairs"
        )
    if s.steps < FEW_STEPS:
        return (
            f"{where}: {s.describe(cfg)}: only {s.steps} step(s); consider a smaller train.batch_size or "
            "gradient accumulation, more epochs, or more kept pairs"
        )
    return None
