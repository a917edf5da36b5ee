"""The shipped DeepSpeed configs train on this CPU (gloo): ZeRO-2 in one process, ZeRO-3 in two."""

import pytest

from tests.integration.cli import run_cli
from tests.integration.runs import stage_stats


@pytest.mark.vllm
@pytest.mark.parametrize("deepspeed,processes", [("zero2", 1), ("zero3", 2)])
def test_shipped_deepspeed_configs_train(vllm_run, tmp_path, deepspeed, processes):
    """The shipped ZeRO configs run on this CPU (gloo); with one process the loss equals the plain run's."""
    reference, _ = vllm_run
    proc = run_cli(
        "debug=tiny",
        "generate.backend=vllm",
        f"train.deepspeed={deepspeed}",
        f"train.num_processes={processes}",
        "loop.iterations=1",
        "evaluate.enabled=false",
        f"loop.output_dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours, plain = stage_stats(tmp_path / "default", 0, "train"), stage_stats(reference, 0, "train")
    assert (tmp_path / "default" / "iter_000" / "train" / "model" / "model.safetensors").is_file()
    if processes == 1:
        assert ours["train_loss"] == pytest.approx(plain["train_loss"], abs=1e-4)
