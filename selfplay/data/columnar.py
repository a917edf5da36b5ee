"""Records as Parquet tables: the Arrow schema follows the record dataclass (one schema, in
data/records.py; per-token arrays as int32 / float32 where a field says so), zstd-compressed, written
atomically; reads take only the columns and rows a caller needs."""

from __future__ import annotations

import dataclasses
import os
import typing
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

R = TypeVar("R")

_SCALARS: dict[Any, str] = {str: "string", int: "int64", float: "float64", bool: "bool"}


def _arrow_type(hint: Any, meta: Any):
    import pyarrow as pa

    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and type(None) in args:
        (inner,) = [a for a in args if a is not type(None)]
        return _arrow_type(inner, meta)
    if origin is list:
        (item,) = args
        if typing.get_origin(item) is dict:  # chat messages
            return pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
        if meta.get("dtype"):
            return pa.list_(getattr(pa, meta["dtype"])())
        return pa.list_(getattr(pa, _SCALARS[item])())
    return getattr(pa, _SCALARS[hint])()


def schema(cls: type):
    """The Arrow schema of a record dataclass."""
    import pyarrow as pa

    hints = typing.get_type_hints(cls)
    return pa.schema(
        [pa.field(f.name, _arrow_type(hints[f.name], f.metadata)) for f in dataclasses.fields(cls)]
    )


def write_table(path: Path, records: Iterable[Any], cls: type) -> int:
    """Write records to a Parquet file through a temporary file renamed into place; the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [f.name for f in dataclasses.fields(cls)]
    rows = list(records)
    table = pa.Table.from_pydict({n: [getattr(r, n) for r in rows] for n in names}, schema=schema(cls))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
    return len(rows)


def read_table(
    path: Path,
    cls: type[R],
    columns: list[str] | None = None,
    where: tuple[str, Iterable[Any]] | None = None,
) -> list[R]:
    """Records of a Parquet file; `columns` reads only those (the others take their defaults),
    `where=(column, values)` only the rows whose column is one of the values."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    wanted = None if columns is None else sorted(set(columns) | ({where[0]} if where else set()))
    table = pq.read_table(path, columns=wanted)
    if where is not None:
        table = table.filter(pc.is_in(table[where[0]], value_set=pa.array(list(where[1]))))
    names = [n for n in table.column_names if columns is None or n in columns]
    values = {n: _column_values(table.column(n)) for n in names}
    return [cls(**dict(zip(names, row))) for row in zip(*(values[n] for n in names))]


def _column_values(column) -> list[Any]:
    """A column as Python values; a list of numbers through numpy (offsets + one flat array), which is
    many times faster than Arrow's per-row conversion for per-token arrays."""
    import pyarrow as pa

    column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
    if pa.types.is_list(column.type) and (
        pa.types.is_integer(column.type.value_type) or pa.types.is_floating(column.type.value_type)
    ):
        if column.null_count:
            return column.to_pylist()
        offsets = column.offsets.to_numpy()
        flat = column.values.to_numpy(zero_copy_only=False)
        base = offsets[0]
        return [flat[a - base : b - base].tolist() for a, b in zip(offsets[:-1], offsets[1:])]
    return column.to_pylist()


def concat_tables(parts: list[Path], path: Path) -> int:
    """Concatenate Parquet parts in order into one file (atomically); the row count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    tables = [pq.read_table(p) for p in parts]
    table = pa.concat_tables(tables) if tables else None
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    if table is None:
        raise ValueError("no parts to concatenate")
    pq.write_table(table, tmp, compression="zstd")
    os.replace(tmp, path)
    return table.num_rows
