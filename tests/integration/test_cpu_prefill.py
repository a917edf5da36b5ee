"""vLLM on a CPU never splits a prompt's prefill: with vLLM's own CPU settings (chunked prefill, a
4096-token step budget) 48 ChatML prompts x 4 samples overflow one step, vLLM rewinds a seeded CPU
generator and crashes ("CPU Generator does not use offset"); with ours the same run finishes, and where
both settings run the records are identical."""

import pytest

from tests.integration.cli import run_cli
from tests.integration.runs import record_text

pytestmark = pytest.mark.vllm  # two vLLM engines per test: ~80 s

VLLM_CPU_DEFAULTS = (  # what vLLM 0.32 picks on a CPU when nobody sets them
    "+generate.engine_args.enable_chunked_prefill=true",
    "+generate.engine_args.max_num_batched_tokens=4096",
)


def generate_only(out, prompts: int, *extra: str):
    return run_cli(
        "debug=tiny",
        "model.tiny.template=chatml",
        "generate.backend=vllm",
        f"prompts.per_iteration={prompts}",
        "generate.num_samples=4",
        "generate.max_tokens=8",
        "loop.iterations=1",
        "loop.stop_after=generate",
        "evaluate.enabled=false",
        f"loop.output_dir={out}",
        *extra,
    )


def test_a_split_prefill_crashes_with_vllms_cpu_settings_and_not_with_ours(tmp_path):
    old = generate_only(tmp_path / "old", 48, *VLLM_CPU_DEFAULTS)
    assert old.returncode != 0 and "CPU Generator does not use offset" in old.stderr, old.stderr[-2000:]
    new = generate_only(tmp_path / "new", 48)
    assert new.returncode == 0, new.stderr[-3000:]


def test_records_are_the_same_where_both_settings_run(tmp_path):
    old = generate_only(tmp_path / "old", 8, *VLLM_CPU_DEFAULTS)  # 8 x 4 prompts fit one step
    new = generate_only(tmp_path / "new", 8)
    assert old.returncode == 0 and new.returncode == 0, (old.stderr + new.stderr)[-3000:]
    rel = "default/iter_000/generate/completions.parquet"
    assert record_text(tmp_path / "old" / rel) == record_text(tmp_path / "new" / rel)


def test_cpu_scheduler_settings():
    from selfplay.generate.vllm_backend import cpu_scheduler_settings

    assert cpu_scheduler_settings(512, {}) == {
        "enable_chunked_prefill": False,
        "long_prefill_token_threshold": 0,
        "max_num_batched_tokens": 4096,
    }
    assert cpu_scheduler_settings(32768, {})["max_num_batched_tokens"] == 32768  # a whole context fits
    assert cpu_scheduler_settings(None, {"max_num_seqs": 8192})["max_num_batched_tokens"] == 8192


@pytest.mark.parametrize(
    "key,needle",
    [
        ("seed", "generate.engine_args.seed: set generate.seed instead"),
        ("max_model_len", "generate.engine_args.max_model_len: set generate.max_model_len instead"),
        ("no_such_argument", "generate.engine_args.no_such_argument: not an argument of vllm.LLM"),
    ],
)
def test_engine_args_that_are_ours_or_unknown_are_refused(key, needle):
    from selfplay.errors import SelfplayError
    from selfplay.generate.vllm_backend import check_engine_args

    with pytest.raises(SelfplayError, match=needle):
        check_engine_args({key: 1})
    check_engine_args({"max_num_seqs": 64, "enable_prefix_caching": False})
