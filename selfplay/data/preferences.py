"""Preference datasets (files, `datasets` folders, hub names): rows parsed into a prompt and a chosen and
a rejected response, in either layout: pairwise columns (prompt / chosen / rejected), or the SimPO
datasets' list-wise one (K responses with K rewards: chosen = the highest, rejected = the lowest).
Bad rows are one-line errors naming the file, row and column; ties are counted and dropped."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfplay.config import PairColumnsConfig
from selfplay.data.prompts import to_messages
from selfplay.data.records import Message, Pair
from selfplay.errors import SelfplayError


@dataclass(frozen=True)
class Row:
    """One preference row: the original fields plus the parsed prompt and response texts."""

    row_id: str
    data: dict[str, Any]
    messages: list[Message]
    chosen: str
    rejected: str
    rewards: tuple[float, float] | None = None
    """(highest, lowest) of a list-wise row's rewards."""


def read_preference_table(path: str, split: str, key: str = "input") -> list[dict[str, Any]]:
    """Rows of a Parquet / JSONL / JSON file, a saved `datasets` folder, or a hub dataset."""
    from selfplay.config import PromptsConfig, PromptSource
    from selfplay.data.prompts import read_rows

    check_input(path, key)
    source = PromptSource.file if Path(path).is_file() else PromptSource.hf
    return read_rows(PromptsConfig(source=source, split=split), path, key=key)


def check_input(path: str | None, key: str = "input") -> None:
    """A path that names a local file or folder must exist; anything else is taken as a hub name."""
    if not path:
        raise SelfplayError(f"{key}: required (a preference file, a datasets folder or a hub name)")
    p = Path(path).expanduser()
    local = path.startswith(("/", ".", "~")) or p.suffix in (".jsonl", ".json", ".parquet") or "/" not in path
    if local and not p.exists():
        raise SelfplayError(f"{key}: '{path}' does not exist")


def response_text(value: Any, where: str, column: str) -> str:
    """A response cell: a string, or chat messages whose last assistant message is the response."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        for m in reversed(value):
            if isinstance(m, dict) and m.get("role") == "assistant" and "content" in m:
                return str(m["content"])
    raise SelfplayError(f"{where}: column '{column}' must be a string or messages with an assistant turn")


def parse_rows(
    table: list[dict[str, Any]], name: str, cols: PairColumnsConfig, system_prompt: str | None = None
) -> tuple[list[Row], dict[str, int]]:
    """Rows of `table` (named `name` in errors) with the column names of `cols` (a file to train on,
    or offline selection's `ColumnsConfig` with its list-wise columns); list-wise rows whose rewards
    all tie are dropped and counted (`dropped_tied`)."""
    all_rewards: str | None = getattr(cols, "all_rewards", None)
    all_responses: str | None = getattr(cols, "all_responses", None)
    if not table:
        raise SelfplayError(f"{name}: the dataset is empty")
    first = table[0]
    listwise = all_rewards is not None and all_rewards in first
    from_list = listwise and all_responses is not None and all_responses in first
    needed = [cols.prompt] if from_list else [cols.prompt, cols.chosen, cols.rejected]
    missing = [c for c in needed if c not in first]
    if missing:
        raise SelfplayError(
            f"{name}: missing column(s) {', '.join(missing)} (has: {', '.join(first)}; set the column names)"
        )
    rows, counts = [], {"dropped_tied": 0}
    wanted = [*needed, *([str(all_rewards)] if listwise else []), *([cols.id] if cols.id else [])]
    for i, data in enumerate(table):
        where = f"{name}: row {i + 1}"
        absent = [c for c in wanted if c not in data]
        if absent:
            raise SelfplayError(
                f"{where}: no column '{absent[0]}' (row 1 has it: every row needs the same columns; "
                f"this row has: {', '.join(data) or 'nothing'})"
            )
        prompt = data[cols.prompt]
        last = prompt[-1] if isinstance(prompt, (list, tuple)) and prompt else None
        if isinstance(last, dict) and last.get("role") == "assistant":
            prompt = list(prompt)[:-1]  # a conversation that ends with the response
        messages = to_messages(prompt, where, cols.prompt)
        if system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system_prompt}, *messages]
        row_id = str(data[cols.id]) if cols.id else f"{i:08d}"
        rewards = None
        if listwise:
            scores = _numbers(data[str(all_rewards)], where, str(all_rewards))
            hi, lo = scores.index(max(scores)), scores.index(min(scores))
            if scores[hi] == scores[lo]:
                counts["dropped_tied"] += 1
                continue
            rewards = (scores[hi], scores[lo])
        if from_list:
            if str(all_responses) not in data:
                raise SelfplayError(f"{where}: no column '{all_responses}' (row 1 has it)")
            responses = data[str(all_responses)]
            if not isinstance(responses, (list, tuple)) or len(responses) != len(scores):
                raise SelfplayError(
                    f"{where}: column '{all_responses}' must be a list of {len(scores)} responses "
                    f"(one per reward in '{all_rewards}')"
                )
            chosen = response_text(responses[hi], where, str(all_responses))
            rejected = response_text(responses[lo], where, str(all_responses))
        else:
            chosen = response_text(data[cols.chosen], where, cols.chosen)
            rejected = response_text(data[cols.rejected], where, cols.rejected)
        rows.append(Row(row_id, data, messages, chosen, rejected, rewards))
    return rows, counts


def _numbers(value: Any, where: str, column: str) -> list[float]:
    if not isinstance(value, (list, tuple)) or len(value) < 2:
        raise SelfplayError(
            f"{where}: column '{column}' must be a list of at least 2 rewards, got {value!r:.80}"
        )
    try:
        return [float(v) for v in value]
    except (TypeError, ValueError):
        raise SelfplayError(f"{where}: column '{column}' must hold numbers, got {value!r:.80}") from None


def file_pairs(
    path: str | None, split: str, cols: Any, system_prompt: str | None
) -> tuple[list[Pair], dict[str, Any]]:
    """A preference file's rows as kept Pair records to train on: rewards and implicit rewards from the
    columns a selected file carries (`chosen_reward`, ... as `python -m selfplay.select` writes them)
    when present, else 0 (they are not used by training)."""
    columns = cols if cols is not None else PairColumnsConfig()
    rows, counts = parse_rows(
        read_preference_table(str(path or ""), split), str(path), columns, system_prompt
    )

    def value(r: Row, key: str) -> float:
        v = r.data.get(key)
        return float(v) if isinstance(v, (int, float)) and math.isfinite(v) else 0.0

    pairs, counts["dropped_identical"] = [], 0
    for r in rows:
        if r.chosen == r.rejected:
            counts["dropped_identical"] += 1
            continue
        cr, rr = value(r, "chosen_reward"), value(r, "rejected_reward")
        ci, ri = value(r, "chosen_implicit"), value(r, "rejected_implicit")
        pairs.append(
            Pair(
                r.row_id,
                r.row_id,
                r.messages,
                r.chosen,
                r.rejected,
                0,
                1,
                cr,
                rr,
                ci,
                ri,
                cr - rr,
                ci - ri,
                kept=True,
            )
        )
    return pairs, {"pairs": len(pairs), "rows": len(rows) + counts["dropped_tied"], **counts}
