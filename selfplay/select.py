"""Entry point: `python -m selfplay.select input=<dataset> output=<folder> [overrides]` selects the
pairs of an existing preference dataset by alignment potential (or a baseline metric)."""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import hydra  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from selfplay.config import OfflineSelectConfig, register_configs  # noqa: E402
from selfplay.errors import SelfplayError  # noqa: E402

register_configs()


@hydra.main(version_base=None, config_path="pkg://selfplay.conf", config_name="select")
def _composed(cfg: DictConfig) -> None:
    from transformers.utils import logging as hf_logging

    from selfplay.selection.offline import select_offline

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, OfflineSelectConfig)
    try:
        summary = select_offline(config)
    except SelfplayError as err:
        print(f"selfplay.select: error: {err}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps(summary, indent=1))
    print(os.path.abspath(str(config.output)))


def main() -> None:
    from selfplay.help_text import help_text, wants_help

    if wants_help(sys.argv[1:]):
        print(help_text("selfplay.select"))
        return
    _composed()


if __name__ == "__main__":
    main()
