"""The in-process vLLM engine listens on nothing outside 127.0.0.1 (its single-process
torch.distributed group binds to loopback), and nothing it opened is left listening after it closes."""

import os

import pytest

from tests.sockets import listening_sockets, outside_loopback

pytestmark = pytest.mark.vllm


def test_in_process_engine_listens_only_on_loopback_and_closes_everything(tiny_policy):
    from selfplay.config import GenerateConfig
    from selfplay.generate.requests import SampleRequest
    from selfplay.generate.vllm_backend import VllmEngine

    before = listening_sockets(os.getpid())
    cfg = GenerateConfig(max_model_len=256, max_tokens=4)
    with VllmEngine(tiny_policy, cfg, "auto", False) as engine:
        during = listening_sockets(os.getpid()) - before
        engine.generate([SampleRequest(prompt_id="p", prompt_ids=[1, 5, 6, 7], seed=3)], cfg, 2)
        assert outside_loopback(during | listening_sockets(os.getpid())) == set()
    assert listening_sockets(os.getpid()) - before == set()
