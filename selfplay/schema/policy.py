"""The starting policy pi_0 (and the built-in tiny policy's settings)."""

from __future__ import annotations

from dataclasses import dataclass, field

from selfplay.schema.choices import TINY_MODEL, Dtype, TinyTemplate


@dataclass
class TinyModelConfig:
    """How the built-in tiny policy is built (only used when `model.path == "tiny"`)."""

    seed: int = 0
    """Seed for the tokenizer corpus, weight init and pre-training; same seed -> same model."""
    hidden_size: int = 64
    """Hidden width (head_dim = hidden_size / num_heads must be >= 32 for vLLM's CPU kernels)."""
    num_layers: int = 2
    """Decoder layers."""
    num_heads: int = 2
    """Attention heads."""
    pretrain_steps: int = 1200
    """Steps of next-token training on templated chat text, so samples vary but are not noise."""
    template: TinyTemplate = TinyTemplate.plain
    """Chat format: plain (<|user|> ... <|end|>, a BOS) or chatml (<|im_start|>role, <|im_end|> and a
    newline after every turn, a default system turn, no BOS: the shape of Qwen-style templates)."""
    cache_dir: str | None = None
    """Where built models are cached; null means $SELFPLAY_CACHE or ~/.cache/selfplay."""


@dataclass
class ModelConfig:
    """The starting policy pi_0."""

    path: str = TINY_MODEL
    """Hugging Face model folder or hub name, or "tiny" for the built-in tiny policy (with preset=tiny;
    any other model needs preset=none or a preset of conf/preset/)."""
    trust_remote_code: bool = False
    """Allow the model's own Python code to run (explicit per-model opt-in)."""
    allow_pickle: bool = False
    """Allow pickle weights (pytorch_model.bin), which can run code when loaded; by default only
    safetensors load."""
    chat_template: str | None = None
    """A Jinja chat template (the string, or a file holding it) for a model whose tokenizer ships none or
    the wrong one; it replaces the tokenizer's wherever the policy's prompts and responses are rendered,
    and is saved with every trained policy. null = the tokenizer's own."""
    dtype: Dtype = Dtype.auto
    """Weights dtype: auto = bfloat16 on CUDA, float32 on CPU."""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    """Settings of the built-in tiny policy."""
