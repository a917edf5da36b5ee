"""The reward model's data, as pure functions: pairs from a file or from judged samples (best vs worst),
a seeded held-out split, seeded label noise, token ids rendered exactly as the reward-model judge
renders them, and pairwise accuracy."""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from selfplay.data.records import Completion, Judgment, Pair, Prompt
from selfplay.errors import SelfplayError
from selfplay.selection.pairing import Candidate, make_pairs


def judged_pairs(
    prompts: list[Prompt], completions: list[Completion], judgments: list[Judgment]
) -> tuple[list[Pair], dict[str, int]]:
    """Best vs worst response of each prompt under the judge (the loop's own pairing: ties, identical
    texts, non-finite rewards and prompts with fewer than two responses dropped and counted)."""
    rewards = {(j.prompt_id, j.sample_index): j.value for j in judgments}
    candidates = [
        Candidate(
            c.prompt_id, c.sample_index, c.text, rewards[(c.prompt_id, c.sample_index)], 0.0, c.truncated
        )
        for c in completions
    ]
    return make_pairs(prompts, candidates, iteration=0, strategy="best_vs_worst")


def split_heldout(pairs: list[Pair], share: float, seed: int) -> tuple[list[Pair], list[Pair]]:
    """(train, held-out): round(share * n) pairs drawn with `seed` (at least one each way), both in
    input order."""
    if not 0 < share < 1:
        raise SelfplayError(f"heldout_share={share} must be between 0 and 1 (exclusive)")
    if len(pairs) < 2:
        raise SelfplayError(f"{len(pairs)} preference pair(s): at least 2 are needed to train and hold out")
    count = min(max(1, round(share * len(pairs))), len(pairs) - 1)
    held = set(random.Random(f"heldout/{seed}").sample(range(len(pairs)), count))
    return [p for i, p in enumerate(pairs) if i not in held], [p for i, p in enumerate(pairs) if i in held]


def flip(pair: Pair) -> Pair:
    """The pair with chosen and rejected swapped (their rewards and margins with them)."""
    return replace(
        pair,
        chosen=pair.rejected,
        rejected=pair.chosen,
        chosen_index=pair.rejected_index,
        rejected_index=pair.chosen_index,
        chosen_reward=pair.rejected_reward,
        rejected_reward=pair.chosen_reward,
        chosen_implicit=pair.rejected_implicit,
        rejected_implicit=pair.chosen_implicit,
        explicit_margin=-pair.explicit_margin,
        implicit_margin=-pair.implicit_margin,
    )


def add_label_noise(pairs: list[Pair], rate: float, seed: int) -> tuple[list[Pair], list[str]]:
    """Exactly round(rate * n) pairs, drawn with `seed`, flipped; returns the pairs and the flipped ids."""
    if not 0 <= rate <= 0.5:
        raise SelfplayError(
            f"label_noise={rate} must be between 0 and 0.5 (a larger share inverts the labels)"
        )
    count = round(rate * len(pairs))
    flipped = set(random.Random(f"noise/{seed}").sample(range(len(pairs)), count))
    out = [flip(p) if i in flipped else p for i, p in enumerate(pairs)]
    return out, [pairs[i].pair_id for i in sorted(flipped)]


def render_ids(tokenizer, messages: list[dict[str, str]], response: str) -> list[int]:
    """Prompt and response as the reward-model judge renders them (selfplay/judge/reward_model.py):
    the tokenizer's chat template applied to text, tokenised without added special tokens."""
    conversation = [*messages, {"role": "assistant", "content": response}]
    text = tokenizer.apply_chat_template(conversation, tokenize=False)
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def encode_pairs(tokenizer, pairs: list[Pair], max_length: int) -> tuple[list[dict[str, Any]], int]:
    """TRL's tokenised preference rows ({chosen_ids, rejected_ids}), each cut to `max_length` tokens;
    returns the rows and how many pairs had a side cut."""
    rows, cut = [], 0
    for p in pairs:
        chosen, rejected = (
            render_ids(tokenizer, p.messages, p.chosen),
            render_ids(tokenizer, p.messages, p.rejected),
        )
        cut += len(chosen) > max_length or len(rejected) > max_length
        rows.append({"chosen_ids": chosen[:max_length], "rejected_ids": rejected[:max_length]})
    return rows, cut


def pairwise_accuracy(chosen: list[float], rejected: list[float]) -> float:
    """Share of pairs whose chosen response scores higher (a tie counts one half)."""
    if len(chosen) != len(rejected) or not chosen:
        raise SelfplayError(
            f"pairwise accuracy needs equal, non-empty score lists ({len(chosen)} vs {len(rejected)})"
        )
    wins = sum(1.0 if c > r else 0.5 if c == r else 0.0 for c, r in zip(chosen, rejected))
    return wins / len(chosen)
