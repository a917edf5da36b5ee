"""Prompt sources: the bundled set, a local JSONL/Parquet file, or a Hugging Face dataset.

Every source becomes a list of `Prompt` records with chat messages and a stable id. Bad rows are
errors naming the file, row and field, never silently dropped; duplicates are counted and dropped.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

from selfplay.config import PromptsConfig
from selfplay.data.jsonl import read_jsonl
from selfplay.data.records import Message, Prompt
from selfplay.errors import SelfplayError

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class PromptPool:
    """The training pool (in draw order) and the held-out prompts."""

    pool: list[Prompt]
    heldout: list[Prompt]
    duplicates_dropped: int
    heldout_overlap: int = 0
    """Pool prompts that were also held out: removed from the pool (a warning says how many)."""


def prompt_id_for(messages: list[Message]) -> str:
    """Stable id derived from the prompt's content."""
    return hashlib.sha1(json.dumps(messages, sort_keys=True).encode()).hexdigest()[:12]


def to_messages(value: Any, where: str, field: str) -> list[Message]:
    """A prompt cell as chat messages: a plain string, or a list of {role, content} dicts."""
    if isinstance(value, str):
        if not value.strip():
            raise SelfplayError(f"{where}: field '{field}' is empty")
        return [{"role": "user", "content": value}]
    if isinstance(value, (list, tuple)) and value:
        messages = []
        for m in value:
            if not isinstance(m, dict) or "role" not in m or "content" not in m:
                raise SelfplayError(
                    f"{where}: field '{field}' must hold {{role, content}} messages, got {m!r:.80}"
                )
            if m["role"] not in ROLES:
                raise SelfplayError(f"{where}: field '{field}' has unknown role '{m['role']}'")
            messages.append({"role": str(m["role"]), "content": str(m["content"])})
        if messages[-1]["role"] != "user":
            raise SelfplayError(f"{where}: field '{field}': the last message must be from the user")
        if not messages[-1]["content"].strip():
            raise SelfplayError(f"{where}: field '{field}': the user message is empty")
        return messages
    raise SelfplayError(
        f"{where}: field '{field}' must be a non-empty string or list of chat messages, got {value!r:.80}"
    )


def read_rows(cfg: PromptsConfig, path: str, key: str = "prompts.path") -> list[dict[str, Any]]:
    """Rows of a local .jsonl/.json/.parquet file, or of a Hugging Face dataset (source=hf); errors
    name the config `key` that gave the path."""
    if cfg.source == "hf":
        return _read_hf(path, cfg.split, key)
    p = Path(path)
    if not p.exists():
        raise SelfplayError(f"{key}: file '{path}' does not exist")
    suffix = p.suffix.lower()
    if suffix in (".jsonl", ".json"):
        try:
            rows = read_jsonl(p)
        except ValueError as err:
            raise SelfplayError(str(err)) from None
    elif suffix == ".parquet":
        import pyarrow.parquet as pq

        try:
            rows = pq.read_table(p).to_pylist()
        except Exception as err:  # pyarrow raises several types for corrupt files
            raise SelfplayError(f"{path}: not a readable Parquet file ({err})") from None
    else:
        raise SelfplayError(
            f"prompts.path: '{path}' must end in .jsonl, .json or .parquet (or use source=hf)"
        )
    if not rows:
        raise SelfplayError(f"{path}: no rows in file")
    return rows


def _read_hf(name: str, split: str, key: str) -> list[dict[str, Any]]:
    import datasets

    try:
        folder = Path(name)
        saved = ("dataset_info.json", "dataset_dict.json", "state.json")
        if folder.is_dir() and any((folder / f).exists() for f in saved):
            ds = datasets.load_from_disk(name)
            if isinstance(ds, datasets.DatasetDict):
                if split not in ds:
                    raise SelfplayError(f"{name}: no split '{split}' (has {', '.join(ds)})")
                ds = ds[split]
        else:
            ds = datasets.load_dataset(name, split=split)
    except SelfplayError:
        raise
    except Exception as err:  # datasets raises many types; the user needs the one line
        raise SelfplayError(f"{key}: cannot load dataset '{name}' split '{split}': {err}") from None
    if len(ds) == 0:
        raise SelfplayError(f"{name}: split '{split}' has no rows")
    return ds.to_list()


def to_prompts(
    rows: list[dict[str, Any]],
    where: str,
    field: str,
    id_field: str | None,
    system_prompt: str | None,
    source: str,
) -> tuple[list[Prompt], int]:
    """Rows -> Prompt records (system prompt added), dropping and counting duplicate ids."""
    prompts, seen, dupes = [], set(), 0
    for i, row in enumerate(rows, 1):
        if field not in row:
            raise SelfplayError(f"{where}: row {i} has no field '{field}' (fields: {', '.join(row)})")
        messages = to_messages(row[field], f"{where}: row {i}", field)
        if system_prompt and messages[0]["role"] != "system":
            messages = [{"role": "system", "content": system_prompt}, *messages]
        if id_field is not None:
            if id_field not in row:
                raise SelfplayError(f"{where}: row {i} has no id field '{id_field}'")
            pid = str(row[id_field])
        else:
            pid = prompt_id_for(messages)
        if pid in seen:
            dupes += 1
            continue
        seen.add(pid)
        prompts.append(Prompt(prompt_id=pid, messages=messages, source=source))
    return prompts, dupes


def _bundled_rows(name: str) -> list[dict[str, Any]]:
    text = (resources.files("selfplay") / "assets" / name).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


_POOLS: dict[str, PromptPool] = {}


def load_prompt_pool(cfg: PromptsConfig) -> PromptPool:
    """The shuffled training pool and the held-out set, as configured (read once per process: the
    start-up budget check and the prompts stage share it)."""
    import dataclasses
    import json

    key = json.dumps(dataclasses.asdict(cfg), sort_keys=True, default=str)
    if key not in _POOLS:
        _POOLS[key] = _load_prompt_pool(cfg)
    return _POOLS[key]


BUNDLED_SETS: dict[str | None, tuple[str, str, str | None]] = {
    None: ("prompts.jsonl", "heldout.jsonl", None),
    "ifeval": ("ifeval_train.jsonl", "ifeval_heldout.jsonl", "id"),
}
"""The prompt sets shipped in the package, by `prompts.path` with source=bundled: (pool file, held-out
file, id field). null: the demo's toy prompts; ifeval: the same prompts with checkable constraints
(selfplay/tasks/constraints.py; scored by judge.rule=ifeval)."""


def bundled_set(name: str | None) -> tuple[str, str, str | None]:
    if name not in BUNDLED_SETS:
        known = ", ".join(str(k) for k in BUNDLED_SETS if k)
        raise SelfplayError(
            f"prompts.path={name}: no bundled prompt set of that name (bundled: null, {known})"
        )
    return BUNDLED_SETS[name]


def _load_prompt_pool(cfg: PromptsConfig) -> PromptPool:
    if cfg.source == "bundled":
        pool_file, heldout_file, id_field = bundled_set(cfg.path or None)
        source = "bundled" if cfg.path is None else f"bundled:{cfg.path}"
        pool, d1 = to_prompts(
            _bundled_rows(pool_file), "bundled prompts", "prompt", id_field, cfg.system_prompt, source
        )
        heldout, d2 = to_prompts(
            _bundled_rows(heldout_file),
            "bundled held-out prompts",
            "prompt",
            id_field,
            cfg.system_prompt,
            f"{source}-heldout",
        )
    else:
        if not cfg.path:
            raise SelfplayError(f"prompts.path: required with prompts.source={cfg.source}")
        pool, d1 = to_prompts(
            read_rows(cfg, cfg.path), cfg.path, cfg.field, cfg.id_field, cfg.system_prompt, cfg.path
        )
        heldout, d2 = [], 0
    if cfg.heldout_path:
        heldout, d2 = to_prompts(
            read_rows(cfg, cfg.heldout_path),
            cfg.heldout_path,
            cfg.field,
            cfg.id_field,
            cfg.system_prompt,
            cfg.heldout_path,
        )
    random.Random(cfg.shuffle_seed).shuffle(pool)
    if not heldout and cfg.heldout_size > 0:
        if len(pool) <= cfg.heldout_size:
            raise SelfplayError(
                f"prompts: {len(pool)} prompts cannot spare prompts.heldout_size={cfg.heldout_size} "
                "for evaluation (set prompts.heldout_path or a smaller heldout_size)"
            )
        pool, heldout = pool[: -cfg.heldout_size], pool[-cfg.heldout_size :]
    heldout_ids = {p.prompt_id for p in heldout}
    kept = [p for p in pool if p.prompt_id not in heldout_ids]
    overlap = len(pool) - len(kept)
    if overlap:
        log.warning(
            "prompts: %d prompt(s) of the pool are also held-out prompts (prompts.heldout_path): removed from "
            "the pool, so that evaluation never sees a prompt the policy trained on",
            overlap,
        )
    return PromptPool(kept, heldout[: cfg.heldout_size], d1 + d2, overlap)


def iteration_window(pool: list[Prompt], iteration: int, per_iteration: int) -> list[Prompt]:
    """Iteration t's prompts: the t-th disjoint window of the shuffled pool."""
    start, end = iteration * per_iteration, (iteration + 1) * per_iteration
    if end > len(pool):
        raise SelfplayError(
            f"prompts: iteration {iteration} needs prompts {start}..{end - 1} but the pool has {len(pool)} "
            "(lower prompts.per_iteration or loop.iterations, or add prompts)"
        )
    return [replace(p, iteration=iteration) for p in pool[start:end]]
