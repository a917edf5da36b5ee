"""vLLM backend: offline `vllm.LLM`, raw sampled-token log-probs, one seed per prompt request.

The engine lives only as long as the `VllmEngine` context so that training can use the memory next.
On a CPU the in-process engine (no worker process) starts in seconds and is what runs here.
"""

from __future__ import annotations

import gc
import logging
import os
import re
from contextlib import contextmanager
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


# vLLM's own defaults for the offline engine on a CPU (EngineArgs.get_batch_defaults in vLLM 0.32).
CPU_MAX_NUM_BATCHED_TOKENS = 4096
CPU_MAX_NUM_SEQS = 256

# Engine arguments that have a setting of ours: passing them in generate.engine_args is refused.
OWN_SETTINGS = {
    "model": "model.path",
    "tokenizer": "model.path",
    "dtype": "model.dtype",
    "trust_remote_code": "model.trust_remote_code",
    "seed": "generate.seed",
    "max_model_len": "generate.max_model_len",
    "enforce_eager": "generate.enforce_eager",
    "tensor_parallel_size": "generate.tensor_parallel_size",
    "gpu_memory_utilization": "generate.gpu_memory_utilization",
    "kv_cache_memory_bytes": "generate.cpu_kv_cache_gib",
    "logprobs_mode": "generate.logprobs_mode",
    "load_format": "model.allow_pickle",
}


def cpu_scheduler_settings(context_len: int | None, engine_args: dict[str, Any]) -> dict[str, Any]:
    """Scheduler settings that keep every prompt's prefill in one engine step on a CPU.

    vLLM splits a prefill over steps when the step's token budget (max_num_batched_tokens, 4096 on a
    CPU) runs out mid-prompt: with chunked prefill on, or for prompts longer than
    long_prefill_token_threshold. After such a partial step it discards the token sampled for the
    unfinished request and rewinds the request's seeded generator (`set_offset`), which CUDA generators
    support and CPU generators do not ("CPU Generator does not use offset"); every request of ours has
    its own seed. So on a CPU chunked prefill is off, no long-prefill threshold applies, and the budget
    holds the longest possible prompt (the context length) and a token for every running sequence: a
    prompt that does not fit this step waits, whole, for the next one. The records are unchanged: a
    request's tokens depend on its seed, not on how steps were batched (the float sums may differ in
    the last bit where batch shapes differ, as in any vLLM run). vLLM's CPU platform makes the same
    choice for MLA models."""
    seqs = int(engine_args.get("max_num_seqs", CPU_MAX_NUM_SEQS))
    return {
        "enable_chunked_prefill": False,
        "long_prefill_token_threshold": 0,
        "max_num_batched_tokens": max(CPU_MAX_NUM_BATCHED_TOKENS, seqs, context_len or 0),
    }


def check_engine_args(engine_args: dict[str, Any]) -> None:
    """Refuse engine arguments that vLLM does not know or that one of our settings owns."""
    import dataclasses

    from vllm.engine.arg_utils import EngineArgs

    known = {f.name for f in dataclasses.fields(EngineArgs)}
    for key in engine_args:
        if key in OWN_SETTINGS:
            raise SelfplayError(f"generate.engine_args.{key}: set {OWN_SETTINGS[key]} instead")
        if key not in known:
            raise SelfplayError(
                f"generate.engine_args.{key}: not an argument of vllm.LLM (vLLM {vllm_version()})"
            )


def vllm_version() -> str:
    import vllm

    return str(getattr(vllm, "__version__", "?"))


def refresh_cpu_gemm(worker) -> int:
    """Rebuild the CPU GEMM handle of every linear layer that still holds its weight, from that weight.

    On a CPU, vLLM 0.32 wraps each linear layer's weight in a oneDNN (or packed) handle when the model
    loads (`cpu_linear`) and drops the plain weight. An in-place `reload_weights` rebuilds those layers,
    but a layer whose weight is shared with another one is missed: with tied embeddings the LM head's
    handle stays on the old embedding, so samples after a reload differ from a new engine's (measured
    on the tiny policy). Rebuilding the handles of layers that kept a weight makes a reloaded engine
    sample exactly what a new engine on that checkpoint samples (tested through whole runs: per_stage
    vs persistent records are byte-identical). Runs inside the engine's worker; returns the number of
    layers refreshed."""
    from vllm.model_executor.layers.utils import dispatch_cpu_unquantized_gemm

    refreshed = 0
    for module in worker.model_runner.get_model().modules():
        weight = getattr(module, "weight", None)
        if hasattr(module, "cpu_linear") and weight is not None and weight.ndim == 2 and weight.numel():
            dispatch_cpu_unquantized_gemm(module, remove_weight=False)
            refreshed += 1
    return refreshed


@contextmanager
def kv_cache_too_small(cfg: GenerateConfig, on_cpu: bool, context: int | None):
    """vLLM's refusal of a KV cache smaller than one whole-context sequence, as one line naming our keys."""
    try:
        yield
    except Exception as err:
        text = str(err)
        if "To serve at least one request" not in text:
            raise
        fits = re.search(r"maximum model length is (\d+)", text)
        room = f" (it holds about {fits.group(1)} tokens)" if fits else ""
        size = (
            f"generate.cpu_kv_cache_gib={cfg.cpu_kv_cache_gib}"
            if on_cpu
            else f"generate.gpu_memory_utilization={cfg.gpu_memory_utilization}"
        )
        if on_cpu and os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            size = f"VLLM_CPU_KVCACHE_SPACE={os.environ['VLLM_CPU_KVCACHE_SPACE']} (it overrides {size})"
        raise SelfplayError(
            f"{size}: vLLM's KV cache is too small for one sequence of the context, "
            f"generate.max_model_len={context}{room}; raise the first or lower the second"
        ) from None


class VllmEngine:
    """Context manager around `vllm.LLM` configured from `GenerateConfig`."""

    def __init__(
        self,
        model_path: str,
        cfg: GenerateConfig,
        dtype: str,
        trust_remote_code: bool,
        allow_pickle: bool = False,
        sleep_mode: bool = False,
    ):
        import torch

        self.on_cpu = not torch.cuda.is_available()
        self.can_sleep = sleep_mode and not self.on_cpu  # vLLM's sleep mode needs CUDA
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
        if self.on_cpu and os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            # vLLM's legacy variable wins over the engine argument below (whole GiB only).
            log.warning(
                "VLLM_CPU_KVCACHE_SPACE=%s is set: vLLM sizes its CPU KV cache from it, not from "
                "generate.cpu_kv_cache_gib=%s",
                os.environ["VLLM_CPU_KVCACHE_SPACE"],
                cfg.cpu_kv_cache_gib,
            )
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
        engine_args = dict(cfg.engine_args)
        check_engine_args(engine_args)
        from selfplay.models.loading import model_context_length

        # The engine's context: responses are cut to fit it (vLLM refuses a prompt + max_tokens beyond it).
        self.context = cfg.max_model_len or model_context_length(model_path, trust_remote_code)
        if self.on_cpu:
            kwargs["kv_cache_memory_bytes"] = int(cfg.cpu_kv_cache_gib * 2**30)
            kwargs.update(cpu_scheduler_settings(self.context, engine_args))
        else:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
            if self.can_sleep:
                kwargs["enable_sleep_mode"] = True
        kwargs.update(engine_args)
        from selfplay.models.loading import loading

        with loading(model_path), kv_cache_too_small(cfg, self.on_cpu, self.context):
            self.llm: Any = LLM(**kwargs)

    def __enter__(self) -> VllmEngine:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def reload_weights(self, path: str) -> None:
        """Load another checkpoint of the same model into this engine, in place (no new engine or KV
        cache); the prefix cache is emptied so no prompt state computed with the old weights is reused."""
        from selfplay.models.loading import loading

        with loading(path):
            self.llm.collective_rpc("reload_weights", kwargs={"weights_path": str(path)})
        if self.on_cpu:
            self.llm.collective_rpc(refresh_cpu_gemm)
        self.llm.reset_prefix_cache()

    def sleep(self) -> None:
        """GPU only: offload the weights and free the KV cache until `wake_up`."""
        self.llm.sleep(level=1)

    def wake_up(self) -> None:
        self.llm.wake_up()
        self.llm.reset_prefix_cache()

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
                max_tokens=min(cfg.max_tokens, self.context - len(req.prompt_ids))
                if self.context
                else cfg.max_tokens,
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


class VllmClassifier(VllmEngine):
    """A sequence-classification model (a reward model) on vLLM's pooling runner: one raw score (the
    classifier's first output, no activation) per token sequence. Memory as for generation:
    `generate.cpu_kv_cache_gib` on a CPU, `generate.gpu_memory_utilization` on GPUs. The caller closes
    a sampling engine of the same process first (vLLM's in-process state is one per process)."""

    def __init__(
        self,
        model_path: str,
        max_len: int,
        cfg: GenerateConfig,
        trust_remote_code: bool,
        allow_pickle: bool = False,
    ):
        import torch
        from vllm import LLM

        from selfplay.models.loading import loading

        self.on_cpu = not torch.cuda.is_available()
        self.can_sleep = False
        self.context = max_len
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        kwargs: dict[str, Any] = dict(
            model=model_path,
            tokenizer=model_path,
            runner="pooling",
            dtype="float32" if self.on_cpu else "auto",
            max_model_len=max_len,
            enforce_eager=cfg.enforce_eager,
            trust_remote_code=trust_remote_code,
            use_tqdm_on_load=False,
            load_format="auto" if allow_pickle else "safetensors",
        )
        if self.on_cpu:
            kwargs["kv_cache_memory_bytes"] = int(cfg.cpu_kv_cache_gib * 2**30)
            kwargs.update(cpu_scheduler_settings(max_len, {}))
        else:
            kwargs["gpu_memory_utilization"] = cfg.gpu_memory_utilization
        with loading(model_path, "judge.model.path"), kv_cache_too_small(cfg, self.on_cpu, max_len):
            self.llm = LLM(**kwargs)

    def classify(self, rows: list[list[int]]) -> list[float]:
        from vllm import PoolingParams
        from vllm.inputs import TokensPrompt

        outputs = self.llm.classify(
            [TokensPrompt(prompt_token_ids=ids) for ids in rows],  # type: ignore[typeddict-item]
            pooling_params=PoolingParams(use_activation=False),
            use_tqdm=False,
        )
        return [float(out.outputs.probs[0]) for out in outputs]
