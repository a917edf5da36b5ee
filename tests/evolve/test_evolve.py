"""Evolve-then-select: templates, each filter on crafted cases, parent choice, config checks."""

from collections import Counter

import pytest

from selfplay.checks import check_config
from selfplay.config import Config, EvolveConfig
from selfplay.data.records import Pair, Prompt
from selfplay.errors import SelfplayError
from selfplay.evolve.filters import filter_rewrites, strip_preamble
from selfplay.evolve.rewrite import choose_parents, rewrite_requests
from selfplay.evolve.templates import load_templates, render

STRATEGIES = ["breadth", "deepen", "constraints", "concretize", "reasoning"]


def test_bundled_templates_render_with_the_prompt_inserted():
    templates = load_templates(STRATEGIES, None)
    assert set(templates) == set(STRATEGIES)
    for text in templates.values():
        out = render(text, "Tell me about bees.")
        assert "Prompt: Tell me about bees." in out and "{prompt}" not in out and "no preamble" in out
    tiny = load_templates(STRATEGIES, "selfplay:evolve_tiny")
    assert render(tiny["breadth"], "bees") == "What should I know about bees ?"


def test_template_errors(tmp_path):
    (tmp_path / "mine.txt").write_text("Rewrite this prompt please.")
    with pytest.raises(SelfplayError, match="needs exactly one {prompt} placeholder, has 0"):
        load_templates(["mine"], str(tmp_path))
    with pytest.raises(SelfplayError, match="no template for strategy 'sideways'.*known: mine"):
        load_templates(["sideways"], str(tmp_path))


@pytest.mark.parametrize(
    "evolve,message",
    [
        (
            EvolveConfig(enabled=True, strategies=["breadth", "sideways"]),
            "no template for strategy 'sideways'",
        ),
        (
            EvolveConfig(enabled=True, parents="top", top_fraction=0.0),
            r"evolve.top_fraction=0.0 must be in \(0, 1\]",
        ),
        (EvolveConfig(enabled=True, top_fraction=1.5), r"evolve.top_fraction=1.5"),
        (EvolveConfig(enabled=True, rewrites_per_prompt=0), "rewrites_per_prompt=0"),
    ],
)
def test_bad_evolve_config_fails_at_config_time(evolve, message):
    with pytest.raises(SelfplayError, match=message):
        check_config(Config(evolve=evolve))


@pytest.mark.parametrize(
    "text,clean",
    [
        ("Here is the rewritten prompt: Explain bees.", "Explain bees."),
        ('Sure! Here\'s a new prompt: "Explain bees."', "Explain bees."),
        ("#Rewritten Prompt#: Explain bees.", "Explain bees."),
        ("Rewritten prompt - Explain bees.", "Explain bees."),
        ("Explain bees: why do they dance?", "Explain bees: why do they dance?"),
    ],
)
def test_preamble_is_stripped(text, clean):
    assert strip_preamble(text)[0] == clean


def run_filters(rewrites, existing=(), preamble="strip", too_long=lambda t: False):
    return filter_rewrites(rewrites, list(existing), 0.2, 5.0, preamble, too_long)


def test_each_filter_counts_its_drops():
    original = "Tell me about bees and honey."  # 29 characters
    rewrites = [
        (original, ""),  # empty
        (original, "Bees?"),  # 5/29 < 1/5: length_ratio
        (original, "x" * 150),  # 150/29 > 5: length_ratio
        (original, "Explain how bees make honey in a hive."),  # kept
        (original, "Explain how bees make honey in a hive."),  # duplicate
        (original, "explain  how BEES make honey in a hive."),  # near_duplicate
        (original, "Tell me about bees and honey."),  # same as an existing prompt: duplicate
        (original, "A very long but otherwise fine prompt."),  # too_long (by the callback)
    ]
    keep, counts = run_filters(rewrites, existing=[original], too_long=lambda t: t.startswith("A very long"))
    assert keep == [3]
    assert counts == Counter(empty=1, length_ratio=2, duplicate=2, near_duplicate=1, too_long=1)


def test_preamble_drop_mode():
    keep, counts = run_filters(
        [("Tell me about bees.", "Here is the new prompt: Explain bees now.")], preamble="drop"
    )
    assert keep == [] and counts == Counter(preamble=1)


def P(pid):
    return Prompt(pid, [{"role": "user", "content": f"question {pid}"}])


def test_parents_all_or_top_fraction_by_score():
    prompts = [P(str(i)) for i in range(8)]
    pairs = [
        Pair(f"000-{i}", str(i), [], "a", "b", 0, 1, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, score=-i, rank=i)
        for i in range(8)
    ]
    assert choose_parents(prompts, pairs, EvolveConfig()) == prompts
    top = choose_parents(prompts, pairs, EvolveConfig(parents="top", top_fraction=0.25))
    assert [p.prompt_id for p in top] == ["0", "1"]


def test_rewrite_requests_are_seeded_per_parent():
    templates = load_templates(STRATEGIES, None)
    a = rewrite_requests([P("x"), P("y")], templates, EvolveConfig(rewrites_per_prompt=2), 0, 1)
    b = rewrite_requests([P("y")], templates, EvolveConfig(rewrites_per_prompt=2), 0, 1)
    assert len(a) == 4 and [s for p, _, s in a if p.prompt_id == "y"] == [s for _, _, s in b]
    parent, request, strategy = a[0]
    assert request.prompt_id == f"x~{strategy}" and "question x" in request.messages[0]["content"]
    assert len(rewrite_requests([P("x")], templates, EvolveConfig(rewrites_per_prompt=9), 0, 1)) == 5


def test_a_rewrite_cut_at_the_token_limit_is_dropped_and_counted():
    """A rewrite that stopped on `length` is not a whole prompt, whatever its length ratio says."""
    from selfplay.config import EvolveConfig
    from selfplay.data.records import Completion
    from selfplay.evolve.rewrite import evolved_prompts

    parents = [P("a"), P("b")]
    requests = [Prompt(f"{p.prompt_id}~deepen", [{"role": "user", "content": "rewrite"}]) for p in parents]
    triples = [(p, r, "deepen") for p, r in zip(parents, requests)]
    text = "Explain it in three steps."
    rewrites = {
        requests[0].prompt_id: Completion(
            prompt_id=requests[0].prompt_id, sample_index=0, text=text, finish_reason="length"
        ),
        requests[1].prompt_id: Completion(
            prompt_id=requests[1].prompt_id, sample_index=0, text=text + " Why?", finish_reason="stop"
        ),
    }
    new, rows, counts = evolved_prompts(triples, rewrites, EvolveConfig(), lambda t: False, 0)
    assert [p.parent_id for p in new] == ["b"] and counts["truncated"] == 1
    assert [r["kept"] for r in rows] == [False, True]


def test_rewrite_limit_defaults_to_the_response_limit():
    from selfplay.config import EvolveConfig

    assert EvolveConfig().max_tokens is None  # null: generate.max_tokens (tested end to end in evolve runs)
