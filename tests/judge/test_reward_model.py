"""Reward-model judge: its own chat template, length-sorted batches equal one-at-a-time scoring."""

import pytest

from selfplay.config import JudgeConfig, JudgeModelConfig
from selfplay.errors import SelfplayError
from selfplay.judge.reward_model import RewardModel

MSGS = [{"role": "user", "content": "Tell me about bees."}]


def test_uses_the_reward_models_template_not_the_policys(tiny_reward_model):
    rm = RewardModel(
        JudgeConfig(kind="reward_model", model=JudgeModelConfig(path=tiny_reward_model)), device="cpu"
    )
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
    batched = RewardModel(
        JudgeConfig(kind="reward_model", batch_size=3, model=JudgeModelConfig(path=tiny_reward_model)), "cpu"
    )
    single = RewardModel(
        JudgeConfig(kind="reward_model", batch_size=1, model=JudgeModelConfig(path=tiny_reward_model)), "cpu"
    )
    rb, tb = batched.score(items)
    rs, ts = single.score(items)
    assert rb == pytest.approx(rs, abs=1e-5)
    assert len(set(round(r, 6) for r in rb)) > 1  # really different inputs scored


def test_truncation_is_flagged(tiny_reward_model):
    rm = RewardModel(
        JudgeConfig(kind="reward_model", model=JudgeModelConfig(path=tiny_reward_model, max_length=8)), "cpu"
    )
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
        SelfplayError, match=r"judge.model.path: .* has no chat_template .*judge.model.chat_template="
    ):
        RewardModel(JudgeConfig(kind="reward_model", model=JudgeModelConfig(path=str(rm_dir))), device="cpu")
    template = "{% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"
    rm = RewardModel(
        JudgeConfig(kind="reward_model", model=JudgeModelConfig(path=str(rm_dir), chat_template=template)),
        "cpu",
    )
    text = rm.tokenizer.decode(rm.render(MSGS, "honey"))
    assert text.startswith("user : tell me about bees . assistant : honey") and "rm - turn" not in text


def test_missing_model_folder(tmp_path):
    with pytest.raises(SelfplayError, match="does not exist"):
        RewardModel(JudgeConfig(kind="reward_model", model=JudgeModelConfig(path=str(tmp_path / "nope"))))


def test_out_of_memory_halves_the_batch_and_retries(tiny_reward_model, monkeypatch):
    import torch

    items = [(MSGS, "honey " * n) for n in range(1, 8)]
    rm = RewardModel(
        JudgeConfig(kind="reward_model", batch_size=8, model=JudgeModelConfig(path=tiny_reward_model)), "cpu"
    )
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


ITEMS = [
    (MSGS, "honey"),
    (MSGS, "honey and wax in the hive"),
    (MSGS, "bees bees bees bees bees bees"),
    (MSGS, "queen " * 30),
]


@pytest.mark.vllm
def test_vllms_classifier_gives_the_rewards_transformers_gives(tiny_reward_model):
    """judge.model.backend=vllm: the pooling runner's raw score equals transformers' logit (fp32), the
    engine is freed by close()."""
    hf = RewardModel(
        JudgeConfig(kind="reward_model", model=JudgeModelConfig(path=tiny_reward_model, max_length=40)), "cpu"
    )
    vllm = RewardModel(
        JudgeConfig(
            kind="reward_model", model=JudgeModelConfig(path=tiny_reward_model, max_length=40, backend="vllm")
        )
    )
    assert vllm.backend == "vllm" and vllm.model is None
    (via_hf, cut_hf), (via_vllm, cut_vllm) = hf.score(ITEMS), vllm.score(ITEMS)
    vllm.close()
    assert vllm.engine is None
    assert via_vllm == pytest.approx(via_hf, abs=1e-5)
    assert cut_vllm == cut_hf == [False, False, False, True]
    assert len({round(r, 5) for r in via_vllm}) == 4


def test_vllm_refuses_a_reward_model_with_several_outputs_in_one_line(tmp_path, tiny_reward_model):
    import json
    import shutil

    rm = tmp_path / "rm2"
    shutil.copytree(tiny_reward_model, rm)
    config = json.loads((rm / "config.json").read_text())
    config["id2label"] = {"0": "a", "1": "b"}
    (rm / "config.json").write_text(json.dumps(config))
    with pytest.raises(SelfplayError, match=r"^judge.model.backend=vllm: the reward model .* gives 2 values"):
        RewardModel(JudgeConfig(kind="reward_model", model=JudgeModelConfig(path=str(rm), backend="vllm")))


@pytest.mark.vllm
def test_a_run_judged_by_a_reward_model_on_vllm_records_what_transformers_records(
    tmp_path, tiny_reward_model
):
    """A whole iteration with the reward model on vLLM beside the run's sampling engine (in-process:
    two engines alive at once), rewards equal to the transformers judge on the same completions."""
    from selfplay import api
    from selfplay.data.files import read_records
    from selfplay.data.records import Completion, Judgment, Prompt
    from selfplay.generate.engine_pool import POOL
    from selfplay.judge.judging import load_judge

    POOL.close()
    result = api.run(
        [
            "debug=tiny",
            "generate.backend=vllm",
            "loop.iterations=1",
            "loop.progress=false",
            "judge.kind=reward_model",
            f"judge.model.path={tiny_reward_model}",
            "judge.model.backend=vllm",
            f"loop.output_dir={tmp_path}",
        ]
    )
    POOL.close()
    it = result.run_dir / "iter_000"
    judgments = read_records(it / "judge" / "judgments.jsonl", Judgment)
    completions = read_records(it / "generate" / "completions.parquet", Completion)
    prompts = read_records(it / "prompts" / "prompts.jsonl", Prompt)
    with load_judge(
        JudgeConfig(kind="reward_model", model=JudgeModelConfig(path=tiny_reward_model))
    ) as judge:
        expected = {(j.prompt_id, j.sample_index): j.reward for j in judge(prompts, completions)}
    assert len(judgments) == len(expected) > 0
    assert {j.judge for j in judgments} == {f"rm:{tiny_reward_model}"}
    for j in judgments:
        assert j.reward == pytest.approx(expected[(j.prompt_id, j.sample_index)], abs=1e-5)
    assert result.final_policy is not None
