"""The one mapping from our `TrainConfig` to TRL's config arguments (pure; unit-tested), and the
checks that need the installed TRL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfplay.config import TrainConfig
from selfplay.errors import SelfplayError


def passed_through(cfg: TrainConfig) -> dict[str, Any]:
    """`train.trl_args`, as given (they win over ours; the output folder stays ours)."""
    return {k: v for k, v in dict(cfg.trl_args).items() if k != "output_dir"}


def check_trl_args(cfg: TrainConfig, trl_config: type) -> None:
    """Every `train.trl_args` key is a field of the installed TRL's config for this loss (`trl_config`)."""
    import dataclasses
    import difflib

    if not cfg.trl_args:
        return
    names = {f.name for f in dataclasses.fields(trl_config)}
    for key in cfg.trl_args:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise SelfplayError(
                f"train.trl_args.{key}: not a field of TRL's {trl_config.__name__} in the installed TRL{hint}"
            )


def gradient_accumulation(cfg: TrainConfig, world_size: int) -> int:
    """Accumulation steps: from the global batch when set (it must divide evenly), else as given."""
    if cfg.global_batch_size is None:
        return cfg.gradient_accumulation_steps
    per_step = cfg.batch_size * world_size
    if cfg.global_batch_size % per_step:
        raise SelfplayError(
            f"train.global_batch_size={cfg.global_batch_size} is not a multiple of train.batch_size x "
            f"training processes = {cfg.batch_size} x {world_size} = {per_step} (the processes this run "
            "launches: train.num_processes, or nodes x GPUs per node with cluster=gpus|slurm)"
        )
    return cfg.global_batch_size // per_step


def deepspeed_config(name: str | None) -> str | None:
    """zero2 / zero3 -> the shipped JSON; anything else must be an existing file."""
    if name is None:
        return None
    if name in ("zero2", "zero3"):  # shipped with the configs (conf/deepspeed/)
        from importlib import resources

        path = Path(str(resources.files("selfplay.conf") / "deepspeed" / f"{name}.json"))
    else:
        path = Path(name)
    if not path.is_file():
        raise SelfplayError(
            f"train.deepspeed: '{name}' is not zero2, zero3 or an existing JSON file ({path})"
        )
    return str(path)


def common_kwargs(
    cfg: TrainConfig, output_dir: str, on_cuda: bool, bf16: bool, world_size: int
) -> dict[str, Any]:
    """TrainingArguments shared by both losses. TRL defaults to bf16 and gradient checkpointing; on a
    CPU both are off and `use_cpu` is set."""
    checkpointing = on_cuda if cfg.gradient_checkpointing is None else cfg.gradient_checkpointing
    return {
        "output_dir": output_dir,
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.epochs,
        "per_device_train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": gradient_accumulation(cfg, world_size),
        "lr_scheduler_type": cfg.lr_scheduler,
        "warmup_steps": cfg.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
        "max_length": cfg.max_length,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "use_cpu": not on_cuda,
        "bf16": bool(on_cuda and bf16),
        "gradient_checkpointing": bool(checkpointing),
        "deepspeed": deepspeed_config(cfg.deepspeed),
        "report_to": "none",
        "save_strategy": "steps" if cfg.save_steps > 0 else "no",
        "save_steps": cfg.save_steps if cfg.save_steps > 0 else 500,
        "save_total_limit": cfg.save_total_limit,
        "logging_steps": 1,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
