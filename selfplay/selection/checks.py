"""The selection section's own checks (the loop's, evolve's and offline selection's selection), next
to the tables they read: offline selection and the API check a selection without the whole config's
checks."""

from __future__ import annotations

from selfplay.config import SelectionConfig
from selfplay.errors import SelfplayError


def check_selection(s: SelectionConfig, key: str) -> None:
    """The metric, pairing rule and implicit-reward form exist, and how many pairs a selection keeps
    (the loop's, evolve's and offline selection's)."""
    from selfplay.selection.implicit import IMPLICIT_REWARDS
    from selfplay.selection.metrics import metric_spec
    from selfplay.selection.pairing import pairing_spec

    metric_spec(str(s.metric), f"{key}.metric")
    pairing_spec(str(s.pairing), f"{key}.pairing")
    if str(s.implicit_reward) not in IMPLICIT_REWARDS:
        raise SelfplayError(
            f"{key}.implicit_reward={s.implicit_reward}: expected one of {', '.join(IMPLICIT_REWARDS)}"
        )
    if s.count is None and s.ratio is not None and not 0 < s.ratio <= 1:
        raise SelfplayError(f"{key}.ratio={s.ratio} must be in (0, 1] (or set {key}.count)")
    if s.count is not None and s.count < 1:
        raise SelfplayError(
            f"{key}.count={s.count}: keeps no pair, so nothing would train; set {key}.count >= 1 "
            f"(or {key}.count=null and {key}.ratio)"
        )
