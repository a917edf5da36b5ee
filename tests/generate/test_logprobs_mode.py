"""generate.logprobs_mode=processed records the log-prob of each sampled token under the distribution it
was sampled from (temperature, then top-p, renormalised), for both backends: checked against a hand
computation from the tiny model's own logits; raw mode is checked in test_backends.py."""

import pytest
import torch

from selfplay.config import GenerateConfig, ModelConfig, PromptsConfig
from selfplay.data.chat import render_prompt_ids
from selfplay.data.prompts import load_prompt_pool
from selfplay.generate.sample import sample_completions
from selfplay.models.loading import load_causal_lm, load_tokenizer

T, P = 0.7, 0.9


def processed(logits: torch.Tensor, token: int) -> float:
    """log p(token) after temperature T and top-p P, renormalised: the tokens kept are those whose
    ascending cumulative probability exceeds 1 - P (the most likely one always)."""
    z = logits.double() / T
    order = torch.argsort(z)
    cumulative = torch.softmax(z[order], -1).cumsum(-1)
    remove = cumulative <= 1 - P
    remove[-1] = False
    kept = torch.ones_like(z, dtype=torch.bool)
    kept[order[remove]] = False
    return float(z[token] - torch.logsumexp(z[kept], -1))


def check(policy, backend):
    prompts = load_prompt_pool(PromptsConfig()).pool[:4]
    gen = GenerateConfig(backend=backend, max_tokens=20, temperature=T, top_p=P, logprobs_mode="processed")
    comps, _ = sample_completions(policy, prompts, gen, ModelConfig(), "m", 3, 0)
    tok, model = load_tokenizer(policy), load_causal_lm(policy, "float32")
    ids = {p.prompt_id: render_prompt_ids(tok, p.messages) for p in prompts}
    worst, gap = 0.0, []
    for c in comps:
        prompt = ids[c.prompt_id]
        with torch.inference_mode():
            logits = model(input_ids=torch.tensor([prompt + c.token_ids])).logits[0].float()
        for i, (t, recorded) in enumerate(zip(c.token_ids, c.logprobs)):
            row = logits[len(prompt) - 1 + i]
            worst = max(worst, abs(recorded - processed(row, t)))
            gap.append(abs(recorded - float(torch.log_softmax(row, -1)[t])))
    assert worst < 1e-4, f"{backend}: recorded vs hand-computed processed log-probs differ by {worst}"
    assert sum(gap) / len(gap) > 0.05  # and they are not the raw values


def test_hf_processed_logprobs(tiny_policy):
    check(tiny_policy, "hf")


@pytest.mark.vllm
def test_vllm_processed_logprobs(tiny_policy):
    check(tiny_policy, "vllm")
