"""`python -m selfplay.train_rm`: the pure parts (held-out split, label noise that flips exactly the stated
share, the judge's rendering, accuracy), training on a file of pairs and on pairs it samples and judges
itself (the tiny policy as backbone), the folder loading as judge.kind=reward_model with the accuracy its
card states, and every bad input as one line."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest

from selfplay.data.records import Pair
from selfplay.errors import SelfplayError
from selfplay.reward import pairs as rp


def pair(i: int, chosen: str = "good", rejected: str = "bad") -> Pair:
    msgs = [{"role": "user", "content": f"Tell me about cats {i}."}]
    return Pair(f"p{i}", f"p{i}", msgs, chosen, rejected, 0, 1, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0)


def test_the_heldout_split_is_seeded_disjoint_and_sized():
    pairs = [pair(i) for i in range(50)]
    train, held = rp.split_heldout(pairs, 0.2, seed=3)
    assert len(held) == 10 and len(train) == 40
    assert {p.pair_id for p in train}.isdisjoint({p.pair_id for p in held})
    assert rp.split_heldout(pairs, 0.2, seed=3) == (train, held)
    assert rp.split_heldout(pairs, 0.2, seed=4)[1] != held
    assert len(rp.split_heldout(pairs[:2], 0.01, 0)[1]) == 1  # at least one each way
    with pytest.raises(SelfplayError, match="1 preference pair"):
        rp.split_heldout(pairs[:1], 0.5, 0)


@pytest.mark.parametrize(
    "rate,n,flipped", [(0.0, 40, 0), (0.1, 40, 4), (0.25, 40, 10), (0.5, 41, 20), (0.3, 7, 2)]
)
def test_label_noise_flips_exactly_the_stated_share(rate, n, flipped):
    pairs = [pair(i, f"chosen {i}", f"rejected {i}") for i in range(n)]
    noisy, ids = rp.add_label_noise(pairs, rate, seed=1)
    assert len(ids) == flipped == sum(p.chosen.startswith("rejected") for p in noisy)
    for before, after in zip(pairs, noisy):
        if after.pair_id in ids:
            assert (after.chosen, after.rejected) == (before.rejected, before.chosen)
            assert (
                after.explicit_margin == -before.explicit_margin
                and after.chosen_reward == before.rejected_reward
            )
        else:
            assert after == before
    assert rp.add_label_noise(pairs, rate, seed=1) == (noisy, ids)


def test_pairwise_accuracy_counts_ties_as_half():
    assert rp.pairwise_accuracy([2.0, 1.0, 0.5, 3.0], [1.0, 1.0, 0.7, 0.0]) == pytest.approx(2.5 / 4)
    with pytest.raises(SelfplayError):
        rp.pairwise_accuracy([], [])


def test_rows_are_rendered_exactly_as_the_reward_model_judge_renders(tiny_reward_model):
    from selfplay.config import JudgeConfig, JudgeModelConfig
    from selfplay.judge.reward_model import RewardModel

    judge = RewardModel(
        JudgeConfig(kind="reward_model", model=JudgeModelConfig(path=tiny_reward_model)), device="cpu"
    )
    p = pair(0, "cats like to sleep in the sun", "cats cats cats")
    rows, cut = rp.encode_pairs(judge.tokenizer, [p], max_length=512)
    assert rows == [
        {
            "chosen_ids": judge.render(p.messages, p.chosen),
            "rejected_ids": judge.render(p.messages, p.rejected),
        }
    ]
    assert cut == 0
    rows, cut = rp.encode_pairs(judge.tokenizer, [p], max_length=8)
    assert cut == 1 and len(rows[0]["chosen_ids"]) == 8


def varied(rng: random.Random, words: list[str]) -> str:
    return " ".join(rng.sample(words, 14))


@pytest.fixture(scope="module")
def pairs_file(tmp_path_factory) -> str:
    """40 pairs in TRL's layout: a varied answer about the prompt's topic (chosen) vs one word repeated."""
    from selfplay.models.tiny import FILLER, _topics

    rng = random.Random(0)
    topics = _topics()
    rows = []
    for i, topic in enumerate(sorted(topics)[:40]):
        words = topics[topic] + FILLER[:20]
        rows.append(
            {
                "prompt": [{"role": "user", "content": f"Tell me about {topic}."}],
                "chosen": varied(rng, words),
                "rejected": " ".join([rng.choice(topics[topic])] * rng.randint(6, 14)),
                "id": f"row{i}",
            }
        )
    path = tmp_path_factory.mktemp("pairs") / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


FAST = ["train.learning_rate=1e-3", "train.epochs=3", "train.batch_size=8", "train.logging_steps=5"]


def train(overrides: list[str]) -> dict:
    from selfplay.reward.training import train_reward_model
    from selfplay.train_rm import compose

    return train_reward_model(compose(overrides))


def test_training_on_a_file_gives_a_judge_whose_card_states_its_heldout_accuracy(
    pairs_file, tiny_policy, tmp_path
):
    from selfplay.config import JudgeConfig, JudgeModelConfig
    from selfplay.judge.judging import load_judge

    out = tmp_path / "rm"
    summary = train([f"output={out}", f"input={pairs_file}", "pairs.id=id", "heldout_share=0.25", *FAST])
    assert summary["backbone"] == "tiny" and summary["backbone_path"] == tiny_policy
    assert (summary["pairs"], summary["train_pairs"], summary["heldout_pairs"]) == (40, 30, 10)
    assert summary["heldout_accuracy"] >= 0.8  # the repeated word is easy to tell apart
    saved = json.loads((out / "training_summary.json").read_text())
    assert saved["heldout_accuracy"] == summary["heldout_accuracy"] and saved["log_history"]
    card = (out / "README.md").read_text()
    assert (
        f"**held-out pairwise accuracy** (vs the labelling judge) | **{summary['heldout_accuracy']:.3f}** on 10 pairs"
        in card
    )
    assert (
        not (out / "training_args.bin").exists()
        and len(json.loads((out / "config.json").read_text())["id2label"]) == 1
    )

    # The folder is a reward-model judge as it is; its scores give the card's accuracy back.
    rows = [json.loads(line) for line in Path(pairs_file).read_text().splitlines()]
    held = [r for r in rows if r["id"] in _heldout_ids(40, 0.25)]
    from selfplay.data.records import Completion, Prompt

    prompts = [Prompt(r["id"], r["prompt"]) for r in held]
    completions = [
        Completion(r["id"], k, r[side], "stop") for r in held for k, side in enumerate(("chosen", "rejected"))
    ]
    with load_judge(JudgeConfig(kind="reward_model", model=JudgeModelConfig(path=str(out)))) as judge:
        scores = [j.value for j in judge(prompts, completions)]
    assert rp.pairwise_accuracy(scores[0::2], scores[1::2]) == pytest.approx(summary["heldout_accuracy"])


def _heldout_ids(n: int, share: float) -> set[str]:
    """The ids of the pairs file's rows that a split with seed 0 holds out (it draws positions)."""
    return {f"row{p.pair_id[1:]}" for p in rp.split_heldout([pair(i) for i in range(n)], share, 0)[1]}


def test_label_noise_is_applied_to_training_pairs_only_and_recorded(pairs_file, tmp_path):
    out = tmp_path / "rm"
    summary = train(
        [f"output={out}", f"input={pairs_file}", "pairs.id=id", "label_noise=0.2", "train.epochs=1"]
    )
    assert summary["train_pairs"] == 32 and summary["flipped"] == round(0.2 * 32)
    saved = json.loads((out / "training_summary.json").read_text())
    held = _heldout_ids(40, 0.2)
    assert len(held) == 8 and len(saved["flipped_pair_ids"]) == 6
    assert set(saved["flipped_pair_ids"]) <= {f"row{i}" for i in range(40)} - held
    assert "6 of 32 training pairs flipped" in (out / "README.md").read_text()


def test_pairs_sampled_from_the_policy_and_labelled_by_a_judge(tmp_path):
    out = tmp_path / "rm"
    summary = train(
        [
            f"output={out}",
            "num_prompts=24",
            "generate.backend=hf",
            "generate.num_samples=4",
            "generate.max_tokens=16",
            "judge.rule=topical_variety",
            "train.epochs=1",
        ]
    )
    assert summary["source"] == "24 prompts x 4 samples of tiny (hf)"
    assert summary["labels"] == "best vs worst under rule:topical_variety"
    assert (
        2 <= summary["pairs"] <= 24 and summary["train_pairs"] + summary["heldout_pairs"] == summary["pairs"]
    )
    assert 0.0 <= summary["heldout_accuracy"] <= 1.0 and (out / "model.safetensors").is_file()


@pytest.mark.parametrize(
    "overrides,message",
    [
        ([], "output: required"),
        (["output={full}"], "exists and is not an empty folder"),
        (["output={new}", "label_noise=0.7"], "label_noise=0.7 must be between 0 and 0.5"),
        (["output={new}", "heldout_share=1.0"], "heldout_share=1.0 must be between 0 and 1"),
        (["output={new}", "train.batch_size=0"], "train.batch_size=0 must be >= 1"),
        (
            ["output={new}", "+train.trl_args.lerning_rate=1"],
            "train.trl_args.lerning_rate: not a field of TRL's RewardConfig",
        ),
        (["output={new}", "input={missing}"], "does not exist"),
        (["output={new}", "input={bad}"], "missing column(s) chosen"),
        (["output={new}", "input={pairs}", "backbone={missing}"], "backbone: model folder"),
        (["output={new}", "num_prompts=1"], "num_prompts=1: at least 2 prompts"),
        (
            ["output={new}", "input={same}"],
            "same.jsonl: 0 usable preference pair(s) {'pairs': 0, 'rows': 1, 'dropped_tied': 0, 'dropped_identical': 1}",
        ),
    ],
)
def test_bad_inputs_are_one_line_naming_the_field(overrides, message, tmp_path, pairs_file):
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "hi", "answer": "a"}) + "\n")
    names = {
        "full": full,
        "new": tmp_path / "new",
        "missing": tmp_path / "nope.jsonl",
        "bad": bad,
        "pairs": pairs_file,
        "same": tmp_path / "same.jsonl",
    }
    names["same"].write_text(json.dumps({"prompt": "hi", "chosen": "a", "rejected": "a"}) + "\n")
    with pytest.raises(SelfplayError) as err:
        train([o.format(**names) for o in overrides])
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "new").exists()


def test_the_command_prints_one_error_line_and_exits_2(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "selfplay.train_rm", f"output={tmp_path}/rm", "label_noise=0.9"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("selfplay.train_rm: error: label_noise=0.9")
