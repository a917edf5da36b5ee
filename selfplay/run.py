"""Entry point: `python -m selfplay.run [overrides]` composes the config, converts it once, runs the loop."""

from __future__ import annotations

import logging
import os
import sys

# Quiet, offline-friendly defaults for the libraries we drive; a user's own setting wins.
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from selfplay.config import Config, register_configs  # noqa: E402
from selfplay.errors import SelfplayError  # noqa: E402

register_configs()
log = logging.getLogger("selfplay")


def to_config(cfg: DictConfig) -> Config:
    """The composed DictConfig as the typed, frozen `Config` (the only conversion in the program)."""
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, Config)
    return config


@hydra.main(version_base=None, config_path="pkg://selfplay.conf", config_name="config")
def main(cfg: DictConfig) -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("DS_ACCELERATOR", "cpu")  # DeepSpeed's detection otherwise warns
    from selfplay.loop.orchestrator import run_loop, run_task

    config = to_config(cfg)
    try:
        if config.task.stage is not None:
            print(run_task(config))
            return
        run_dir = run_loop(config, relaunch=relaunch_command())
    except SelfplayError as err:
        print(f"selfplay: error: {err}", file=sys.stderr)
        sys.exit(2)
    if run_dir is not None:
        print(run_dir)


def relaunch_command() -> list[str]:
    """This invocation's command with its overrides, for launching shard workers of the same run."""
    from hydra.core.hydra_config import HydraConfig

    overrides = [o for o in HydraConfig.get().overrides.task if not o.lstrip("+~").startswith("task.")]
    return [sys.executable, "-m", "selfplay.run", *overrides]


if __name__ == "__main__":
    main()
