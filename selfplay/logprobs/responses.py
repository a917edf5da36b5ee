"""Logprobs stage: per-response log-prob sums under pi_t by teacher forcing (when not taken from
generation), and under pi_0 for the `dpo` implicit-reward form."""

from __future__ import annotations

from selfplay.config import LogprobsConfig, ModelConfig
from selfplay.data.chat import render_prompt_ids
from selfplay.data.records import Completion, Prompt, SequenceLogprob
from selfplay.logprobs.teacher_forcing import response_logprobs
from selfplay.models.loading import load_causal_lm, load_tokenizer
from selfplay.progress import Progress


def forced_sums(
    path: str,
    prompts: list[Prompt],
    completions: list[Completion],
    cfg: LogprobsConfig,
    model_cfg: ModelConfig,
    label: str = "logprobs",
) -> list[list[float]]:
    tokenizer = load_tokenizer(path, model_cfg.trust_remote_code, chat_template=model_cfg.chat_template)
    model = load_causal_lm(
        path, str(model_cfg.dtype), model_cfg.trust_remote_code, allow_pickle=model_cfg.allow_pickle
    )
    prompt_ids = {p.prompt_id: render_prompt_ids(tokenizer, p.messages) for p in prompts}
    with Progress(label, len(completions), "sequences") as progress:
        return response_logprobs(
            model,
            [(prompt_ids[c.prompt_id], c.token_ids) for c in completions],
            cfg.batch_size,
            progress=progress,
        )


def teacher_forced_logprobs(
    policy_path: str,
    prompts: list[Prompt],
    completions: list[Completion],
    cfg: LogprobsConfig,
    model_cfg: ModelConfig,
    reference_path: str | None = None,
    label: str = "logprobs",
) -> list[SequenceLogprob]:
    """Sums under pi_t (teacher-forced when `cfg.source` says so, else the sampled values) and, with
    `reference_path`, under that reference."""
    if cfg.source == "teacher_forcing":
        policy = [
            (float(sum(lp)), len(lp))
            for lp in forced_sums(policy_path, prompts, completions, cfg, model_cfg, f"{label} (pi_t)")
        ]
    else:
        policy = [(c.logprob_sum, c.num_tokens) for c in completions]
    reference: list[float | None] = [None] * len(completions)
    if reference_path is not None:
        reference = [
            float(sum(lp))
            for lp in forced_sums(reference_path, prompts, completions, cfg, model_cfg, f"{label} (pi_0)")
        ]
    return [
        SequenceLogprob(c.prompt_id, c.sample_index, s, n, policy_path, r)
        for c, (s, n), r in zip(completions, policy, reference)
    ]
