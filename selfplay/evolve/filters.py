"""Filters on rewritten prompts (pure), each drop counted by reason."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable

PREAMBLE = re.compile(
    r"^\s*(?:#*\s*)?(?:(?:sure|certainly|okay|ok)[,!.]?\s*)?(?:here(?:'s| is)\s+(?:the|a|my|your)?\s*"
    r"(?:new|rewritten|revised|evolved|updated)?\s*(?:version of the\s*)?prompt|(?:the\s+)?(?:new|rewritten|revised|"
    r"evolved|updated)\s+prompt)\s*(?:is)?\s*#*\s*[:\-]\s*",
    re.IGNORECASE,
)


def strip_preamble(text: str) -> tuple[str, bool]:
    """Text without a leading "Here is the rewritten prompt:"-like preamble, and whether one was found."""
    m = PREAMBLE.match(text)
    return (text[m.end() :].strip().strip('"').strip(), True) if m else (text.strip(), False)


def normalized(text: str) -> str:
    return " ".join(text.lower().split())


def filter_rewrites(
    rewrites: list[tuple[str, str]],
    existing: list[str],
    min_ratio: float,
    max_ratio: float,
    preamble: str,
    too_long: Callable[[str], bool],
    truncated: list[bool] | None = None,
) -> tuple[list[int], Counter]:
    """Indices of the (original, rewrite) pairs to keep, and drop counts by reason, in this order:
    truncated (the rewrite was cut at the token limit: not a whole prompt), empty, preamble (with
    preamble=drop), length_ratio (characters, outside (min, max)),
    too_long (rendered tokens over the policy's or judge's limit), duplicate (exact),
    near_duplicate (same after lower-casing and collapsing whitespace; also against `existing`)."""
    counts: Counter = Counter()
    seen_exact = set(existing)
    seen_norm = {normalized(t) for t in existing}
    keep = []
    for i, (original, text) in enumerate(rewrites):
        if truncated is not None and truncated[i]:
            counts["truncated"] += 1
            continue
        if not text.strip():
            counts["empty"] += 1
            continue
        if preamble == "drop" and PREAMBLE.match(text):
            counts["preamble"] += 1
            continue
        ratio = len(text) / max(1, len(original))
        if not min_ratio < ratio < max_ratio:
            counts["length_ratio"] += 1
            continue
        if too_long(text):
            counts["too_long"] += 1
            continue
        if text in seen_exact:
            counts["duplicate"] += 1
            continue
        if normalized(text) in seen_norm:
            counts["near_duplicate"] += 1
            continue
        seen_exact.add(text)
        seen_norm.add(normalized(text))
        keep.append(i)
    return keep, counts
