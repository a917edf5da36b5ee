"""Teacher-forcing stage: per-response log-prob sums under pi_t, when not taken from generation."""

from __future__ import annotations

from selfplay.config import LogprobsConfig, ModelConfig
from selfplay.data.records import Completion, Prompt, SequenceLogprob
from selfplay.generate.sampling import render_prompt_ids
from selfplay.logprobs.teacher_forcing import response_logprobs
from selfplay.models.loading import load_causal_lm, load_tokenizer


def teacher_forced_logprobs(
    policy_path: str,
    prompts: list[Prompt],
    completions: list[Completion],
    cfg: LogprobsConfig,
    model_cfg: ModelConfig,
) -> list[SequenceLogprob]:
    tokenizer = load_tokenizer(policy_path, model_cfg.trust_remote_code)
    model = load_causal_lm(policy_path, str(model_cfg.dtype), model_cfg.trust_remote_code)
    prompt_ids = {p.prompt_id: render_prompt_ids(tokenizer, p.messages) for p in prompts}
    per_token = response_logprobs(
        model, [(prompt_ids[c.prompt_id], c.token_ids) for c in completions], cfg.batch_size
    )
    return [
        SequenceLogprob(c.prompt_id, c.sample_index, float(sum(lp)), len(lp), policy_path)
        for c, lp in zip(completions, per_token)
    ]
