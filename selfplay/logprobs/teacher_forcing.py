"""Teacher-forced per-token log-probs of responses given prompts (prompt tokens masked out), without
materialising the vocabulary for the whole batch: the model's final hidden states, then per response
a chunk of positions at a time through the output head, the chosen token's logit minus the chunk's
logsumexp (what TRL's selective_log_softmax does). Peak extra memory is one chunk x vocabulary."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

CHUNK = 256
"""Response positions per pass through the output head (chunk x vocabulary floats at a time)."""


def _head(model):
    """(decoder, head, postprocess) when the model's logits are head(decoder(x).last_hidden_state)
    up to a known elementwise postprocess; None for a model we cannot split that way."""
    import torch

    try:
        decoder, head = model.get_decoder(), model.get_output_embeddings()
    except Exception:  # not a standard decoder-only model
        return None
    if decoder is None or head is None or decoder is model:
        return None
    config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    cap = getattr(config, "final_logit_softcapping", None)
    scale = getattr(config, "logit_scale", None)
    divide = getattr(config, "logits_scaling", None)

    def post(logits):
        if scale:
            logits = logits * scale
        if divide:
            logits = logits / divide
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    return decoder, head, post


def _selective(hidden, targets, head, post, chunk: int):
    """log p(target) at each position of `hidden` ([n, H]) for `targets` ([n]), chunk by chunk."""
    import torch

    out = []
    for start in range(0, hidden.shape[0], chunk):
        logits = post(head(hidden[start : start + chunk])).float()
        picked = logits.gather(-1, targets[start : start + chunk, None]).squeeze(-1)
        out.append(picked - torch.logsumexp(logits, dim=-1))
    return torch.cat(out) if out else hidden.new_zeros(0)


def response_logprobs(
    model,
    sequences: list[tuple[list[int], list[int]]],
    batch_size: int = 16,
    chunk: int = CHUNK,
    progress=None,
) -> list[list[float]]:
    """For each (prompt_ids, response_ids): log pi(y_i | x, y_<i) of every response token.

    Batches are length-sorted and right-padded; the result is in input order."""
    import torch

    device = next(model.parameters()).device
    split = _head(model)
    checked = False
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
        ids, mask = ids.to(device), mask.to(device)
        with torch.inference_mode():
            if split is not None and not checked:
                split = _verified(model, split, ids[:1, : min(width, 16)], mask[:1, : min(width, 16)])
                checked = True
            if split is not None:
                decoder, head, post = split
                hidden = decoder(input_ids=ids, attention_mask=mask).last_hidden_state
            else:
                logits = model(input_ids=ids, attention_mask=mask).logits
        for j, i in enumerate(idx):
            prompt_len, resp = len(sequences[i][0]), sequences[i][1]
            if not resp:
                continue
            positions = torch.arange(prompt_len - 1, prompt_len - 1 + len(resp), device=device)
            targets = torch.tensor(resp, device=device)
            with torch.inference_mode():
                if split is not None:
                    values = _selective(hidden[j, positions], targets, head, post, chunk)
                else:  # the model's own logits, still one row at a time in chunks
                    values = _selective(logits[j, positions], targets, lambda x: x, lambda x: x, chunk)
            out[i] = values.cpu().tolist()
        if progress is not None:
            progress.update(len(idx))
    return out


def _verified(model, split, ids, mask):
    """The split if head(decoder(x)) reproduces the model's own logits on a short input, else None
    (then the model's full logits are used, row by row)."""
    import torch

    decoder, head, post = split
    try:
        ours = post(head(decoder(input_ids=ids, attention_mask=mask).last_hidden_state)).float()
        theirs = model(input_ids=ids, attention_mask=mask).logits.float()
    except Exception as err:  # an architecture whose decoder needs other inputs
        log.info("teacher forcing: using full logits (%s)", err)
        return None
    if ours.shape != theirs.shape or not torch.allclose(ours, theirs, rtol=1e-3, atol=1e-3):
        log.info("teacher forcing: the model's logits are not head(decoder(x)); using full logits")
        return None
    return split
