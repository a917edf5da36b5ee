"""The instruction-following task's prompts, built deterministically: each bundled prompt plus one or two
constraints a program can check (IFEval's instruction ids and arguments, phrased for a small model;
measured with smollm2-135m at temperature 0.8, from ~2% of samples (all lowercase, JSON) to ~65%
(word limits, avoiding a word): docs/guide.md).
`scripts/make_ifeval_task.py` writes them to selfplay/assets/ifeval_{train,heldout}.jsonl."""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

SEED = 20261208
TRAIN_FILE, HELDOUT_FILE = "ifeval_train.jsonl", "ifeval_heldout.jsonl"
HELDOUT_VARIANTS = 2
"""Each held-out base prompt appears with this many different constraint sets."""
END_PHRASES = ("Any other questions?", "Is there anything else I can help with?")


@dataclass(frozen=True)
class Constraint:
    instruction_id: str
    """IFEval's name of the check (if_verifiable.ifeval.instructions_registry)."""
    kwargs: dict[str, Any]
    """The check's arguments, complete (IFEval draws missing ones at random)."""
    text: str
    """How the prompt asks for it."""


Maker = Callable[[random.Random, str, list[str]], Constraint]
"""(rng, base prompt, the topic's words) -> a constraint."""


def _fewer_words(rng: random.Random, base: str, words: list[str]) -> Constraint:
    n = rng.choice((20, 30, 40))
    return Constraint(
        "length_constraints:number_words",
        {"num_words": n, "relation": "less than"},
        f"Answer in fewer than {n} words.",
    )


def _more_words(rng: random.Random, base: str, words: list[str]) -> Constraint:
    n = rng.choice((40, 60, 80))
    return Constraint(
        "length_constraints:number_words",
        {"num_words": n, "relation": "at least"},
        f"Answer in at least {n} words.",
    )


def _include_word(rng: random.Random, base: str, words: list[str]) -> Constraint:
    w = rng.choice(words)
    return Constraint("keywords:existence", {"keywords": [w]}, f'Include the word "{w}".')


def _avoid_word(rng: random.Random, base: str, words: list[str]) -> Constraint:
    w = rng.choice(words)
    return Constraint("keywords:forbidden_words", {"forbidden_words": [w]}, f'Do not use the word "{w}".')


def _repeat_word(rng: random.Random, base: str, words: list[str]) -> Constraint:
    w, n = rng.choice(words), rng.choice((2, 3))
    return Constraint(
        "keywords:frequency",
        {"keyword": w, "frequency": n, "relation": "at least"},
        f'Use the word "{w}" at least {n} times.',
    )


def _lowercase(rng: random.Random, base: str, words: list[str]) -> Constraint:
    return Constraint("change_case:english_lowercase", {}, "Write your whole answer in lowercase letters.")


def _highlights(rng: random.Random, base: str, words: list[str]) -> Constraint:
    n = rng.choice((1, 2))
    return Constraint(
        "detectable_format:number_highlighted_sections",
        {"num_highlights": n},
        f"Highlight at least {n} {'phrase' if n == 1 else 'phrases'} with markdown, like *this*.",
    )


def _bullets(rng: random.Random, base: str, words: list[str]) -> Constraint:
    n = 3 if "three" in base.lower() else rng.choice((2, 3, 4))
    return Constraint(
        "detectable_format:number_bullet_lists",
        {"num_bullets": n},
        f'Answer with exactly {n} bullet points, each line starting with "* ".',
    )


def _title(rng: random.Random, base: str, words: list[str]) -> Constraint:
    return Constraint(
        "detectable_format:title", {}, "Start with a title in double angular brackets, like <<My Title>>."
    )


def _no_comma(rng: random.Random, base: str, words: list[str]) -> Constraint:
    return Constraint("punctuation:no_comma", {}, "Do not use any commas.")


def _end_phrase(rng: random.Random, base: str, words: list[str]) -> Constraint:
    phrase = rng.choice(END_PHRASES)
    return Constraint("startend:end_checker", {"end_phrase": phrase}, f'End your answer with "{phrase}"')


def _postscript(rng: random.Random, base: str, words: list[str]) -> Constraint:
    return Constraint(
        "detectable_content:postscript",
        {"postscript_marker": "P.S."},
        "At the end, add a postscript starting with P.S.",
    )


def _json(rng: random.Random, base: str, words: list[str]) -> Constraint:
    return Constraint("detectable_format:json_format", {}, "Give your whole answer as JSON.")


def _placeholder(rng: random.Random, base: str, words: list[str]) -> Constraint:
    return Constraint(
        "detectable_content:number_placeholders",
        {"num_placeholders": 1},
        "Include a placeholder in square brackets, like [name].",
    )


MAKERS: list[Maker] = [
    _fewer_words,
    _more_words,
    _include_word,
    _avoid_word,
    _repeat_word,
    _lowercase,
    _highlights,
    _bullets,
    _title,
    _no_comma,
    _end_phrase,
    _postscript,
    _json,
    _placeholder,
]

ENDINGS = {"startend:end_checker", "detectable_content:postscript"}
"""Each of these decides how the answer ends: at most one per prompt."""
CASES = {"change_case:english_lowercase"}
JSON_COMPATIBLE = {"keywords:existence", "keywords:forbidden_words"}
"""IFEval's own rule: JSON output goes only with keyword constraints."""


def compatible(a: Constraint, b: Constraint) -> bool:
    """Whether one prompt can ask for both (one answer can satisfy both, and the request reads sanely)."""
    ids = {a.instruction_id, b.instruction_id}
    if len(ids) == 1 or ids <= ENDINGS:
        return False
    if (
        "detectable_format:json_format" in ids
        and not (ids - {"detectable_format:json_format"}) <= JSON_COMPATIBLE
    ):
        return False
    if ids & CASES and ids & (ENDINGS | {"detectable_format:title"}):
        return False  # "P.S.", the end phrases and a title carry capitals of their own
    if ids == {"detectable_format:number_bullet_lists", "detectable_format:number_highlighted_sections"}:
        return False  # markdown bullets are asterisks too
    words = [set(c.kwargs.get("keywords", []) + c.kwargs.get("forbidden_words", [])) for c in (a, b)]
    words = [w | ({c.kwargs["keyword"]} if "keyword" in c.kwargs else set()) for w, c in zip(words, (a, b))]
    return not (words[0] & words[1])


def constraints_for(rng: random.Random, base: str, words: list[str]) -> list[Constraint]:
    """One or two compatible constraints, drawn from the catalogue."""
    first = rng.choice(MAKERS)(rng, base, words)
    if rng.random() < 0.5:
        return [first]
    while True:
        second = rng.choice(MAKERS)(rng, base, words)
        if compatible(first, second):
            return [first, second]


def record(prompt_id: str, base: dict[str, str], constraints: list[Constraint]) -> dict[str, Any]:
    """One prompt as the asset stores it: IFEval's field names (instruction_id_list, kwargs) beside ours."""
    return {
        "id": prompt_id,
        "prompt": " ".join([base["prompt"], *(c.text for c in constraints)]),
        "instruction_id_list": [c.instruction_id for c in constraints],
        "kwargs": [c.kwargs for c in constraints],
        "base_prompt": base["prompt"],
        "topic": base["topic"],
    }


def _asset_rows(name: str) -> list[dict[str, Any]]:
    text = (resources.files("selfplay") / "assets" / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def build_task(seed: int = SEED) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(train, held-out) records: every bundled training prompt once, every bundled held-out prompt
    HELDOUT_VARIANTS times with different constraints; the two share no base prompt."""
    topics: dict[str, list[str]] = json.loads(
        (resources.files("selfplay") / "assets" / "topics.json").read_text(encoding="utf-8")
    )
    rng = random.Random(seed)
    train = [
        record(f"ifeval-train-{i:03d}", base, constraints_for(rng, base["prompt"], topics[base["topic"]]))
        for i, base in enumerate(_asset_rows("prompts.jsonl"))
    ]
    heldout: list[dict[str, Any]] = []
    for base in _asset_rows("heldout.jsonl"):
        seen: set[str] = set()
        while len(seen) < HELDOUT_VARIANTS:
            rec = record("", base, constraints_for(rng, base["prompt"], topics[base["topic"]]))
            if rec["prompt"] not in seen:
                seen.add(rec["prompt"])
                heldout.append({**rec, "id": f"ifeval-heldout-{len(heldout):03d}"})
    return train, heldout
