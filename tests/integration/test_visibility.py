"""Seeing a run: progress lines while it works, TensorBoard scalars (one per iteration, also across a kill
and resume), win rates equal to a hand computation, valid PNG figures, the kept pairs as a Parquet file
that `datasets` loads and TRL's DPOTrainer trains on as it is, model cards, a two-job sweep compared by
`python -m selfplay.report`."""

import json
import subprocess
import sys

import pytest

from selfplay.reporting.tracking import read_tensorboard_scalars, read_tensorboard_texts
from tests.integration.cli import REPO, cli_env, kill_inside, run_cli


def stats(run_dir, t, stage):
    return json.loads((run_dir / f"iter_{t:03d}" / stage / "_SUCCESS").read_text())["stats"]


@pytest.mark.vllm
def test_progress_lines_and_figures(vllm_run):
    run_dir, proc = vllm_run
    assert proc.returncode == 0, proc.stderr[-3000:]
    err = proc.stderr
    assert "iteration 0 generate: 48/48 responses (100%)" in err  # 12 prompts x 4
    assert "iteration 1 train: " in err and "optimizer steps" in err and ", loss " in err
    assert "\r" not in err  # no carriage-return bar frames
    for name in ("heldout.png", "margins.png", "stage_seconds.png"):
        png = run_dir / "plots" / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        from PIL import Image

        with Image.open(png) as im:
            im.verify()  # a valid, complete image
    assert "![heldout](plots/heldout.png)" in (run_dir / "results.md").read_text()


def test_progress_false_silences_the_lines(tmp_path):
    proc = run_cli(
        "debug=tiny",
        "generate.backend=hf",
        "loop.iterations=1",
        "loop.progress=false",
        f"loop.output_dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "responses (" not in proc.stderr and "optimizer steps" not in proc.stderr


@pytest.mark.vllm
def test_win_rates_match_a_hand_computation(vllm_run):
    run_dir, _ = vllm_run
    rows = {
        t: [json.loads(line) for line in (run_dir / f"iter_{t:03d}" / "evaluate" / "heldout.jsonl").open()]
        for t in (0, 1)
    }
    pi0 = {(r["prompt_id"], r["sample_index"]): r["reward"] for r in rows[0] if r["policy"] == "before"}
    pi1 = {(r["prompt_id"], r["sample_index"]): r["reward"] for r in rows[0] if r["policy"] == "after"}
    pi2 = {(r["prompt_id"], r["sample_index"]): r["reward"] for r in rows[1] if r["policy"] == "after"}
    assert all(r["policy"] == "after" for r in rows[1])  # pi_0 and pi_1 are reused, not sampled again

    def hand(a, b):
        return sum(1 if a[k] > b[k] else 0.5 if a[k] == b[k] else 0 for k in a) / len(a)

    assert stats(run_dir, 0, "evaluate")["win_rate_vs_initial"] == pytest.approx(hand(pi1, pi0))
    assert stats(run_dir, 1, "evaluate")["win_rate_vs_initial"] == pytest.approx(hand(pi2, pi0))
    assert stats(run_dir, 1, "evaluate")["win_rate_vs_previous"] == pytest.approx(hand(pi2, pi1))
    ev = stats(run_dir, 1, "evaluate")
    assert {"heldout_reward_after_p50", "heldout_tokens_after", "heldout_reward_length_corr_after"} <= set(ev)


@pytest.mark.vllm
def test_kept_pairs_parquet_trains_with_trl_as_it_is(vllm_run, tmp_path, tiny_policy):
    import datasets
    from trl import DPOConfig, DPOTrainer

    from selfplay.models.loading import load_causal_lm, load_tokenizer

    run_dir, _ = vllm_run
    path = run_dir / "iter_000" / "selection" / "kept_pairs.parquet"
    ds = datasets.load_dataset("parquet", data_files=str(path), split="train")
    assert len(ds) == stats(run_dir, 0, "selection")["kept"] and ds[0]["chosen"][0]["role"] == "assistant"
    args = DPOConfig(
        output_dir=str(tmp_path),
        max_steps=1,
        per_device_train_batch_size=2,
        use_cpu=True,
        bf16=False,
        report_to="none",
        logging_steps=1,
    )
    trainer = DPOTrainer(
        model=load_causal_lm(tiny_policy, "float32", device="cpu"),
        args=args,
        train_dataset=ds,
        processing_class=load_tokenizer(tiny_policy),
    )
    assert trainer.train().global_step == 1


@pytest.mark.vllm
def test_model_cards(vllm_run):
    run_dir, _ = vllm_run
    from huggingface_hub import ModelCard

    card = (run_dir / "iter_001" / "train" / "model" / "README.md").read_text()
    data = ModelCard(card).data  # metadata the library reads back
    assert data.library_name == "transformers" and data.base_model is None  # the tiny policy has no hub id
    assert "policy after self-play iteration 1" in card
    assert "alignment_potential" in card and "| loss | dpo, beta 0.2" in card
    assert "## Held-out evaluation" not in card  # the train stage's folder is never edited later
    evaluated = (run_dir / "iter_001" / "evaluate" / "model_card.md").read_text()
    assert evaluated.split("\n")[:12] == card.split("\n")[:12]  # evaluate's copy adds the held-out results
    assert "## Held-out evaluation" in evaluated and "win rate vs pi_0" in evaluated
    assert not (run_dir / "iter_001" / "train" / "model" / "training_args.bin").exists()


@pytest.mark.vllm
def test_tensorboard_scalars_once_per_iteration_across_a_kill(vllm_run, tmp_path):
    args = (
        "debug=tiny",
        "generate.backend=vllm",
        "tracking.backend=tensorboard",
        f"loop.output_dir={tmp_path}",
    )
    run_dir = tmp_path / "default"
    kill_inside(*args, partial=run_dir / "iter_001" / ".generate.partial", log=tmp_path / "killed.log")
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    scalars = read_tensorboard_scalars(run_dir / "tracking" / "tensorboard")
    steps: dict[str, list[int]] = {}
    for tag, step, _ in scalars:
        steps.setdefault(tag, []).append(step)
    for tag in (
        "evaluate/heldout_reward_after",
        "evaluate/win_rate_vs_initial",
        "selection/kept",
        "train/train_loss",
    ):
        assert steps[tag] == [0, 1], (tag, steps.get(tag))
    train_steps = steps["train_step/loss"]
    assert train_steps == sorted(set(train_steps)) and len(train_steps) == sum(
        stats(run_dir, t, "train")["optimizer_steps"] for t in (0, 1)
    )
    # the reference run logged the same tags at the same steps
    reference = read_tensorboard_scalars(vllm_run[0] / "tracking" / "tensorboard")
    assert sorted((t, s) for t, s, _ in reference) == sorted((t, s) for t, s, _ in scalars)
    # each iteration's completion table, once, as a TensorBoard text (Markdown table)
    texts = read_tensorboard_texts(run_dir / "tracking" / "tensorboard")
    assert [(tag, step) for tag, step, _ in texts] == [
        ("evaluate/completions/text_summary", t) for t in (0, 1)
    ]
    for t, (_, _, text) in enumerate(texts):
        rows = [json.loads(x) for x in (run_dir / f"iter_{t:03d}" / "evaluate" / "completions.jsonl").open()]
        assert len(rows) == 8 and text.count("\n") == 1 + len(rows)
        assert text.startswith(
            "| prompt_id | prompt | pi_0 | pi_0_reward | policy | policy_reward | winner |"
        )
        for r in rows:
            expected = (
                "policy"
                if r["policy_reward"] > r["pi_0_reward"]
                else "pi_0"
                if r["pi_0_reward"] > r["policy_reward"]
                else "tie"
            )
            assert r["winner"] == expected and r["prompt_id"] in text


def test_a_two_job_sweep_and_its_comparison(tmp_path):
    sweep = (
        "-m",  # Hydra's multirun
        "debug=tiny",
        "generate.backend=hf",
        "loop.iterations=1",
        "evaluate.enabled=false",
        "selection.metric=alignment_potential,random",
        f"loop.output_dir={tmp_path}",
    )
    single = run_cli(*[a for a in sweep[1:] if not a.startswith("selection.metric")])  # the quick start's run
    assert single.returncode == 0, single.stderr[-3000:]
    proc = run_cli(*sweep)
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = sorted(p.parent.name for p in (tmp_path / "default-sweep").rglob("metrics.jsonl"))
    assert runs == [
        "selection.metric=alignment_potential",
        "selection.metric=random",
    ]  # beside the run, not in it
    assert not list((tmp_path / "default").rglob("*/metrics.jsonl"))
    assert (tmp_path / "multirun.yaml").is_file()  # Hydra's sweep record stays with the runs, not in the cwd
    again = run_cli(*sweep)  # a rerun of the sweep resumes (here: skips) every job
    assert again.returncode == 0 and again.stderr.count("done before, skipped") == 2 * 5
    report = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfplay.report",
            str(tmp_path / "default-sweep"),
            "--out",
            str(tmp_path / "cmp"),
        ],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    assert "| selection.metric |" in report.stdout.splitlines()[0].replace("| run | ", "| ")
    assert "| alignment_potential |" in report.stdout and "| random |" in report.stdout
    assert (tmp_path / "cmp.md").is_file()
    import shutil

    shutil.copytree(tmp_path / "default-sweep", tmp_path / "default" / "nested")  # a folder holding both
    both = subprocess.run(
        [sys.executable, "-m", "selfplay.report", str(tmp_path / "default")], cwd=REPO, env=cli_env(),
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert both.returncode != 0 and "is a run and also holds 2 run(s) below it" in both.stderr


def test_training_metrics_reach_tensorboard_while_training_runs_and_survive_a_kill(tmp_path):
    """TRL's per-step logs reach the run's TensorBoard from the training process while the train stage
    runs (read from the event file before the stage has finished); the run is then killed inside
    training, resumed from its checkpoint, and every optimizer step is on the global-step axis once."""
    import os
    import signal
    import time

    from tests.integration.cli import start_cli

    args = (
        "debug=tiny",
        "loop.iterations=1",
        "evaluate.enabled=false",
        "tracking.backend=tensorboard",
        "train.epochs=40",  # 9 pairs, batch 2: 200 optimizer steps, seconds of training
        "train.save_steps=20",
        f"loop.output_dir={tmp_path}",
    )
    run_dir = tmp_path / "default"
    logdir, partial, done = (
        run_dir / "tracking" / "tensorboard",
        run_dir / "iter_000" / ".train.partial",
        run_dir / "iter_000" / "train" / "_SUCCESS",
    )
    proc = start_cli(*args, log=tmp_path / "first.log")
    live: list[int] = []
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        if partial.exists() and logdir.exists():
            live = [s for tag, s, _ in read_tensorboard_scalars(logdir) if tag == "train_step/loss"]
            if len(live) >= 25:  # past the first checkpoint
                break
        time.sleep(0.2)
    assert proc.poll() is None and not done.exists(), (tmp_path / "first.log").read_text()[-3000:]
    assert live and live == sorted(set(live))  # logged while the stage runs, in order
    os.killpg(proc.pid, signal.SIGKILL)  # a kill inside training
    proc.wait()
    resumed = run_cli(*args)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    train = stats(run_dir, 0, "train")
    assert train.get("resumed_from_step", 0) >= 20
    steps = [s for tag, s, _ in read_tensorboard_scalars(logdir) if tag == "train_step/loss"]
    assert steps == list(range(1, train["optimizer_steps"] + 1))  # each step once: none lost, none twice
    folder = run_dir / "iter_000" / "train"
    history = [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]
    summary = [h for h in history if "train_loss" in h]
    assert summary and summary[-1]["train_loss"] == train["train_loss"]  # the whole training's, as the marker
    live = [
        json.loads(line) for line in (folder / "history.live.jsonl").read_text().splitlines() if line.strip()
    ]
    logged = [h["step"] for h in live if "loss" in h]
    assert logged == sorted(set(logged)) == list(range(1, train["optimizer_steps"] + 1))  # once each
    tokens = [h["num_tokens"] for h in live if "num_tokens" in h]
    assert (
        tokens == sorted(tokens) and tokens[-1] == [h for h in history if "num_tokens" in h][-1]["num_tokens"]
    )
