"""Where a run's wall time goes, generate.engine=per_stage vs persistent, side by side in one process:

  engine start/stop   starting and closing vLLM engines (and in-place weight reloads, persistent only)
  model loads         transformers model loads outside vLLM (training's policy, judges, log-prob models)
  record I/O          the stages' reads and writes of record files (completions, rewards, pairs, parts)
  stage compute       the stages' own time (sampling, judging, log-probs, training, evaluation) minus the
                      three above
  overhead            the rest of the wall time (everything but stage compute): the three above,
                      orchestration, markers, config checks, the results file and plots

for the default run (the built-in tiny policy, 3 iterations x 96 prompts x 4 samples) and for a
~30M-parameter policy (the tiny policy widened to hidden 512, 8 layers, 8 heads; 2 iterations x 32
prompts x 4 samples x 64 tokens). Every stage runs in this process (the default `loop.isolation`), so
there are no process starts to count. Prints a table and the ratios.

  python bench/loop.py [--out results/loop_bench_cpu.md] [--sizes default,30m]

With --processes, the run's stages in processes of their own, as on cluster=gpus|slurm: one process
(and one engine) per shard and stage (loop.workers=false) vs one long-lived worker per engine slot
(loop.workers=true), side by side: engine starts, process starts, seconds per iteration, on this CPU
with 2 CPU slots (loop.isolation=process loop.shard_workers=2: cluster=gpus's shape without GPUs) and,
with --slurm, as a 2-node job on the local SLURM cluster (scripts/local_slurm.sh, SLURM_CONF set).

  python bench/loop.py --processes [--slurm] [--out results/loop_workers_bench_cpu.md]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine, today  # noqa: E402

os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

SIZES = {
    "default": [],  # `python -m selfplay.run` as it is
    "30m": [
        "model.tiny.hidden_size=512",
        "model.tiny.num_layers=8",
        "model.tiny.num_heads=8",
        "model.tiny.pretrain_steps=100",
        "loop.iterations=2",
        "prompts.per_iteration=32",
        "prompts.heldout_size=16",
        "generate.num_samples=4",
        "generate.max_tokens=64",
        "train.learning_rate=1e-5",
    ],
}


def timed_model_loads() -> dict[str, float]:
    """Count the seconds of every transformers model load (policy for training or teacher forcing,
    reward models): the Auto classes' from_pretrained, timed where every load of the project goes."""
    import transformers

    spent = {"seconds": 0.0, "loads": 0}
    for cls in (transformers.AutoModelForCausalLM, transformers.AutoModelForSequenceClassification):
        # from_pretrained is a classmethod; transformers' annotation types it as a plain function.
        original = cls.from_pretrained.__func__  # type: ignore[union-attr]

        def load(klass, *args, _original=original, **kwargs):
            t = time.perf_counter()
            try:
                return _original(klass, *args, **kwargs)
            finally:
                spent["seconds"] += time.perf_counter() - t
                spent["loads"] += 1

        cls.from_pretrained = classmethod(load)  # type: ignore[method-assign,assignment]  # timed, for this bench
    return spent


def timed_record_io() -> dict[str, float]:
    """Count the seconds of the stages' record reads and writes (the names the loop modules bound)."""
    import selfplay.loop.shards as shards
    import selfplay.rundir.context as context
    from selfplay.stages import evaluating, judging, sampling, selecting, training

    spent = {"seconds": 0.0, "depth": 0}
    names: dict = {
        sampling: ("read_records", "write_records", "write_jsonl"),
        judging: ("read_records",),
        selecting: ("read_records", "write_jsonl"),
        training: ("read_records", "write_records"),
        evaluating: ("read_records", "read_jsonl", "write_jsonl"),
        context: ("read_records",),
        shards: ("concat_files", "read_records", "write_records"),
    }
    for module, funcs in names.items():
        for name in funcs:
            original = getattr(module, name)

            def timed(*args, _original=original, **kwargs):
                spent["depth"] += 1
                t = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    spent["depth"] -= 1
                    if spent["depth"] == 0:
                        spent["seconds"] += time.perf_counter() - t

            setattr(module, name, timed)
    return spent


def stage_clock(spent: dict, io: dict) -> list[dict]:
    """Per stage: when it started, its seconds, and the engine and model-load seconds inside it (the
    runner's stage execution, wrapped here)."""
    import selfplay.loop.runner as runner
    from selfplay.generate.engine_pool import POOL
    from selfplay.loop.cluster import Resources
    from selfplay.loop.placement import Placement
    from selfplay.loop.workers import WorkerPool
    from selfplay.rundir.context import StageContext
    from selfplay.rundir.stats import StageStats
    from selfplay.stages.table import Stage

    rows: list[dict] = []
    original = runner.execute

    def clocked(
        ctx: StageContext,
        spec: Stage,
        where: Placement,
        res: Resources,
        relaunch: list[str] | None,
        workers: WorkerPool | None = None,
    ) -> StageStats:
        engine0, loads0, io0 = sum(POOL.seconds.values()), spent["seconds"], io["seconds"]
        t = time.perf_counter()
        try:
            return original(ctx, spec, where, res, relaunch, workers)
        finally:
            rows.append(
                {
                    "iteration": ctx.iteration,
                    "start": t,
                    "seconds": time.perf_counter() - t,
                    "engine": sum(POOL.seconds.values()) - engine0,
                    "loads": spent["seconds"] - loads0,
                    "io": io["seconds"] - io0,
                }
            )

    runner.execute = clocked
    return rows


def per_iteration(stages: list[dict], iterations: int) -> list[dict]:
    """Each iteration's wall time (from its first stage's start to the next iteration's, the last one
    to the end of its last stage) and its overhead (wall minus stage compute)."""
    out = []
    for t in range(iterations):
        mine = [r for r in stages if r["iteration"] == t]
        later = [r["start"] for r in stages if r["iteration"] > t]
        end = min(later) if later else max(r["start"] + r["seconds"] for r in mine)
        wall = end - min(r["start"] for r in mine)
        compute = sum(r["seconds"] - r["engine"] - r["loads"] - r["io"] for r in mine)
        out.append({"wall": wall, "overhead": wall - compute})
    return out


def one_run(size: str, engine: str, out: Path, spent: dict, clock: list[dict]) -> dict:
    from selfplay import api
    from selfplay.generate.engine_pool import POOL

    POOL.close()
    POOL.starts, POOL.reloads = 0, 0
    POOL.seconds = dict.fromkeys(POOL.seconds, 0.0)
    spent["seconds"], spent["loads"] = 0.0, 0
    clock.clear()
    t = time.perf_counter()
    result = api.run(
        [*SIZES[size], f"generate.engine={engine}", f"loop.output_dir={out}", "loop.progress=false"]
    )
    wall = time.perf_counter() - t
    iterations = 1 + max(r.iteration for r in result.metrics)
    engine_s = POOL.seconds["start"] + POOL.seconds["close"] + POOL.seconds["reload"] + POOL.seconds["sleep"]
    loads = spent["seconds"]
    # Engine, load and record I/O seconds inside the stages (the engine's close at the end of the run is not).
    compute = sum(r["seconds"] - r["engine"] - r["loads"] - r["io"] for r in clock)
    return {
        "size": size,
        "engine": engine,
        "iterations": iterations,
        "wall": wall,
        "per_iteration": wall / iterations,
        "engine_s": engine_s,
        "starts": POOL.starts,
        "reloads": POOL.reloads,
        "loads_s": loads,
        "loads": spent["loads"],
        "compute": compute,
        "io": sum(r["io"] for r in clock),
        "overhead": wall - compute,
        "iterations_split": per_iteration(clock, iterations),
        "outside": wall - sum(r["wall"] for r in per_iteration(clock, iterations)),
    }


PROCESS_RUN = ["debug=tiny", "generate.backend=vllm", "loop.progress=false", "loop.iterations=3"]


def counts(run_dir: Path, output: str) -> dict:
    """Engine and process starts of a finished run, from its logs: every launched process writes a log
    of its own (a restarted worker: one more "worker k started" line), every engine start one line."""
    logs = list((run_dir / "logs").glob("*.log"))
    texts = [output, *(p.read_text(errors="replace") for p in logs)]
    workers = output.count("started (pid") if "task.worker=" in output else 0
    worker_logs = sum(p.name.startswith("worker-") for p in logs)
    metrics = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    per: dict[int, float] = {}
    for m in metrics:  # the stages' seconds of each iteration
        per[m["iteration"]] = per.get(m["iteration"], 0.0) + float(m.get("seconds") or 0)
    return {
        "engine_starts": sum(t.count("vLLM engine started") for t in texts),
        "process_starts": len(logs) - worker_logs + max(workers, worker_logs),
        "iteration_seconds": [per[t] for t in sorted(per)],
    }


def process_run(workers: bool, slurm: bool, out: Path) -> dict:
    import subprocess
    import sys

    overrides = [*PROCESS_RUN, f"loop.workers={str(workers).lower()}", f"loop.output_dir={out}"]
    start = time.perf_counter()
    if slurm:
        repo = Path(__file__).resolve().parents[1]
        env = {**os.environ, "SELFPLAY_VENV": sys.prefix, "HF_HUB_OFFLINE": "1"}
        job = subprocess.run(
            ["sbatch", "--parsable", "--nodes=2", "--gpus-per-node=1", "--oversubscribe", "--cpus-per-gpu=1",
             f"--output={out}/job.out", str(repo / "launch" / "slurm.sbatch"), *overrides],
            env=env, capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
            time.sleep(1)
        output = (out / "job.out").read_text()
    else:
        proc = subprocess.run(
            [sys.executable, "-m", "selfplay.run", *overrides, "loop.isolation=process", "loop.shards=2",
             "loop.shard_workers=2"],
            capture_output=True, text=True,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-3000:]
        output = proc.stdout + proc.stderr
    wall = time.perf_counter() - start
    return {"workers": workers, "wall": wall, **counts(out / "default", output)}


def processes_main(args) -> None:
    import torch

    rows = []
    for where in ["cpu-slots", *(["slurm"] if args.slurm else [])]:
        for workers in (False, True):
            tmp = Path(tempfile.mkdtemp(prefix=f"loop-bench-{where}-{workers}-"))
            rows.append({"where": where, **process_run(workers, where == "slurm", tmp)})
            shutil.rmtree(tmp, ignore_errors=True)
    shape = {
        "cpu-slots": "this machine, 2 CPU slots (loop.isolation=process loop.shard_workers=2 loop.shards=2)",
        "slurm": "local SLURM cluster, 2 nodes x 1 fake GPU (sbatch launch/slurm.sbatch, cluster=slurm)",
    }
    lines = [
        f"# Stage processes vs long-lived workers ({today()})",
        "",
        f"Machine: {machine()}, CUDA {torch.cuda.is_available()}. Run: "
        f"`python -m selfplay.run {' '.join(PROCESS_RUN)}` (the built-in tiny policy; vLLM on the CPU). "
        f"Command: `python bench/loop.py --processes{' --slurm' if args.slurm else ''}`.",
        "",
        "| where | loop.workers | wall s | engine starts | process starts | stage seconds per iteration |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        per = ", ".join(f"{x:.1f}" for x in r["iteration_seconds"])
        lines.append(
            f"| {shape[r['where']]} | {str(r['workers']).lower()} | {r['wall']:.1f} | {r['engine_starts']} "
            f"| {r['process_starts']} | {per} |"
        )
    lines.append("")
    for where in dict.fromkeys(r["where"] for r in rows):
        a, b = (next(r for r in rows if r["where"] == where and r["workers"] == w) for w in (False, True))
        lines.append(
            f"{where}: workers / a process per shard wall time = {b['wall'] / a['wall']:.2f} "
            f"({a['wall'] / b['wall']:.2f}x faster); engine starts {a['engine_starts']} -> {b['engine_starts']} "
            f"(2 slots); process starts {a['process_starts']} -> {b['process_starts']}"
        )
    text = "\n".join(lines) + "\n"
    emit(text, args.out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--sizes", default="default,30m")
    ap.add_argument("--processes", action="store_true", help="stage processes vs long-lived workers")
    ap.add_argument("--slurm", action="store_true", help="with --processes: also on the local SLURM cluster")
    args = ap.parse_args()
    if args.processes:
        processes_main(args)
        return
    import torch
    import vllm

    spent = timed_model_loads()
    clock = stage_clock(spent, timed_record_io())
    results = []
    from selfplay import api
    from selfplay.models.tiny import tiny_model_path

    for size in args.sizes.split(","):
        tiny_model_path(
            api.compose(SIZES[size]).model.tiny
        )  # build (and cache) the policy outside the timing
        for engine in ("per_stage", "persistent"):
            tmp = Path(tempfile.mkdtemp(prefix=f"loop-bench-{size}-{engine}-"))
            results.append(one_run(size, engine, tmp, spent, clock))
            shutil.rmtree(tmp, ignore_errors=True)

    lines = [
        f"# Loop wall time: one engine per stage vs one persistent engine ({today()})",
        "",
        f"Machine: {machine()}, CUDA {torch.cuda.is_available()}; "
        f"torch {torch.__version__}, vllm {vllm.__version__}. Every stage in one process (no process starts).",
        "",
        "| policy | generate.engine | iterations | wall s | s / iteration | engine starts | reloads "
        "| engine start/stop/reload s | model loads (s) | record I/O s | stage compute s | overhead s | overhead % |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['size']} | {r['engine']} | {r['iterations']} | {r['wall']:.1f} | {r['per_iteration']:.1f} "
            f"| {r['starts']} | {r['reloads']} | {r['engine_s']:.1f} | {r['loads']} ({r['loads_s']:.1f}) | {r['io']:.1f} "
            f"| {r['compute']:.1f} | {r['overhead']:.1f} | {100 * r['overhead'] / r['wall']:.0f}% |"
        )
    lines += [
        "",
        "Per iteration (wall from its first stage's start to the next iteration's; overhead = wall minus "
        "stage compute, so engine starts, reloads, model loads and record I/O count as overhead), and what lies "
        "outside every iteration (start-up checks, the final results.md and plots, closing the engine):",
        "",
        "| policy | generate.engine | iteration: wall s / overhead s (%) | outside the iterations s |",
        "|---|---|---|---|",
    ]
    for r in results:
        split = ", ".join(
            f"{t}: {it['wall']:.1f} / {it['overhead']:.1f} ({100 * it['overhead'] / it['wall']:.0f}%)"
            for t, it in enumerate(r["iterations_split"])
        )
        lines.append(f"| {r['size']} | {r['engine']} | {split} | {r['outside']:.1f} |")
    lines.append("")
    for size in args.sizes.split(","):
        a, b = (
            next(r for r in results if r["size"] == size and r["engine"] == e)
            for e in ("per_stage", "persistent")
        )
        lines.append(
            f"{size}: persistent / per_stage wall time = {b['wall'] / a['wall']:.2f} "
            f"({a['wall'] / b['wall']:.2f}x faster); engine starts {a['starts']} -> {b['starts']}; "
            f"overhead {100 * a['overhead'] / a['wall']:.0f}% -> {100 * b['overhead'] / b['wall']:.0f}% of the run"
        )
    text = "\n".join(lines) + "\n"
    emit(text, args.out)


if __name__ == "__main__":
    main()
