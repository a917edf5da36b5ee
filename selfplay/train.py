"""Entry point: `python -m selfplay.train input=<preference file> [preset=...] [overrides]` trains the
policy (`model.path`) on the pairs of a file, e.g. the `selected.parquet` that `python -m selfplay.select`
writes, through the loop's own train stage: the same TRL path, presets, tokenisation, reference
handling (one teacher-forced pass, no reference forward per step), processes, checkpoints and resume.
The run directory (`loop.output_dir`/`loop.run_name`) holds the pairs as read and the trained model."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from selfplay.config import TrainFileConfig
from selfplay.data.preferences import check_input
from selfplay.errors import SelfplayError
from selfplay.presets import with_default_preset
from selfplay.run import run_command


@hydra.main(version_base=None, config_path="pkg://selfplay.conf", config_name="train_file")
def _composed(cfg: DictConfig) -> None:

    from selfplay.schema.keys import check_composed
    from selfplay.stages.table import FILE_STAGES

    try:
        check_composed(cfg, TrainFileConfig)
    except SelfplayError as err:
        print(f"selfplay: error: {err}", file=sys.stderr)
        sys.exit(2)
    config = OmegaConf.to_object(cfg)
    assert isinstance(config, TrainFileConfig)
    if config.loop.iterations != 1:
        print(
            f"selfplay: error: loop.iterations={config.loop.iterations}: training on a file is one iteration",
            file=sys.stderr,
        )
        sys.exit(2)
    try:
        check_input(config.input)  # before any stage starts
        run_command(config, "selfplay.train", FILE_STAGES)
    except SelfplayError as err:  # raised before the loop starts
        print(f"selfplay: error: {err}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """A model of one's own gets the real-model preset (selfplay/presets.py), as in selfplay.run."""
    from selfplay.help_text import help_text, wants_help

    if wants_help(sys.argv[1:]):
        print(help_text("selfplay.train"))
        return
    from selfplay.run import refuse_unknown_keys

    refuse_unknown_keys(sys.argv[1:], TrainFileConfig, "selfplay.train")
    sys.argv = [sys.argv[0], *with_default_preset(sys.argv[1:])]
    _composed()


if __name__ == "__main__":
    main()
