"""Reference log-probs for DPO, handed to TRL so that it runs no reference forward pass.

When the reference is pi_t, each response's reference log-prob is the sum of the log-probs recorded
when pi_t sampled it, provided the trainer will see exactly those token ids (checked per response)
and the numerics are exact (fp32). Otherwise one teacher-forced pass of the reference policy over the
training pairs, on the trainer's own tokenisation and truncation, replaces TRL's per-step reference.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from selfplay.data.chat import trainer_token_ids, truncate
from selfplay.data.records import Completion, Pair


@dataclass(frozen=True)
class Sequence:
    prompt_ids: list[int]
    response_ids: list[int]
    sampled: Completion | None
    """The completion the response was sampled as, when its token ids equal the trainer's."""


def trainer_sequences(
    pairs: list[Pair], tokenizer, max_length: int, sampled: dict[tuple[str, int], Completion]
) -> list[Sequence]:
    """Per pair, the chosen then the rejected sequence as the trainer tokenises and truncates them."""
    out = []
    for p in pairs:
        for index, text in ((p.chosen_index, p.chosen), (p.rejected_index, p.rejected)):
            prompt, response = trainer_token_ids(tokenizer, p.messages, text)
            kept = truncate(prompt, response, max_length)
            c = sampled.get((p.prompt_id, index))
            same = c is not None and kept == (prompt, response) and c.token_ids == response
            out.append(Sequence(kept[0], kept[1], c if same else None))
    return out


def reference_logps(
    seqs: list[Sequence], reference_model, batch_size: int, on_cuda: bool, bf16: bool
) -> tuple[list[float], dict[str, int]]:
    """One log-prob sum per sequence: the sampled one where exact, else teacher-forced with the
    reference model under the trainer's autocast."""
    import torch

    from selfplay.logprobs.teacher_forcing import response_logprobs

    values: list[float | None] = [
        float(sum(s.sampled.logprobs)) if s.sampled is not None else None for s in seqs
    ]
    todo = [i for i, v in enumerate(values) if v is None]
    if todo:
        autocast = (
            torch.autocast("cuda", dtype=torch.bfloat16) if (on_cuda and bf16) else contextlib.nullcontext()
        )
        with autocast:
            forced = response_logprobs(
                reference_model, [(seqs[i].prompt_ids, seqs[i].response_ids) for i in todo], batch_size
            )
        for i, lp in zip(todo, forced):
            values[i] = float(sum(lp))
    stats = {"ref_logps_from_sampling": len(seqs) - len(todo), "ref_logps_teacher_forced": len(todo)}
    return [float(v) for v in values], stats  # type: ignore[arg-type]
