"""The one mapping from our `TrainConfig` to TRL's config arguments (pure; unit-tested)."""

from __future__ import annotations

from typing import Any

from selfplay.config import TrainConfig


def dpo_config_kwargs(cfg: TrainConfig, output_dir: str, on_cuda: bool, bf16: bool) -> dict[str, Any]:
    """Keyword arguments for `trl.DPOConfig`. TRL defaults to bf16 and gradient checkpointing;
    on a CPU both are turned off and `use_cpu` is set."""
    return {
        "output_dir": output_dir,
        "loss_type": ["sigmoid"],
        "beta": cfg.beta,
        "learning_rate": cfg.learning_rate,
        "num_train_epochs": cfg.epochs,
        "per_device_train_batch_size": cfg.batch_size,
        "gradient_accumulation_steps": cfg.gradient_accumulation_steps,
        "lr_scheduler_type": cfg.lr_scheduler,
        "warmup_steps": cfg.warmup_ratio,  # a float in [0, 1) is a ratio of total steps
        "max_length": cfg.max_length,
        "seed": cfg.seed,
        "data_seed": cfg.seed,
        "use_cpu": not on_cuda,
        "bf16": bool(on_cuda and bf16),
        "gradient_checkpointing": bool(on_cuda),
        "report_to": "none",
        "save_strategy": "no",
        "logging_steps": 1,
        "disable_tqdm": True,
        "dataloader_num_workers": 0,
    }
