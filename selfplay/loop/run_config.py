"""The run's saved config: written on the first start, compared on every resume."""

from __future__ import annotations

import dataclasses
from enum import Enum
from typing import Any

import yaml

from selfplay.config import Config
from selfplay.errors import SelfplayError
from selfplay.loop.layout import RunLayout

EXTENDING_KEYS = frozenset(
    {
        "loop.output_dir",  # where the run lives, not what it is: a moved run directory resumes
        "loop.run_name",
        "loop.iterations",
        "loop.restart_from",
        "loop.threads",
        "loop.shards",
        "loop.shard_workers",
        "task.stage",
        "task.iteration",
        "task.shard",
        "loop.isolation",
        "loop.dry_run",
        "loop.stop_after",
        "generate.engine",  # how engines live, not what they sample: records are the same
        "generate.hf_batch_size",  # how many sequences share a forward pass: the same responses
        "loop.progress",
        "loop.progress_interval",
        "loop.hang_timeout",
        "loop.stage_timeout",
        "tracking.backend",
        "tracking.project",
        "hub.push",
        "hub.repo_id",
        "hub.private",
        "cluster.kind",
        "cluster.gpus_per_node",
        "cluster.master_port",
    }
)
"""Keys that may change on resume: they extend or steer the run without changing its records
(sampling seeds are per prompt, so sharding does not change what is generated)."""


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
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        else:
            out[key] = v
    return out


def identity(cfg: Config) -> dict[str, Any]:
    """The flattened config minus the keys allowed to change on resume."""
    return {k: v for k, v in flatten(config_dict(cfg)).items() if k not in EXTENDING_KEYS}


def save_or_check(layout: RunLayout, cfg: Config, check_only: bool = False) -> None:
    """Save the resolved config on the first start; on resume refuse a changed config, naming keys."""
    current = config_dict(cfg)
    if layout.config_file.is_file():
        saved = flatten(yaml.safe_load(layout.config_file.read_text()) or {})
        now = flatten(current)
        changed = sorted(
            k
            for k in set(saved) | set(now)
            if k not in EXTENDING_KEYS and saved.get(k, "<absent>") != now.get(k, "<absent>")
        )
        if changed:
            detail = ", ".join(
                f"{k}: {saved.get(k, '<absent>')!r} -> {now.get(k, '<absent>')!r}" for k in changed[:6]
            )
            raise SelfplayError(
                f"run '{layout.root}' was started with a different config ({detail}"
                f"{', ...' if len(changed) > 6 else ''}); use a new loop.run_name or restore these keys"
            )
    elif check_only:
        raise SelfplayError(f"run '{layout.root}' has no config.yaml: shard tasks run inside a started run")
    if check_only:
        return
    layout.root.mkdir(parents=True, exist_ok=True)
    tmp = layout.config_file.with_suffix(".yaml.tmp")
    tmp.write_text(yaml.safe_dump(current, sort_keys=False))
    tmp.replace(layout.config_file)
