"""Resolving and loading models and tokenizers, with one-line errors for paths that cannot work."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Any

from selfplay.config import TINY_MODEL, ModelConfig
from selfplay.errors import SelfplayError

WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


def check_tokenizer(
    path: str, trust_remote_code: bool = False, key: str = "model.path", chat_template: str | None = None
) -> None:
    """The tokenizer has a chat template, and its ids all index the model's embedding (a tokenizer of
    another model otherwise fails deep inside generation)."""
    from transformers import AutoConfig

    from selfplay.data.chat import require_chat_template

    try:
        with loading(path, key):
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except SelfplayError:
        raise
    except Exception:  # the loaders report an unreadable config when they load it
        return
    vocab = getattr(
        config.get_text_config() if hasattr(config, "get_text_config") else config, "vocab_size", None
    )
    tokenizer = load_tokenizer(path, trust_remote_code, key, chat_template)
    require_chat_template(tokenizer, key)
    if isinstance(vocab, int) and len(tokenizer) > vocab:
        raise SelfplayError(
            f"{key}: the tokenizer of '{path}' has {len(tokenizer)} tokens but the model's embedding only "
            f"{vocab} (config.json vocab_size): tokenizer and model do not belong together"
        )


def resolve_policy_path(cfg: ModelConfig) -> str:
    """pi_0's folder: the built tiny policy, a built registry model (e.g. smollm2-135m), a local folder
    (checked), or a hub name (left to HF)."""
    if cfg.path == TINY_MODEL:
        from selfplay.models.tiny import tiny_model_path

        return str(tiny_model_path(cfg.tiny))
    from selfplay.models.registry_policy import registry_model, registry_policy_path

    if registry_model(cfg.path) is not None:  # a real policy a registry package ships (built once, cached)
        return str(registry_policy_path(cfg.path))
    check_model_dir(cfg.path, "model.path", cfg.allow_pickle)
    return cfg.path


def looks_local(path: str) -> bool:
    return path.startswith((".", "/", "~")) or Path(path).exists() or path.count("/") != 1


def check_model_dir(path: str, field: str, allow_pickle: bool = False) -> None:
    """A local model folder must exist and hold a config and weights, safetensors unless pickle weights
    are allowed for it (a pickle file can run code when loaded); hub names pass through (their loaders
    are told to take safetensors only)."""
    if not looks_local(path):
        return
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise SelfplayError(f"{field}: model folder '{path}' does not exist")
    if not (folder / "config.json").is_file():
        raise SelfplayError(f"{field}: '{path}' has no config.json (not a Hugging Face model folder)")
    safetensors = list(folder.glob("*.safetensors")) or (folder / "model.safetensors.index.json").is_file()
    if not safetensors:
        if not any((folder / w).is_file() for w in WEIGHT_FILES) and not list(folder.glob("*.bin")):
            raise SelfplayError(f"{field}: '{path}' has no weights (*.safetensors or pytorch_model.bin)")
        if not allow_pickle:
            prefix = field.rsplit(".", 1)[0]
            raise SelfplayError(
                f"{field}: '{path}' has only pickle weights (*.bin), which can run code when loaded; convert "
                f"them to safetensors, or set {prefix}.allow_pickle=true if you trust them"
            )


def torch_dtype(name: str, device: str):
    import torch

    if name == "auto":
        return torch.bfloat16 if device == "cuda" else torch.float32
    return getattr(torch, str(name))


def default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@contextmanager
def loading(path: str, key: str = "model.path"):
    """A library's refusal to run a model's own code, as our one-line error naming our config key
    (never the library's advice to pass its own remote-code flag)."""
    try:
        yield
    except SelfplayError:
        raise
    except Exception as err:
        if "safetensors" in str(err).lower() and "no file named" in str(err).lower():
            prefix = key.rsplit(".", 1)[0]
            raise SelfplayError(
                f"{key}: '{path}' has no safetensors weights (pickle weights can run code when loaded); set "
                f"{prefix}.allow_pickle=true if you trust them"
            ) from None
        if "trust_remote_code" in str(err):
            prefix = key.rsplit(".", 1)[0]
            raise SelfplayError(
                f"{key}: '{path}' needs its own Python code to load; if you trust that code, set "
                f"{prefix}.trust_remote_code=true"
            ) from None
        if "weights only load failed" in str(err).lower():  # torch's safe unpickler refused the file
            found = sorted(p.name for p in Path(path).glob("*.bin")) if Path(path).is_dir() else []
            raise SelfplayError(
                f"{key}: '{path}' holds pickle weights ({', '.join(found) or 'a .bin file'}) that torch's "
                "weights-only loader refuses (they pickle more than tensors, which could run code); convert "
                "them to safetensors where you trust them"
            ) from None
        raise


def load_tokenizer(
    path: str, trust_remote_code: bool = False, key: str = "model.path", chat_template: str | None = None
):
    """The tokenizer of a model folder; `chat_template` (model.chat_template, judge.model.chat_template: the
    Jinja text or a file) replaces the tokenizer's own."""
    from transformers import AutoTokenizer

    from selfplay.data.chat import resolve_chat_template, template_key

    with loading(path, key):
        tok = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    template = resolve_chat_template(chat_template, template_key(key))
    if template is not None:
        tok.chat_template = template
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(
    path: str,
    dtype: str = "auto",
    trust_remote_code: bool = False,
    device: str | None = None,
    allow_pickle: bool = False,
):
    from transformers import AutoModelForCausalLM

    device = device or default_device()
    with loading(path):
        model = AutoModelForCausalLM.from_pretrained(
            path,
            dtype=torch_dtype(dtype, device),
            trust_remote_code=trust_remote_code,
            use_safetensors=None if allow_pickle else True,
        )
    return model.to(device).eval()  # type: ignore[arg-type]


def same_weights(before: str, after: Path) -> bool | None:
    """Whether the model folder `after` holds exactly the weights of `before` (compared in fp32, tensor
    by tensor, stopping at the first difference); None when `before` is not a local folder."""
    import torch
    from safetensors import safe_open

    old, new = Path(before), Path(after)
    if not old.is_dir():
        return None

    def tensors(folder: Path) -> dict[str, Path]:
        return {k: f for f in sorted(folder.glob("*.safetensors")) for k in safe_open(str(f), "pt").keys()}  # noqa: SIM118

    old_keys, new_keys = tensors(old), tensors(new)
    if not old_keys or set(old_keys) != set(new_keys):
        return False if old_keys else None
    handles: dict[Path, Any] = {}

    def get(files: dict[str, Path], key: str):
        f = files[key]
        if f not in handles:
            handles[f] = safe_open(str(f), "pt")
        return handles[f].get_tensor(key).to(torch.float32)

    return all(torch.equal(get(old_keys, k), get(new_keys, k)) for k in sorted(new_keys))


def parameter_count(path: str, trust_remote_code: bool = False) -> int | None:
    """Parameters of a model: from the safetensors headers of a local folder (no weights read), else
    from its config on the meta device; None when neither can be had (e.g. offline hub name)."""
    import math

    folder = Path(path)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    try:
        if files:
            from safetensors import safe_open

            total = 0
            for f in files:
                with safe_open(str(f), "pt") as h:
                    total += sum(math.prod(h.get_slice(k).get_shape()) for k in h.keys())  # noqa: SIM118
            return total
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM

        config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code)
        return sum(p.numel() for p in model.parameters())
    except Exception:  # unreadable here; the model loads later with its own error, the check is skipped
        return None


def model_context_length(path: str, trust_remote_code: bool = False) -> int | None:
    """The context length a model was built for (its config's max_position_embeddings or the like)."""
    from transformers import AutoConfig

    try:
        with loading(path):
            config = AutoConfig.from_pretrained(path, trust_remote_code=trust_remote_code)
    except SelfplayError:
        raise
    except Exception:  # the model's own loader reports the problem when it loads
        return None
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    for name in ("max_position_embeddings", "n_positions", "max_sequence_length", "seq_length"):
        value = getattr(config, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def resolve_context(gen, path: str, trust_remote_code: bool = False):
    """`gen` with max_model_len set: the model's own context when null; a value above it is refused."""
    from dataclasses import replace

    limit = model_context_length(path, trust_remote_code)
    if gen.max_model_len is None:
        if limit is None:
            raise SelfplayError(
                f"generate.max_model_len: the config of '{path}' names no context length; set it"
            )
        return replace(gen, max_model_len=limit)
    if limit is not None and gen.max_model_len > limit:
        raise SelfplayError(
            f"generate.max_model_len={gen.max_model_len} is more than the {limit} tokens '{path}' was built "
            "for (its max_position_embeddings); lower it, or leave it null to use the model's"
        )
    return gen
