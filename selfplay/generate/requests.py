"""Backend-independent parts of generation: sampling requests with per-prompt seeds, and what the
backends return turned into Completion records."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from selfplay.data.chat import render_prompt_ids
from selfplay.data.records import Completion, Prompt


@dataclass(frozen=True)
class SampleRequest:
    """One prompt to sample K responses for, already rendered to token ids."""

    prompt_id: str
    prompt_ids: list[int]
    seed: int


@dataclass(frozen=True)
class RawSample:
    """What a backend returns per response: sampled ids (end-of-sequence included) and raw log-probs."""

    token_ids: list[int]
    logprobs: list[float]
    finish_reason: str


def sample_seed(run_seed: int, salt: str, prompt_id: str) -> int:
    """Per-prompt seed from (run seed, salt, prompt id), the salt naming the iteration or purpose
    (e.g. "iter_002", "heldout"): independent of batching, sharding and order."""
    digest = hashlib.sha256(f"{run_seed}/{salt}/{prompt_id}".encode()).hexdigest()
    return int(digest[:8], 16) & 0x7FFFFFFF


def make_requests(tokenizer, prompts: list[Prompt], run_seed: int, salt: str) -> list[SampleRequest]:
    return [
        SampleRequest(
            p.prompt_id, render_prompt_ids(tokenizer, p.messages), sample_seed(run_seed, salt, p.prompt_id)
        )
        for p in prompts
    ]


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """Text before the first stop string, and whether one was found."""
    cut = min((i for i in (text.find(s) for s in stop) if i >= 0), default=-1)
    return (text[:cut], True) if cut >= 0 else (text, False)


def to_completions(
    tokenizer,
    requests: list[SampleRequest],
    samples: list[list[RawSample]],
    iteration: int,
    model: str,
    stop: list[str] = (),  # type: ignore[assignment]
) -> list[Completion]:
    """Backend output -> Completion records, text decoded by one tokenizer for every backend.

    With stop strings the text ends before the first one; token ids and log-probs keep what was
    sampled (so they can include the stop string's tokens)."""
    out = []
    for req, group in zip(requests, samples):
        for k, s in enumerate(group):
            text = tokenizer.decode(s.token_ids, skip_special_tokens=True)
            text, stopped = cut_at_stop(text, list(stop))
            text = text.strip()
            reason = "empty" if not text else ("stop" if stopped else s.finish_reason)
            out.append(
                Completion(
                    prompt_id=req.prompt_id,
                    sample_index=k,
                    text=text,
                    finish_reason=reason,
                    iteration=iteration,
                    model=model,
                    seed=req.seed,
                    token_ids=list(s.token_ids),
                    logprobs=list(s.logprobs),
                )
            )
    return out


def completion_stats(completions: list[Completion]) -> dict[str, Any]:
    n = len(completions)
    if n == 0:
        return {"responses": 0}
    return {
        "responses": n,
        "mean_tokens": sum(c.num_tokens for c in completions) / n,
        "tokens": sum(c.num_tokens for c in completions),
        "truncated": sum(c.finish_reason == "length" for c in completions),
        "empty": sum(c.finish_reason == "empty" for c in completions),
    }
