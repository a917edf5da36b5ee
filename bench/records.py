"""Completion records at paper size: the old JSON Lines format (every field, per-token arrays printed
as decimals) vs ours (Parquet, per-token arrays as int32 / float32, zstd), side by side in one run on a
synthetic iteration of the paper's shape (10k prompts x 5 samples x 500 tokens = 25M tokens).

Prints bytes per generated token, write seconds, and read seconds: the whole record (what training
reads, for its pairs only) and the record without the per-token arrays (what judging and selection
read), plus the goals (<= 10 bytes per token, >= 10x faster reads).

  python bench/records.py [--out results/records_bench_cpu.md] [--completions 50000] [--tokens 500]
"""

from __future__ import annotations

import argparse
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine, today  # noqa: E402


def synthetic(n: int, tokens: int, seed: int = 0):
    import numpy as np

    from selfplay.data.records import Completion

    rng = random.Random(seed)
    np_rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(5000)]
    out = []
    for i in range(n):
        ids = np_rng.integers(0, 128000, tokens, dtype=np.int32).tolist()
        lps = (
            (-np_rng.exponential(1.5, tokens)).astype(np.float32).tolist()
        )  # float32 values, as samplers give
        out.append(
            Completion(
                prompt_id=f"{i // 5:012x}",
                sample_index=i % 5,
                text=" ".join(rng.choice(words) for _ in range(tokens // 1)),
                finish_reason="stop",
                iteration=0,
                model="/models/policy",
                seed=rng.randrange(2**31),
                token_ids=ids,
                logprobs=lps,
            )
        )
    return out


def old_write(path: Path, records) -> None:
    """The previous format: one JSON object per completion, every field (the arrays included)."""
    import json

    with open(path, "w", encoding="utf-8") as f:
        for r in records:
            row = {
                "prompt_id": r.prompt_id,
                "sample_index": r.sample_index,
                "text": r.text,
                "token_ids": r.token_ids,
                "logprobs": r.logprobs,
                "finish_reason": r.finish_reason,
                "iteration": r.iteration,
                "model": r.model,
                "seed": r.seed,
            }
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def old_read(path: Path):
    """The previous reader: JSON Lines parsed line by line into records (names checked per row)."""
    import selfplay.data.jsonl as jsonl
    from selfplay.data.records import Completion

    limit, jsonl.FAST_READ_BYTES = jsonl.FAST_READ_BYTES, 1 << 62  # the line-by-line reader, as before
    try:
        return jsonl.read_jsonl_records(path, Completion)
    finally:
        jsonl.FAST_READ_BYTES = limit


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return time.perf_counter() - start, value


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--completions", type=int, default=50000)
    ap.add_argument("--tokens", type=int, default=500)
    args = ap.parse_args()

    from selfplay.data.files import read_records, write_records
    from selfplay.data.records import COMPLETION_TEXT, Completion

    records = synthetic(args.completions, args.tokens)
    total_tokens = args.completions * args.tokens
    work = Path(tempfile.mkdtemp(prefix="bench-records-"))
    old_path, new_path = work / "completions.jsonl", work / "completions.parquet"
    start = time.perf_counter()
    old_write(old_path, records)
    old_w = time.perf_counter() - start
    start = time.perf_counter()
    write_records(new_path, records, Completion)
    new_w = time.perf_counter() - start
    records.clear()
    old_r, old_back = timed(lambda: old_read(old_path))
    old_back.clear()
    new_r, new_back = timed(lambda: read_records(new_path, Completion))
    assert len(new_back) == args.completions and new_back[0].num_tokens == args.tokens
    new_back.clear()
    old_text = old_r  # the old format has no way to skip the arrays: judging read the whole file
    new_text, texts = timed(lambda: read_records(new_path, Completion, COMPLETION_TEXT))
    assert texts[0].token_ids == [] and texts[0].num_tokens == args.tokens
    some = {f"{i:012x}" for i in range(0, args.completions // 5, 25)}  # a shard's / the kept pairs' prompts
    new_some, rows = timed(lambda: read_records(new_path, Completion, where=("prompt_id", some)))
    old_size, new_size = old_path.stat().st_size, new_path.stat().st_size
    shutil.rmtree(work)
    mb = 2**20
    lines = [
        f"# Completion records at paper size: JSON Lines vs Parquet ({today()})",
        "",
        f"Machine: {machine()}. Synthetic iteration: {args.completions:,} "
        f"completions x {args.tokens} tokens = {total_tokens / 1e6:.0f}M generated tokens (10k prompts x 5 "
        "samples at paper scale), text of one word per token, float32 log-probs.",
        "",
        "| format | size | bytes / token | write s | read all s | read without arrays s | read 1/25 of the prompts s |",
        "|---|---|---|---|---|---|---|",
        f"| old: JSON Lines, every field | {old_size / mb:,.0f} MB | {old_size / total_tokens:.1f} | {old_w:.1f} | "
        f"{old_r:.1f} | {old_text:.1f} (must read all) | {old_r:.1f} (must read all) |",
        f"| ours: Parquet (int32 ids, float32 log-probs, zstd) | {new_size / mb:,.0f} MB | "
        f"{new_size / total_tokens:.1f} | {new_w:.1f} | {new_r:.1f} | {new_text:.2f} | {new_some:.2f} ({len(rows):,} rows) |",
        "",
        f"bytes per token: {new_size / total_tokens:.1f} (goal <= 10); reads: whole records {old_r / new_r:.1f}x "
        f"faster, without the arrays {old_text / new_text:.0f}x, one shard's prompts {old_r / new_some:.0f}x "
        "(goal >= 10x).",
    ]
    out = "\n".join(lines)
    emit(out, args.out)


if __name__ == "__main__":
    main()
