"""Reading and writing record files, by suffix: `.jsonl` (JSON Lines, for records people read:
prompts, judgments, pairs) or `.parquet` (columnar, for completions and their per-token arrays)."""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from selfplay.data import columnar, jsonl

R = TypeVar("R")


def write_records(path: Path, records: Iterable[Any], cls: type | None = None) -> int:
    """Write records atomically; a Parquet file needs the record class (its schema)."""
    path = Path(path)
    if path.suffix == ".parquet":
        records = list(records)
        if cls is None:
            if not records:
                raise ValueError(f"{path}: the record class is needed to write an empty Parquet file")
            cls = type(records[0])
        return columnar.write_table(path, records, cls)
    return jsonl.write_jsonl_records(path, records)


def read_records(
    path: Path,
    cls: type[R],
    columns: list[str] | None = None,
    where: tuple[str, Iterable[Any]] | None = None,
) -> list[R]:
    """Records of a file; `columns` (Parquet) reads only those, `where=(field, values)` keeps only the
    records whose field is one of the values (pushed into the Parquet reader)."""
    path = Path(path)
    if path.suffix == ".parquet":
        return columnar.read_table(path, cls, columns, where)
    records = jsonl.read_jsonl_records(path, cls)
    if where is not None:
        name, values = where[0], set(where[1])
        records = [r for r in records if getattr(r, name) in values]
    return records


def concat_files(parts: list[Path], path: Path) -> None:
    """Concatenate record files of one format, in order, into `path` (atomically) without parsing
    JSON Lines; Parquet parts are concatenated as tables."""
    path = Path(path)
    if path.suffix == ".parquet":
        columnar.concat_tables(parts, path)
        return
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                shutil.copyfileobj(f, out)
    tmp.replace(path)
