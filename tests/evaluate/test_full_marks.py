"""The share of held-out samples at full marks: declared by a rule (`full_marks`, the ifeval rule's 1.0),
none for judges without it; computed by hand on crafted rows, equal to IFEval's strict rate through the
evaluate stage, recorded in its typed statistics and on the model card."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from selfplay.config import Config, EvaluateJudgeConfig, JudgeConfig, JudgeKind, JudgeModelConfig
from selfplay.data.jsonl import read_jsonl, write_jsonl
from selfplay.data.records import Prompt
from selfplay.errors import SelfplayError
from selfplay.evaluate.heldout import strict_share, summary
from selfplay.judge.judging import full_marks
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import COMPLETION_TABLE, EVALUATED_CARD, RunLayout
from selfplay.rundir.stats import EvaluateStats

RULES = "tests.judge.rule_functions"


def test_rules_declare_full_marks_and_other_judges_none():
    assert full_marks(JudgeConfig(kind=JudgeKind.rule, rule="ifeval")) == 1.0
    assert full_marks(JudgeConfig(kind=JudgeKind.rule, rule=f"{RULES}:graded_share")) == 1.0
    assert full_marks(JudgeConfig(kind=JudgeKind.rule, rule="topical_variety")) is None
    rm = JudgeConfig(kind=JudgeKind.reward_model, model=JudgeModelConfig(path="/nowhere"))
    assert full_marks(rm) is None  # unbounded scores: nothing is loaded to say so


def test_a_rule_whose_full_marks_are_not_a_number_is_one_line_at_start():
    from selfplay.checks import check_judge

    cfg = EvaluateJudgeConfig(kind=JudgeKind.rule, rule=f"{RULES}:broken_full_marks")
    with pytest.raises(
        SelfplayError,
        match=r"^evaluate.judge.rule=.*broken_full_marks: its full_marks .* not a finite number",
    ):
        check_judge(cfg, "evaluate.judge")


def rows(rewards, policy="after"):
    return [
        {"policy": policy, "prompt_id": f"p{i}", "sample_index": 0, "text": "x", "num_tokens": 3, "reward": r}
        for i, r in enumerate(rewards)
    ]


def test_the_share_at_full_marks_by_hand():
    assert strict_share([1.0, 0.5, 1.0, 0.0], 1.0) == 0.5
    assert strict_share([1.0, float("nan"), float("inf")], 1.0) == pytest.approx(1 / 3)  # no finite reward
    assert math.isnan(strict_share([], 1.0))
    got = summary(rows([1.0, 0.5, 1.0, 0.0, None]), "after", 1.0)  # a null reward: not at full marks
    assert got["heldout_strict_after"] == pytest.approx(2 / 5)
    assert got["heldout_reward_after"] == pytest.approx(2.5 / 4)  # the mean stays over finite rewards
    assert "heldout_strict_after" not in summary(rows([1.0, 0.5]), "after")  # no full marks: no figure


def heldout_prompts(n: int) -> list[Prompt]:
    from selfplay.config import PromptsConfig
    from selfplay.data.prompts import load_prompt_pool

    return load_prompt_pool(PromptsConfig(source="bundled", path="ifeval", heldout_size=96)).heldout[:n]


def test_the_evaluate_stage_records_ifevals_strict_rate_and_the_card_shows_it(tmp_path):
    from selfplay.judge.rules import resolve_rule
    from selfplay.stages.evaluating import evaluate_finish
    from selfplay.tasks.ifeval import strict_rate

    prompts = heldout_prompts(6)
    answers = {  # crafted for the first 6 held-out prompts' constraints: all, part or none met
        "before": [
            "Hello [name].",  # a placeholder: met
            "It has bugs.",  # the word "errors" missing
            "An [outline] helps.",  # placeholder met, "outline" once: half
            "Essays take time.",  # no title
            "Chess is old.",  # far fewer than 60 words
            "<<Chess>>\n* one",  # title, one bullet of 2: half
        ],
        "after": [
            "Hello [name].",
            "Programs have errors.",  # met
            "An [outline], an outline, one more outline.",  # both met
            "<<Essays>>\nThey take time.",  # met
            "Chess is old.",
            "<<Chess>>\n* one\n* two",  # both met
        ],
    }
    rule = resolve_rule("ifeval")
    lines = []
    for policy, texts in answers.items():
        meta = [{"prompt_id": p.prompt_id} for p in prompts]
        rewards = rule([p.messages for p in prompts], texts, meta)
        lines += [
            {
                "policy": policy,
                "prompt_id": p.prompt_id,
                "sample_index": 0,
                "text": t,
                "num_tokens": 4,
                "reward": r,
            }
            for p, t, r in zip(prompts, texts, rewards)
        ]
    strict = {policy: strict_rate([p.messages for p in prompts], texts) for policy, texts in answers.items()}
    assert strict == pytest.approx({"before": 1 / 6, "after": 5 / 6})  # as crafted

    def finish(judge: EvaluateJudgeConfig, name: str) -> tuple[EvaluateStats, str]:
        layout = RunLayout(tmp_path / name)
        out = layout.partial_dir(0, "evaluate")
        out.mkdir(parents=True)
        write_jsonl(out / "heldout.jsonl", lines)
        cfg = Config()
        cfg = replace(cfg, evaluate=replace(cfg.evaluate, judge=judge))
        ctx = StageContext(cfg, layout, 0, out, "pi0", "pi0", stage="evaluate")
        stats = evaluate_finish(ctx, prompts, out / "heldout.jsonl")
        assert (out / COMPLETION_TABLE).is_file() and len(read_jsonl(out / "heldout.jsonl")) == 12
        return stats, (out / EVALUATED_CARD).read_text()

    stats, card = finish(EvaluateJudgeConfig(kind=JudgeKind.rule, rule="ifeval"), "gold")
    assert stats.heldout_strict_before == pytest.approx(strict["before"])
    assert stats.heldout_strict_after == pytest.approx(strict["after"])
    assert stats.heldout_judge == "rule:ifeval"
    assert EvaluateStats.from_dict(stats.to_dict()) == stats  # a marker holds and reads it back
    assert f"| share at full marks (strict) | {strict['after']:.4g} |" in card

    other, card = finish(EvaluateJudgeConfig(kind=JudgeKind.rule, rule="topical_variety"), "plain")
    assert other.heldout_strict_before is None and other.heldout_strict_after is None
    assert "heldout_strict_after" not in other.to_dict() and "full marks" not in card
