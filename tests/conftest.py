"""Shared fixtures: offline by construction, tiny local models built once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
os.environ.setdefault("DS_ACCELERATOR", "cpu")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


def vllm_importable() -> bool:
    from selfplay.generate.vllm_backend import vllm_available

    return vllm_available()


TIERS = {"integration": "integration", "slow": "slow", "slurm": "slurm", "real": "real"}
"""A test's tier is its folder: tests/<folder>/ -> the marker `pytest -m <marker>` selects. Everything
else is the default tier (`pytest`); a tier marker anywhere else is refused at collection."""


def tier_of(path: Path) -> str | None:
    parts = path.resolve().relative_to(REPO / "tests").parts
    return TIERS.get(parts[0]) if len(parts) > 1 else None


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = tier_of(Path(str(item.fspath)))
        stray = {m.name for m in item.iter_markers() if m.name in TIERS.values()} - {tier}
        if stray:
            raise pytest.UsageError(
                f"{item.nodeid}: marked {sorted(stray)}: a test's tier is its folder (tests/<tier>/)"
            )
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))
    skip_gpu = pytest.mark.skip(reason="needs CUDA")
    skip_vllm = pytest.mark.skip(reason="needs the vllm module (pip install -e '.[cpu]' or '.[vllm]')")
    has_vllm = None
    for item in items:
        if "gpu" in item.keywords:
            import torch

            if not torch.cuda.is_available():
                item.add_marker(skip_gpu)
        if "vllm" in item.keywords:
            if has_vllm is None:
                has_vllm = vllm_importable()
            if not has_vllm:
                item.add_marker(skip_vllm)


@pytest.fixture(scope="session")
def vllm_run(tmp_path_factory):
    """`debug=tiny` through vLLM + TRL with TensorBoard tracking: run directory and finished process
    (one 2-iteration run per session, read by the whole-run tests of every tier)."""
    from tests.integration.cli import run_cli

    out = tmp_path_factory.mktemp("vllm_run")
    proc = run_cli(
        "debug=tiny", "generate.backend=vllm", "tracking.backend=tensorboard", f"loop.output_dir={out}"
    )
    return out / "default", proc


@pytest.fixture(scope="session")
def tiny_policy() -> str:
    """The built-in tiny policy (built once, cached under $SELFPLAY_CACHE or ~/.cache/selfplay)."""
    from selfplay.config import TinyModelConfig
    from selfplay.models.tiny import tiny_model_path

    return str(tiny_model_path(TinyModelConfig()))


@pytest.fixture(scope="session")
def tiny_chatml_policy() -> str:
    """The tiny policy in a Qwen-style ChatML format: a default system turn, no BOS, "<|im_end|>" then a
    newline token after every turn (built once, cached like the plain one)."""
    from selfplay.config import TinyModelConfig
    from selfplay.models.tiny import tiny_model_path

    return str(tiny_model_path(TinyModelConfig(template="chatml")))


@pytest.fixture(scope="session", params=["plain", "chatml"])
def any_tiny_policy(request, tiny_policy, tiny_chatml_policy) -> str:
    """Each chat format of the tiny policy in turn."""
    return tiny_policy if request.param == "plain" else tiny_chatml_policy


@pytest.fixture(scope="session")
def tiny_reward_model(tmp_path_factory) -> str:
    """A random-weight sequence classifier whose chat template differs from the policy's."""
    import torch
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from selfplay.models.tiny import _bundled_prompt_texts, _corpus_words, _topics, build_tokenizer

    tok = build_tokenizer(
        _corpus_words(_topics(), _bundled_prompt_texts())
        + ["rm", "turn", ":", "user", "assistant", "[", "]", "-"]
    )
    tok.chat_template = (
        "{% for message in messages %}[rm-turn] {{ message['role'] }} : {{ message['content'] }} {% endfor %}"
    )
    torch.manual_seed(1)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_labels=1,
        pad_token_id=tok.pad_token_id,
    )
    out = tmp_path_factory.mktemp("reward_model")
    LlamaForSequenceClassification(config).save_pretrained(out)
    tok.save_pretrained(out)
    return str(out)
