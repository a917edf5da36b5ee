"""Both generation backends: K samples per prompt, raw sampled-token log-probs equal to a
teacher-forced transformers forward pass (fp32 on CPU: agreement to 1e-4 nats per token), seeds per
prompt that do not depend on which other prompts share the batch."""

import pytest

from selfplay.config import GenerateConfig, ModelConfig, PromptsConfig
from selfplay.data.chat import render_prompt_ids
from selfplay.data.prompts import load_prompt_pool
from selfplay.generate.sample import sample_completions
from selfplay.logprobs.teacher_forcing import response_logprobs
from selfplay.models.loading import load_causal_lm, load_tokenizer

TOL = 1e-4


@pytest.fixture(scope="module")
def prompts():
    return load_prompt_pool(PromptsConfig()).pool[:6]


def _teacher_forced(policy, prompts, completions):
    tok, model = load_tokenizer(policy), load_causal_lm(policy, "float32")
    ids = {p.prompt_id: render_prompt_ids(tok, p.messages) for p in prompts}
    return response_logprobs(model, [(ids[c.prompt_id], c.token_ids) for c in completions], batch_size=5)


def _check_raw_logprobs(policy, prompts, backend, temperature):
    gen = GenerateConfig(backend=backend, num_samples=3, max_tokens=24, temperature=temperature)
    comps, used = sample_completions(policy, prompts, gen, ModelConfig(), "t", 3, 0)
    assert used == backend and len(comps) == 3 * len(prompts)
    assert {c.sample_index for c in comps} == {0, 1, 2}
    tf = _teacher_forced(policy, prompts, comps)
    worst = max(abs(a - b) for c, lps in zip(comps, tf) for a, b in zip(c.logprobs, lps))
    assert all(len(c.logprobs) == c.num_tokens for c in comps)
    assert worst < TOL, f"{backend}: sampled vs teacher-forced log-probs differ by {worst}"
    return comps


@pytest.mark.vllm
@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_vllm_logprobs_are_raw(tiny_policy, prompts, temperature):
    # At temperature 0.5 the processed distribution differs by nats; raw values must still match.
    _check_raw_logprobs(tiny_policy, prompts, "vllm", temperature)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_hf_logprobs_are_raw(tiny_policy, prompts, temperature):
    _check_raw_logprobs(tiny_policy, prompts, "hf", temperature)


@pytest.mark.vllm
def test_vllm_samples_do_not_depend_on_batch_company(tiny_policy, prompts):
    gen = GenerateConfig(backend="vllm", max_tokens=16)
    all_at_once, _ = sample_completions(tiny_policy, prompts, gen, ModelConfig(), "s", 4, 0)
    alone, _ = sample_completions(tiny_policy, prompts[3:4], gen, ModelConfig(), "s", 4, 0)
    assert [c.token_ids for c in all_at_once if c.prompt_id == prompts[3].prompt_id] == [
        c.token_ids for c in alone
    ]


def test_hf_samples_do_not_depend_on_batch_company(tiny_policy, prompts):
    gen = GenerateConfig(backend="hf", max_tokens=16)
    all_at_once, _ = sample_completions(tiny_policy, prompts[:3], gen, ModelConfig(), "s", 2, 0)
    alone, _ = sample_completions(tiny_policy, prompts[2:3], gen, ModelConfig(), "s", 2, 0)
    assert [c.token_ids for c in all_at_once if c.prompt_id == prompts[2].prompt_id] == [
        c.token_ids for c in alone
    ]
