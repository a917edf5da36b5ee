"""transformers backend: the fallback when vLLM is absent, and the raw-log-prob yardstick.

Prompts are sampled in batches (`generate.hf_batch_size` sequences per forward: prompts x K), left-
padded, with one KV cache per batch. Each prompt draws its tokens from its own random generator seeded
with the prompt's seed, as vLLM does per request, so a prompt's samples do not depend on which prompts
share its batch; a batch of one prompt reproduces transformers' `generate` bit for bit. Batching changes
only the shapes of the matrix products, so log-probs can differ in the last bits (~4e-6 measured)
between batch sizes. The sampling math is transformers' own: its minimum-length rule and temperature,
top-k and top-p warpers, in the order its `generate` applies them. Stop strings are matched on the
decoded text of each row's last tokens, as vLLM matches its output text. Sampling settings in the
model's own `generation_config` (repetition penalty, a default top-k) are not applied, as the vLLM
backend does not apply them either: generate.* alone says how to sample.
"""

from __future__ import annotations

import inspect
from typing import Any

from selfplay.config import GenerateConfig
from selfplay.errors import SelfplayError
from selfplay.generate.requests import RawSample, SampleRequest


def hf_generate(
    model, tokenizer, requests: list[SampleRequest], cfg: GenerateConfig, num_samples: int, progress=None
) -> list[list[RawSample]]:
    """K samples per request, in batches of prompts of similar length; results in request order.

    Log-probs come from the raw logits (before temperature/top-p), like vLLM's raw mode, or from the
    processed scores (the distribution sampled from) with `logprobs_mode=processed`."""
    per_batch = max(1, cfg.hf_batch_size // num_samples)
    # Similar lengths together (less padding); ties in request order, so the plan depends on the
    # requests alone.
    order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt_ids))
    out: list[list[RawSample] | None] = [None] * len(requests)
    for start in range(0, len(order), per_batch):
        chunk = order[start : start + per_batch]
        groups = _sample_batch(model, tokenizer, [requests[i] for i in chunk], cfg, num_samples)
        for i, group in zip(chunk, groups):
            out[i] = group
        if progress is not None:
            progress.update(len(chunk) * num_samples)
    return [g for g in out if g is not None]


def _sample_batch(
    model, tokenizer, requests: list[SampleRequest], cfg: GenerateConfig, k: int
) -> list[list[RawSample]]:
    import torch
    from transformers.generation import (
        LogitsProcessorList,
        MinNewTokensLengthLogitsProcessor,
        TemperatureLogitsWarper,
        TopKLogitsWarper,
        TopPLogitsWarper,
    )

    device = next(model.parameters()).device
    processed = cfg.logprobs_mode == "processed"
    eos_ids = sorted(_eos_ids(model, tokenizer))
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (eos_ids or [0])[0]
    context = cfg.max_model_len or getattr(model.config, "max_position_embeddings", None)
    width = max(len(r.prompt_ids) for r in requests)
    rows = len(requests) * k

    ids = torch.full((rows, width), pad, dtype=torch.long, device=device)
    mask = torch.zeros((rows, width), dtype=torch.long, device=device)
    limit = torch.empty(rows, dtype=torch.long, device=device)  # new tokens allowed per row
    for b, req in enumerate(requests):
        n = len(req.prompt_ids)
        ids[b * k : (b + 1) * k, width - n :] = torch.tensor(req.prompt_ids, device=device)
        mask[b * k : (b + 1) * k, width - n :] = 1
        # A prompt that fills the context gets no tokens (sample_completions skips those before).
        limit[b * k : (b + 1) * k] = min(cfg.max_tokens, context - n) if context else cfg.max_tokens
    generators = [torch.Generator(device=device).manual_seed(req.seed) for req in requests]

    # transformers' sampling pipeline, in its generate's order.
    processors = LogitsProcessorList()
    if cfg.ignore_eos:
        processors.append(MinNewTokensLengthLogitsProcessor(width, cfg.max_tokens, eos, device=device))
    if cfg.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(cfg.temperature))
    if cfg.top_k > 0:
        processors.append(TopKLogitsWarper(top_k=cfg.top_k))
    if cfg.top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p=cfg.top_p))
    # A stop string ends a row once it appears in the text of the row's last tokens (enough of them to
    # hold the longest stop string), checked after every token, as vLLM checks its output text.
    stop_window = max((len(s) for s in cfg.stop), default=0) + 4

    tokens: list[torch.Tensor] = []
    logprobs: list[torch.Tensor] = []
    done = limit <= 0
    if bool(done.all()):
        return [[RawSample([], [], "length") for _ in range(k)] for _ in requests]
    finished = done.view(len(requests), k).all(dim=1).tolist()  # per prompt: all its rows ended
    ended_at = torch.full((rows,), -1, dtype=torch.long, device=device)  # step of each row's last token
    # Positions as transformers' generate derives them from the mask (padding positions are masked),
    # for models whose forward takes them (as generate passes them); logits of the last position only.
    takes = inspect.signature(model.forward).parameters
    with_positions = "position_ids" in takes
    first: dict[str, Any] = {"logits_to_keep": 1} if "logits_to_keep" in takes else {}
    if with_positions:
        first["position_ids"] = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    with torch.inference_mode():
        out = model(input_ids=ids, attention_mask=mask, use_cache=True, **first)
        if getattr(out, "past_key_values", None) is None:
            raise SelfplayError(
                f"generate.backend=hf: a {model.config.model_type} model returns no attention key/value "
                "cache to sample from in batches; use generate.backend=vllm for it"
            )
        for step in range(int(limit.max())):
            raw = out.logits[:, -1].to(dtype=torch.float32, copy=True)
            scores = processors(ids, raw)  # type: ignore[arg-type]
            probs = torch.softmax(scores, dim=-1)
            nxt = torch.full((rows,), pad, dtype=torch.long, device=device)
            for b, gen in enumerate(generators):
                if not finished[b]:
                    nxt[b * k : (b + 1) * k] = torch.multinomial(
                        probs[b * k : (b + 1) * k], 1, generator=gen
                    ).squeeze(1)
            nxt = torch.where(done, pad, nxt)
            picked = scores if processed else raw
            logprobs.append(picked.gather(-1, nxt[:, None]).squeeze(-1) - torch.logsumexp(picked, dim=-1))
            tokens.append(nxt)
            ids = torch.cat([ids, nxt[:, None]], dim=-1)
            ends = torch.isin(nxt, eos) | (step + 1 >= limit)
            if cfg.stop:
                ends |= _stopped(tokenizer, ids[:, -min(step + 1, stop_window) :], cfg.stop, done, device)
            ended_at = torch.where(~done & ends, step, ended_at)
            done |= ends
            finished = done.view(len(requests), k).all(dim=1).tolist()  # the step's one device sync
            if all(finished):
                break
            # Ended rows attend to nothing new and their positions stay put, so they never run past the
            # context (learned position tables) nor move a batch-wide position statistic.
            mask = torch.cat([mask, (~done).long()[:, None]], dim=-1)
            step_positions = {"position_ids": mask.sum(-1, keepdim=True) - 1} if with_positions else {}
            out = model(
                input_ids=nxt[:, None],
                attention_mask=mask,
                past_key_values=out.past_key_values,
                use_cache=True,
                **step_positions,
            )
    new = torch.stack(tokens, dim=1).tolist()
    lps = torch.stack(logprobs, dim=1).tolist()
    last = ended_at.tolist()
    eos_set = set(eos_ids)
    groups: list[list[RawSample]] = []
    for b in range(len(requests)):
        group = []
        for r in range(b * k, (b + 1) * k):
            toks = new[r][: last[r] + 1]
            reason = "stop" if toks and toks[-1] in eos_set else "length"
            group.append(RawSample(toks, lps[r][: last[r] + 1], reason))
        groups.append(group)
    return groups


def _stopped(tokenizer, tails, stop: list[str], done, device):
    """Rows (not yet done) whose recent text contains a stop string."""
    import torch

    hit = [
        not finished and any(s in tokenizer.decode(tail, skip_special_tokens=True) for s in stop)
        for tail, finished in zip(tails.tolist(), done.tolist())
    ]
    return torch.tensor(hit, dtype=torch.bool, device=device)


def _eos_ids(model, tokenizer) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids
