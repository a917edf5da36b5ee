"""Which preset a command line gets: the built-in tiny policy's settings only for the built-in policy.

`python -m selfplay.run` alone runs the demo (`preset=tiny`, conf/config.yaml's default). A command
line that names a model of its own (`model.path=<folder or hub name>`) and no preset or experiment gets
`preset=none`, the schema's defaults for a real instruct model, so the toy settings (a learning rate
2,000x a real model's, 48-token responses) never reach a real model and no extra flag is needed. Hydra
chooses config groups before it reads values, so the choice is made here, on the overrides, before
Hydra composes; every entry point (the command line, `selfplay.api`) goes through it.
"""

from __future__ import annotations

from selfplay.config import TINY_MODEL


def _key_value(override: str) -> tuple[str, str] | None:
    if "=" not in override or override.startswith("-"):
        return None
    key, value = override.split("=", 1)
    return key.lstrip("+~"), value.strip().strip("'\"")


def with_default_preset(overrides: list[str]) -> list[str]:
    """`overrides` plus `preset=none` when they name a model other than the built-in one and choose
    neither a preset nor an experiment (an experiment chooses its own preset)."""
    pairs = [kv for kv in map(_key_value, overrides) if kv is not None]
    keys = {key for key, _ in pairs}
    if "preset" in keys or "experiment" in keys:
        return list(overrides)
    paths = [value for key, value in pairs if key == "model.path"]
    if paths and paths[-1] != TINY_MODEL:
        return [*overrides, "preset=none"]
    return list(overrides)
