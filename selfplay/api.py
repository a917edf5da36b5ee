"""The Python API: what the command line does, callable from a notebook or a script.

    from selfplay import api

    result = api.run(["loop.iterations=2", "loop.output_dir=runs"])   # the loop, with Hydra overrides
    result.run_dir, result.final_policy, result.metrics               # where it is, the model, its table

    sel = api.select(explicit_margins, implicit_margins, ratio=0.4)   # alignment potential on arrays
    sel.scores, sel.rank, sel.kept

    out = api.select_dataset(dataset, ["selection.ratio=0.4"])        # offline selection of a datasets.Dataset
    out.scored, out.selected, out.summary

Every function takes the same overrides as the command line (`key=value` strings, composed by Hydra
from the same configs), so a notebook and a shell run the same configuration. Errors are raised as
`selfplay.errors.SelfplayError` with the one-line message the command line prints.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from selfplay.config import Config, OfflineSelectConfig, register_configs
from selfplay.presets import with_default_preset
from selfplay.rundir.stats import Finished, read_metrics


def compose(overrides: Sequence[str] = (), config_name: str = "config") -> Any:
    """The typed config that `python -m selfplay.run <overrides>` would run (`config_name="select"`:
    the one of `python -m selfplay.select`); a model of one's own gets the real-model preset."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from selfplay.run import to_config

    register_configs()
    given = list(overrides) if config_name == "select" else with_default_preset(list(overrides))
    if GlobalHydra.instance().is_initialized():  # inside a Hydra app or an earlier compose
        GlobalHydra.instance().clear()
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    from selfplay.errors import SelfplayError
    from selfplay.schema.keys import check_composed, check_overrides, config_groups

    root = Config if config_name == "config" else OfflineSelectConfig
    check_overrides(given, root, config_groups(), "overrides")  # `+key` or not: one line, nearest key
    try:
        with initialize_config_module(config_module="selfplay.conf", version_base=None):
            cfg = hydra_compose(config_name=config_name, overrides=given)
        if config_name == "config":
            return to_config(cfg, "overrides")
        check_composed(cfg, root, "overrides")
        return OmegaConf.to_object(cfg)
    except (HydraException, OmegaConfBaseException) as err:  # a bad override: Hydra's own first line
        raise SelfplayError(f"overrides {given}: {str(err).strip().splitlines()[0]}") from None


@dataclass(frozen=True)
class RunResult:
    run_dir: Path
    """The run directory (<loop.output_dir>/<loop.run_name>)."""
    final_policy: Path | None
    """<run_dir>/final: the newest trained policy (a Hugging Face folder), None before the first."""
    metrics: list[Finished]
    """One row per finished iteration and stage, as in <run_dir>/metrics.jsonl: `.iteration`, `.stage`,
    `.seconds` and `.stats`, the stage's typed statistics (e.g. `.stats.heldout_reward_after` of an
    evaluate row; selfplay/rundir/stats.py lists every field)."""


def run(overrides: Sequence[str] = ()) -> RunResult:
    """Run (or resume) the loop in this process, as `python -m selfplay.run <overrides>` does; stages
    that run as processes of their own (shards, training ranks, workers) are started with the same
    overrides."""
    from selfplay.loop.orchestrator import run_loop
    from selfplay.run import set_log_level
    from selfplay.rundir.layout import RunLayout

    given = with_default_preset(list(overrides))
    config: Config = compose(given)
    set_log_level(config.loop.log_level)
    run_dir = run_loop(config, relaunch=[sys.executable, "-m", "selfplay.run", *given])
    if run_dir is None:  # loop.dry_run: the commands were printed
        return RunResult(RunLayout.of(config).root, None, [])
    layout = RunLayout(run_dir)
    metrics = read_metrics(layout.metrics_file)
    final = layout.final_link if layout.final_link.is_dir() else None
    return RunResult(run_dir, final, metrics)


@dataclass(frozen=True)
class Selection:
    scores: np.ndarray
    """The metric's score of every pair (higher = better)."""
    rank: np.ndarray
    """0 = the best pair; ties broken by the pair ids (or the position when none are given)."""
    kept: np.ndarray
    """True for the top round(ratio * pool) (half up) or `count` pairs."""


def select(
    explicit_margins: Sequence[float] | np.ndarray,
    implicit_margins: Sequence[float] | np.ndarray,
    *,
    metric: str = "alignment_potential",
    ratio: float | None = 0.4,
    count: int | None = None,
    weight: float = 1.0,
    implicit_abs: bool = True,
    seed: int = 0,
    ids: Sequence[str] | None = None,
) -> Selection:
    """Score and select a pool given as two arrays of margins (explicit: reward of chosen minus reward of
    rejected; implicit: the policy's implicit reward of chosen minus rejected), with the same metric
    code as the loop: `M_AP = z(d_ex) - weight * z(|d_im|)` for alignment potential, or a baseline
    (`explicit`, `explicit_small`, `implicit_small`, `implicit_large`, `random`)."""
    from selfplay.config import SelectionConfig
    from selfplay.errors import SelfplayError
    from selfplay.selection.checks import check_selection
    from selfplay.selection.metrics import MetricParams, score_rank_keep

    d_ex = np.asarray(explicit_margins, dtype=float)
    d_im = np.asarray(implicit_margins, dtype=float)
    if d_ex.shape != d_im.shape or d_ex.ndim != 1:
        raise SelfplayError(
            f"select: explicit_margins {d_ex.shape} and implicit_margins {d_im.shape} must be two 1-D arrays "
            "of one length"
        )
    check_selection(SelectionConfig(metric=metric, ratio=ratio, count=count, weight=weight), "select")
    if not (np.isfinite(d_ex).all() and np.isfinite(d_im).all()):
        raise SelfplayError("select: the margins hold NaN or inf values; drop those pairs first")
    names = list(ids) if ids is not None else [f"{i:012d}" for i in range(len(d_ex))]
    if len(names) != len(d_ex):
        raise SelfplayError(f"select: {len(names)} ids for {len(d_ex)} pairs")
    params = MetricParams(weight=weight, implicit_abs=implicit_abs, seed=seed)
    return Selection(*score_rank_keep(d_ex, d_im, metric, params, ratio, count, names))


@dataclass(frozen=True)
class DatasetSelection:
    scored: Any
    """A datasets.Dataset: every usable row with both rewards, implicit rewards and margins, its score,
    rank and kept (what scored.parquet holds)."""
    selected: Any
    """A datasets.Dataset of the kept rows, best first (what selected.parquet holds; TRL reads it)."""
    summary: dict[str, Any]
    """Counts (rows, dropped and why, computed columns) and the margins' distributions (summary.json)."""


def select_dataset(dataset: Any, overrides: Sequence[str] = ()) -> DatasetSelection:
    """Offline selection of a preference dataset in memory (a `datasets.Dataset` or a list of row
    dicts), as `python -m selfplay.select` does for a file: the same columns, rewards and implicit
    rewards taken from columns or computed (judge.*, model.*), the same metric and top-k."""
    import datasets

    from selfplay.selection.checks import check_selection
    from selfplay.selection.columnar import select_columns
    from selfplay.selection.offline import scored_rows, select_table

    cfg: OfflineSelectConfig = compose(overrides, "select")
    cfg.input = "<dataset>"  # how messages name it
    check_selection(cfg.selection, "selection")
    if isinstance(dataset, datasets.Dataset):  # Arrow-backed: column by column where the scores are columns
        data = dataset.flatten_indices() if dataset._indices is not None else dataset
        done = select_columns(data.data.table, cfg)
        if done is not None:
            scored_table, selected_table, summary = done
            return DatasetSelection(datasets.Dataset(scored_table), datasets.Dataset(selected_table), summary)
    table = dataset.to_list() if hasattr(dataset, "to_list") else list(dataset)
    rows, scored, summary = select_table(table, cfg)
    from selfplay.selection.columnar import read_score_columns

    all_rows = scored_rows(rows, scored, read_score_columns(cfg))
    selected = sorted((r for r in all_rows if r["kept"]), key=lambda r: r["rank"])
    return DatasetSelection(
        datasets.Dataset.from_list(all_rows), datasets.Dataset.from_list(selected), summary
    )
