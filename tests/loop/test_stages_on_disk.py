"""Markers, skipping finished stages, atomic renames and restart_from, with cheap fake stages."""

import pytest

from selfplay.checks import parse_restart_from
from selfplay.config import Config
from selfplay.errors import SelfplayError
from selfplay.loop import orchestrator
from selfplay.loop.runner import run_stage
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import RunLayout
from selfplay.rundir.markers import read_marker
from selfplay.rundir.stats import STATS_OF
from selfplay.stages.table import Stage

NAMES = ["prompts", "selection", "train"]


@pytest.fixture
def fake_stages():
    calls = []
    fail = {}

    def make(name):
        def run(ctx):
            calls.append((ctx.iteration, name))
            (ctx.out / "out.txt").write_text(name)
            if name == "train" and ctx.iteration == 1 and fail.get("on"):
                raise RuntimeError("boom")
            return STATS_OF[name]()

        return Stage(name, run=run)

    return calls, fail, {n: make(n) for n in NAMES}


def run_all(layout, table, iterations=2):
    for t in range(iterations):
        for s in NAMES:
            ctx = StageContext(Config(), layout, t, layout.partial_dir(t, s), "pi", "pi0")
            run_stage(ctx, table[s], f"fp-{t}-{s}")


def test_finished_stages_are_skipped_and_failures_leave_no_marker(tmp_path, fake_stages):
    calls, fail, table = fake_stages
    layout = RunLayout(tmp_path)
    fail["on"] = True
    with pytest.raises(RuntimeError):
        run_all(layout, table)
    assert read_marker(layout.marker(1, "train")) is None and not layout.stage_dir(1, "train").exists()
    assert layout.partial_dir(1, "train").exists()  # left for inspection, cleared on the rerun
    fail["on"] = False
    calls.clear()
    run_all(layout, table)
    assert calls == [(1, "train")]
    assert not layout.partial_dir(1, "train").exists()
    assert (layout.stage_dir(1, "train") / "out.txt").read_text() == "train"


def test_a_changed_fingerprint_reruns_the_stage(tmp_path, fake_stages):
    calls, _, table = fake_stages
    layout = RunLayout(tmp_path)
    run_all(layout, table)
    calls.clear()
    ctx = StageContext(Config(), layout, 0, layout.partial_dir(0, "selection"), "pi", "pi0")
    run_stage(ctx, table["selection"], "other")
    assert calls == [(0, "selection")]


def test_restart_from_invalidates_the_stage_and_everything_after(tmp_path, fake_stages):
    calls, _, table = fake_stages
    layout = RunLayout(tmp_path)
    run_all(layout, table, iterations=3)
    orchestrator.invalidate_from(layout, 1, "selection", NAMES, 3)
    calls.clear()
    run_all(layout, table, iterations=3)
    assert calls == [(1, "selection"), (1, "train"), (2, "prompts"), (2, "selection"), (2, "train")]


@pytest.mark.parametrize("value", ["x/train", "1/bogus", "1", "9/train"])
def test_bad_restart_from(value):
    with pytest.raises(SelfplayError, match="loop.restart_from"):
        parse_restart_from(value, ["prompts", "train"], 3)
