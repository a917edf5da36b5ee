"""Preference training with TRL (and LoRA through PEFT)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from selfplay.schema.choices import Reference, RefLogprobs


@dataclass
class LoraConfig:
    """LoRA adapters through PEFT; the saved policy is always a merged, plain model."""

    enabled: bool = False
    """Train LoRA adapters instead of all weights."""
    r: int = 16
    """Adapter rank."""
    alpha: int = 32
    """LoRA alpha."""
    dropout: float = 0.05
    """Adapter dropout."""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names (suffixes) that get adapters; each must exist in the model."""


@dataclass
class TrainConfig:
    """Preference training of pi_{t+1} from pi_t with TRL."""

    loss: str = "dpo"
    """dpo: TRL's DPOTrainer with `dpo_loss_type`; simpo: TRL's CPO trainer in SimPO mode (no reference);
    "module:attr" names a LossSpec of your own (selfplay/training/losses.py)."""
    dpo_loss_type: str = "sigmoid"
    """TRL DPO loss_type (sigmoid, ipo, hinge, robust, ...; checked against the installed TRL)."""
    beta: float | None = None
    """null = the loss's usual value: DPO 0.1 (the DPO paper; TRL's default), SimPO 2.5 (SimPO's
    instruct-model recipes use 2.5 to 10; the paper presets 10). DPO's beta is usually 0.01 to 0.5,
    SimPO's 1 to 10: a value outside that is warned about at start."""
    simpo_gamma_beta_ratio: float = 0.5
    """SimPO margin as a fraction of beta: gamma = ratio * beta (SimPO's recipes: 0.3 to 0.55)."""
    learning_rate: float = 5e-7
    """Peak learning rate. DPO and SimPO recipes for 7-9B instruct models use 3e-7 to 1e-6 (SimPO
    paper; the paper presets); small models tolerate more (~5e-6 at 0.5B). Above 1e-4 on a model
    over 100M parameters is warned about at start."""
    epochs: float = 1.0
    """Passes over the training pairs (the recipes: 1)."""
    batch_size: int = 4
    """Per-device micro-batch size."""
    gradient_accumulation_steps: int = 8
    """Micro-batches per optimiser step (ignored when global_batch_size is set): the default makes 32
    pairs per step and process; the paper presets use a global batch of 128."""
    global_batch_size: int | None = None
    """Pairs per optimiser step over all processes; accumulation = global / (batch_size x processes)."""
    lr_scheduler: str = "cosine"
    """transformers scheduler name."""
    warmup_ratio: float = 0.1
    """Fraction of steps spent warming up."""
    max_length: int = 2048
    """Truncation length of prompt + response in tokens (keep the start, as TRL does)."""
    seed: int = 42
    """Trainer seed."""
    reference: Reference = Reference.previous
    """DPO reference: pi_t (previous) or pi_0 (initial); recorded in the manifest."""
    reference_logprobs: RefLogprobs = RefLogprobs.auto
    """Where DPO's reference log-probs come from. auto: the sampled log-probs wherever the reference
    policy sampled the trained tokens and the numerics are exact (fp32), the rest from one teacher-forced
    pass of the reference before training (in bf16 on GPUs: all of them); teacher_forced: that one pass
    for every pair; trainer: TRL runs the reference model at every step."""
    accumulate: bool = False
    """Train on the kept pairs of this and all earlier iterations (false: this iteration's only)."""
    gradient_checkpointing: bool | None = None
    """null = on with CUDA, off on a CPU."""
    num_processes: int = 1
    """Training processes (GPUs); > 1 launches the train stage as that many rank processes."""
    deepspeed: str | None = None
    """DeepSpeed config: zero2, zero3 (shipped in conf/deepspeed/) or a JSON path; null = none."""
    save_steps: int = 100
    """Save a trainer checkpoint (weights, optimizer, scheduler, RNG) every this many optimizer steps in
    the stage's partial folder; a rerun of a killed train stage resumes from the newest one. 0 = never."""
    save_total_limit: int = 1
    """Trainer checkpoints kept (the oldest are deleted); all are deleted when the stage finishes."""
    trl_args: dict[str, Any] = field(default_factory=dict)
    """Extra fields of TRL's DPOConfig / CPOConfig (SimPO), passed through as given and checked against the
    installed TRL at start (a misspelled field is a one-line error), e.g. +train.trl_args.max_grad_norm=0.5
    (the leading + because Hydra needs it for keys the schema does not list)."""
    lora: LoraConfig = field(default_factory=LoraConfig)
