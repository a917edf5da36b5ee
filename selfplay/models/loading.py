"""Resolving and loading models and tokenizers, with one-line errors for paths that cannot work."""

from __future__ import annotations

from pathlib import Path

from selfplay.config import TINY_MODEL, ModelConfig
from selfplay.errors import SelfplayError

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def resolve_policy_path(cfg: ModelConfig) -> str:
    """pi_0's folder: the built tiny policy, a local folder (checked), or a hub name (left to HF)."""
    if cfg.path == TINY_MODEL:
        from selfplay.models.tiny import tiny_model_path

        return str(tiny_model_path(cfg.tiny))
    check_model_dir(cfg.path, "model.path")
    return cfg.path


def looks_local(path: str) -> bool:
    return path.startswith((".", "/", "~")) or Path(path).exists() or path.count("/") != 1


def check_model_dir(path: str, field: str) -> None:
    """A local model folder must exist and hold a config and weights; hub names pass through."""
    if not looks_local(path):
        return
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise SelfplayError(f"{field}: model folder '{path}' does not exist")
    if not (folder / "config.json").is_file():
        raise SelfplayError(f"{field}: '{path}' has no config.json (not a Hugging Face model folder)")
    if not any((folder / w).is_file() for w in WEIGHT_FILES) and not list(folder.glob("*.safetensors")):
        raise SelfplayError(f"{field}: '{path}' has no weights (*.safetensors or pytorch_model.bin)")


def torch_dtype(name: str, device: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, str(name))


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(path: str, trust_remote_code: bool = False):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(
    path: str, dtype: str = "auto", trust_remote_code: bool = False, device: str | None = None
):
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch_dtype(dtype, device), trust_remote_code=trust_remote_code
    )
    return model.to(device).eval()  # type: ignore[arg-type]
