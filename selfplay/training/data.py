"""Training rows, already tokenised, so the trainer trains on exactly the token ids the policy sampled.

A response the policy sampled is trained on its sampled ids (its end-of-sequence token included when it
stopped, nothing when it was cut at max_tokens; no chat-template suffix such as ChatML's "<|im_end|>\\n"
that the policy never produced). The prompt is the sampler's own rendering. Then, for DPO, the sampled
per-token log-probs are the exact reference log-probs of every trained token (in fp32) whenever the
reference policy is the one that sampled, truncated responses included. A response without sampled
ids (a pair from a file) is tokenised the way TRL tokenises conversational rows. Every pair is cut to
`train.max_length` keeping the start, as TRL's collator does; a pair whose prompt alone fills it is
dropped and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from selfplay.config import TrainConfig
from selfplay.data.chat import render_prompt_ids, trl_split
from selfplay.data.records import Completion, Pair
from selfplay.training.losses import loss_spec

NAN = math.nan
SampledKey = tuple[int, str, int]
"""(iteration, prompt_id, sample_index) of a sampled completion."""


def sampled_key(c: Completion) -> SampledKey:
    return (c.iteration, c.prompt_id, c.sample_index)


@dataclass(frozen=True)
class Side:
    ids: list[int]
    """Response token ids, after truncation."""
    reference_logp: float
    """Sum of the sampled log-probs of `ids` when they are the reference's own; NaN = to compute."""
    sampled: bool


def _sampled_side(c: Completion | None, text: str, reference: str | None, keep: int) -> Side | None:
    if c is None or c.text != text:
        return None
    ids = c.token_ids[:keep]
    own = reference is not None and c.model == reference and len(c.logprobs) == len(c.token_ids)
    return Side(ids, float(sum(c.logprobs[: len(ids)])) if own else NAN, True)


def pair_sides(
    p: Pair, tokenizer, sampled: dict[SampledKey, Completion], reference: str | None, max_length: int
) -> tuple[list[int], Side, Side] | None:
    """The pair's prompt ids and its two responses as trained; None when the prompt fills max_length."""
    prompt = render_prompt_ids(tokenizer, p.messages)
    keep = max(0, max_length - len(prompt))
    chosen = _sampled_side(sampled.get((p.iteration, p.prompt_id, p.chosen_index)), p.chosen, reference, keep)
    rejected = _sampled_side(
        sampled.get((p.iteration, p.prompt_id, p.rejected_index)), p.rejected, reference, keep
    )
    if chosen is None or rejected is None:
        head, text_chosen, text_rejected = trl_split(tokenizer, p.messages, p.chosen, p.rejected)
        if head != prompt:  # the template renders the prompt differently inside a conversation: TRL's way
            prompt, keep, chosen, rejected = head, max(0, max_length - len(head)), None, None
        chosen = chosen or Side(text_chosen[:keep], NAN, False)
        rejected = rejected or Side(text_rejected[:keep], NAN, False)
    if len(prompt) >= max_length:
        return None
    return prompt, chosen, rejected


def training_rows(
    pairs: list[Pair],
    sampled: dict[SampledKey, Completion],
    tokenizer,
    cfg: TrainConfig,
    reuse_reference: str | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Tokenised rows for DPO (`prompt_ids`, `chosen_ids`, `rejected_ids`, and with
    reference_logprobs=auto `ref_chosen_logps` / `ref_rejected_logps`, NaN where the trainer computes
    them) or SimPO (TRL's CPO columns). `reuse_reference`: the reference policy's path when sampled
    log-probs may serve as its log-probs (DPO, exact numerics), else None."""
    spec = loss_spec(cfg)
    rows: list[dict[str, Any]] = []
    stats: dict[str, Any] = {
        "pairs_prompt_too_long": 0,
        "responses_sampled_ids": 0,
        "responses_tokenised_from_text": 0,
        "row_tokens": 0,
    }
    reused = forced = 0
    for p in pairs:
        found = pair_sides(p, tokenizer, sampled, reuse_reference, cfg.max_length)
        if found is None:
            stats["pairs_prompt_too_long"] += 1
            continue
        prompt, chosen, rejected = found
        for side in (chosen, rejected):
            stats["responses_sampled_ids" if side.sampled else "responses_tokenised_from_text"] += 1
            forced += math.isnan(side.reference_logp)
            reused += not math.isnan(side.reference_logp)
        stats["row_tokens"] += 2 * len(prompt) + len(chosen.ids) + len(rejected.ids)
        rows.append(
            spec.row(prompt, chosen.ids, rejected.ids, chosen.reference_logp, rejected.reference_logp, cfg)
        )
    if spec.reference and cfg.reference_logprobs != "trainer":
        if cfg.reference_logprobs == "teacher_forced":
            reused, forced = 0, reused + forced
        stats.update(ref_logps_from_sampling=reused, ref_logps_teacher_forced=forced)
    return rows, stats


def preference_rows(pairs: list[Pair]) -> list[dict[str, Any]]:
    """The pairs as text in TRL's conversational preference format (for comparison with TRL's own
    tokenisation, and for exports)."""
    return [
        {
            "prompt": p.messages,
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]
