"""Offline selection column by column (pyarrow and numpy), for a dataset that already has both reward
columns and both implicit-reward columns: no per-row Python object is built, so a million rows select
in seconds (bench/selection.py). The row-by-row path of selfplay/selection/offline.py handles every
other case (rewards or implicit rewards to compute, the list-wise layout, a hub dataset) and gives the
one-line errors for malformed rows: whenever a column here is not of a plain shape, this path steps
aside (returns None) and the row path runs, so both paths give the same results and messages.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from selfplay.config import OfflineSelectConfig
from selfplay.errors import SelfplayError
from selfplay.selection.metrics import MetricParams, score_rank_keep
from selfplay.selection.pipeline import margin_stats

SCORE_COLUMNS = (
    "chosen_reward",
    "rejected_reward",
    "chosen_implicit",
    "rejected_implicit",
    "explicit_margin",
    "implicit_margin",
    "score",
    "rank",
    "kept",
)
"""What every scored row gets beside its own columns (the row path writes the same)."""


def read_score_columns(cfg: OfflineSelectConfig) -> set[str]:
    """The input's columns whose values become SCORE_COLUMNS (e.g. UltraFeedback's `score_chosen` is read
    into `chosen_reward`): left out of the outputs, which hold each score once, under our name."""
    c = cfg.columns
    return {c.chosen_reward, c.rejected_reward, c.chosen_implicit, c.rejected_implicit}


def read_arrow(path: str, split: str):
    """The input as one pyarrow Table, or None where only the row path reads it (a hub name, JSON
    whose rows pyarrow cannot type uniformly)."""
    import pyarrow as pa

    p = Path(path).expanduser()
    try:
        if p.is_file() and p.suffix == ".parquet":
            import pyarrow.parquet as pq

            return pq.read_table(p)
        if p.is_file() and p.suffix == ".jsonl":
            import pyarrow.json as pj

            return pj.read_json(p, read_options=pj.ReadOptions(block_size=1 << 26))
        if p.is_dir():
            import datasets

            data = datasets.load_from_disk(str(p))
            if isinstance(data, datasets.DatasetDict):
                if split not in data:
                    return None
                data = data[split]
            table = data.data.table if data._indices is None else data.flatten_indices().data.table
            return table if isinstance(table, pa.Table) else None
    except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, OSError):
        return None
    return None


def _numbers(table, name: str):
    """A numeric column as float64 (nulls as NaN), or None when it is absent or not numeric."""
    import pyarrow as pa

    if name not in table.column_names:
        return None
    col = table.column(name)
    if not (pa.types.is_integer(col.type) or pa.types.is_floating(col.type)) or col.null_count:
        return None  # a missing value: the row path names the row
    return np.asarray(col.to_numpy(zero_copy_only=False), dtype=float)


def _response_texts(col):
    """The response text of every row of a string column, or of a messages column (the last assistant
    turn's content); None when any row has another shape (the row path then names the row)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    col = col.combine_chunks()
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return None if col.null_count else col
    if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):
        return None
    item = col.type.value_type
    if not pa.types.is_struct(item) or {"role", "content"} - {
        item.field(i).name for i in range(item.num_fields)
    }:
        return None
    if col.null_count:
        return None
    flat = col.flatten()
    roles = np.asarray(flat.field("role").to_numpy(zero_copy_only=False), dtype=object)
    offsets = np.asarray(col.offsets.to_numpy(), dtype=np.int64)
    starts, ends = offsets[:-1], offsets[1:]
    if (ends <= starts).any():
        return None  # a row without messages
    position = np.where(roles == "assistant", np.arange(len(roles)), -1)
    last = np.maximum.reduceat(position, starts)
    if (last < starts).any():
        return None  # a row without an assistant turn
    content = flat.field("content")
    if content.null_count:
        return None
    return pc.take(content, pa.array(last))


def _prompts_ok(col) -> bool:
    """Every prompt is a non-empty string or a non-empty list (the row path checks the rest)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if col.null_count:
        return False
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        return not pc.any(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(col)), 0)).as_py()
    if pa.types.is_list(col.type) or pa.types.is_large_list(col.type):
        item = col.type.value_type
        plain = pa.types.is_struct(item) and {"role", "content"} <= {
            item.field(i).name for i in range(item.num_fields)
        }
        return plain and not pc.any(pc.equal(pc.list_value_length(col), 0)).as_py()
    return False


def score_columns_present(table, cfg: OfflineSelectConfig) -> bool:
    """Whether the table has both reward and both implicit-reward columns (nothing to compute)."""
    c = cfg.columns
    names = table.column_names
    return all(
        n in names for n in (c.chosen_reward, c.rejected_reward, c.chosen_implicit, c.rejected_implicit)
    )


def select_columns(table, cfg: OfflineSelectConfig) -> tuple[Any, Any, dict[str, Any]] | None:
    """(scored table in input order, selected table best first, summary), or None where the row path
    must run. The scored table holds the usable rows with every input column and SCORE_COLUMNS."""
    import pyarrow as pa

    c, sel = cfg.columns, cfg.selection
    names = table.column_names
    if table.num_rows == 0 or any(n not in names for n in (c.prompt, c.chosen, c.rejected)):
        return None
    if c.id and c.id not in names:
        return None
    values = [
        _numbers(table, n)
        for n in (c.chosen_reward, c.rejected_reward, c.chosen_implicit, c.rejected_implicit)
    ]
    if any(v is None for v in values) or not _prompts_ok(table.column(c.prompt).combine_chunks()):
        return None
    chosen, rejected = _response_texts(table.column(c.chosen)), _response_texts(table.column(c.rejected))
    if chosen is None or rejected is None:
        return None
    rc, rr, ic, ir = values  # type: ignore[misc]
    finite = np.isfinite(rc) & np.isfinite(rr) & np.isfinite(ic) & np.isfinite(ir)
    if not finite.all() and str(sel.on_nonfinite) == "error":
        i = int(np.flatnonzero(~finite)[0])
        raise SelfplayError(
            f"row {i + 1}: non-finite reward or implicit reward ({rc[i]}, {rr[i]}, {ic[i]}, {ir[i]}); "
            "selection.on_nonfinite=drop skips such rows"
        )
    import pyarrow.compute as pc

    identical = np.asarray(pc.equal(chosen, rejected).to_numpy(zero_copy_only=False), dtype=bool)
    usable = finite & ~identical
    counts = {
        "dropped_tied": 0,
        "dropped_nonfinite": int((~finite).sum()),
        "dropped_identical": int((finite & identical).sum()),
    }
    idx = np.flatnonzero(usable)
    if len(idx) == 0:
        raise SelfplayError(f"{cfg.input}: no usable rows left ({counts})")
    rc, rr, ic, ir = rc[idx], rr[idx], ic[idx], ir[idx]
    d_ex, d_im = rc - rr, ic - ir

    def ids() -> list[str]:
        if c.id:
            return [str(v) for v in table.column(c.id).take(pa.array(idx)).to_pylist()]
        return [f"{i:08d}" for i in idx.tolist()]

    params = MetricParams(weight=sel.weight, implicit_abs=sel.implicit_abs, seed=sel.seed)
    scores, rank, kept = score_rank_keep(d_ex, d_im, str(sel.metric), params, sel.ratio, sel.count, ids)
    scored = table.take(pa.array(idx))
    dropped = set(SCORE_COLUMNS) | read_score_columns(cfg)
    scored = scored.drop_columns([n for n in scored.column_names if n in dropped])
    for name, column in zip(SCORE_COLUMNS, (rc, rr, ic, ir, d_ex, d_im, scores, rank, kept)):
        scored = scored.append_column(name, pa.array(column))
    best = np.flatnonzero(kept)
    best = best[np.argsort(rank[best], kind="stable")]
    summary = {
        "input": cfg.input,
        "rows": table.num_rows,
        **counts,
        "computed": [],
        "metric": str(sel.metric),
        **margin_stats(d_ex, d_im, kept),
    }
    return scored, scored.take(pa.array(best)), summary
