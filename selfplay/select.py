"""Entry point: `python -m selfplay.select input=<dataset> output=<folder> [overrides]` selects the
pairs of an existing preference dataset by alignment potential (or a baseline metric). Where the
dataset lacks rewards or implicit rewards, they are computed first as a run of the loop's machinery in
`<output>/work/` (selfplay/stages/scoring.py): sharded over the engine slots of `cluster=`
(`loop.shards`, `loop.shard_workers`, `loop.workers`), resumable by shard after a kill, with
checksummed records and progress lines."""

from __future__ import annotations

import dataclasses
import json
import os
import sys

from selfplay.quiet import quiet_libraries  # noqa: E402

quiet_libraries()  # before the libraries import (selfplay/quiet.py)

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from selfplay.config import OfflineSelectConfig, register_configs  # noqa: E402
from selfplay.errors import SelfplayError  # noqa: E402

register_configs()

WORK = "work"
"""The scoring run's folder inside `output`."""


def scoring_run_config(cfg: OfflineSelectConfig):
    """The scoring run of offline selection as the loop's Config (built the same way in every process
    it starts): the dataset's columns, the judge, the policy, the selection's implicit-reward form and
    the loop and cluster sections; one iteration in `<output>/work/`."""
    from selfplay.config import JudgeConfig, JudgeKind, ModelConfig, SelectRunConfig

    model = ModelConfig(**{f.name: getattr(cfg.model, f.name) for f in dataclasses.fields(ModelConfig)})
    model.path = cfg.model.path or ""  # "": no policy (rewards only)
    judge_fields = {f.name: getattr(cfg.judge, f.name) for f in dataclasses.fields(JudgeConfig)}
    judge = JudgeConfig(**{**judge_fields, "kind": cfg.judge.kind or JudgeKind.rule})
    loop = dataclasses.replace(
        cfg.loop, output_dir=str(cfg.output), run_name=WORK, iterations=1, restart_from=None, stop_after=None
    )
    run = SelectRunConfig(
        allow_toy=True,  # the user's own dataset: nothing of the demo's
        preset_name="none",
        model=model,
        judge=judge,
        logprobs=cfg.logprobs,
        selection=cfg.selection,
        loop=loop,
        cluster=cfg.cluster,
        task=cfg.task,
        input=cfg.input,
        split=cfg.split,
        columns=cfg.columns,
    )
    run.evaluate.enabled = False
    return run


def computed_scores(cfg: OfflineSelectConfig, relaunch: list[str]) -> dict | None:
    """Run (or resume) the scoring run where the dataset lacks scores; its records by row id. None when
    the dataset's columns hold everything."""
    from selfplay.data.files import read_records
    from selfplay.data.records import RowScores
    from selfplay.loop.orchestrator import run_loop
    from selfplay.rundir import stage_names as sn
    from selfplay.rundir.layout import ROW_SCORES, RunLayout
    from selfplay.selection.offline import scores_to_compute
    from selfplay.stages.table import SELECT_STAGES

    if not scores_to_compute(cfg):
        return None
    run = scoring_run_config(cfg)
    run_dir = run_loop(run, relaunch=relaunch, table=SELECT_STAGES, report=False)
    if run_dir is None:  # loop.dry_run
        return None
    path = RunLayout(run_dir).stage_dir(0, sn.SCORE) / ROW_SCORES
    return {r.row_id: r for r in read_records(path, RowScores)}


def run_select(cfg: OfflineSelectConfig, relaunch: list[str]) -> dict | None:
    """The command: a worker or shard process of the scoring run, or the whole selection."""
    from selfplay.stages.table import SELECT_STAGES

    if cfg.task.worker is not None:
        from selfplay.loop.workers import run_worker

        run_worker(scoring_run_config(cfg), cfg.task.worker, SELECT_STAGES)
        return None
    if cfg.task.stage is not None:
        from selfplay.loop.orchestrator import run_task

        print(run_task(scoring_run_config(cfg), SELECT_STAGES))
        return None
    from selfplay.selection.offline import select_offline

    computed = computed_scores(cfg, relaunch)
    if cfg.loop.dry_run:
        return None
    work = os.path.abspath(os.path.join(str(cfg.output), WORK)) if computed is not None else None
    return select_offline(cfg, computed, work)


@hydra.main(version_base=None, config_path="pkg://selfplay.conf", config_name="select")
def _composed(cfg: DictConfig) -> None:
    from transformers.utils import logging as hf_logging

    from selfplay.run import relaunch_command, set_log_level
    from selfplay.schema.keys import check_composed

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        check_composed(cfg, OfflineSelectConfig)
        config = OmegaConf.to_object(cfg)
        assert isinstance(config, OfflineSelectConfig)
        set_log_level(config.loop.log_level)
        summary = run_select(config, relaunch_command("selfplay.select"))
    except SelfplayError as err:
        print(f"selfplay.select: error: {err}", file=sys.stderr)
        sys.exit(2)
    if summary is not None:
        print(json.dumps(summary, indent=1))
        print(os.path.abspath(str(config.output)))


def main() -> None:
    from selfplay.help_text import help_text, wants_help
    from selfplay.run import refuse_unknown_keys

    if wants_help(sys.argv[1:]):
        print(help_text("selfplay.select"))
        return
    refuse_unknown_keys(sys.argv[1:], OfflineSelectConfig, "selfplay.select")
    _composed()


if __name__ == "__main__":
    main()
