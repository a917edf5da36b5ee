"""Sample K responses per prompt from a policy folder with the configured backend."""

from __future__ import annotations

import logging

from selfplay.config import GenerateConfig, ModelConfig
from selfplay.data.records import Completion, Prompt
from selfplay.errors import SelfplayError
from selfplay.generate.requests import make_requests, to_completions
from selfplay.models.loading import load_causal_lm, load_tokenizer, resolve_context
from selfplay.progress import Progress

log = logging.getLogger(__name__)


def resolve_backend(cfg: GenerateConfig) -> str:
    from selfplay.generate.vllm_backend import vllm_available

    if cfg.backend == "auto":
        return "vllm" if vllm_available() else "hf"
    if cfg.backend == "vllm" and not vllm_available():
        raise SelfplayError(
            "generate.backend=vllm but the vllm module does not import (install the 'vllm' extra on "
            "GPUs or 'cpu' on CPUs, or use generate.backend=hf)"
        )
    return str(cfg.backend)


def sample_completions(
    policy_path: str,
    prompts: list[Prompt],
    gen: GenerateConfig,
    model: ModelConfig,
    salt: str,
    num_samples: int,
    iteration: int,
    label: str = "generate",
) -> tuple[list[Completion], str]:
    """K samples per prompt from `policy_path`; returns the completions and the backend used.

    Prompts whose rendered length leaves no room for a response within `generate.max_model_len` get
    no completions (logged; the stage counts them as `prompts_too_long`)."""
    backend = resolve_backend(gen)
    gen = resolve_context(gen, policy_path, model.trust_remote_code)
    assert gen.max_model_len is not None
    tokenizer = load_tokenizer(policy_path, model.trust_remote_code, chat_template=model.chat_template)
    requests = make_requests(tokenizer, prompts, gen.seed, salt)
    fits = [r for r in requests if len(r.prompt_ids) < gen.max_model_len]
    if len(fits) < len(requests):
        log.warning(
            "%d prompt(s) are at least generate.max_model_len=%d tokens long and are skipped",
            len(requests) - len(fits),
            gen.max_model_len,
        )
    if not fits:
        return [], backend
    with Progress(label, len(fits) * num_samples, "responses") as progress:
        if backend == "vllm":
            from selfplay.generate.engine_pool import vllm_engine

            with vllm_engine(
                policy_path, gen, str(model.dtype), model.trust_remote_code, model.allow_pickle
            ) as engine:
                samples = engine.generate(fits, gen, num_samples, progress)
        else:
            from selfplay.generate.hf_backend import hf_generate

            lm = load_causal_lm(
                policy_path, str(model.dtype), model.trust_remote_code, allow_pickle=model.allow_pickle
            )
            samples = hf_generate(lm, tokenizer, fits, gen, num_samples, progress)
            del lm
    return to_completions(tokenizer, fits, samples, iteration, policy_path, gen.stop), backend
