"""Reading and writing records as JSON Lines, atomically."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from selfplay.data.records import from_dict, to_dict
from selfplay.errors import SelfplayError

R = TypeVar("R")


def finite(value: Any) -> Any:
    """`value` with every float that is not finite replaced by null (stats of nothing: valid JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    """Write rows to `path` through a temporary file renamed into place; returns the row count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    n = 0
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, allow_nan=False))  # valid JSON only
                f.write("\n")
                n += 1
    except ValueError as err:  # NaN / inf: records that may hold them store null and a label instead
        tmp.unlink(missing_ok=True)
        raise SelfplayError(
            f"{path}: record {n + 1} holds a value that is not a finite number ({err})"
        ) from None
    except BaseException:
        tmp.unlink(missing_ok=True)  # never a half-written file left behind (disk full, a kill is fine too)
        raise
    os.replace(tmp, path)
    return n


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Read JSON Lines, naming the file and line of anything malformed."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: malformed JSON ({err.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
            rows.append(row)
    return rows


def write_jsonl_records(path: Path, records: Iterable[Any]) -> int:
    return write_jsonl(path, (to_dict(r) for r in records))


FAST_READ_BYTES = 16 * 2**20
"""Record files above this size are parsed by Arrow's JSON reader (about 10x faster than json.loads
per line); smaller ones, and any file Arrow cannot read, line by line with line-numbered errors."""


def read_jsonl_records(path: Path, cls: type[R]) -> list[R]:
    path = Path(path)
    if path.is_file() and path.stat().st_size > FAST_READ_BYTES:
        fast = _read_with_arrow(path, cls)
        if fast is not None:
            return fast
    out = []
    for i, row in enumerate(read_jsonl(path), 1):
        try:
            out.append(from_dict(cls, row))
        except ValueError as err:
            raise ValueError(f"{path}: record {i}: {err}") from None
    return out


def _read_with_arrow(path: Path, cls: type[R]) -> list[R] | None:
    import pyarrow.json as pj

    try:
        table = pj.read_json(path, read_options=pj.ReadOptions(block_size=64 * 2**20))
        return [cls(**row) for row in table.to_pylist()]
    except Exception:  # malformed, or a shape Arrow infers differently: the careful reader names the line
        return None
