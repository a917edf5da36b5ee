"""Rules written the ways a user may write them (judge.rule=tests.judge.rule_functions:<name>)."""

import asyncio

from selfplay.judge.rules import topical_variety


def batched(prompts, responses):
    """Batched: full message lists and responses in, a list out."""
    return [topical_variety(messages[-1]["content"], r) for messages, r in zip(prompts, responses)]


CALLS: list[int] = []


async def batched_async_with_metadata(prompts, responses, metadata):
    CALLS.append(len(responses))
    await asyncio.sleep(0)
    return [
        topical_variety(m[-1]["content"], r) + (0.0 if meta["finish_reason"] == "stop" else -1.0)
        for m, r, meta in zip(prompts, responses, metadata)
    ]


async def single_async(prompt, response):
    await asyncio.sleep(0)
    return topical_variety(prompt, response)


def batched_one_short(prompts, responses):
    return [0.5] * (len(responses) - 1)


def batched_with_a_string(prompts, responses):
    return ["high"] * len(responses)


def batched_raises(prompts, responses):
    raise RuntimeError("the grader is down")


def graded_share(prompt, response):
    """A rule with full marks: 1.0 for an answer in fewer than 5 words, 0.5 for one in fewer than 10."""
    words = len(response.split())
    return 1.0 if words < 5 else 0.5 if words < 10 else 0.0


graded_share.full_marks = 1.0  # type: ignore[attr-defined]


def broken_full_marks(prompt, response):
    return 0.0


broken_full_marks.full_marks = "all of them"  # type: ignore[attr-defined]
