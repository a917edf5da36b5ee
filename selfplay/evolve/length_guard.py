"""The length guard of evolved prompts: a rewrite is too long when its rendered prompt leaves no room
for a response under the policy's context, or does not fit the reward model's input limit."""

from __future__ import annotations

from collections.abc import Callable

from selfplay.config import GenerateConfig, JudgeConfig, ModelConfig
from selfplay.data.chat import render_prompt_ids
from selfplay.judge.kinds import judge_spec
from selfplay.models.loading import load_tokenizer, resolve_context


def prompt_length_guard(
    policy_path: str, model: ModelConfig, gen: GenerateConfig, judge: JudgeConfig
) -> Callable[[str], bool]:
    """`too_long(text)` for a rewrite sent as a single user message."""
    policy_tok = load_tokenizer(policy_path, model.trust_remote_code, chat_template=model.chat_template)
    context = resolve_context(gen, policy_path, model.trust_remote_code).max_model_len
    assert context is not None
    judge_tok = judge_spec(judge).input_tokenizer(judge)

    def too_long(text: str) -> bool:
        messages = [{"role": "user", "content": text}]
        if len(render_prompt_ids(policy_tok, messages)) + 1 >= context:
            return True
        return (
            judge_tok is not None
            and len(render_prompt_ids(judge_tok, messages, "judge.model.path")) >= judge.model.max_length
        )

    return too_long
