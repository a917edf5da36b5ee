"""Entry point: `python -m selfplay.train_rm output=<folder> [input=<pairs file>] [overrides]` trains a
reward model on preference pairs (a file, or pairs it samples from `model.path` and labels with `judge`)
and writes a folder that `judge.kind=reward_model judge.model.path=<folder>` loads as it is."""

from __future__ import annotations

import json
import os
import sys

from selfplay.quiet import quiet_libraries  # noqa: E402

quiet_libraries()  # before the libraries import (selfplay/quiet.py)

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from selfplay.config import register_configs  # noqa: E402
from selfplay.errors import SelfplayError  # noqa: E402
from selfplay.train_rm_config import TrainRMConfig, register_train_rm_config  # noqa: E402

register_configs()
register_train_rm_config()


def compose(overrides: list[str] | tuple[str, ...] = ()) -> TrainRMConfig:
    """The typed config `python -m selfplay.train_rm <overrides>` would run (for Python and tests)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf.errors import OmegaConfBaseException

    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with initialize_config_module(config_module="selfplay.conf", version_base=None):
            cfg = hydra_compose(config_name="train_rm", overrides=list(overrides))
    except (HydraException, OmegaConfBaseException) as err:  # a bad override: Hydra's own first line
        raise SelfplayError(f"overrides {list(overrides)}: {str(err).strip().splitlines()[0]}") from None
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, TrainRMConfig)
    return config


@hydra.main(version_base=None, config_path="pkg://selfplay.conf", config_name="train_rm")
def main(cfg: DictConfig) -> None:
    from transformers.utils import logging as hf_logging

    from selfplay.reward.training import train_reward_model

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, TrainRMConfig)
    try:
        summary = train_reward_model(config)
    except SelfplayError as err:
        print(f"selfplay.train_rm: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(summary, indent=1))
    print(os.path.abspath(str(config.output)))


if __name__ == "__main__":
    main()
