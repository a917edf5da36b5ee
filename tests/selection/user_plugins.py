"""A user's own selection metric, pairing rule and loss, named as "module:attr" in tests."""

import numpy as np

from selfplay.selection.metrics import MetricSpec, zscore
from selfplay.selection.pairing import PairingSpec


def longest_margin(d_ex, d_im, params):
    """Keeps the pairs with the largest explicit margin, like `explicit` (a plain function)."""
    return zscore(d_ex)


SIGNED_ONLY = MetricSpec(lambda d_ex, d_im, p: -np.asarray(d_im), reads_implicit=True)


def first_vs_last(cands, rng, min_margin):
    """The first and the last sample, higher reward chosen (one pair per prompt)."""
    a, b = cands[0], cands[-1]
    return [(a, b) if a.reward > b.reward else (b, a)] if a.reward != b.reward else []


FIRST_VS_LAST = PairingSpec(first_vs_last)

NOT_A_METRIC = 3


def _my_dpo():
    import dataclasses

    from selfplay.training.losses import LOSSES

    return dataclasses.replace(LOSSES["dpo"], name="my_dpo", usual_beta=0.05)


MY_DPO = _my_dpo()
"""DPO with another usual beta: a LossSpec of one's own."""
