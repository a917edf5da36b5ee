"""Train pi_{t+1} from pi_t on preference rows with TRL (DPO, or SimPO through the CPO trainer),
optionally with LoRA, and save a plain Hugging Face model (LoRA merged) for the next generate."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from selfplay.config import ModelConfig, TrainConfig
from selfplay.errors import SelfplayError
from selfplay.models.loading import load_causal_lm, load_tokenizer, torch_dtype
from selfplay.train.trl_args import dpo_config_kwargs, simpo_config_kwargs

log = logging.getLogger(__name__)
REF_COLUMNS = ("ref_chosen_logps", "ref_rejected_logps")


def reusing_dpo_trainer():
    """TRL's DPOTrainer that takes reference log-probs already present in the dataset instead of
    computing them (TRL 1.16 always recomputes under `precompute_ref_log_probs`)."""
    from trl import DPOTrainer

    class ReusingDPOTrainer(DPOTrainer):
        def _precompute_ref_logps(self, dataset, name, batch_size):
            if all(c in dataset.column_names for c in REF_COLUMNS):
                return dataset
            return super()._precompute_ref_logps(dataset, name, batch_size)

    return ReusingDPOTrainer


def peft_config(cfg: TrainConfig):
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules=list(cfg.lora.target_modules),
        task_type="CAUSAL_LM",
    )


def world() -> tuple[int, int]:
    """(rank, world size) from the launcher's environment (1 process without one)."""
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def train_policy(
    data_dir: Path,
    policy_path: str,
    reference_path: str | None,
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    trainer_dir: Path,
    model_dir: Path,
) -> dict[str, Any]:
    """Train from `policy_path` on the rows saved in `data_dir`; save the next policy to `model_dir`
    (`trainer_dir` is TRL's scratch folder). The DPO reference is `reference_path` (None = pi_t
    itself) unless the rows carry reference log-probs. Returns the training stats."""
    import datasets
    import torch
    from transformers import PrinterCallback

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    datasets.disable_progress_bars()
    rank, world_size = world()
    on_cuda = torch.cuda.is_available()
    if on_cuda and world_size > 1:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if cfg.deepspeed:
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if on_cuda else "gloo")
    bf16 = torch_dtype(str(model_cfg.dtype), "cuda" if on_cuda else "cpu") == torch.bfloat16
    dataset = datasets.load_from_disk(str(data_dir))  # file-backed: TRL needs that with >= 2 processes
    tokenizer = load_tokenizer(policy_path, model_cfg.trust_remote_code)
    model = load_causal_lm(policy_path, "float32", model_cfg.trust_remote_code, device="cpu")
    model.train()
    if cfg.loss == "simpo":
        from trl.experimental.cpo import CPOConfig, CPOTrainer

        args = CPOConfig(**simpo_config_kwargs(cfg, str(trainer_dir), on_cuda, bf16, world_size))
        trainer = CPOTrainer(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config(cfg),
        )
    else:
        precomputed = all(c in dataset.column_names for c in REF_COLUMNS)
        ref_model = None
        if not precomputed and reference_path is not None and reference_path != policy_path:
            ref_model = load_causal_lm(reference_path, "float32", model_cfg.trust_remote_code, device="cpu")
        args = _dpo_config(cfg, str(trainer_dir), on_cuda, bf16, world_size, precomputed)
        trainer = reusing_dpo_trainer()(
            model=model,
            ref_model=ref_model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config(cfg),
        )
    trainer.remove_callback(PrinterCallback)  # per-step dicts on stdout; the history is kept below
    result = trainer.train()
    stats = _train_stats(result, trainer.state.log_history)
    if cfg.lora.enabled:
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        if rank == 0:
            merged.save_pretrained(str(model_dir))
    else:
        trainer.save_model(str(model_dir))
    if rank == 0:
        tokenizer.save_pretrained(str(model_dir))
    return stats


def _dpo_config(cfg, trainer_dir, on_cuda, bf16, world_size, precomputed):
    from trl import DPOConfig

    try:
        return DPOConfig(**dpo_config_kwargs(cfg, trainer_dir, on_cuda, bf16, world_size, precomputed))
    except ValueError as err:
        raise SelfplayError(f"train: TRL refused the DPO configuration: {err}") from None


def _train_stats(result, history: list[dict[str, Any]]) -> dict[str, Any]:
    steps = [h for h in history if "loss" in h]
    stats: dict[str, Any] = {
        "train_loss": float(result.training_loss),
        "optimizer_steps": int(result.global_step),
    }
    if steps:
        for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
            if key in steps[0]:
                stats["first_" + key.replace("/", "_")] = float(steps[0][key])
            if key in steps[-1]:
                stats["last_" + key.replace("/", "_")] = float(steps[-1][key])
    return stats
