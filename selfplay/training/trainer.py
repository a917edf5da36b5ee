"""Train pi_{t+1} from pi_t on tokenised preference rows with TRL (DPO, or SimPO through the CPO
trainer), optionally with LoRA, and save a plain Hugging Face model (LoRA merged) for the next
generate. The rows are already tokenised (selfplay/training/data.py), so TRL's own tokenisation is skipped."""

from __future__ import annotations

import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selfplay.config import ModelConfig, TrainConfig
from selfplay.data.jsonl import finite
from selfplay.errors import SelfplayError
from selfplay.models.loading import load_tokenizer, loading, same_weights, torch_dtype
from selfplay.training.distributed import join_process_group
from selfplay.training.losses import loss_spec, missing_reference
from selfplay.training.schedule import planned_schedule

log = logging.getLogger(__name__)


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


def train_policy(
    data_dir: Path,
    policy_path: str,
    reference_path: str | None,
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    trainer_dir: Path,
    model_dir: Path,
    label: str = "train",
    history_file: Path | None = None,
    rendezvous_file: Path | None = None,
    rendezvous_timeout: float = 300.0,
    live_file: Path | None = None,
    on_live: Callable[[], None] | None = None,
) -> dict[str, Any]:
    """Train from `policy_path` on the rows saved in `data_dir`; save the next policy to `model_dir`
    (`trainer_dir` is TRL's scratch folder: checkpoints every `train.save_steps`, resumed from when
    a killed run is rerun, deleted at the end). The DPO reference is `reference_path` (None = pi_t
    itself). Returns the training stats; refuses a schedule that cannot train and a result that is
    bit-identical to the start."""
    import datasets
    import torch
    from transformers import PrinterCallback

    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    datasets.disable_progress_bars()
    on_cuda = torch.cuda.is_available()
    rank, world_size = join_process_group(on_cuda, rendezvous_file, rendezvous_timeout)
    if cfg.deepspeed:
        import deepspeed

        deepspeed.init_distributed(dist_backend="nccl" if on_cuda else "gloo")
    bf16 = torch_dtype(str(model_cfg.dtype), "cuda" if on_cuda else "cpu") == torch.bfloat16
    dataset = datasets.load_from_disk(str(data_dir))  # file-backed: TRL needs that with >= 2 processes
    schedule = planned_schedule(len(dataset), cfg, world_size)  # checked when the rows were written
    tokenizer = load_tokenizer(
        policy_path, model_cfg.trust_remote_code, chat_template=model_cfg.chat_template
    )
    spec = loss_spec(cfg)
    precompute = spec.reference and cfg.reference_logprobs != "trainer"
    # The training config first: with ZeRO-3 its DeepSpeed config must exist before the model loads,
    # so that `from_pretrained` partitions the parameters across ranks instead of every rank holding all.
    args = _trl_config(cfg, str(trainer_dir), on_cuda, bf16, world_size, precompute)
    dtype = torch.bfloat16 if (cfg.deepspeed and bf16) else torch.float32  # DeepSpeed keeps fp32 masters
    model = load_for_training(policy_path, dtype, model_cfg.trust_remote_code, model_cfg.allow_pickle)
    model.train()
    callbacks = [progress_callback(label, schedule.steps)]
    if live_file is not None:
        checkpoint = latest_checkpoint(trainer_dir)
        resumed = int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint is not None else None
        callbacks.append(live_history_callback(live_file, on_live, resumed))
    os.environ["TQDM_DISABLE"] = "1"  # TRL's reference pass in the trainer's constructor draws a bar
    try:
        ref_model = None
        if spec.reference:
            needs_reference = not precompute or bool(missing_reference(dataset))
            if needs_reference and reference_path is not None and reference_path != policy_path:
                ref_model = load_for_training(
                    reference_path, dtype, model_cfg.trust_remote_code, model_cfg.allow_pickle
                )
        trainer = spec.trainer()(
            model=model,
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
            peft_config=peft_config(cfg),
            callbacks=callbacks,
            **({"ref_model": ref_model} if spec.reference else {}),
        )
        if precompute:  # every reference log-prob is in the dataset now: free the reference model
            trainer.ref_model = None
            del ref_model
    finally:
        os.environ.pop("TQDM_DISABLE", None)
    trainer.remove_callback(PrinterCallback)  # per-step dicts on stdout; the history is kept below
    resume = latest_checkpoint(trainer_dir)
    if resume is not None and rank == 0:
        log.info("%s: resuming from %s", label, resume)
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    resumed_at = int(resume.name.rsplit("-", 1)[1]) if resume is not None else None
    history = whole_history(trainer.state.log_history, resumed_at)
    stats = _train_stats(result, history, resumed_at)
    if resumed_at is not None:
        stats["resumed_from_step"] = resumed_at
        # the trainer's summary entry averages only the steps since the checkpoint: the whole training's
        history = [{**h, "train_loss": stats["train_loss"]} if "train_loss" in h else h for h in history]
    if cfg.lora.enabled:
        merged = trainer.accelerator.unwrap_model(trainer.model).merge_and_unload()
        if rank == 0:
            merged.save_pretrained(str(model_dir))
    else:
        trainer.save_model(str(model_dir))
    if rank == 0:
        tokenizer.save_pretrained(str(model_dir))
        if history_file is not None:  # TRL's per-step log, for tracking
            history_file.write_text("".join(json.dumps(finite(h), allow_nan=False) + "\n" for h in history))
        (model_dir / "training_args.bin").unlink(missing_ok=True)  # a pickle the next stage never needs
        shutil.rmtree(trainer_dir, ignore_errors=True)  # checkpoints: the stage is done
        unchanged = same_weights(policy_path, model_dir)
        if unchanged:
            raise SelfplayError(unchanged_message(schedule, cfg, stats))
        stats["policy_changed"] = None if unchanged is None else True
    return stats


def load_for_training(path: str, dtype, trust_remote_code: bool, allow_pickle: bool = False):
    """The model as the trainer wants it: on the CPU (the Trainer places it), in `dtype`, built under
    DeepSpeed's ZeRO-3 partitioning when a ZeRO-3 training config exists."""
    from transformers import AutoModelForCausalLM

    with loading(path):
        return AutoModelForCausalLM.from_pretrained(
            path,
            dtype=dtype,
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
        )


def latest_checkpoint(trainer_dir: Path) -> Path | None:
    """The newest complete trainer checkpoint (its trainer_state.json is written last); incomplete ones
    (a kill during a save) are removed."""
    found = sorted(
        (p for p in Path(trainer_dir).glob("checkpoint-*") if p.name.rsplit("-", 1)[1].isdigit()),
        key=lambda p: int(p.name.rsplit("-", 1)[1]),
        reverse=True,
    )
    for p in found:
        if (p / "trainer_state.json").is_file():
            return p
        shutil.rmtree(p, ignore_errors=True)
    return None


def live_history_callback(
    path: Path, on_live: Callable[[], None] | None = None, resumed_at: int | None = None
):
    """Appends each of TRL's log entries ({"step": optimizer step, loss, rewards/..., learning_rate, ...})
    to `path` as it is logged (rank 0), so the run's tracker can show training while it runs; a
    resumed training (from the checkpoint at `resumed_at`) appends after the entries of the killed one:
    a kind of entry already there for a step is not written again, and the token count continues from
    the checkpoint's (the trainer restarts it at 0). `on_live` is called after each entry (training in
    the orchestrator's own process forwards it to the tracker there)."""
    from transformers import TrainerCallback

    written, base = _live_entries(path, resumed_at)

    class LiveHistory(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or not state.is_world_process_zero:
                return
            entry = {"step": state.global_step, **logs}
            kind = ",".join(sorted(k for k in entry if k not in ("step", "epoch", "num_tokens")))
            if state.global_step <= written.get(kind, -1):
                return  # the killed attempt logged this step already
            if base and "num_tokens" in entry:
                entry["num_tokens"] = entry["num_tokens"] + base
            with path.open("a+b") as f:
                end = f.seek(0, os.SEEK_END)
                cut = False
                if end > 0:  # a line a kill cut short must not swallow this entry
                    f.seek(end - 1)
                    cut = f.read(1) != b"\n"
                line = json.dumps(finite(entry), allow_nan=False) + "\n"
                f.write((("\n" if cut else "") + line).encode())
            if on_live is not None:
                on_live()

    return LiveHistory()


def _live_entries(path: Path, resumed_at: int | None) -> tuple[dict[str, int], float]:
    """What a live history file already holds: the last step of each kind of entry, and the token count
    at the checkpoint a resumed training starts from (0 when it starts from scratch)."""
    written: dict[str, int] = {}
    base = 0.0
    if resumed_at is None or not path.is_file():
        return written, base
    for line in path.read_text().splitlines():
        try:
            h = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by the kill
        kind = ",".join(sorted(k for k in h if k not in ("step", "epoch", "num_tokens")))
        written[kind] = max(written.get(kind, -1), int(h.get("step", 0)))
        if "num_tokens" in h and int(h.get("step", 0)) <= resumed_at:
            base = float(h["num_tokens"])
    return written, base


def progress_callback(label: str, steps: int):
    """Optimizer steps with the latest loss as progress lines (rank 0) and heartbeats (every rank)."""
    from transformers import TrainerCallback

    from selfplay.progress import Progress

    class StepProgress(TrainerCallback):
        def __init__(self):
            self.progress: Progress | None = None
            self.loss: float | None = None

        def on_train_begin(self, args, state, control, **kwargs):
            # Every rank beats (a watcher tells a hung rank from a working one); rank 0 prints lines.
            self.progress = Progress(label, steps, "optimizer steps", lines=state.is_world_process_zero)
            self.progress.done = state.global_step

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                self.loss = float(logs["loss"])

        def on_step_end(self, args, state, control, **kwargs):
            if self.progress is not None:
                extra = {"loss": self.loss} if self.loss is not None else {}
                self.progress.update(state.global_step - self.progress.done, **extra)

        def on_train_end(self, args, state, control, **kwargs):
            if self.progress is not None:
                self.progress.close()

    return StepProgress()


def unchanged_message(schedule, cfg: TrainConfig, stats: dict[str, Any]) -> str:
    if cfg.learning_rate == 0:
        cause = "train.learning_rate is 0"
    elif schedule.steps - schedule.warmup <= 0 and schedule.steps <= 1:
        cause = "its only step ran at learning rate 0 (warmup); lower train.warmup_ratio"
    else:
        cause = (
            "the loss had no gradient (check that responses are not truncated away by train.max_length, "
            "and that train.loss / train.beta are sensible)"
        )
    return (
        f"train: the trained policy is bit-identical to the policy it started from after "
        f"{stats.get('optimizer_steps', '?')} optimizer step(s) ({schedule.describe(cfg)}); likely cause: {cause}"
    )


def _trl_config(cfg, trainer_dir, on_cuda, bf16, world_size, precomputed):
    """TRL's config for this loss (DPOConfig, CPOConfig for SimPO)."""
    spec = loss_spec(cfg)
    try:
        return spec.trl_config()(
            **spec.config_kwargs(cfg, trainer_dir, on_cuda, bf16, world_size, precomputed)
        )
    except ValueError as err:
        raise SelfplayError(f"train: TRL refused the {spec.name.upper()} configuration: {err}") from None


def whole_history(history: list[dict[str, Any]], resumed_at: int | None) -> list[dict[str, Any]]:
    """TRL's per-step log over the whole training. After a resume from a checkpoint the trainer's
    token count starts again from 0: it is continued from the checkpoint's."""
    if resumed_at is None:
        return list(history)
    before = [h["num_tokens"] for h in history if h.get("step", 0) <= resumed_at and "num_tokens" in h]
    after = [h["num_tokens"] for h in history if h.get("step", 0) > resumed_at and "num_tokens" in h]
    if not before or not after or after[0] >= before[-1]:
        return list(history)  # nothing to continue (or the trainer kept counting)
    base = before[-1]
    return [
        {**h, "num_tokens": h["num_tokens"] + base}
        if h.get("step", 0) > resumed_at and "num_tokens" in h
        else h
        for h in history
    ]


def _train_stats(result, history: list[dict[str, Any]], resumed_at: int | None = None) -> dict[str, Any]:
    """The trainer's statistics of the whole training. After a resume the Trainer's own `training_loss`
    covers only the steps since the checkpoint: the mean of every step's logged loss (logging_steps=1)
    replaces it."""
    steps = [h for h in history if "loss" in h]
    loss = float(result.training_loss)
    if resumed_at is not None and steps:
        loss = sum(float(h["loss"]) for h in steps) / len(steps)
    stats: dict[str, Any] = {
        "train_loss": loss,
        "optimizer_steps": int(result.global_step),
    }
    runtime = (getattr(result, "metrics", None) or {}).get("train_runtime")
    if runtime is not None:
        stats["train_seconds"] = float(runtime)
    if steps:
        for key in ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies"):
            if key in steps[0]:
                stats["first_" + key.replace("/", "_")] = float(steps[0][key])
            if key in steps[-1]:
                stats["last_" + key.replace("/", "_")] = float(steps[-1][key])
    return stats
