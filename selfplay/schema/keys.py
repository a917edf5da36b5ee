"""Every key a schema knows, and the check that refuses any other (a command-line override, `+` or not,
or a key of a composed YAML file), in one line naming the nearest known key: Hydra's `+key=value` would
otherwise add a misspelt key that nothing reads, and the run would go on with the default."""

from __future__ import annotations

import dataclasses
import difflib
import typing
from typing import Any

FREE_FORM = {"generate.engine_args", "train.trl_args"}
"""dict fields whose keys are another library's (vLLM's engine arguments, TRL's config fields): checked
there, not here."""
HYDRA = ("hydra", "hydra/")


def known_keys(cls: type, prefix: str = "") -> dict[str, bool]:
    """Dotted key -> whether it is a section (a nested dataclass), for every field of `cls`."""
    hints = typing.get_type_hints(cls)
    out: dict[str, bool] = {}
    for f in dataclasses.fields(cls):
        key = f"{prefix}{f.name}"
        kind = hints.get(f.name)
        if dataclasses.is_dataclass(kind):
            out[key] = True
            out.update(known_keys(kind, f"{key}."))  # type: ignore[arg-type]
        else:
            out[key] = False
    return out


def nearest_key(key: str, known: list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown(key: str, keys: dict[str, bool]) -> bool:
    """Whether `key` (dotted) is neither a field, a section nor inside a free-form dict field."""
    if key in keys:
        return False
    return not any(key.startswith(f"{free}.") for free in FREE_FORM)


def override_key(override: str) -> str | None:
    """The key an override sets (`+a.b=1`, `++a.b=1`, `~a.b`, `a.b=1,2`), None for Hydra's own flags
    and their values (`--cfg job`)."""
    if override.startswith("-") or ("=" not in override and not override.startswith("~")):
        return None
    text = override.lstrip("+~")
    key = text.split("=", 1)[0]
    return key.split("@", 1)[0] or None


def check_overrides(overrides: list[str], cls: type, groups: set[str], what: str = "") -> None:
    """Refuse an override of a key the schema does not know (a config group's name is not a key)."""
    from selfplay.errors import SelfplayError

    keys = known_keys(cls)
    for override in overrides:
        key = override_key(override)
        if key is None or key in groups or key.startswith(HYDRA):
            continue
        if unknown(key, keys):
            raise SelfplayError(
                f"{what + ': ' if what else ''}unknown key '{key}' in '{override}'{nearest_key(key, list(keys))}; "
                "every key: docs/config.md"
            )


def check_composed(config: Any, cls: type, what: str = "") -> None:
    """Refuse a key of the composed config (a YAML file's, say) that the schema does not know."""
    from omegaconf import DictConfig

    from selfplay.errors import SelfplayError

    keys = known_keys(cls)

    def walk(node: Any, prefix: str) -> None:
        if not isinstance(node, DictConfig):
            return
        for name in map(str, node):
            key = f"{prefix}{name}"
            if unknown(key, keys):
                raise SelfplayError(
                    f"{what + ': ' if what else ''}unknown key '{key}' in the composed config (a YAML file's?)"
                    f"{nearest_key(key, list(keys))}; every key: docs/config.md"
                )
            if keys.get(key):
                walk(node[name], f"{key}.")

    walk(config, "")


def config_groups() -> set[str]:
    """The conf/ groups a command line picks an option of (`preset=tiny`), from the shipped configs."""
    from pathlib import Path

    import selfplay.conf

    conf = Path(next(iter(selfplay.conf.__path__)))
    return {
        p.name for p in conf.iterdir() if p.is_dir() and p.name not in ("hydra", "deepspeed", "__pycache__")
    }
