"""The closed sets of names the schema's fields choose from (each compares equal to its plain string),
and the model path that means the built-in tiny policy."""

from __future__ import annotations

from enum import Enum


class Choice(str, Enum):
    """A closed set of names; compares equal to its plain string and prints as it."""

    def __str__(self) -> str:
        return self.value


class Dtype(Choice):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class PromptSource(Choice):
    bundled = "bundled"
    file = "file"
    hf = "hf"


class Backend(Choice):
    auto = "auto"
    vllm = "vllm"
    hf = "hf"


class JudgeKind(Choice):
    rule = "rule"
    reward_model = "reward_model"
    remote = "remote"
    generative = "generative"


class JudgeMode(Choice):
    pointwise = "pointwise"
    pairwise = "pairwise"


class TrackingBackend(Choice):
    none = "none"
    tensorboard = "tensorboard"
    wandb = "wandb"
    trackio = "trackio"
    mlflow = "mlflow"


class LogprobSource(Choice):
    generation = "generation"
    teacher_forcing = "teacher_forcing"


class LogprobsMode(Choice):
    raw = "raw"
    processed = "processed"


class EngineLifetime(Choice):
    persistent = "persistent"
    per_stage = "per_stage"


class SelectionPool(Choice):
    iteration = "iteration"
    all = "all"


class Nonfinite(Choice):
    drop = "drop"
    error = "error"


class ImplicitReward(Choice):
    avg_logp = "avg_logp"
    sum_logp = "sum_logp"
    dpo = "dpo"


class TableFormat(Choice):
    parquet = "parquet"
    jsonl = "jsonl"


class EvolveParents(Choice):
    all = "all"
    top = "top"


class Preamble(Choice):
    strip = "strip"  # type: ignore[assignment]  # shadows str.strip on members only; the name is the config value
    drop = "drop"


class ClusterKind(Choice):
    local = "local"
    gpus = "gpus"
    slurm = "slurm"


class Isolation(Choice):
    auto = "auto"
    in_process = "in_process"
    process = "process"


class RefLogprobs(Choice):
    auto = "auto"
    teacher_forced = "teacher_forced"
    trainer = "trainer"


class TinyTemplate(Choice):
    plain = "plain"
    chatml = "chatml"


class Reference(Choice):
    previous = "previous"
    initial = "initial"


TINY_MODEL = "tiny"
"""Model path that means: the built-in tiny policy, built locally and cached (no download)."""
