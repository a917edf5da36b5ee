"""Training rows: TRL's conversational preference format, with reference log-probs when we have them."""

from __future__ import annotations

from typing import Any

from selfplay.config import ModelConfig, TrainConfig
from selfplay.data.records import Completion, Pair
from selfplay.models.loading import default_device, load_causal_lm, load_tokenizer, torch_dtype


def preference_rows(pairs: list[Pair]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": p.messages,
            "chosen": [{"role": "assistant", "content": p.chosen}],
            "rejected": [{"role": "assistant", "content": p.rejected}],
        }
        for p in pairs
    ]


def training_rows(
    pairs: list[Pair],
    sampled: dict[tuple[str, int], Completion],
    policy_path: str,
    reference_path: str,
    cfg: TrainConfig,
    model_cfg: ModelConfig,
    batch_size: int,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Rows for the trainer. For DPO with `reference_logprobs=precomputed` they carry
    ref_chosen_logps / ref_rejected_logps: sampled values where exact (`sampled` holds the completions
    of the reference policy in fp32), teacher-forced ones otherwise."""
    rows = preference_rows(pairs)
    if cfg.loss != "dpo" or cfg.reference_logprobs != "precomputed":
        return rows, {}
    import torch

    from selfplay.train.reference import reference_logps, trainer_sequences

    device = default_device()
    exact = torch_dtype(str(model_cfg.dtype), device) == torch.float32
    tokenizer = load_tokenizer(policy_path, model_cfg.trust_remote_code)
    seqs = trainer_sequences(pairs, tokenizer, cfg.max_length, sampled if exact else {})
    model = None
    if any(s.sampled is None for s in seqs):
        model = load_causal_lm(reference_path, "float32", model_cfg.trust_remote_code)
    values, stats = reference_logps(seqs, model, batch_size, device == "cuda", not exact)
    del model
    if device == "cuda":
        torch.cuda.empty_cache()
    for row, chosen, rejected in zip(rows, values[0::2], values[1::2]):
        row["ref_chosen_logps"], row["ref_rejected_logps"] = chosen, rejected
    return rows, stats
