"""judge.kind=generative: an LLM judge scoring from label probabilities (pointwise expected rating,
pairwise A/B in both orders with a Bradley-Terry fit), on the tiny policy (plain and ChatML templates),
through transformers and vLLM (equal), and the policy judging its own samples in a run."""

import math

import numpy as np
import pytest

from selfplay.config import JudgeKind, JudgeMode
from selfplay.errors import SelfplayError
from selfplay.judge.generative import bradley_terry, expected_rating, prefer_first
from selfplay.judge.judging import load_judge
from selfplay.judge.kinds import JudgeRuntime
from tests.judge.settings import judge_config


def vocab_labels(model_path, n):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    return [w for w in sorted(tok.get_vocab()) if w.isalpha() and len(w) > 3][:n]


def items(k=4, prompts=3):
    return [
        (
            [{"role": "user", "content": f"Tell me about bees number {p}."}],
            ["bees make honey in the hive", "bees bees bees", "the queen lays eggs", ""][s % 4] + f" {p}",
            {"prompt_id": f"p{p}", "sample_index": s, "num_tokens": 5, "finish_reason": "stop"},
        )
        for p in range(prompts)
        for s in range(k)
    ]


def scorer(path, mode="pointwise", backend="hf", **fields):
    from selfplay.config import GenerateConfig, ModelConfig

    labels = vocab_labels(path, 5)
    cfg = judge_config(
        kind=JudgeKind.generative,
        **{"max_length": 256, "batch_size": 4, **fields},
        path="policy",
        backend=backend,
        mode=JudgeMode(mode),
        labels=labels,
        pair_labels=labels[:2],
    )
    gen = GenerateConfig(backend=backend, max_model_len=512, seed=0)
    return load_judge(cfg, runtime=JudgeRuntime(path, gen, ModelConfig(path=path))).scorer


def test_the_arithmetic():
    lp = np.log(np.array([[0.1, 0.2, 0.7], [1.0, 1.0, 1.0]]) / 1.0)
    assert expected_rating(lp) == pytest.approx([0.1 + 0.4 + 2.1, 2.0])
    assert prefer_first(np.log(np.array([[0.3, 0.1]]))) == pytest.approx([0.75])
    wins = np.array([[0, 0.9, 0.9], [0.1, 0, 0.8], [0.1, 0.2, 0]])  # 0 beats 1 beats 2
    s = bradley_terry(wins)
    assert s[0] > s[1] > s[2] and s.sum() == pytest.approx(0, abs=1e-9)
    assert bradley_terry(np.full((3, 3), 0.5) * (1 - np.eye(3))) == pytest.approx([0, 0, 0], abs=1e-9)
    assert np.isfinite(bradley_terry(np.array([[0, 1.0], [0.0, 0]]))).all()  # a clean sweep stays finite


def test_pointwise_ratings_are_probabilities_and_padding_changes_nothing(any_tiny_policy):
    rewards, truncated = scorer(any_tiny_policy).score(items())
    assert all(1.0 <= r <= 5.0 for r in rewards) and len(set(round(r, 9) for r in rewards)) > 3
    one_by_one, _ = scorer(any_tiny_policy, batch_size=1).score(items())
    assert rewards == pytest.approx(one_by_one, abs=1e-5) and truncated == [False] * 12


def test_pairwise_is_a_bradley_terry_fit_per_prompt_and_order_does_not_matter(tiny_policy):
    data = items()
    rewards, _ = scorer(tiny_policy, "pairwise").score(data)
    for p in range(3):
        assert sum(rewards[4 * p : 4 * p + 4]) == pytest.approx(0, abs=1e-6)  # log-strengths, mean 0
    shuffled = [data[i] for i in (3, 1, 0, 2, 7, 5, 6, 4, 11, 8, 9, 10)]
    again, _ = scorer(tiny_policy, "pairwise").score(shuffled)
    by_key = {(m["prompt_id"], m["sample_index"]): r for (_, _, m), r in zip(shuffled, again)}
    assert [by_key[(m["prompt_id"], m["sample_index"])] for _, _, m in data] == pytest.approx(
        rewards, abs=1e-6
    )


def test_long_responses_are_cut_to_the_judges_length_and_flagged(tiny_policy):
    data = items(k=2, prompts=1)
    data[0] = (data[0][0], "bees " * 400, data[0][2])
    rewards, truncated = scorer(tiny_policy, max_length=200).score(data)
    assert truncated == [True, False] and all(math.isfinite(r) for r in rewards)


@pytest.mark.parametrize(
    "fields,needle",
    [
        ({"path": None}, "judge.model.path: required with judge.kind=generative"),
        (
            {"path": "policy", "mode": JudgeMode.pairwise, "pair_labels": ["A"]},
            "judge.generative.pair_labels=['A']: expected two labels",
        ),
        (
            {"path": "policy", "template": "Rate {answer}"},
            "judge.generative.template: placeholders ['answer']",
        ),
    ],
)
def test_bad_settings_are_refused_at_start(fields, needle):
    from selfplay.checks import check_judge

    with pytest.raises(SelfplayError) as err:
        check_judge(judge_config(kind=JudgeKind.generative, **fields), "judge")
    assert str(err.value).startswith(needle)


def test_labels_that_are_not_one_known_token_are_one_line(tiny_policy):
    from selfplay.config import ModelConfig

    cfg = judge_config(kind=JudgeKind.generative, path="policy")  # "1".."5": not in the tiny vocabulary
    with pytest.raises(
        SelfplayError, match=r"judge.generative.labels: '1' is an unknown token for the judge's tokenizer"
    ):
        load_judge(cfg, runtime=JudgeRuntime(tiny_policy, None, ModelConfig(path=tiny_policy)))


@pytest.mark.vllm
@pytest.mark.parametrize("mode", ["pointwise", "pairwise"])
def test_vllm_gives_the_probabilities_transformers_gives(any_tiny_policy, mode):
    from selfplay.generate.engine_pool import POOL

    POOL.close()  # an engine an earlier test left behind may hold another test's torn-down vLLM state
    via_hf, _ = scorer(any_tiny_policy, mode, backend="hf").score(items())
    via_vllm, _ = scorer(any_tiny_policy, mode, backend="vllm").score(items())
    POOL.close()
    assert via_vllm == pytest.approx(via_hf, abs=2e-4)


@pytest.mark.vllm
def test_the_policy_judges_its_own_samples_on_the_runs_engine(tmp_path, tiny_policy):
    """Self-rewarding through the loop: judge.model.path=policy on the vLLM engine that sampled (no
    engine start for judging), evaluation by the same judge, records named after it."""
    from selfplay import api
    from selfplay.data.jsonl import read_jsonl
    from selfplay.generate.engine_pool import POOL

    labels = vocab_labels(tiny_policy, 5)
    POOL.close()
    starts = POOL.starts
    result = api.run(
        [
            "debug=tiny",
            "generate.backend=vllm",
            "loop.iterations=1",
            "loop.progress=false",
            "judge.kind=generative",
            "judge.model.path=policy",
            "judge.model.backend=vllm",
            f"judge.generative.labels=[{','.join(labels)}]",
            f"loop.output_dir={tmp_path}",
        ]
    )
    assert POOL.starts - starts == 1  # the run's one engine sampled and judged
    judgments = read_jsonl(result.run_dir / "iter_000" / "judge" / "judgments.jsonl")
    assert {j["judge"] for j in judgments} == {"llm:policy:pointwise"}
    assert all(1.0 <= j["reward"] <= 5.0 for j in judgments) and len({j["reward"] for j in judgments}) > 5
    assert result.final_policy is not None
    POOL.close()


def test_a_pairwise_judge_cannot_be_the_held_out_judge():
    """Bradley-Terry strengths have mean 0 per prompt: held-out rewards would be 0.000 and win rates 0.5
    whatever the policy did, so evaluation with a pairwise judge is refused in one line; selection with
    it, and evaluation by another judge, are fine."""
    from selfplay.checks import check_evaluation_judge
    from selfplay.config import (
        Config,
        EvaluateConfig,
        EvaluateJudgeConfig,
        GenerativeJudgeConfig,
        JudgeModelConfig,
    )

    pairwise = judge_config(kind=JudgeKind.generative, path="policy", mode=JudgeMode.pairwise)
    with pytest.raises(
        SelfplayError, match=r"^judge.generative.mode=pairwise as the held-out judge.*constant"
    ):
        check_evaluation_judge(Config(judge=pairwise))
    other = EvaluateJudgeConfig(kind=JudgeKind.rule, rule="topical_variety")
    check_evaluation_judge(Config(judge=pairwise, evaluate=EvaluateConfig(judge=other)))
    as_eval = EvaluateJudgeConfig(
        kind=JudgeKind.generative,
        model=JudgeModelConfig(path="policy"),
        generative=GenerativeJudgeConfig(mode=JudgeMode.pairwise),
    )
    with pytest.raises(SelfplayError, match=r"^evaluate.judge.generative.mode=pairwise"):
        check_evaluation_judge(Config(evaluate=EvaluateConfig(judge=as_eval)))
