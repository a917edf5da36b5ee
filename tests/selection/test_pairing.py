"""Best-vs-worst pairing: ties, identical responses, non-finite values and truncation are counted."""

import math

from selfplay.config import SelectionConfig
from selfplay.data.records import Prompt
from selfplay.selection.pairing import Candidate, make_pairs
from selfplay.selection.pipeline import implicit_reward, pair_and_select


def P(pid):
    return Prompt(pid, [{"role": "user", "content": f"q {pid}"}])


def C(pid, k, text, reward, implicit=-1.0, truncated=False):
    return Candidate(pid, k, text, reward, implicit, truncated)


def test_best_vs_worst_with_margins():
    pairs, stats = make_pairs(
        [P("a")],
        [C("a", 0, "x", 0.2, -1.0), C("a", 1, "y", 0.9, -2.0), C("a", 2, "z", 0.1, -0.5)],
        iteration=3,
    )
    (p,) = pairs
    assert (p.chosen, p.rejected, p.chosen_index, p.rejected_index) == ("y", "z", 1, 2)
    assert math.isclose(p.explicit_margin, 0.8) and math.isclose(p.implicit_margin, -1.5)
    assert p.pair_id == "003-a" and stats == {"prompts": 1, "pairs": 1}


def test_ties_go_to_the_lowest_sample_index():
    pairs, _ = make_pairs(
        [P("a")], [C("a", 0, "x", 0.5), C("a", 1, "y", 0.5), C("a", 2, "z", 0.1), C("a", 3, "w", 0.1)], 0
    )
    assert (pairs[0].chosen_index, pairs[0].rejected_index) == (0, 2)


def test_all_tied_identical_and_too_few_are_dropped_and_counted():
    prompts = [P("tied"), P("same"), P("one"), P("none"), P("ok")]
    cands = [
        C("tied", 0, "x", 0.3),
        C("tied", 1, "y", 0.3),
        C("same", 0, "dup", 0.9),
        C("same", 1, "dup", 0.1),
        C("one", 0, "x", 0.5),
        C("ok", 0, "good", 1.0),
        C("ok", 1, "bad", 0.0),
    ]
    pairs, stats = make_pairs(prompts, cands, 0)
    assert [p.prompt_id for p in pairs] == ["ok"]
    assert stats == {"prompts": 5, "pairs": 1, "tied": 1, "identical": 1, "too_few_responses": 2}


def test_keep_ties_keeps_a_tied_pair_with_margin_zero_as_the_reference_code_does():
    prompts = [P("tied"), P("same"), P("ok")]
    cands = [
        C("tied", 0, "x", 0.3, -1.0),
        C("tied", 1, "y", 0.3, -2.0),
        C("same", 0, "dup", 0.4),
        C("same", 1, "dup", 0.4),
        C("ok", 0, "good", 1.0),
        C("ok", 1, "bad", 0.0),
    ]
    pairs, stats = make_pairs(prompts, cands, 0, keep_ties=True)
    assert [p.prompt_id for p in pairs] == ["tied", "ok"]
    tied = pairs[0]  # the reference's stable argsort of equal rewards: the last response over the first
    assert (tied.chosen, tied.rejected, tied.explicit_margin, tied.implicit_margin) == ("y", "x", 0.0, -1.0)
    assert stats == {"prompts": 3, "pairs": 2, "tied_kept": 2, "identical": 1}  # identical text: dropped
    assert make_pairs(prompts, cands, 0)[1] == {"prompts": 3, "pairs": 1, "tied": 2}
    kept, stats = pair_and_select(prompts, cands, SelectionConfig(keep_ties=True, ratio=1.0), 0)
    assert len(kept.pairs) == 2 and stats["tied_kept"] == 2
    dropped, stats = pair_and_select(prompts, cands, SelectionConfig(ratio=1.0), 0)
    assert len(dropped.pairs) == 1 and stats["tied"] == 2


def test_nonfinite_and_truncated_responses():
    cands = [
        C("a", 0, "x", float("nan")),
        C("a", 1, "y", 0.5),
        C("a", 2, "z", 0.1, implicit=float("-inf")),
        C("a", 3, "t", 0.9, truncated=True),
        C("a", 4, "u", 0.2),
    ]
    pairs, stats = make_pairs([P("a")], cands, 0, exclude_truncated=True)
    assert (pairs[0].chosen, pairs[0].rejected) == ("y", "u")
    assert stats["nonfinite_responses"] == 2 and stats["truncated_responses"] == 1
    pairs, _ = make_pairs([P("a")], cands, 0, exclude_truncated=False)
    assert pairs[0].chosen == "t"


def test_implicit_reward_forms():
    assert implicit_reward(-6.0, 3, "avg_logp") == -2.0
    assert implicit_reward(-6.0, 3, "sum_logp") == -6.0
    assert math.isnan(implicit_reward(0.0, 0, "avg_logp"))


def test_pair_and_select_marks_kept_with_scores_and_ranks():
    prompts = [P(str(i)) for i in range(4)]
    # d_ex = [4, 2, 2, 0] needs a nonzero pair for prompt 3, so shift: chosen 4+e vs e etc.
    d_ex, d_im = [4, 2, 2, 1e-9], [0.5, -1.5, 0.5, 0.5]
    cands = []
    for i, (e, m) in enumerate(zip(d_ex, d_im)):
        cands += [C(str(i), 0, "w", e, m), C(str(i), 1, "l", 0.0, 0.0)]
    pairs, stats = pair_and_select(prompts, cands, SelectionConfig(ratio=0.5), 0)
    assert [p.kept for p in pairs] == [True, False, True, False]
    assert sorted(p.rank for p in pairs) == [0, 1, 2, 3]
    assert stats["pool"] == 4 and stats["kept"] == 2
    assert all(p.score is not None for p in pairs)


FOUR = [C("a", 0, "w", 0.1), C("a", 1, "x", 0.9), C("a", 2, "y", 0.5), C("a", 3, "z", 0.5)]


def test_all_pairs_with_min_margin():
    pairs, stats = make_pairs([P("a")], FOUR, 0, strategy="all_pairs", min_margin=0.35)
    got = sorted((p.chosen_index, p.rejected_index) for p in pairs)
    assert got == [(1, 0), (1, 2), (1, 3), (2, 0), (3, 0)]
    assert {p.pair_id for p in pairs} >= {"000-a-1-0", "000-a-2-0"}
    none, stats = make_pairs([P("a")], FOUR, 0, strategy="all_pairs", min_margin=5)
    assert none == [] and stats["no_pair_over_min_margin"] == 1


def test_best_vs_random_and_random_pair_are_seeded_per_prompt():
    for strategy in ("best_vs_random", "random_pair"):
        a, _ = make_pairs([P("a")], FOUR, 0, strategy=strategy, seed=1)
        b, _ = make_pairs(
            [P("b"), P("a")], FOUR + [C("b", 0, "q", 1.0), C("b", 1, "r", 0.0)], 0, strategy=strategy, seed=1
        )
        assert [(p.chosen_index, p.rejected_index) for p in a] == [
            (p.chosen_index, p.rejected_index) for p in b if p.prompt_id == "a"
        ]
        assert all(p.chosen_reward > p.rejected_reward for p in a)
    draws = {
        make_pairs([P("a")], FOUR, 0, strategy="best_vs_random", seed=s)[0][0].rejected_index
        for s in range(20)
    }
    assert draws == {0, 2, 3}  # every other response can be drawn; the best is always chosen


def test_nonfinite_can_be_refused():
    import pytest

    from selfplay.errors import SelfplayError

    cands = [C("a", 0, "x", float("inf")), C("a", 1, "y", 0.5)]
    with pytest.raises(SelfplayError, match="prompt a response 0 has reward inf"):
        pair_and_select([P("a")], cands, SelectionConfig(on_nonfinite="error"), 0)


def test_pool_all_rescores_earlier_pairs_with_this_iterations():
    first, _ = pair_and_select(
        [P("a")], [C("a", 0, "x", 1.0, -1), C("a", 1, "y", 0.0, -1)], SelectionConfig(), 0
    )
    pairs, stats = pair_and_select(
        [P("b"), P("c")],
        [C("b", 0, "x", 3.0), C("b", 1, "y", 0.0), C("c", 0, "x", 2.0), C("c", 1, "y", 0.0)],
        SelectionConfig(metric="explicit", ratio=0.67),
        1,
        earlier=first,
    )
    assert stats["pool"] == 3 and stats["pool_from_earlier"] == 1 and stats["kept"] == 2
    assert [(p.pair_id, p.kept) for p in pairs] == [("000-a", False), ("001-b", True), ("001-c", True)]


def test_selection_stats_quantiles_before_and_after():
    prompts = [P(str(i)) for i in range(10)]
    cands = [c for i in range(10) for c in (C(str(i), 0, "w", float(i + 1)), C(str(i), 1, "l", 0.0))]
    _, stats = pair_and_select(prompts, cands, SelectionConfig(metric="explicit", ratio=0.5), 0)
    assert stats["pool_explicit_margin_p50"] == 5.5 and stats["kept_explicit_margin_p50"] == 8.0
    assert stats["kept_explicit_margin_p10"] == 6.4
