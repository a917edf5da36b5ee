"""transformers `generate` backend: the fallback when vLLM is absent, and the raw-log-prob yardstick."""

from __future__ import annotations

from selfplay.config import GenerateConfig
from selfplay.generate.requests import RawSample, SampleRequest


def hf_generate(
    model, tokenizer, requests: list[SampleRequest], cfg: GenerateConfig, num_samples: int, progress=None
) -> list[list[RawSample]]:
    """K samples per request, one request at a time so each prompt's seed alone fixes its samples.

    Log-probs come from the returned raw logits (before temperature/top-p), like vLLM's raw mode.
    """
    import torch

    device = next(model.parameters()).device
    processed = cfg.logprobs_mode == "processed"
    eos_ids = _eos_ids(model, tokenizer)
    context = cfg.max_model_len or getattr(model.config, "max_position_embeddings", None)
    out: list[list[RawSample]] = []
    for req in requests:
        torch.manual_seed(req.seed)
        ids = torch.tensor([req.prompt_ids], device=device)
        with torch.inference_mode():
            gen = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                do_sample=True,
                temperature=cfg.temperature,
                top_p=cfg.top_p,
                top_k=cfg.top_k if cfg.top_k > 0 else None,
                max_new_tokens=min(cfg.max_tokens, context - len(req.prompt_ids))
                if context
                else cfg.max_tokens,
                min_new_tokens=cfg.max_tokens if cfg.ignore_eos else None,
                stop_strings=list(cfg.stop) or None,
                tokenizer=tokenizer if cfg.stop else None,
                num_return_sequences=num_samples,
                output_logits=not processed,
                output_scores=processed,
                return_dict_in_generate=True,
                pad_token_id=tokenizer.pad_token_id,
                eos_token_id=sorted(eos_ids),
            )
        new = gen.sequences[:, ids.shape[1] :]
        # The sampled token's log-prob one step at a time (never [K, T, V] in fp32): under the raw logits,
        # or under the processed scores (after temperature, top-k and top-p: the sampling distribution).
        steps = gen.scores if processed else gen.logits
        picked = torch.stack(
            [
                step.float().gather(-1, new[:, t, None]).squeeze(-1) - torch.logsumexp(step.float(), dim=-1)
                for t, step in enumerate(steps)
            ],
            dim=1,
        )
        group = []
        for k in range(num_samples):
            toks = new[k].tolist()
            if cfg.stop:  # a sequence ended by a stop string is padded while the others go on
                while toks and toks[-1] == tokenizer.pad_token_id and tokenizer.pad_token_id not in eos_ids:
                    toks.pop()
            end = next((i for i, t in enumerate(toks) if t in eos_ids), None)
            if end is None:
                group.append(RawSample(toks, picked[k, : len(toks)].tolist(), "length"))
            else:
                group.append(RawSample(toks[: end + 1], picked[k, : end + 1].tolist(), "stop"))
        out.append(group)
        if progress is not None:
            progress.update(num_samples)
    return out


def _eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
