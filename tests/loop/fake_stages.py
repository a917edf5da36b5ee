"""A stage table of the real table's shape (a plain stage, sharded stages, a stage with training ranks)
whose cores are instant and write real record files: the orchestrator, runner, placement and worker
mode run for real around them, in seconds and without a model."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from selfplay.config import Config, LoopConfig, ModelConfig, PromptsConfig, TaskConfig, TrainConfig
from selfplay.data.files import read_records, write_records
from selfplay.data.records import Prompt
from selfplay.rundir.layout import MODEL, PROMPTS
from selfplay.rundir.stats import STATS_OF, GenerateStats, JudgeStats, PromptsStats, StageStats, TrainStats
from selfplay.stages.table import Sharded, Stage

CALLS: list[tuple] = []
"""(iteration, stage[, shard]) of every core call, in order."""
FAIL: dict = {}
"""{"stage": name, "iteration": t}: that core raises once."""


def _note(ctx, name, *extra):
    CALLS.append((ctx.iteration, name, *extra))
    if FAIL.get("stage") == name and FAIL.get("iteration") == ctx.iteration:
        FAIL.clear()
        raise RuntimeError(f"{name} died")


def fake_prompts(ctx) -> PromptsStats:
    _note(ctx, "prompts")
    prompts = [
        Prompt(f"p{ctx.iteration}-{i}", [{"role": "user", "content": f"q{i}"}], ctx.iteration)
        for i in range(8)
    ]
    write_records(ctx.out / PROMPTS, prompts)
    return PromptsStats(prompts=len(prompts))


def fake_shard(name):
    def core(ctx, prompts):
        _note(ctx, name, prompts[0].prompt_id)
        return prompts

    return core


def fake_stats(ctx, prompts, output) -> StageStats:
    n = len(read_records(output, Prompt))
    return GenerateStats(responses=n) if ctx.stage == "generate" else JudgeStats(judged=n)


def fake_single(name):
    def run(ctx) -> StageStats:
        _note(ctx, name)
        (ctx.out / "out.json").write_text(json.dumps({"stage": name}))
        return STATS_OF[name]()

    return run


def fake_prepare(ctx) -> TrainStats:
    _note(ctx, "train")
    n = len(read_records(ctx.input("generate", "echo.jsonl"), Prompt))
    return TrainStats(pairs=n)


def fake_ranks(ctx) -> TrainStats:
    _note(ctx, "train_ranks")
    model = ctx.out / MODEL
    model.mkdir(parents=True, exist_ok=True)
    (model / "config.json").write_text("{}")
    (model / "model.safetensors").write_bytes(b"")
    return TrainStats(train_loss=0.5)


FAKE_TABLE: tuple[Stage, ...] = (
    Stage("prompts", run=fake_prompts),
    Stage("generate", sharded=Sharded("echo.jsonl", Prompt, fake_shard("generate"), fake_stats)),
    Stage("judge", sharded=Sharded("echo.jsonl", Prompt, fake_shard("judge"), fake_stats)),
    Stage("selection", run=fake_single("selection")),
    Stage("train", run=fake_prepare, ranks=fake_ranks),
    Stage("evaluate", run=fake_single("evaluate"), enabled=lambda cfg: cfg.evaluate.enabled),
)


def fake_model(folder: Path) -> str:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    return str(folder)


def fake_config(tmp_path: Path, **loop) -> Config:
    return Config(
        allow_toy=True,  # a fake policy on the bundled prompts and the built-in rule
        model=ModelConfig(path=fake_model(tmp_path / "pi0")),
        prompts=PromptsConfig(per_iteration=8),
        train=TrainConfig(warmup_ratio=0.0),  # 3 pairs: one step, which a warmup would take
        loop=LoopConfig(output_dir=str(tmp_path / "runs"), **{"iterations": 2, **loop}),
    )


def as_task(cfg: Config, argv: list[str]) -> Config:
    """The config a `python -m selfplay.run ... task.stage=...` process would compose from `argv`."""
    args = dict(a.split("=", 1) for a in argv if a.startswith(("task.", "loop.shards=")))
    task = TaskConfig(
        stage=args["task.stage"],
        iteration=int(args["task.iteration"]),
        shard=int(args["task.shard"]) if "task.shard" in args else None,
    )
    loop = dataclasses.replace(cfg.loop, shards=int(args.get("loop.shards", cfg.loop.shards)))
    return dataclasses.replace(cfg, task=task, loop=loop)
