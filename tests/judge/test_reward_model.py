"""Reward-model judge: its own chat template, length-sorted batches equal one-at-a-time scoring."""

import pytest

from selfplay.config import JudgeConfig
from selfplay.errors import SelfplayError
from selfplay.judge.reward_model import RewardModel

MSGS = [{"role": "user", "content": "Tell me about bees."}]


def test_uses_the_reward_models_template_not_the_policys(tiny_reward_model):
    rm = RewardModel(JudgeConfig(kind="reward_model", model_path=tiny_reward_model), device="cpu")
    text = rm.tokenizer.decode(rm.render(MSGS, "honey and wax"))
    assert "[ rm - turn ] user : tell me about bees . [ rm - turn ] assistant : honey and wax" in text
    assert "<|user|>" not in text and "<bos>" not in text


def test_batched_scores_equal_single_scores(tiny_reward_model):
    items = [
        (MSGS, "honey"),
        (MSGS, "honey and wax in the hive"),
        (MSGS, "bees bees bees bees bees bees"),
        (MSGS, "queen"),
    ]
    batched = RewardModel(JudgeConfig(kind="reward_model", model_path=tiny_reward_model, batch_size=3), "cpu")
    single = RewardModel(JudgeConfig(kind="reward_model", model_path=tiny_reward_model, batch_size=1), "cpu")
    rb, tb = batched.score(items)
    rs, ts = single.score(items)
    assert rb == pytest.approx(rs, abs=1e-5)
    assert len(set(round(r, 6) for r in rb)) > 1  # really different inputs scored


def test_truncation_is_flagged(tiny_reward_model):
    rm = RewardModel(JudgeConfig(kind="reward_model", model_path=tiny_reward_model, max_length=8), "cpu")
    _, truncated = rm.score([(MSGS, "honey " * 20)])
    assert truncated == [True]


def test_a_reward_model_without_a_template_is_refused_and_judge_chat_template_gives_one(
    tiny_reward_model, tmp_path
):
    import json
    import shutil

    rm_dir = tmp_path / "rm"
    shutil.copytree(tiny_reward_model, rm_dir)
    config = json.loads((rm_dir / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (rm_dir / "tokenizer_config.json").write_text(json.dumps(config))
    (rm_dir / "chat_template.jinja").unlink(missing_ok=True)
    with pytest.raises(
        SelfplayError, match=r"judge.model_path: .* has no chat_template .*judge.chat_template="
    ):
        RewardModel(JudgeConfig(kind="reward_model", model_path=str(rm_dir)), device="cpu")
    template = "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    rm = RewardModel(JudgeConfig(kind="reward_model", model_path=str(rm_dir), chat_template=template), "cpu")
    text = rm.tokenizer.decode(rm.render(MSGS, "honey"))
    assert text.startswith("user : tell me about bees . assistant : honey") and "rm - turn" not in text


def test_missing_model_folder(tmp_path):
    with pytest.raises(SelfplayError, match="does not exist"):
        RewardModel(JudgeConfig(kind="reward_model", model_path=str(tmp_path / "nope")))


def test_out_of_memory_halves_the_batch_and_retries(tiny_reward_model, monkeypatch):
    import torch

    items = [(MSGS, "honey " * n) for n in range(1, 8)]
    rm = RewardModel(JudgeConfig(kind="reward_model", model_path=tiny_reward_model, batch_size=8), "cpu")
    expected, _ = rm.score(items)
    real, sizes = rm.model.forward, []

    def forward(**kw):
        sizes.append(kw["input_ids"].shape[0])
        if kw["input_ids"].shape[0] > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(**kw)

    monkeypatch.setattr(rm.model, "forward", forward)
    got, _ = rm.score(items)
    assert got == pytest.approx(expected, abs=1e-5)
    assert sizes[:3] == [7, 4, 2] and max(sizes[3:]) <= 2
