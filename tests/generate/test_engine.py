"""Engine settings that cannot work fail in one line; the engine gives its memory back."""

import pytest

from selfplay.config import GenerateConfig
from selfplay.errors import SelfplayError
from selfplay.generate.vllm_backend import VllmEngine


def test_tensor_parallel_without_enough_devices(tiny_policy):
    import torch

    n = torch.cuda.device_count() + 1 if torch.cuda.is_available() else 2
    with pytest.raises(SelfplayError, match=f"tensor_parallel_size={n}"):
        VllmEngine(tiny_policy, GenerateConfig(tensor_parallel_size=n), "auto", False)


@pytest.mark.gpu
@pytest.mark.vllm
def test_engine_releases_gpu_memory(tiny_policy):
    import torch

    free_before, _ = torch.cuda.mem_get_info()
    engine = VllmEngine(tiny_policy, GenerateConfig(gpu_memory_utilization=0.3), "auto", False)
    free_during, _ = torch.cuda.mem_get_info()
    engine.close()
    free_after, _ = torch.cuda.mem_get_info()
    assert free_before - free_during > 2**30  # the engine really held its share
    assert free_before - free_after < 2**30, "the vLLM engine's memory was not released"


@pytest.mark.vllm
def test_cpu_kv_cache_size_is_the_configured_one(tiny_policy, monkeypatch):
    # vLLM's legacy VLLM_CPU_KVCACHE_SPACE (whole GiB) would override the engine argument: we never set
    # it, so a fraction of a GiB holds, and so does a second engine's other size in the same process.
    import os

    monkeypatch.delenv("VLLM_CPU_KVCACHE_SPACE", raising=False)
    for gib in (0.25, 0.5):
        engine = VllmEngine(
            tiny_policy, GenerateConfig(cpu_kv_cache_gib=gib, max_model_len=256), "auto", False
        )
        try:
            assert engine.llm.llm_engine.vllm_config.cache_config.kv_cache_memory_bytes == int(gib * 2**30)
        finally:
            engine.close()
    assert "VLLM_CPU_KVCACHE_SPACE" not in os.environ
