"""Sharded generation: the same records from 1 shard or 3 (the transformers backend: the same responses,
log-probs to the last bits), and finished shards kept on a rerun."""

from dataclasses import replace

import pytest

from selfplay.config import Config, GenerateConfig, LoopConfig, PromptsConfig
from selfplay.data.files import read_records
from selfplay.data.records import Completion
from selfplay.errors import SelfplayError
from selfplay.loop.runner import run_stage
from selfplay.loop.shards import shard_slice
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import RunLayout
from selfplay.stages.table import stage


def part_path(folder, shard, shards):
    return RunLayout.part_file(folder, shard, shards, ".parquet")


def test_shard_slices_are_contiguous_and_cover_everything():
    items = list(range(10))
    parts = [shard_slice(items, i, 3) for i in range(3)]
    assert parts == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]
    assert [shard_slice(items, i, 10) for i in range(10)] == [[i] for i in items]


def run_generate(tmp_path, policy, shards, backend):
    cfg = Config(
        prompts=PromptsConfig(per_iteration=7),
        generate=GenerateConfig(backend=backend, num_samples=3, max_tokens=12),
        loop=LoopConfig(shards=shards),
    )
    layout = RunLayout(tmp_path / f"shards{shards}")
    for name in ("prompts", "generate"):
        ctx = StageContext(cfg, layout, 0, layout.partial_dir(0, name), policy, policy)
        run_stage(ctx, stage(name), "fp")
    return layout, read_records(layout.stage_dir(0, "generate") / "completions.parquet", Completion)


@pytest.mark.vllm
def test_one_shard_equals_three_shards_vllm(tiny_policy, tmp_path):
    _, one = run_generate(tmp_path, tiny_policy, 1, "vllm")
    _, three = run_generate(tmp_path, tiny_policy, 3, "vllm")
    assert len(one) == 21 and one == three


def test_one_shard_equals_three_shards_hf(tiny_policy, tmp_path):
    # The transformers backend batches the prompts of a shard, so the shards change the shapes of its
    # matrix products: the same responses, log-probs equal to the last bits.
    _, one = run_generate(tmp_path, tiny_policy, 1, "hf")
    _, three = run_generate(tmp_path, tiny_policy, 3, "hf")
    strip = [replace(c, logprobs=[], logprob_sum=0.0) for c in one]
    assert strip == [replace(c, logprobs=[], logprob_sum=0.0) for c in three]
    assert max(abs(a - b) for x, y in zip(one, three) for a, b in zip(x.logprobs, y.logprobs)) < 1e-5


def test_rerun_redoes_only_missing_shards(tiny_policy, tmp_path, monkeypatch):
    cfg = Config(
        prompts=PromptsConfig(per_iteration=6),
        generate=GenerateConfig(backend="hf", max_tokens=8, num_samples=4),
        loop=LoopConfig(shards=3),
    )
    layout = RunLayout(tmp_path)
    ctx = StageContext(cfg, layout, 0, layout.partial_dir(0, "prompts"), tiny_policy, tiny_policy)
    run_stage(ctx, stage("prompts"), "fp")
    ctx = StageContext(cfg, layout, 0, layout.partial_dir(0, "generate"), tiny_policy, tiny_policy)
    generate = stage("generate")
    real = generate.sharded.core
    calls, die = [], {"at_call": 2}

    def flaky(c, prompts):
        calls.append(prompts[0].prompt_id)
        if len(calls) == die.get("at_call"):
            die.clear()
            raise RuntimeError("shard died")
        return real(c, prompts)

    flaky_generate = replace(generate, sharded=replace(generate.sharded, core=flaky))
    with pytest.raises(RuntimeError):
        run_stage(ctx, flaky_generate, "fp")
    assert part_path(ctx.out, 0, 3).exists() and not part_path(ctx.out, 1, 3).exists()
    calls.clear()
    run_stage(ctx, flaky_generate, "fp")
    assert len(calls) == 2  # shards 1 and 2 only
    assert len(read_records(layout.stage_dir(0, "generate") / "completions.parquet", Completion)) == 6 * 4


def test_more_shards_than_prompts(tiny_policy, tmp_path):
    cfg = Config(prompts=PromptsConfig(per_iteration=2), loop=LoopConfig(shards=3))
    layout = RunLayout(tmp_path)
    for name in ("prompts", "generate"):
        ctx = StageContext(cfg, layout, 0, layout.partial_dir(0, name), tiny_policy, tiny_policy)
        if name == "generate":
            with pytest.raises(
                SelfplayError, match="loop.shards=3 must be between 1 and the iteration's 2 prompts"
            ):
                run_stage(ctx, stage(name), "fp")
        else:
            run_stage(ctx, stage(name), "fp")
