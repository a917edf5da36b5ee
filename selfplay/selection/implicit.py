"""The implicit-reward forms, one table: how a response's log-probs under the policy (and, for a form
that needs one, under a reference) become its implicit reward (docs/method.md section 2)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ImplicitForm:
    value: Callable[[float, int, float | None], float]
    """(log-prob sum under pi_t, response tokens, log-prob sum under the reference) -> implicit reward;
    NaN where it cannot be computed (no tokens, no reference), which pairing drops and counts."""
    needs_reference: bool = False
    """Whether it reads the reference policy's log-probs (a teacher-forced pass of pi_0)."""


IMPLICIT_REWARDS: dict[str, ImplicitForm] = {
    "avg_logp": ImplicitForm(lambda s, n, ref: s / n if n > 0 else math.nan),
    "sum_logp": ImplicitForm(lambda s, n, ref: s),
    "dpo": ImplicitForm(lambda s, n, ref: s - ref if ref is not None else math.nan, needs_reference=True),
}
"""`selection.implicit_reward`: avg_logp = sum / |y| (end-of-sequence included; SimPO's implicit
reward without beta, the reference code's), sum_logp = sum, dpo = log pi_t(y|x) - log pi_ref(y|x)."""


def implicit_form(name: str) -> ImplicitForm:
    from selfplay.plugins import resolve

    return resolve(str(name), IMPLICIT_REWARDS, "selection.implicit_reward")
