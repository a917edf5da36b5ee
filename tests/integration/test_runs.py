"""Whole runs of `python -m selfplay.run` on the tiny policy: the real vLLM engine, the transformers
backend, TRL training, a killed-and-resumed run equal to an uninterrupted one, refusal of a changed
config, one-line errors for bad input, and the default run raising the held-out reward."""

import json
import os
import signal
import time
from types import SimpleNamespace

import pytest

from tests.conftest import vllm_importable
from tests.integration.cli import run_cli, start_cli
from tests.integration.runs import assert_same_records, check_finished_run, metrics, stage_stats
from tests.sockets import listening_sockets, outside_loopback


@pytest.mark.parametrize("template", ["plain", "chatml"])
def test_two_iterations_through_hf_backend(tmp_path, template):
    """Also: a separate evaluation judge (evaluate.judge) scores the held-out samples."""
    proc = run_cli(
        "debug=tiny",
        "generate.backend=hf",
        "logprobs.source=teacher_forcing",
        f"model.tiny.template={template}",
        "evaluate.judge.kind=rule",
        "evaluate.judge.rule=length_penalized_distinct",
        f"loop.output_dir={tmp_path}",
    )
    check_finished_run(
        tmp_path / "default",
        proc,
        2,
        "hf",
        ["prompts", "generate", "judge", "logprobs", "selection", "train", "evaluate"],
    )
    logprobs = (tmp_path / "default" / "iter_001" / "logprobs" / "logprobs.jsonl").read_text().splitlines()
    assert len(logprobs) == 12 * 4
    from selfplay.judge.rules import resolve_rule

    rule, texts = resolve_rule("length_penalized_distinct"), {}
    heldout = [
        json.loads(line) for line in (tmp_path / "default" / "iter_000" / "evaluate" / "heldout.jsonl").open()
    ]
    prompts = [
        json.loads(line)
        for line in (tmp_path / "default" / "iter_000" / "prompts" / "heldout_prompts.jsonl").open()
    ]
    texts = {p["prompt_id"]: p["messages"][-1]["content"] for p in prompts}
    assert all(abs(r["reward"] - rule(texts[r["prompt_id"]], r["text"])) < 1e-12 for r in heldout)
    assert (
        stage_stats(tmp_path / "default", 0, "evaluate")["heldout_judge"] == "rule:length_penalized_distinct"
    )
    assert (
        stage_stats(tmp_path / "default", 0, "judge")["reward_mean"] is not None
    )  # selection: topical_variety


@pytest.mark.vllm
def test_two_iterations_with_a_chatml_policy(tmp_path):
    """A Qwen-style ChatML template ("<|im_end|>" + newline after each turn, a default system turn):
    training still uses the sampled ids, so every reference log-prob comes from sampling."""
    proc = run_cli(
        "debug=tiny", "generate.backend=vllm", "model.tiny.template=chatml", f"loop.output_dir={tmp_path}"
    )
    run_dir = tmp_path / "default"
    check_finished_run(run_dir, proc, 2, "vllm")
    for t in range(2):
        train = stage_stats(run_dir, t, "train")
        assert (
            train["ref_logps_from_sampling"] == 2 * train["pairs"] and train["ref_logps_teacher_forced"] == 0
        )
        assert abs(train["first_rewards_chosen"]) < 1e-4 and train["policy_changed"] is True


@pytest.mark.vllm
def test_an_engine_per_stage_writes_what_the_persistent_engine_writes(vllm_run, tmp_path):
    """generate.engine=per_stage starts a new vLLM engine for every sampling stage; the default
    persistent engine reloads the next policy's weights in place. Records and weights are identical."""
    reference, ref_proc = vllm_run
    assert ref_proc.returncode == 0 and "generate.engine" not in " ".join(ref_proc.args)
    proc = run_cli(
        "debug=tiny", "generate.backend=vllm", "generate.engine=per_stage", f"loop.output_dir={tmp_path}"
    )
    run_dir = tmp_path / "default"
    check_finished_run(run_dir, proc, 2, "vllm")
    assert_same_records(run_dir, reference, 2)
    for t in range(2):
        rel = f"iter_{t:03d}/train/model/model.safetensors"
        assert (run_dir / rel).read_bytes() == (reference / rel).read_bytes()


@pytest.mark.vllm
def test_two_parallel_shard_processes_equal_the_unsharded_run(vllm_run, tmp_path):
    reference, ref_proc = vllm_run
    assert ref_proc.returncode == 0
    proc = run_cli(
        "debug=tiny",
        "generate.backend=vllm",
        "loop.shards=2",
        "loop.shard_workers=2",
        "loop.workers=false",
        f"loop.output_dir={tmp_path}",
    )
    run_dir = tmp_path / "default"
    check_finished_run(run_dir, proc, 2, "vllm")
    for t in range(2):
        for stage in ("generate", "judge"):
            for shard in range(2):
                assert (run_dir / "logs" / f"iter_{t:03d}-{stage}-shard-{shard:05d}-of-00002.log").is_file()
    assert_same_records(run_dir, reference, 2)


@pytest.mark.parametrize(
    "overrides,message",
    [
        (
            ["prompts.source=file", "prompts.path=/no/such/prompts.jsonl"],
            "prompts.path: file '/no/such/prompts.jsonl' does not exist",
        ),
        (["model.path=/no/such/model", "allow_toy=true"], "model folder '/no/such/model' does not exist"),
        (["model.path=/models/x"], "model.path: model folder '/models/x' does not exist"),
        (
            ["model.path=/models/x", "loop.dry_run=true"],
            "model.path=/models/x would run on the bundled toy prompts",
        ),
        (["model.path=/models/x", "preset=tiny"], "model.path=/models/x with preset=tiny"),
        (["selection.ratio=1.5"], "selection.ratio=1.5 must be in (0, 1]"),
        (["judge.rule=nope"], "judge.rule: unknown rule 'nope'"),
        (["prompts.per_iteration=200"], "pool has 320"),
    ],
)
def test_bad_input_is_one_clear_line(tmp_path, overrides, message):
    proc = run_cli(*overrides, f"loop.output_dir={tmp_path}", timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr, proc.stderr[-2000:]
    assert not list(tmp_path.glob("*/iter_*"))  # nothing half-written


def test_default_run_raises_the_heldout_reward(tmp_path):
    """The README's quick start, unchanged: 3 iterations; the last held-out reward beats iteration 0's."""
    proc = run_cli(f"loop.output_dir={tmp_path}")
    check_finished_run(tmp_path / "default", proc, 3, "vllm" if vllm_importable() else "hf")
    evals = [r for r in metrics(tmp_path / "default") if r["stage"] == "evaluate"]
    start, first, last = (
        evals[0]["heldout_reward_before"],
        evals[0]["heldout_reward_after"],
        evals[-1]["heldout_reward_after"],
    )
    assert last > first + 0.02 and last > start + 0.05, (start, first, last)


def test_simpo_with_lora_and_accumulated_pairs(tmp_path):
    proc = run_cli(
        "debug=tiny",
        "train.loss=simpo",
        "train.beta=2.0",
        "train.lora.enabled=true",
        "train.accumulate=true",
        f"loop.output_dir={tmp_path}",
    )
    run_dir = tmp_path / "default"
    check_finished_run(run_dir, proc, 2, "vllm" if vllm_importable() else "hf")
    first, second = stage_stats(run_dir, 0, "train"), stage_stats(run_dir, 1, "train")
    assert first["loss"] == "simpo" and "ref_logps_from_sampling" not in first  # SimPO has no reference
    assert second["pairs"] == first["pairs"] + stage_stats(run_dir, 1, "selection")["kept"]  # accumulated
    model = run_dir / "iter_000" / "train" / "model"
    assert not (model / "adapter_config.json").exists()  # merged: a plain model the next engine loads


def run_watching_sockets(*overrides: str, log, marker: str):
    """Run the CLI to the end while sampling the listening sockets of every process whose command line
    holds `marker`; (finished process with .stdout/.stderr, {(address, port)} seen, pids seen)."""
    proc = start_cli(*overrides, log=log)
    seen: set = set()
    pids: set = set()
    while proc.poll() is None:
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read()
            except (FileNotFoundError, PermissionError, NotADirectoryError, ProcessLookupError):
                continue
            if marker.encode() in cmdline and b"task.stage=train" in cmdline:
                pids.add(int(pid))
                seen |= listening_sockets(int(pid))
        time.sleep(0.05)
    text = log.read_text()
    return SimpleNamespace(returncode=proc.returncode, stdout=text, stderr=text), seen, pids


@pytest.mark.vllm
def test_train_stage_in_two_processes(vllm_run, tmp_path):
    """Two training ranks train; their rendezvous store and process group listen on 127.0.0.1 only."""
    reference, _ = vllm_run
    proc, sockets, pids = run_watching_sockets(
        "debug=tiny",
        "train.num_processes=2",
        f"loop.output_dir={tmp_path}",
        log=tmp_path / "run.log",
        marker=str(tmp_path),
    )
    run_dir = tmp_path / "default"
    assert proc.returncode == 0, proc.stderr[-3000:]
    check_finished_run(
        run_dir,
        SimpleNamespace(returncode=0, stdout=str(run_dir), stderr=""),
        2,
        "vllm" if vllm_importable() else "hf",
        check_stdout=False,
    )
    assert len(pids) >= 2 and sockets, "no training process was seen listening (the rendezvous store)"
    assert outside_loopback(sockets) == set(), sockets
    assert (run_dir / "logs" / "iter_001-train.log").is_file()
    assert (run_dir / "logs" / "iter_001-train-rank1.log").is_file()
    assert (
        stage_stats(run_dir, 0, "train")["optimizer_steps"]
        < stage_stats(reference, 0, "train")["optimizer_steps"]
    )


def test_every_stage_in_its_own_process(tmp_path):
    """loop.isolation=process: the orchestrator only sequences; each stage is a process of its own."""
    proc = run_cli(
        "debug=tiny",
        "generate.backend=hf",
        "loop.isolation=process",
        "loop.workers=false",
        f"loop.output_dir={tmp_path}",
    )
    run_dir = tmp_path / "default"
    check_finished_run(run_dir, proc, 2, "hf")
    logs = {p.name for p in (run_dir / "logs").iterdir()}
    for t in range(2):
        assert {
            f"iter_{t:03d}-prompts.log",
            f"iter_{t:03d}-selection.log",
            f"iter_{t:03d}-train.log",
            f"iter_{t:03d}-generate-shard-00000-of-00001.log",
            f"iter_{t:03d}-evaluate-shard-00000-of-00001.log",  # evaluate is sharded like generate
        } <= logs


@pytest.mark.vllm
def test_a_killed_shard_process_is_redone_alone(vllm_run, tmp_path):
    reference, _ = vllm_run
    args = (
        "debug=tiny",
        "generate.backend=vllm",
        "loop.shards=2",
        "loop.shard_workers=2",
        "loop.workers=false",
        f"loop.output_dir={tmp_path}",
    )
    proc = start_cli(*args, log=tmp_path / "first.log")
    victim, deadline = None, time.time() + 300
    while victim is None and proc.poll() is None and time.time() < deadline:
        for pid in os.listdir("/proc"):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    cmdline = f.read().split(b"\0")
            except (FileNotFoundError, PermissionError, NotADirectoryError, ProcessLookupError):
                continue
            if (
                b"task.stage=generate" in cmdline
                and b"task.shard=1" in cmdline
                and b"task.iteration=0" in cmdline
            ):
                victim = int(pid)
        time.sleep(0.05)
    assert victim is not None, "shard 1 of iteration 0's generate never started"
    os.kill(victim, signal.SIGKILL)
    proc.wait(timeout=300)
    first = (tmp_path / "first.log").read_text()
    assert proc.returncode == 2 and "generate: 1 shard(s) failed: shard 1/2 (exit -9; log " in first, first[
        -2000:
    ]
    partial = tmp_path / "default" / "iter_000" / ".generate.partial"
    assert [p.name for p in partial.glob("part-*")] in ([], ["part-00000-of-00002.parquet"])
    shard0_done = (partial / "part-00000-of-00002.parquet").exists()
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    started = [
        line
        for line in rerun.stderr.splitlines()
        if "iteration 0 generate: shard" in line and "started" in line
    ]
    assert len(started) == (1 if shard0_done else 2) and "shard 1/2 started" in started[0]
    assert_same_records(tmp_path / "default", reference, 2)


def test_evolve_iteration_end_to_end(tmp_path):
    """experiment=evolve_tiny (2 shards): rewrites, filters, evolved prompts sampled and judged through the
    sharded stages, evolved pairs with origin and parent ids, merged training."""
    proc = run_cli(
        "experiment=evolve_tiny", "loop.iterations=1", "loop.shards=2", f"loop.output_dir={tmp_path}"
    )
    run_dir = tmp_path / "default"
    stages = [
        "prompts",
        "generate",
        "judge",
        "selection",
        "evolve",
        "evolved_generate",
        "evolved_judge",
        "evolved_selection",
        "train",
        "evaluate",
    ]
    check_finished_run(run_dir, proc, 1, "vllm" if vllm_importable() else "hf", stages)
    it = run_dir / "iter_000"
    parents = {
        json.loads(line)["prompt_id"] for line in (it / "prompts" / "prompts.jsonl").read_text().splitlines()
    }
    evolved = [json.loads(line) for line in (it / "evolve" / "prompts.jsonl").read_text().splitlines()]
    assert evolved and all(
        p["origin"] == "evolved" and p["parent_id"] in parents and p["strategy"] for p in evolved
    )
    ev = stage_stats(run_dir, 0, "evolve")
    assert ev["rewrites"] == 12 and ev["evolved_prompts"] == len(evolved)
    assert (
        ev["evolved_prompts"]
        + sum(
            ev.get(k, 0)
            for k in (
                "truncated",
                "empty",
                "length_ratio",
                "too_long",
                "duplicate",
                "near_duplicate",
                "preamble",
            )
        )
        == 12
    )
    pairs = [json.loads(line) for line in (it / "evolved_selection" / "pairs.jsonl").read_text().splitlines()]
    assert pairs and all(p["origin"] == "evolved" and p["parent_id"] in parents for p in pairs)
    kept_evolved = sum(p["kept"] for p in pairs)
    assert (
        stage_stats(run_dir, 0, "train")["pairs"]
        == stage_stats(run_dir, 0, "selection")["kept"] + kept_evolved
    )
