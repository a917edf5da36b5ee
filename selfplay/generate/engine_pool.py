"""One vLLM engine for the whole run (`generate.engine=persistent`), or one per stage (`per_stage`).

A persistent engine lives in the process that runs the stages (the orchestrator with the default
in-process stages; each stage or shard process when they are processes of their own) and serves every
stage that samples: generate, evolve, evolved_generate and evaluate, of every iteration. When a stage
asks for another policy folder of the same model (the next iteration's checkpoint, or pi_0 again for
evaluation), the engine's weights are reloaded in place (vLLM's `reload_weights`; no new engine, no
new KV cache) and its prefix cache is emptied, so no cached prompt state of the old weights survives.
A folder of another model (other architecture, dtype, tokenizer or chat format) or other engine
settings gets a new engine (the old one is closed first).

On GPUs the engine is created with vLLM's sleep mode and put to sleep (weights offloaded, KV cache
freed) whenever a stage that is not sampling runs, so vLLM and the trainer or the reward model never
hold the GPU memory at the same time; it wakes up at its next use. On a CPU there is no sleep mode:
the engine keeps its memory (weights and `generate.cpu_kv_cache_gib`) through training.

Records do not change: a request's samples depend on its own seed and the weights, and reloaded
weights are the same tensors a new engine would load (tested: byte-identical records per_stage vs
persistent)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

from selfplay.config import GenerateConfig

log = logging.getLogger(__name__)

# config.json fields that a save rewrites without changing the model
_CONFIG_NOISE = {"_name_or_path", "transformers_version", "use_cache"}
# tokenizer_config.json fields that decide how token ids and chat turns look
_TOKENIZER_FIELDS = ("chat_template", "bos_token", "eos_token", "pad_token", "unk_token", "add_bos_token")


def model_identity(path: str) -> str:
    """A digest of what a vLLM engine fixes at start for a model folder, apart from the weights: the
    architecture config, the tokenizer and the chat format. Two checkpoints of one training run share it."""
    folder = Path(path)
    h = hashlib.sha256()
    config = json.loads((folder / "config.json").read_text()) if (folder / "config.json").is_file() else {}
    h.update(json.dumps({k: v for k, v in config.items() if k not in _CONFIG_NOISE}, sort_keys=True).encode())
    tok_cfg_file = folder / "tokenizer_config.json"
    tok_cfg = json.loads(tok_cfg_file.read_text()) if tok_cfg_file.is_file() else {}
    h.update(json.dumps({k: tok_cfg.get(k) for k in _TOKENIZER_FIELDS}, sort_keys=True, default=str).encode())
    for name in (
        "tokenizer.json",
        "tokenizer.model",
        "vocab.json",
        "merges.txt",
        "chat_template.jinja",
        "generation_config.json",
    ):
        f = folder / name
        h.update(name.encode() + (f.read_bytes() if f.is_file() else b"-"))
    return h.hexdigest()


def engine_key(
    path: str, gen: GenerateConfig, dtype: str, trust_remote_code: bool, allow_pickle: bool
) -> str:
    """Everything an engine is built from except the weights: engine settings and the model's identity
    (sampling settings are per request and do not matter)."""
    engine_side = {
        k: v
        for k, v in asdict(gen).items()
        if k
        in (
            "max_model_len",
            "tensor_parallel_size",
            "gpu_memory_utilization",
            "enforce_eager",
            "cpu_kv_cache_gib",
            "logprobs_mode",
            "engine_args",
            "seed",
        )
    }
    settings = json.dumps(
        {**engine_side, "dtype": dtype, "remote": trust_remote_code, "pickle": allow_pickle},
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256((settings + model_identity(path)).encode()).hexdigest()


class EnginePool:
    """At most one live engine in this process, kept between stages (persistent mode)."""

    def __init__(self) -> None:
        self.engine: Any = None
        self.key: str | None = None
        self.weights: str | None = None
        self.asleep = False
        self.starts = 0
        self.reloads = 0
        self.seconds: dict[str, float] = {"start": 0.0, "reload": 0.0, "close": 0.0, "sleep": 0.0}

    def get(self, path: str, gen: GenerateConfig, dtype: str, trust_remote_code: bool, allow_pickle: bool):
        from selfplay.generate.vllm_backend import VllmEngine

        key = engine_key(path, gen, dtype, trust_remote_code, allow_pickle)
        if self.engine is not None and self.key != key:
            log.info("vLLM engine: another model or other engine settings; starting a new engine")
            self.close()
        if self.engine is None:
            t = time.perf_counter()
            self.engine = VllmEngine(path, gen, dtype, trust_remote_code, allow_pickle, sleep_mode=True)
            self.seconds["start"] += time.perf_counter() - t
            self.key, self.weights, self.asleep = key, path, False
            self.starts += 1
            log.info("vLLM engine started (%d in this process, %.1fs)", self.starts, time.perf_counter() - t)
            return self.engine
        if self.asleep:
            t = time.perf_counter()
            self.engine.wake_up()
            self.seconds["sleep"] += time.perf_counter() - t
            self.asleep = False
        if self.weights != str(path):
            t = time.perf_counter()
            self.engine.reload_weights(path)
            self.seconds["reload"] += time.perf_counter() - t
            self.weights = str(path)
            self.reloads += 1
        return self.engine

    def release_memory(self) -> None:
        """Before work that is not sampling (a stage, or evaluate's judge): on GPUs the engine sleeps
        (its memory is freed), and what a finished transformers-backend sampler left cached is freed."""
        if self.engine is not None and not self.asleep and self.engine.can_sleep:
            t = time.perf_counter()
            self.engine.sleep()
            self.seconds["sleep"] += time.perf_counter() - t
            self.asleep = True
        self.free_cache()

    @staticmethod
    def free_cache() -> None:
        """What models that are gone (a judge, a transformers-backend sampler) left in torch's CUDA
        cache, returned to the device: an engine waking up, or a model loading next, needs it."""
        torch = sys.modules.get("torch")
        if torch is not None and torch.cuda.is_available():
            import gc

            gc.collect()
            torch.cuda.empty_cache()

    def close(self) -> None:
        if self.engine is not None:
            t = time.perf_counter()
            self.engine.close()
            self.seconds["close"] += time.perf_counter() - t
        self.engine, self.key, self.weights, self.asleep = None, None, None, False


POOL = EnginePool()


@contextlib.contextmanager
def vllm_engine(
    path: str, gen: GenerateConfig, dtype: str, trust_remote_code: bool, allow_pickle: bool
) -> Iterator[Any]:
    """The engine for one stage's sampling: the run's persistent engine (weights swapped in place when
    needed) or, with generate.engine=per_stage, a new engine closed at the end of the block."""
    if str(gen.engine) == "persistent":
        yield POOL.get(path, gen, dtype, trust_remote_code, allow_pickle)
        return
    from selfplay.generate.vllm_backend import VllmEngine

    t = time.perf_counter()
    engine = VllmEngine(path, gen, dtype, trust_remote_code, allow_pickle)
    POOL.seconds["start"] += time.perf_counter() - t
    POOL.starts += 1
    try:
        yield engine
    finally:
        t = time.perf_counter()
        engine.close()
        POOL.seconds["close"] += time.perf_counter() - t
