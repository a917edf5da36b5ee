"""Train pi_{t+1} from pi_t on selected pairs with TRL's DPOTrainer; save a plain HF model."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from selfplay.config import ModelConfig, TrainConfig
from selfplay.data.records import Pair
from selfplay.errors import SelfplayError
from selfplay.models.loading import load_causal_lm, load_tokenizer, torch_dtype
from selfplay.train.trl_args import dpo_config_kwargs

log = logging.getLogger(__name__)


def to_preference_rows(pairs: list[Pair]) -> list[dict[str, Any]]:
    """TRL's conversational preference format."""
    return [
        {
            "prompt": p.messages,
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]


def train_policy(
    pairs: list[Pair],
    policy_path: str,
    reference_path: str | None,
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    out_dir: Path,
) -> dict[str, float]:
    """Train from `policy_path` (pi_t) against `reference_path` (None = pi_t itself); save to out_dir."""
    import datasets
    import torch
    from datasets import Dataset

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from trl import DPOConfig, DPOTrainer

    if not pairs:
        raise SelfplayError("train: no selected pairs to train on (see the selection stage's counts)")
    datasets.disable_progress_bars()
    on_cuda = torch.cuda.is_available()
    want_bf16 = torch_dtype(str(model_cfg.dtype), "cuda" if on_cuda else "cpu") == torch.bfloat16
    args = DPOConfig(**dpo_config_kwargs(cfg, str(out_dir / "trainer"), on_cuda, want_bf16))
    tokenizer = load_tokenizer(policy_path, model_cfg.trust_remote_code)
    model = load_causal_lm(policy_path, "float32", model_cfg.trust_remote_code)
    model.train()
    ref_model = None
    if reference_path is not None and reference_path != policy_path:
        ref_model = load_causal_lm(reference_path, "float32", model_cfg.trust_remote_code)
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=args,
        train_dataset=Dataset.from_list(to_preference_rows(pairs)),
        processing_class=tokenizer,
    )
    from transformers import PrinterCallback

    trainer.remove_callback(PrinterCallback)  # per-step dicts on stdout; the history is kept below
    result = trainer.train()
    model_dir = out_dir / "model"
    trainer.save_model(str(model_dir))
    tokenizer.save_pretrained(str(model_dir))
    return _train_stats(result, trainer.state.log_history)


def _train_stats(result, history: list[dict[str, Any]]) -> dict[str, float]:
    steps = [h for h in history if "loss" in h]
    stats = {"train_loss": float(result.training_loss), "optimizer_steps": int(result.global_step)}
    if steps:
        last = steps[-1]
        for key in ("rewards/margins", "rewards/accuracies"):
            if key in last:
                stats["last_" + key.replace("/", "_")] = float(last[key])
    return stats
