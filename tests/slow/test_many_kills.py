"""Kill anywhere, many times (the slow tier): at least 20 random SIGKILLs of a real run, and random kills
of an evolve run, each followed by a rerun; records and weights equal an uninterrupted run."""

import random

import pytest

from tests.integration.cli import run_cli
from tests.integration.test_kill_anywhere import ARGS, KillLog, finish, random_kill_chain

pytestmark = pytest.mark.vllm


def test_twenty_random_kills(vllm_run, tmp_path, capsys):
    reference, ref_proc = vllm_run
    assert ref_proc.returncode == 0
    rng = random.Random(20)
    landed, chains = 0, 0
    while landed < 20:
        out = tmp_path / f"chain-{chains}"
        out.mkdir()
        kills = KillLog(out / "default", out)
        args = (*ARGS, f"loop.output_dir={out}")
        random_kill_chain(args, kills, rng, budget=20 - landed, lo=1.0, hi=10.0)
        kills.report(capsys, f"kill anywhere (slow tier, chain {chains})")
        finish(args, kills, reference)
        landed += sum(r["stage"] != "run had finished" for r in kills.rows)
        chains += 1


def test_random_kills_with_evolve(tmp_path, capsys):
    common = ("experiment=evolve_tiny", "generate.backend=vllm", "train.save_steps=1")
    reference = run_cli(*common, f"loop.output_dir={tmp_path / 'reference'}")
    assert reference.returncode == 0, reference.stderr[-3000:]
    ref_dir = next((tmp_path / "reference").glob("*/manifest.json")).parent
    args = (*common, f"loop.output_dir={tmp_path / 'killed'}")
    kills = KillLog(tmp_path / "killed" / ref_dir.name, tmp_path)
    random_kill_chain(args, kills, random.Random(17), budget=6, lo=2.0, hi=15.0)
    kills.report(capsys, "kill anywhere with evolve")
    iterations = len(list(ref_dir.glob("iter_*/train/model")))
    finish(args, kills, ref_dir, iterations)
    for rel in ("evolve/evolved.jsonl",):
        for t in range(iterations):
            ours, theirs = kills.run_dir / f"iter_{t:03d}" / rel, ref_dir / f"iter_{t:03d}" / rel
            if theirs.exists():
                assert ours.read_text() == theirs.read_text().replace(str(ref_dir), str(kills.run_dir)), rel
