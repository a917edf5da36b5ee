"""Teacher-forced per-token log-probs of responses given prompts (prompt tokens masked out)."""

from __future__ import annotations


def response_logprobs(
    model, sequences: list[tuple[list[int], list[int]]], batch_size: int = 16
) -> list[list[float]]:
    """For each (prompt_ids, response_ids): log pi(y_i | x, y_<i) of every response token.

    Batches are length-sorted and right-padded; the result is in input order.
    """
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i][0]) + len(sequences[i][1]))
    out: list[list[float]] = [[] for _ in sequences]
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        rows = [sequences[i][0] + sequences[i][1] for i in idx]
        width = max(len(r) for r in rows)
        ids = torch.zeros(len(rows), width, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, : len(r)] = torch.tensor(r)
            mask[j, : len(r)] = 1
        with torch.inference_mode():
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
        logp = logits.float().log_softmax(-1)
        for j, i in enumerate(idx):
            prompt_len, resp = len(sequences[i][0]), sequences[i][1]
            if not resp:
                continue
            positions = torch.arange(prompt_len - 1, prompt_len - 1 + len(resp), device=logp.device)
            picked = logp[j, positions].gather(-1, torch.tensor(resp, device=logp.device)[:, None])
            out[i] = picked.squeeze(-1).cpu().tolist()
    return out
