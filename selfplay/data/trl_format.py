"""Kept pairs as a Parquet file in TRL's conversational preference format (`prompt`, `chosen`,
`rejected` as chat messages), loadable with `datasets.load_dataset("parquet", data_files=...)` and usable
by `trl dpo` / DPOTrainer as it is; the selection columns ride along."""

from __future__ import annotations

import os
from pathlib import Path

from selfplay.data.records import Pair


def write_trl_pairs(path: Path, pairs: list[Pair]) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    message = pa.struct([("role", pa.string()), ("content", pa.string())])
    schema = pa.schema(
        [
            ("prompt", pa.list_(message)),
            ("chosen", pa.list_(message)),
            ("rejected", pa.list_(message)),
            ("pair_id", pa.string()),
            ("iteration", pa.int64()),
            ("origin", pa.string()),
            ("chosen_reward", pa.float64()),
            ("rejected_reward", pa.float64()),
            ("explicit_margin", pa.float64()),
            ("implicit_margin", pa.float64()),
            ("score", pa.float64()),
            ("rank", pa.int64()),
        ]
    )
    rows = [
        {
            "prompt": p.messages,
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
            "pair_id": p.pair_id,
            "iteration": p.iteration,
            "origin": p.origin,
            "chosen_reward": p.chosen_reward,
            "rejected_reward": p.rejected_reward,
            "explicit_margin": p.explicit_margin,
            "implicit_margin": p.implicit_margin,
            "score": p.score,
            "rank": p.rank,
        }
        for p in pairs
    ]
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp, compression="zstd")
    os.replace(tmp, path)
    return len(rows)
