"""Entry point: `python -m selfplay.run [overrides]` composes the config, converts it once, runs the loop."""

from __future__ import annotations

import logging
import os
import signal
import sys

from selfplay.quiet import quiet_libraries  # noqa: E402

quiet_libraries()  # before the libraries import (selfplay/quiet.py)

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from selfplay.config import Config, register_configs  # noqa: E402
from selfplay.errors import SelfplayError, Terminated, storage_problem  # noqa: E402
from selfplay.presets import with_default_preset  # noqa: E402
from selfplay.rundir.layout import RunLayout  # noqa: E402

register_configs()
log = logging.getLogger("selfplay")


def to_config(cfg: DictConfig, what: str = "selfplay") -> Config:
    """The composed DictConfig as the typed `Config` (the only conversion in the program), its keys
    checked against the schema; a top-level `seed` is spread to every section's seed."""
    from selfplay.schema.keys import check_composed

    check_composed(cfg, type(OmegaConf.to_object(cfg)), "" if what == "selfplay" else what)
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, Config)
    if config.seed is not None:
        config.generate.seed = config.selection.seed = config.evolve.selection.seed = config.seed
        config.train.seed = config.seed
    return config


def sweep_run_name(config: Config) -> str | None:
    """In a Hydra multirun (-m), each job's own run directory: `<loop.run_name>-sweep/<its swept values>`,
    e.g. `default-sweep/selection.metric=random` (the keys given several values on the command line; so
    a rerun of the sweep resumes every job, and the fixed overrides do not lengthen every name). The
    sweep's folder is its own, never inside a single run of the same name (`report` compares what is
    below it). None outside a multirun."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.types import RunMode

    if not HydraConfig.initialized() or HydraConfig.get().mode != RunMode.MULTIRUN:
        return None
    hydra = HydraConfig.get()
    given = [a for a in sys.argv[1:] if "=" in a and not a.startswith("-")]
    swept = {o.key_or_group for o in OverridesParser.create().parse_overrides(given) if o.is_sweep_override()}
    excluded = set(hydra.job.config.override_dirname.exclude_keys)
    parts = []
    for item in hydra.overrides.task:
        key = item.split("=", 1)[0].lstrip("+~")
        if key in swept and key not in excluded:
            parts.append(item.lstrip("+~"))
    name = ",".join(parts).replace("/", "_") or f"job{hydra.job.num}"
    return f"{config.loop.run_name}{SWEEP_SUFFIX}/{name}"


SWEEP_SUFFIX = "-sweep"
"""A sweep's folder: `<loop.output_dir>/<loop.run_name>-sweep/`, one run directory per job below it."""


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def set_log_level(level: str) -> None:
    """loop.log_level: the root logger's level (every selfplay module logs below it)."""
    if str(level).upper() not in LOG_LEVELS:
        raise SelfplayError(f"loop.log_level={level}: expected one of {', '.join(LOG_LEVELS)}")
    logging.getLogger().setLevel(str(level).upper())


def run_command(config: Config, module: str, table=None) -> None:
    """Run the loop (or, in a launched worker, its task) over `table` (default: the stage table) and
    print the run directory; a SelfplayError is one line on stderr and exit code 2."""
    import datasets
    from transformers.utils import logging as hf_logging

    # Library bars write carriage-return frames that fill log files: our own progress lines replace
    # them. Hub downloads keep theirs on a terminal (a model download can take a while).
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    datasets.disable_progress_bars()
    if not (config.loop.progress and sys.stderr.isatty()):
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed's detection otherwise warns
    from selfplay.loop.orchestrator import run_loop, run_task
    from selfplay.stages.table import STAGES

    table = table or STAGES
    try:
        set_log_level(config.loop.log_level)
    except SelfplayError as err:
        print(f"selfplay: error: {err}", file=sys.stderr)
        sys.exit(2)
    relaunch = relaunch_command(module)
    job = sweep_run_name(config)
    if job is not None and config.task.stage is None and config.task.worker is None:
        config.loop.run_name = job
        relaunch.append(f"loop.run_name={job}")  # the job's workers run in the job's directory
    try:
        if config.task.worker is not None:
            from selfplay.loop.workers import run_worker

            run_worker(config, config.task.worker, table)
            return
        if config.task.stage is not None:
            print(run_task(config, table))
            return
        run_dir = run_loop(config, relaunch=relaunch, table=table)
    except SelfplayError as err:
        print(f"selfplay: error: {err}", file=sys.stderr)
        sys.exit(2)
    except (Terminated, KeyboardInterrupt) as stop:
        signum = stop.signum if isinstance(stop, Terminated) else signal.SIGINT
        where = RunLayout.of(config).root
        print(
            f"selfplay: stopped by {signal.Signals(signum).name}; the processes it started were ended. Rerun "
            f"the same command to resume {where} (finished stages and shards are kept)",
            file=sys.stderr,
        )
        sys.exit(128 + int(signum))
    except Exception as exc:  # a full or read-only disk outside a stage (config, metrics, tracking)
        problem = storage_problem(exc)
        if problem is None:
            raise
        where = RunLayout.of(config).root
        print(
            f"selfplay: error: {problem} while writing under {where}; free space and rerun", file=sys.stderr
        )
        sys.exit(2)
    if run_dir is not None:
        print(run_dir, flush=True)  # stdout's last line: the run directory, for scripts
        final = RunLayout(run_dir).final_link
        if final.is_dir():
            print(
                f"selfplay: final policy {final} (AutoModelForCausalLM.from_pretrained({str(final)!r}))",
                file=sys.stderr,
            )


@hydra.main(version_base=None, config_path="pkg://selfplay.conf", config_name="config")
def _composed(cfg: DictConfig) -> None:
    try:
        config = to_config(cfg)
    except SelfplayError as err:
        print(f"selfplay: error: {err}", file=sys.stderr)
        sys.exit(2)
    run_command(config, "selfplay.run")


def refuse_unknown_keys(argv: list[str], cls: type, what: str) -> None:
    """A key the schema does not know, `+` or not, is one line and exit 2 before Hydra composes."""
    from selfplay.schema.keys import check_overrides, config_groups

    try:
        check_overrides(argv, cls, config_groups())
    except SelfplayError as err:
        print(f"{what}: error: {err}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """`python -m selfplay.run` and the `selfplay` console script: a model of one's own gets the
    real-model preset (selfplay/presets.py), then Hydra composes and the loop runs."""
    from selfplay.help_text import help_text, wants_help

    if wants_help(sys.argv[1:]):
        print(help_text("selfplay.run"))
        return
    refuse_unknown_keys(sys.argv[1:], Config, "selfplay")
    sys.argv = [sys.argv[0], *with_default_preset(sys.argv[1:])]
    _composed()


def relaunch_command(module: str) -> list[str]:
    """This invocation's command with its overrides, for launching shard and training workers of the
    same run."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():  # called from Python (compose API), not the command line
        return [sys.executable, "-m", module]
    overrides = [o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith("task.")]
    return [sys.executable, "-m", module, *overrides]


if __name__ == "__main__":
    main()
