"""Pairwise agreement of a judge with the gold judge, by hand: only pairs of one prompt's samples whose
gold rewards differ count; a judge's tie is half an agreement; rows without finite rewards are left out."""

import math

from selfplay.evaluate.agreement import pairwise_agreement


def row(prompt, gold, judge):
    return {"prompt_id": prompt, "gold": gold, "judge": judge}


def test_agreement_by_hand():
    rows = [
        row("a", 1.0, 2.0),  # a: gold 1 > 0.5 > 0; judge 2 > -1 = -1 -> (1,0.5) agree, (1,0) agree,
        row("a", 0.5, -1.0),  #    (0.5,0) judge tie: 1/2
        row("a", 0.0, -1.0),
        row("b", 1.0, 0.0),  # b: gold 1 > 0, judge 0 < 3: disagree
        row("b", 0.0, 3.0),
        row("c", 0.5, 1.0),  # c: gold tie: no pair
        row("c", 0.5, 9.0),
        row("d", 1.0, float("nan")),  # d: a NaN judge reward leaves one sample, no pair
        row("d", 0.0, 1.0),
        row("e", None, 1.0),
    ]
    got = pairwise_agreement(rows)
    assert got == {"pairs": 4, "agreement": (1 + 1 + 0.5 + 0) / 4, "prompts": 2}


def test_no_pairs_is_nan_and_other_keys():
    got = pairwise_agreement([{"prompt_id": "a", "reward": 1.0, "rm": 0.0}], gold="reward", judge="rm")
    assert got["pairs"] == 0 and math.isnan(got["agreement"]) and got["prompts"] == 0
    same = [{"prompt_id": "a", "reward": r, "rm": r * 3} for r in (0.0, 0.5, 1.0)]
    assert pairwise_agreement(same, gold="reward", judge="rm")["agreement"] == 1.0
