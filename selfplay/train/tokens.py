"""Token ids of (prompt, response) exactly as TRL's preference trainers build them."""

from __future__ import annotations

from selfplay.data.records import Message
from selfplay.generate.sampling import render_prompt_ids


def trainer_token_ids(tokenizer, messages: list[Message], response: str) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids): the conversation with the response rendered by the chat template
    and split where it leaves the generation prompt (TRL's own rule for conversational data)."""
    prompt = render_prompt_ids(tokenizer, messages)
    text = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": response}], tokenize=False
    )
    full = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    if tokenizer.bos_token_id is not None and full[:2] == [tokenizer.bos_token_id] * 2:
        full = full[1:]
    common = next((i for i, (a, b) in enumerate(zip(prompt, full)) if a != b), min(len(prompt), len(full)))
    return prompt[:common], full[common:]


def truncate(prompt: list[int], response: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """TRL's keep_start truncation of prompt + response to max_length tokens."""
    keep = max(0, max_length - len(prompt))
    return prompt[:max_length], response[:keep]
