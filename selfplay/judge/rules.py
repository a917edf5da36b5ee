"""Built-in rule rewards: plain functions `(prompt, response) -> float`, chosen by name in config.

`topical_variety` is the default judge of the built-in tiny run. It is bounded in [0, 1] and cannot be
maximised by repeating one word: the whole score is scaled by the share of distinct words.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

RuleFn = Callable[[str, str], float]

WORD = re.compile(r"[a-z0-9']+")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "about",
        "as",
        "at",
        "be",
        "by",
        "can",
        "do",
        "does",
        "for",
        "from",
        "how",
        "i",
        "in",
        "is",
        "it",
        "me",
        "of",
        "on",
        "or",
        "should",
        "the",
        "to",
        "what",
        "when",
        "which",
        "who",
        "why",
        "with",
        "would",
        "you",
        "your",
        "tell",
        "give",
        "explain",
        "describe",
        "write",
        "list",
        "compare",
        "summarize",
        "three",
        "few",
        "some",
        "main",
        "basics",
        "today",
        "past",
        "common",
        "better",
        "know",
        "people",
        "care",
        "teach",
        "child",
        "sentences",
        "beginner",
        "short",
        "note",
        "ideas",
        "behind",
        "history",
        "mistakes",
        "tips",
        "get",
    ]
)
TARGET_WORDS = 24
"""Responses reach full length credit at this many words."""
TOPIC_WORDS = 2
"""Responses reach full topicality credit when they use this many of the prompt's content words."""


def _words(text: str) -> list[str]:
    return WORD.findall(text.lower())


def topical_variety(prompt: str, response: str) -> float:
    """distinct_share * (0.5 * length_credit + 0.5 * topic_credit), in [0, 1].

    - distinct_share: distinct words / words in the response (1.0 when no word repeats);
    - length_credit: min(words, 24) / 24;
    - topic_credit: content words of the prompt used in the response / min(2, content words in the
      prompt), capped at 1 (1.0 if the prompt has none). Content words are the prompt's words outside
      a small stop list of instruction words ("tell", "explain", "about", ...).
    An empty response scores 0.
    """
    words = _words(response)
    if not words:
        return 0.0
    distinct_share = len(set(words)) / len(words)
    length_credit = min(len(words), TARGET_WORDS) / TARGET_WORDS
    content = {w for w in _words(prompt) if w not in STOPWORDS}
    topic_credit = min(1.0, len(content & set(words)) / min(TOPIC_WORDS, len(content))) if content else 1.0
    return distinct_share * (0.5 * length_credit + 0.5 * topic_credit)


def length_penalized_distinct(prompt: str, response: str) -> float:
    """Share of distinct words times min(1, words / 24): rewards varied, not over-short answers."""
    words = _words(response)
    if not words:
        return 0.0
    return len(set(words)) / len(words) * min(len(words), TARGET_WORDS) / TARGET_WORDS


RULES: dict[str, RuleFn] = {
    "topical_variety": topical_variety,
    "length_penalized_distinct": length_penalized_distinct,
}


TASK_RULES: dict[str, str] = {"ifeval": "selfplay.tasks.ifeval:ifeval_reward"}
"""Gold judges of the bundled tasks (not toys: a real model may be judged by them), imported on use."""


def resolve_rule(name: str) -> RuleFn:
    """A built-in rule by name, or a user function given as "package.module:function"."""
    if name in RULES:
        return RULES[name]
    name = TASK_RULES.get(name, name)
    if ":" not in name:
        raise ValueError(
            f"judge.rule: unknown rule '{name}' (built-in: {', '.join(sorted([*RULES, *TASK_RULES]))}; "
            "or give your own as 'module:function')"
        )
    module_name, _, fn_name = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ValueError(f"judge.rule: cannot import module '{module_name}' ({err})") from None
    fn = getattr(module, fn_name, None)
    if not callable(fn):
        raise ValueError(f"judge.rule: '{module_name}' has no function '{fn_name}'")
    return fn
