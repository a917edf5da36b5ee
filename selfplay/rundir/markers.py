"""Stage completion markers: written last, holding the fingerprint of what the stage was run with."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from selfplay.data.jsonl import finite


def fingerprint(*parts: Any) -> str:
    blob = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def write_marker(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(finite(data), indent=1, sort_keys=True, allow_nan=False))
    os.replace(tmp, path)


def read_marker(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:  # a marker is written atomically; unreadable means foreign: redo
        return None
