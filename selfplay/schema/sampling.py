"""Prompts, sampling and where the implicit rewards' log-probabilities come from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from selfplay.schema.choices import Backend, EngineLifetime, LogprobsMode, LogprobSource, PromptSource


@dataclass
class PromptsConfig:
    """Where the prompt pool and the held-out prompts come from and how iterations draw on them."""

    source: PromptSource = PromptSource.bundled
    """bundled = the prompt set shipped in the package; file = local JSONL/Parquet; hf = datasets."""
    path: str | None = None
    """File path (source=file) or dataset name / saved-dataset folder (source=hf)."""
    split: str = "train"
    """Dataset split (source=hf)."""
    field: str = "prompt"
    """Column holding the prompt: a string, or a list of chat messages ({role, content})."""
    id_field: str | None = None
    """Column with a stable prompt id; null means ids are derived from the prompt text."""
    heldout_path: str | None = None
    """Held-out prompts (same formats); null with source=bundled uses the bundled held-out set,
    otherwise the last `heldout_size` prompts of the pool are held out."""
    heldout_size: int = 48
    """Number of held-out prompts used for evaluation."""
    per_iteration: int = 96
    """Prompts drawn for each iteration (disjoint windows of the shuffled pool)."""
    shuffle_seed: int = 0
    """Seed of the pool's shuffle before it is cut into iteration windows."""
    system_prompt: str | None = None
    """System message prepended to every prompt (also at training time)."""


@dataclass
class GenerateConfig:
    """Sampling K responses per prompt with the current policy."""

    backend: Backend = Backend.auto
    """vllm = offline vllm.LLM; hf = transformers generate; auto = vllm when it imports."""
    num_samples: int = 5
    """K: responses sampled per prompt (the paper: 5)."""
    temperature: float = 0.8
    """Sampling temperature."""
    top_p: float = 0.95
    """Nucleus sampling mass."""
    top_k: int = -1
    """Top-k sampling (-1 = off)."""
    max_tokens: int = 1024
    """Maximum new tokens per response."""
    seed: int = 0
    """Run seed; each prompt's sampling seed is derived from (seed, iteration, prompt id)."""
    max_model_len: int | None = None
    """Context length given to the engine (prompt + response); null = the model's own (its config's
    max_position_embeddings), as vLLM does. Set it lower where KV-cache memory is short (CPUs)."""
    tensor_parallel_size: int = 1
    """vLLM tensor parallelism inside one engine."""
    gpu_memory_utilization: float = 0.85
    """vLLM's GPU memory fraction."""
    enforce_eager: bool = True
    """Skip CUDA graph capture (faster start; slower decode on GPUs)."""
    cpu_kv_cache_gib: float = 1.0
    """KV cache size on a CPU (vLLM otherwise takes ~11 GiB)."""
    hf_batch_size: int = 64
    """Sequences (prompts x K) per forward pass of the transformers backend (generate.backend=hf);
    lower it where the KV cache of that many sequences does not fit."""
    stop: list[str] = field(default_factory=list)
    """Stop strings: a response ends before the first one (finish_reason "stop")."""
    ignore_eos: bool = False
    """Keep sampling past end-of-sequence up to max_tokens (benchmarks)."""
    logprobs_mode: LogprobsMode = LogprobsMode.raw
    """Which log-prob of each sampled token is recorded: raw = the model's distribution (before
    temperature and top-p; what teacher forcing computes, and what DPO's reference needs), processed =
    the distribution actually sampled from (after temperature and top-p; what vLLM's V0 engine returned,
    and so very likely what the paper's self-play runs used). Processed values are never reused as DPO
    reference log-probs."""
    engine: EngineLifetime = EngineLifetime.persistent
    """persistent = one vLLM engine per process serves every sampling stage of every iteration, its weights
    reloaded in place for each new policy (on GPUs it sleeps while other stages need the memory);
    per_stage = a new engine for each sampling stage, closed at its end (isolation, debugging). Records
    are identical either way."""
    engine_args: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for `vllm.LLM` (vLLM's engine arguments, e.g. max_num_seqs,
    enable_prefix_caching, quantization), applied last, over our own CPU scheduler settings; set them
    as `+generate.engine_args.max_num_seqs=64`. Keys that have a generate.* or model.* setting of their
    own (model, seed, dtype, max_model_len, ...) are refused: set those instead."""


@dataclass
class LogprobsConfig:
    """Where the implicit rewards' log-probabilities come from (docs/method.md section 3)."""

    source: LogprobSource = LogprobSource.generation
    """generation = the sampler's raw log-probs; teacher_forcing = a separate forward pass."""
    batch_size: int = 16
    """Sequences per teacher-forced forward pass."""
