"""The gold judge of the instruction-following task: each response checked against its prompt's
constraints by IFEval's own checkers (the if-verifiable package). `ifeval_reward` is the batched rule
`judge.rule=ifeval` (the share of the constraints satisfied); `strict_rate` the held-out figure (the
share of responses that satisfy all of theirs)."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from selfplay.errors import SelfplayError
from selfplay.tasks.constraints import HELDOUT_FILE, TRAIN_FILE

INSTALL = "pip install -e '.[real]' (or pip install if-verifiable)"


@dataclass(frozen=True)
class Constraints:
    """What one prompt asks for, in IFEval's terms."""

    instruction_ids: tuple[str, ...]
    kwargs: tuple[dict[str, Any], ...]


@functools.lru_cache(maxsize=1)
def registry() -> dict[str, Any]:
    """IFEval's checker classes by instruction id; language detection made deterministic."""
    try:
        from if_verifiable.ifeval.instructions_registry import INSTRUCTION_DICT
        from langdetect import DetectorFactory
    except ImportError:
        raise SelfplayError(f"judge.rule=ifeval needs the if-verifiable package: {INSTALL}") from None
    DetectorFactory.seed = 0  # langdetect samples; unseeded, the casing checks could differ between runs
    return dict(INSTRUCTION_DICT)


def parse_constraints(ids: Any, kwargs: Any, where: str) -> Constraints:
    """Constraints from IFEval's two fields, refused in one line when they cannot be checked as given."""
    if not isinstance(ids, (list, tuple)) or not ids or not all(isinstance(i, str) for i in ids):
        raise SelfplayError(
            f"{where}: instruction_id_list must be a non-empty list of names, got {ids!r:.80}"
        )
    if not isinstance(kwargs, (list, tuple)) or len(kwargs) != len(ids):
        raise SelfplayError(f"{where}: kwargs must be a list of {len(ids)} dicts (one per instruction)")
    known = registry()
    for name, args in zip(ids, kwargs):
        if name not in known:
            raise SelfplayError(
                f"{where}: unknown instruction '{name}' (IFEval has: {', '.join(sorted(known))})"
            )
        if not isinstance(args, dict):
            raise SelfplayError(f"{where}: kwargs of '{name}' must be a dict, got {args!r:.80}")
    return Constraints(tuple(ids), tuple({k: v for k, v in a.items() if v is not None} for a in kwargs))


@functools.lru_cache(maxsize=1)
def bundled_table() -> dict[str, Constraints]:
    """The bundled task's constraints by prompt text (train and held-out)."""
    table: dict[str, Constraints] = {}
    for name in (TRAIN_FILE, HELDOUT_FILE):
        text = (resources.files("selfplay") / "assets" / name).read_text(encoding="utf-8")
        for i, line in enumerate(text.splitlines(), 1):
            row = json.loads(line)
            where = f"selfplay/assets/{name}: row {i}"
            table[row["prompt"]] = parse_constraints(row["instruction_id_list"], row["kwargs"], where)
    return table


def user_text(messages: Any) -> str:
    """The prompt as the checkers see it: the last user message (or the text itself)."""
    return messages if isinstance(messages, str) else str(messages[-1]["content"])


def lookup(messages: Any, meta: dict[str, Any] | None = None) -> Constraints:
    """A prompt's constraints: from its metadata when it carries IFEval's fields, else the bundled
    task's entry for its last user message."""
    meta = meta or {}
    if "instruction_id_list" in meta:
        return parse_constraints(
            meta["instruction_id_list"], meta.get("kwargs"), f"prompt {meta.get('prompt_id')}"
        )
    text = user_text(messages)
    found = bundled_table().get(text)
    if found is None:
        raise SelfplayError(
            f"no constraints known for prompt {meta.get('prompt_id', '?')} ({text!r:.60}): judge.rule=ifeval "
            "scores the bundled task (prompts.source=bundled prompts.path=ifeval) or prompts whose metadata "
            "carries instruction_id_list and kwargs"
        )
    return found


def check(response: str, constraints: Constraints, prompt: str = "") -> list[bool]:
    """Strictly, per constraint: does the response as written satisfy it (IFEval's strict mode)."""
    known = registry()
    results = []
    for name, args in zip(constraints.instruction_ids, constraints.kwargs):
        checker = known[name](name)
        checker.build_description(**args)
        if "prompt" in (checker.get_instruction_args() or {}):
            checker.build_description(prompt=prompt)
        results.append(bool(response.strip()) and bool(checker.check_following(response)))
    return results


def satisfied_share(response: str, constraints: Constraints, prompt: str = "") -> float:
    passed = check(response, constraints, prompt)
    return sum(passed) / len(passed)


def ifeval_reward(prompts: list[Any], responses: list[str], metadata: list[dict[str, Any]]) -> list[float]:
    """The batched rule `judge.rule=ifeval`: per response, the share of its prompt's constraints it
    satisfies (0, 0.5 or 1 for the bundled task's one or two constraints)."""
    out = []
    for messages, response, meta in zip(prompts, responses, metadata):
        out.append(satisfied_share(response, lookup(messages, meta), user_text(messages)))
    return out


def strict_rate(
    prompts: list[Any], responses: list[str], metadata: list[dict[str, Any]] | None = None
) -> float:
    """The held-out figure: the share of responses that satisfy every constraint of their prompt
    (`prompts`: message lists or user texts, one per response)."""
    if not responses:
        raise SelfplayError("strict_rate: no responses")
    metas = metadata or [{} for _ in responses]
    passed = [all(check(r, lookup(m, meta), user_text(m))) for m, r, meta in zip(prompts, responses, metas)]
    return sum(passed) / len(passed)
