"""Typed stage statistics: strict in both directions (a statistic a record does not declare is refused
when a stage returns it and when a marker holds it), merged, summarised, and read back typed."""

import json
from dataclasses import fields

import pytest

from selfplay.errors import SelfplayError
from selfplay.rundir import stage_names as sn
from selfplay.rundir.layout import RunLayout
from selfplay.rundir.markers import write_marker
from selfplay.rundir.stats import (
    STATS_OF,
    Finished,
    SelectionStats,
    StageStats,
    TrainStats,
    read_metrics,
    typed,
)
from selfplay.selection.pipeline import margin_stats


def test_every_stage_has_a_record_and_every_record_round_trips():
    names = {v for k, v in vars(sn).items() if k.isupper()}
    assert set(STATS_OF) == names
    for cls in STATS_OF.values():
        record = cls()
        assert cls.from_dict(json.loads(json.dumps(record.to_dict()))) == record
        assert set(cls.DROPS) <= {f.name for f in fields(cls)}, cls  # every drop is a statistic
        assert set(cls.SHORT) <= {f.name for f in fields(cls)}, cls


def test_a_statistic_no_record_declares_is_refused_both_ways(tmp_path):
    with pytest.raises(TypeError):  # a stage (or a core) returning a renamed statistic
        SelectionStats(kept_count=3)  # type: ignore[call-arg]
    layout = RunLayout(tmp_path)
    layout.stage_dir(0, sn.SELECTION).mkdir(parents=True)
    write_marker(layout.marker(0, sn.SELECTION), {"seconds": 1.0, "stats": {"pool": 4, "kept_count": 2}})
    with pytest.raises(SelfplayError, match="unknown statistic.*kept_count.*SelectionStats"):
        layout.finished(0, sn.SELECTION)


def test_the_cores_statistics_fit_their_records():
    """The selection core's margin statistics are exactly the record's margin fields."""
    import numpy as np

    d = margin_stats(np.array([1.0, 2.0, 3.0]), np.array([0.1, -0.2, 0.3]), np.array([True, False, True]))
    record = SelectionStats(**d)
    assert record.kept == 2 and record.pool == 3 and record.kept_mean_explicit_margin == pytest.approx(2.0)
    assert all(getattr(record, k) == v for k, v in d.items())


def test_merged_drops_short_and_numbers():
    prepared = TrainStats(pairs=8, loss="dpo", pairs_prompt_too_long=2)
    trained = prepared.merged(TrainStats(train_loss=0.5, optimizer_steps=4, policy_changed=True))
    assert (trained.pairs, trained.train_loss, trained.optimizer_steps) == (8, 0.5, 4)
    assert trained.drops() == "2 pairs whose prompt fills train.max_length"
    assert trained.short() == "pairs=8 optimizer_steps=4 train_loss=0.500"
    assert trained.numbers() == {
        "pairs": 8.0,
        "pairs_prompt_too_long": 2.0,
        "train_loss": 0.5,
        "optimizer_steps": 4.0,
    }
    assert StageStats().drops() == "" and StageStats().to_dict() == {}


def test_metrics_rows_read_back_typed(tmp_path):
    rows = [
        Finished(0, sn.SELECTION, 1.5, SelectionStats(pool=4, kept=2)),
        Finished(0, sn.TRAIN, 2.0, TrainStats(pairs=2)),
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r.row()) + "\n" for r in rows))
    back = read_metrics(path)
    assert back == rows
    assert typed(back[0], SelectionStats).kept == 2
    with pytest.raises(SelfplayError):
        typed(back[1], SelectionStats)
    path.write_text(json.dumps({"iteration": 0, "stage": "train", "seconds": 1, "loss_final": 1}) + "\n")
    with pytest.raises(SelfplayError, match=r"metrics.jsonl:1: unknown statistic"):
        read_metrics(path)
