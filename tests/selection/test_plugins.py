"""Plug-in tables: pairing rules, metrics, implicit-reward forms and losses by name, and a user's own
metric, pairing rule or loss by "module:attr", each refused in one line when it is not one."""

import numpy as np
import pytest

from selfplay.config import SelectionConfig, TrainConfig
from selfplay.data.records import Prompt
from selfplay.errors import SelfplayError
from selfplay.selection.implicit import IMPLICIT_REWARDS, implicit_form
from selfplay.selection.metrics import METRICS, MetricParams, metric_spec, score
from selfplay.selection.pairing import PAIRINGS, Candidate, make_pairs
from selfplay.training.losses import LOSSES, loss_spec


def cands(pid, rewards):
    return [Candidate(pid, i, f"response {i}", r, -1.0 * i) for i, r in enumerate(rewards)]


def test_a_users_metric_function_and_spec_score_the_pool():
    d_ex, d_im = np.array([3.0, 1.0, 2.0]), np.array([0.5, -0.5, 0.0])
    ours = score("tests.selection.user_plugins:longest_margin", d_ex, d_im, MetricParams())
    assert ours.tolist() == score("explicit", d_ex, d_im, MetricParams()).tolist()
    assert score("tests.selection.user_plugins:SIGNED_ONLY", d_ex, d_im, MetricParams()).tolist() == [
        -0.5,
        0.5,
        0.0,
    ]
    assert metric_spec(
        "tests.selection.user_plugins:longest_margin"
    ).reads_implicit  # unknown: assume it reads


@pytest.mark.parametrize(
    "name,needle",
    [
        ("tests.selection.user_plugins:NOT_A_METRIC", "not a MetricSpec or a function"),
        ("tests.selection.nowhere:f", "cannot import 'tests.selection.nowhere'"),
        ("tests.selection.user_plugins:nope", "module 'tests.selection.user_plugins' has no 'nope'"),
    ],
)
def test_a_bad_reference_is_one_line(name, needle):
    with pytest.raises(SelfplayError, match=needle) as err:
        metric_spec(name)
    assert "\n" not in str(err.value) and str(err.value).startswith(f"selection.metric={name}")


def test_a_users_pairing_rule_pairs_each_prompt():
    prompts = [
        Prompt("p0", [{"role": "user", "content": "q"}]),
        Prompt("p1", [{"role": "user", "content": "r"}]),
    ]
    found = cands("p0", [0.1, 0.9, 0.5]) + cands("p1", [0.3, 0.3, 0.3])
    pairs, counts = make_pairs(prompts, found, 0, strategy="tests.selection.user_plugins:FIRST_VS_LAST")
    assert [(p.prompt_id, p.chosen_index, p.rejected_index) for p in pairs] == [("p0", 2, 0)]
    assert pairs[0].pair_id == "000-p0"  # one pair per prompt: no index suffix
    plain, _ = make_pairs(prompts, found, 0, strategy="tests.selection.user_plugins:first_vs_last")
    assert plain[0].pair_id == "000-p0-2-0"  # a bare function may give several: ids carry the indices
    with pytest.raises(
        SelfplayError, match=r"selection.pairing=best_vs_wrst: unknown .*did you mean best_vs_worst"
    ):
        make_pairs(prompts, found, 0, strategy="best_vs_wrst")


def test_tables_are_complete_and_checked_at_start():
    from selfplay.selection.checks import check_selection

    assert set(PAIRINGS) == {"best_vs_worst", "best_vs_random", "random_pair", "all_pairs"}
    assert set(METRICS) >= {"alignment_potential", "explicit", "random"} and set(IMPLICIT_REWARDS) == {
        "avg_logp",
        "sum_logp",
        "dpo",
    }
    assert implicit_form("dpo").needs_reference and not implicit_form("avg_logp").needs_reference
    assert implicit_form("avg_logp").value(-6.0, 3, None) == -2.0
    check_selection(SelectionConfig(metric="tests.selection.user_plugins:longest_margin"), "selection")
    with pytest.raises(SelfplayError, match="selection.pairing=nope"):
        check_selection(SelectionConfig(pairing="nope"), "selection")


def test_a_users_loss_is_a_lossspec():
    assert loss_spec(TrainConfig(loss="simpo")) is LOSSES["simpo"]
    from selfplay.training.losses import effective_beta

    mine = TrainConfig(loss="tests.selection.user_plugins:MY_DPO")
    assert loss_spec(mine).name == "my_dpo" and effective_beta(mine) == 0.05
    with pytest.raises(
        SelfplayError, match=r"train.loss=tests.selection.user_plugins:FIRST_VS_LAST: not a LossSpec"
    ):
        loss_spec(TrainConfig(loss="tests.selection.user_plugins:FIRST_VS_LAST"))
    with pytest.raises(SelfplayError, match="train.loss=orpo: unknown"):
        loss_spec(TrainConfig(loss="orpo"))
