"""Loading the policy for ZeRO-3 training: the old order (the full model loaded on every rank before
any DeepSpeed config exists) vs ours (the training config, with its DeepSpeed config, created first, so
that `from_pretrained` partitions the parameters across ranks as it builds the model), side by side:
2 processes under torchrun with ZeRO-3 on this CPU (gloo), a >= 100M-parameter Llama built locally.

Per rank: peak resident memory while loading and then reading every parameter the rank holds once (as
training does; the checkpoint is memory-mapped, so its pages count only once touched), sampled every
2 ms above the process before the load; resident memory after that; the parameter bytes the rank holds.

  python bench/zero3_load.py [--out results/zero3_load_bench_cpu.md] [--hidden 768] [--layers 12]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine, today  # noqa: E402

os.environ.setdefault("DS_ACCELERATOR", "cpu")


def build(folder: Path, hidden: int, layers: int) -> int:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=32000,
        hidden_size=hidden,
        intermediate_size=hidden * 8 // 3,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 64,
        num_key_value_heads=hidden // 64,
        max_position_embeddings=2048,
    )
    # bf16 as real checkpoints are stored. transformers wraps `.to` in a decorator whose annotation
    # does not bind `self`, so mypy takes the dtype for the model argument.
    model = LlamaForCausalLM(config).to(torch.bfloat16)  # type: ignore[arg-type]
    model.save_pretrained(folder)
    return sum(p.numel() for p in model.parameters())


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakSampler:
    """The highest resident set size seen while a block runs (sampled every 2 ms)."""

    def __enter__(self):
        import threading

        self.peak, self.stop = rss(), False

        def run():
            while not self.stop:
                self.peak = max(self.peak, rss())
                time.sleep(0.002)

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop = True
        self.thread.join()
        self.peak = max(self.peak, rss())


def worker(mode: str, model: str, out: str) -> None:
    import torch

    torch.set_num_threads(1)
    import deepspeed
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig

    deepspeed.init_distributed(dist_backend="gloo")
    rank = int(os.environ["RANK"])
    kwargs: dict[str, Any] = dict(
        output_dir=tempfile.mkdtemp(),
        use_cpu=True,
        bf16=False,
        per_device_train_batch_size=1,
        deepspeed=str(Path(__file__).resolve().parents[1] / "conf" / "deepspeed" / "zero3.json"),
        report_to="none",
    )
    if mode == "ours":  # ours: the config first, so ZeRO-3 partitions at construction
        args = DPOConfig(**kwargs)
    before = rss()
    with PeakSampler() as sampler:
        policy = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    if mode == "old":  # the previous order: load first, the training config (and DeepSpeed's) after
        args = DPOConfig(**kwargs)
    with PeakSampler() as touched:  # read every held parameter once, as training does: mmap'd pages count
        total = 0.0
        for p in policy.parameters():
            total += float((p.ds_tensor if hasattr(p, "ds_tensor") else p).detach().float().sum())
    peak = max(sampler.peak, touched.peak)
    held = sum(
        (p.ds_tensor.numel() if hasattr(p, "ds_tensor") else p.numel()) * p.element_size()
        for p in policy.parameters()
    )
    Path(f"{out}.{rank}").write_text(
        json.dumps(
            {
                "peak_extra": peak - before,
                "after_load": rss() - before,
                "held": held,
                "partitioned": hasattr(next(policy.parameters()), "ds_tensor"),
            }
        )
    )
    del args


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--worker", default=None)
    ap.add_argument("--model", default=None)
    ap.add_argument("--result", default=None)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.model, args.result)
        return

    work = Path(tempfile.mkdtemp(prefix="bench-zero3-"))
    params = build(work / "model", args.hidden, args.layers)
    full = params * 4
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "TORCH_EXTENSIONS_DIR": os.environ.get("TORCH_EXTENSIONS_DIR", str(work / "ext")),
    }
    results = {}
    for mode in ("old", "ours"):
        result = work / f"{mode}.json"
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--nnodes=1",
            "--master_addr=127.0.0.1",
            "--master_port=29561",
            __file__,
            "--worker",
            mode,
            "--model",
            str(work / "model"),
            "--result",
            str(result),
        ]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
        if proc.returncode != 0:
            raise SystemExit(f"{mode} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
        results[mode] = [json.loads(Path(f"{result}.{r}").read_text()) for r in range(2)]
    mb = 2**20
    lines = [
        f"# ZeRO-3 loading: full model on every rank vs partitioned at construction ({today()})",
        "",
        f"Machine: {machine()}; 2 processes, torchrun, DeepSpeed ZeRO-3 "
        f"(conf/deepspeed/zero3.json) on gloo. Model: a Llama built locally, {params / 1e6:.0f}M parameters "
        f"(hidden {args.hidden}, {args.layers} layers), stored in bf16 like real checkpoints and loaded for "
        f"training in fp32 (on a CPU; the old code always loaded fp32): {full / mb:,.0f} MB of parameters in all.",
        "",
        "| order | rank | peak resident memory while loading (above before) | resident after loading | parameter bytes held | partitioned |",
        "|---|---|---|---|---|---|",
    ]
    for mode, label in (
        ("old", "old: load, then the training config"),
        ("ours", "ours: training config, then load"),
    ):
        for r, res in enumerate(results[mode]):
            lines.append(
                f"| {label} | {r} | {res['peak_extra'] / mb:,.0f} MB | {res['after_load'] / mb:,.0f} MB | {res['held'] / mb:,.0f} MB "
                f"({res['held'] / full:.2f} of the model) | {res['partitioned']} |"
            )
    old_held = max(r["held"] for r in results["old"])
    ours_held = max(r["held"] for r in results["ours"])
    old_peak = max(r["peak_extra"] for r in results["old"])
    ours_peak = max(r["peak_extra"] for r in results["ours"])
    lines += [
        "",
        f"Per-rank parameter memory: ours / old = {ours_held / old_held:.2f} (goal about 1/2 with 2 ranks); "
        f"peak while loading: ours / old = {ours_peak / old_peak:.2f}.",
    ]
    out = "\n".join(lines)
    emit(out, args.out)


if __name__ == "__main__":
    main()
