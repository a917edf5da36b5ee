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
