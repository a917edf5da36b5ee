"""Chat messages -> token ids: the prompt as the sampler sees it, and (prompt, response) as TRL's
preference trainers build them. One place, so that sampling, log-probs and training agree."""

from __future__ import annotations

from pathlib import Path

from selfplay.data.records import Message
from selfplay.errors import SelfplayError


def template_key(key: str) -> str:
    """The config key of the chat template that goes with a model key: model.path -> model.chat_template,
    judge.model.path -> judge.model.chat_template."""
    return f"{key.rsplit('.', 1)[0]}.chat_template" if "." in key else "model.chat_template"


def resolve_chat_template(value: str | None, key: str) -> str | None:
    """A chat template given in the config: the Jinja text itself, or a file that holds it."""
    if value is None or not str(value).strip():
        return None
    text = str(value)
    if "{{" in text or "{%" in text:
        return text
    path = Path(text).expanduser()
    if not path.is_file():
        raise SelfplayError(f"{key}={text}: neither a Jinja template ('{{{{' or '{{%') nor an existing file")
    template = path.read_text()
    if "{{" not in template and "{%" not in template:
        raise SelfplayError(f"{key}: file '{path}' holds no Jinja template (no '{{{{' or '{{%')")
    return template


def require_chat_template(tokenizer, key: str = "model.path") -> None:
    """A chat model's tokenizer carries a chat template; a base model's does not (one line naming it)."""
    if not getattr(tokenizer, "chat_template", None):
        raise SelfplayError(
            f"{key}: the tokenizer of '{getattr(tokenizer, 'name_or_path', '?')}' has no chat_template "
            f"(use an instruct/chat model, or give one with {template_key(key)}=<Jinja text or file>)"
        )


def render_prompt_ids(tokenizer, messages: list[Message], key: str = "model.path") -> list[int]:
    """Render with the tokenizer's chat template once, then tokenize without adding special tokens
    (the template already places BOS where the model expects it). `key` is the config key that named
    the model, for the error message."""
    require_chat_template(tokenizer, key)
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    bos = tokenizer.bos_token_id
    if bos is not None and len(ids) > 1 and ids[0] == ids[1] == bos:
        # A template that writes the BOS twice; the model saw one in training.
        ids = ids[1:]
    return ids


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


def trl_split(
    tokenizer, messages: list[Message], chosen: str, rejected: str
) -> tuple[list[int], list[int], list[int]]:
    """(prompt, chosen, rejected) ids of a text pair exactly as TRL's DPO trainer splits conversational
    rows: the completion starts where the tokenised prompt and prompt + completion first differ, for
    both sides at the same position."""
    head1, rest1 = trainer_token_ids(tokenizer, messages, chosen)
    head2, rest2 = trainer_token_ids(tokenizer, messages, rejected)
    cut = min(len(head1), len(head2))
    return head1[:cut], head1[cut:] + rest1, head2[cut:] + rest2


def truncate(prompt: list[int], response: list[int], max_length: int) -> tuple[list[int], list[int]]:
    """TRL's keep_start truncation of prompt + response to max_length tokens."""
    keep = max(0, max_length - len(prompt))
    return prompt[:max_length], response[:keep]
