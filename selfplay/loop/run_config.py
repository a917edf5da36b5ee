"""The run's saved config: written on the first start, compared on every resume.

Keys in `RESOURCE_KEYS` (selfplay/config.py) may change on resume; any other changed key is refused,
naming it. A key this version has and the saved config lacks (added by a later version of selfplay)
resumes as long as it holds its default; it then stays out of the run's identity, so the stage
fingerprints of the run are the ones it was started with.
"""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

import yaml

from selfplay.config import RESOURCE_KEYS, Config
from selfplay.errors import SelfplayError
from selfplay.rundir.layout import RunLayout

ABSENT = "<absent>"
SCHEMA_VERSION = 3
"""Written into config.yaml. Version 2 (resource keys, checksummed markers, sharded evaluate/evolve)
changed the stage fingerprints; version 3 grouped the judge's settings (judge.model.*, judge.remote.*,
judge.generative.*) and typed every stage's statistics. A run started before is refused rather than
silently redone."""


def config_dict(cfg: Config) -> dict[str, Any]:
    def plain(v: Any) -> Any:
        if isinstance(v, Enum):
            return v.value
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(dataclasses.asdict(cfg))


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not (key.endswith("engine_args") or key.endswith("trl_args")):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def saved_config(layout: RunLayout) -> dict[str, Any] | None:
    """The flattened config the run was started with, None for a new run."""
    if not layout.config_file.is_file():
        return None
    try:
        return flatten(yaml.safe_load(layout.config_file.read_text()) or {})
    except yaml.YAMLError as err:
        raise SelfplayError(
            f"{layout.config_file} is not readable YAML ({str(err).splitlines()[0]}); restore it or start a new "
            "loop.run_name"
        ) from None


def identity(cfg: Config, saved: dict[str, Any] | None = None) -> dict[str, Any]:
    """What defines the run's records: the flattened config minus the resource keys, and minus keys the
    saved config (of a run started by an earlier version) does not have."""
    now = flatten(config_dict(cfg))
    return {k: v for k, v in now.items() if k not in RESOURCE_KEYS and (saved is None or k in saved)}


def changed_keys(saved: dict[str, Any], cfg: Config) -> list[tuple[str, Any, Any]]:
    """(key, saved value, value now) of every result key that differs; a key missing on one side counts
    as its schema default (a key added or removed by another version of selfplay)."""
    now = flatten(config_dict(cfg))
    defaults = flatten(config_dict(type(cfg)()))
    out = []
    for k in sorted(set(saved) | set(now)):
        if k in RESOURCE_KEYS or (k not in now and k not in defaults):
            continue  # a key no longer in the schema has no effect now
        before = saved.get(k, defaults.get(k, ABSENT))
        after = now.get(k, defaults.get(k, ABSENT))
        if before != after:
            out.append((k, saved.get(k, ABSENT), now.get(k, ABSENT)))
    return out


def save_or_check(layout: RunLayout, cfg: Config, check_only: bool = False) -> dict[str, Any]:
    """Save the resolved config on the first start; on resume refuse a changed config, naming keys.
    Returns the run's identity (what its stage fingerprints are made of)."""
    saved = saved_config(layout)
    if saved is not None and saved.get("schema_version") != SCHEMA_VERSION:
        raise SelfplayError(
            f"run '{layout.root}' was started by an earlier version of selfplay (config schema "
            f"{saved.get('schema_version', 1)}, this one reads {SCHEMA_VERSION}), whose stage fingerprints and records "
            "differ; finish it with that version, or start a new loop.run_name"
        )
    if saved is not None:
        changed = changed_keys(saved, cfg)
        if changed:
            detail = ", ".join(f"{k}: {a!r} -> {b!r}" for k, a, b in changed[:6])
            raise SelfplayError(
                f"run '{layout.root}' was started with a different config ({detail}"
                f"{', ...' if len(changed) > 6 else ''}); use a new loop.run_name or restore these keys "
                "(resource keys such as batch sizes, memory and process counts may change: see RESOURCE_KEYS)"
            )
    elif check_only:
        raise SelfplayError(f"run '{layout.root}' has no config.yaml: shard tasks run inside a started run")
    run_id = identity(cfg, saved)
    if check_only:
        return run_id
    layout.root.mkdir(parents=True, exist_ok=True)
    current = config_dict(cfg)
    if saved is not None:  # keep the keys the run was started with: a later version's new keys stay out
        current = _only(current, lambda key: key in saved or key in RESOURCE_KEYS)
    current = {"schema_version": SCHEMA_VERSION, **current}
    tmp = layout.config_file.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(current, sort_keys=False))
    tmp.replace(layout.config_file)
    return run_id


def _only(tree: dict[str, Any], keep, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and not (key.endswith("engine_args") or key.endswith("trl_args")):
            sub = _only(v, keep, key + ".")
            if sub:
                out[k] = sub
        elif keep(key):
            out[k] = v
    return out
