"""Resolving a plug-in by name: an entry of its table (losses, metrics, pairing rules, rules) or the
user's own object given as "module:attr", with one line naming the key when neither exists."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Any

from selfplay.errors import SelfplayError


def is_reference(name: str) -> bool:
    """Whether a name is "module:attr" (the user's own object) rather than a table entry."""
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr)


def import_object(name: str, key: str) -> Any:
    """The object "module:attr" names (attr may be dotted), or one line naming `key`."""
    module_name, _, attr = name.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:  # ImportError, or the module's own error on import
        raise SelfplayError(
            f"{key}={name}: cannot import '{module_name}' ({type(exc).__name__}: {exc})"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise SelfplayError(f"{key}={name}: module '{module_name}' has no '{attr}'")
        obj = getattr(obj, part)
    return obj


def nearest(name: str, known: list[str]) -> str:
    """ "; did you mean X?" for a near miss, else nothing."""
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def resolve(name: str, table: Mapping[str, Any], key: str) -> Any:
    """`table[name]`, or the object "module:attr" names; else one line listing the table's names."""
    if name in table:
        return table[name]
    if is_reference(name):
        return import_object(name, key)
    known = list(table)
    raise SelfplayError(
        f"{key}={name}: unknown (known: {', '.join(known)}; or module:attr for your own){nearest(name, known)}"
    )
