"""The built-in rule rewards: bounded, not won by repeating a word, and user functions by name."""

import pytest

from selfplay.judge.rules import resolve_rule, topical_variety

PROMPT = "Tell me about bees."


def test_bounded_and_empty():
    assert topical_variety(PROMPT, "") == 0.0
    good = " ".join(["bees"] + [f"w{i}" for i in range(40)])
    assert 0.99 <= topical_variety(PROMPT, good) <= 1.0


def test_repeating_one_word_scores_low():
    assert topical_variety(PROMPT, "bees " * 40) < 0.05
    varied = "bees make honey in the hive and the queen lays eggs while workers gather nectar"
    assert topical_variety(PROMPT, varied) > 0.5


def test_topic_words_count():
    plain = "one two three four five six seven eight nine ten eleven twelve"
    assert topical_variety(PROMPT, plain + " bees") > topical_variety(PROMPT, plain + " cats")


def test_user_function_by_module_path():
    fn = resolve_rule("selfplay.judge.rules:length_penalized_distinct")
    assert fn("x", "a b c") == pytest.approx(3 / 24)


@pytest.mark.parametrize(
    "name,msg",
    [
        ("nope", "unknown rule 'nope'"),
        ("no.such.module:f", "cannot import"),
        ("selfplay.judge.rules:missing", "has no function 'missing'"),
    ],
)
def test_bad_rule_names(name, msg):
    with pytest.raises(ValueError, match=msg):
        resolve_rule(name)


def _score(rule, batch_size=4, items=None):
    from selfplay.config import JudgeConfig
    from selfplay.judge.judging import load_judge

    items = items or [
        (
            [{"role": "system", "content": "s"}, {"role": "user", "content": f"Tell me about bees {i}."}],
            f"bees hive {i} " * (i % 3),
            {
                "prompt_id": f"p{i}",
                "sample_index": 0,
                "num_tokens": 2,
                "finish_reason": "stop" if i % 4 else "length",
            },
        )
        for i in range(10)
    ]
    scorer = load_judge(JudgeConfig(rule=f"tests.judge.rule_functions:{rule}", batch_size=batch_size)).scorer
    return scorer.score(items)[0], items


def test_batched_and_async_rules_equal_the_per_response_rule():
    from tests.judge import rule_functions

    plain, items = _score("single_async")
    assert plain == [topical_variety(m[-1]["content"], r) for m, r, _ in items]
    assert _score("batched", batch_size=3)[0] == plain
    rule_functions.CALLS.clear()
    with_meta, _ = _score("batched_async_with_metadata", batch_size=4)
    assert rule_functions.CALLS == [4, 4, 2]  # judge.batch_size responses per call
    assert with_meta == [v - (1.0 if i % 4 == 0 else 0.0) for i, v in enumerate(plain)]  # metadata reached it


@pytest.mark.parametrize(
    "rule,needle",
    [
        ("batched_one_short", "(batched) returned 3 values for 4 responses (responses p0/0 to p3/0)"),
        ("batched_with_a_string", "returned 'high' (str), not a number (prompt p0, response 0)"),
        ("batched_raises", "raised RuntimeError: the grader is down (responses p0/0 to p3/0)"),
    ],
)
def test_a_batched_rule_that_answers_wrongly_is_one_line(rule, needle):
    from selfplay.errors import SelfplayError

    with pytest.raises(SelfplayError) as err:
        _score(rule)
    assert str(err.value).startswith(f"judge.rule=tests.judge.rule_functions:{rule} ") and needle in str(
        err.value
    )


def test_a_run_judged_by_a_batched_async_rule(tmp_path):
    """The batched form through the whole loop: judge.batch_size responses per call, metadata passed."""
    from selfplay import api
    from tests.judge import rule_functions

    rule_functions.CALLS.clear()
    result = api.run(
        [
            "debug=tiny",
            "generate.backend=hf",
            "loop.iterations=1",
            "loop.progress=false",
            "evaluate.enabled=false",
            "judge.rule=tests.judge.rule_functions:batched_async_with_metadata",
            "judge.batch_size=20",
            f"loop.output_dir={tmp_path}",
        ]
    )
    assert rule_functions.CALLS == [20, 20, 8]  # 12 prompts x 4 samples, 20 per call
    assert result.final_policy is not None
