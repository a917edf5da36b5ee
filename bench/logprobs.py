"""Teacher-forced log-probs: memory and time of the old path (full-vocabulary fp32 log_softmax over the
whole batch) vs ours (the final hidden states, then per response chunk: gather the chosen token's
logit and subtract the logsumexp), side by side in one run, on a model built locally with a 128k
vocabulary and a tiny body (the shape that makes the logits, not the model, the memory).

Each path runs in its own child process (so peak resident memory is its own); the script prints the
peak memory above the loaded model, the seconds, and the largest difference of the values.

  python bench/logprobs.py [--out results/logprobs_bench_cpu.md] [--seqs 8] [--tokens 2048] [--vocab 128256]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine, today  # noqa: E402


def build_model(folder: Path, vocab: int) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=vocab,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)


def old_path(model, sequences, batch_size):
    """The previous implementation, verbatim in substance: logits of the whole batch, fp32 log_softmax."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]) + len(sequences[i][1]))
    out: list[list[float]] = [[] for _ in sequences]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        rows = [sequences[i][0] + sequences[i][1] for i in idx]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, : len(r)] = torch.tensor(r)
            mask[j, : len(r)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logp = logits.float().log_softmax(-1)
        for j, i in enumerate(idx):
            prompt_len, resp = len(sequences[i][0]), sequences[i][1]
            positions = torch.arange(prompt_len - 1, prompt_len - 1 + len(resp))
            out[i] = logp[j, positions].gather(-1, torch.tensor(resp)[:, None]).squeeze(-1).tolist()
    return out


def child(which: str, folder: str, seqs: int, tokens: int, batch: int) -> None:
    import random

    import torch
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    vocab = model.config.vocab_size
    rng = random.Random(0)
    sequences = [
        ([rng.randrange(vocab) for _ in range(64)], [rng.randrange(vocab) for _ in range(tokens - 64)])
        for _ in range(seqs)
    ]
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    start = time.perf_counter()
    if which == "old":
        values = old_path(model, sequences, batch)
    else:
        from selfplay.logprobs.teacher_forcing import response_logprobs

        values = response_logprobs(model, sequences, batch)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "peak_extra": peak - base, "values": values}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--seqs", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=2048)
    ap.add_argument("--vocab", type=int, default=128256)
    ap.add_argument("--child", default=None)
    ap.add_argument("--folder", default=None)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.folder, args.seqs, args.tokens, args.seqs)
        return

    import torch

    work = Path(tempfile.mkdtemp(prefix="bench-logprobs-"))
    build_model(work / "model", args.vocab)
    results: dict[str, dict[str, Any]] = {}
    for which in ("old", "ours"):
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                which,
                "--folder",
                str(work / "model"),
                "--seqs",
                str(args.seqs),
                "--tokens",
                str(args.tokens),
            ],
            capture_output=True,
            text=True,
            env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
        )
        if proc.returncode != 0:
            results[which] = {
                "error": proc.stderr.strip().splitlines()[-1] if proc.stderr else f"exit {proc.returncode}"
            }
            continue
        results[which] = json.loads(proc.stdout.strip().splitlines()[-1])
    old, ours = results["old"], results["ours"]
    gib = 2**30
    diff = None
    if "values" in old and "values" in ours:
        diff = max(abs(a - b) for x, y in zip(old["values"], ours["values"]) for a, b in zip(x, y))
    lines = [
        f"# Teacher-forced log-probs: full-vocabulary log_softmax vs chunked gather ({today()})",
        "",
        f"Machine: {machine()}, CUDA {torch.cuda.is_available()}; torch {torch.__version__}.",
        f"Model: a Llama built locally with a {args.vocab:,}-token vocabulary and a tiny body (hidden 64, 2 layers), "
        f"fp32. Input: {args.seqs} sequences x {args.tokens:,} tokens (64 prompt + {args.tokens - 64:,} response) in one batch.",
        "Peak memory: each path in its own process, peak resident set above the loaded model (ru_maxrss).",
        "",
        "| path | peak extra memory | seconds |",
        "|---|---|---|",
    ]
    for name, r in (
        ("old: logits.float().log_softmax(-1) of the whole batch", old),
        ("ours: chunked gather - logsumexp", ours),
    ):
        if "error" in r:
            lines.append(f"| {name} | failed: {r['error']} | - |")
        else:
            lines.append(f"| {name} | {r['peak_extra'] / gib:.2f} GiB | {r['seconds']:.2f} |")
    if "peak_extra" in old and "peak_extra" in ours:
        lines += [
            "",
            f"ours / old peak extra memory = {ours['peak_extra'] / old['peak_extra']:.3f} (goal <= 0.125); "
            f"time ours / old = {ours['seconds'] / old['seconds']:.2f}; largest difference of the "
            f"{sum(len(v) for v in ours['values']):,} per-token values: {diff:.2e} nats (goal < 1e-5)",
        ]
    out = "\n".join(lines)
    emit(out, args.out)


if __name__ == "__main__":
    main()
