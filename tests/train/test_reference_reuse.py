"""DPO with reference log-probs reused from sampling: TRL runs zero reference forward passes, and at
step 0 the implicit rewards are 0 (they would not be if the trainer tokenised differently)."""

import pytest

from selfplay.config import GenerateConfig, ModelConfig, PromptsConfig, SelectionConfig, TrainConfig
from selfplay.data.prompts import load_prompt_pool
from selfplay.generate.sample import sample_completions
from selfplay.judge.rules import topical_variety
from selfplay.selection.pairing import Candidate, make_pairs
from selfplay.selection.pipeline import select_pairs


@pytest.fixture(scope="module")
def pairs_and_samples(tiny_policy):
    prompts = load_prompt_pool(PromptsConfig()).pool[:12]
    comps, _ = sample_completions(
        tiny_policy, prompts, GenerateConfig(backend="hf", max_tokens=40), ModelConfig(), "r", 4, 0
    )
    text = {p.prompt_id: p.messages[-1]["content"] for p in prompts}
    cands = [
        Candidate(
            c.prompt_id, c.sample_index, c.text, topical_variety(text[c.prompt_id], c.text), 0.0, c.truncated
        )
        for c in comps
        if c.finish_reason == "stop"
    ]  # ended by EOS: ids match TRL's
    pairs, _ = make_pairs(prompts, cands, 0)
    pairs = [p for p in select_pairs(pairs, SelectionConfig(ratio=1.0)) if p.kept][:8]
    return pairs, {(c.prompt_id, c.sample_index): c for c in comps}


def train(tmp_path, tiny_policy, pairs, sampled, reference_logprobs, monkeypatch):
    from datasets import Dataset
    from torch.nn.modules.module import register_module_forward_pre_hook
    from transformers import LlamaForCausalLM
    from trl import DPOTrainer

    from selfplay.train.data import training_rows
    from selfplay.train.trainer import train_policy

    cfg = TrainConfig(reference_logprobs=reference_logprobs, epochs=1, batch_size=4)
    rows, stats = training_rows(pairs, sampled, tiny_policy, tiny_policy, cfg, ModelConfig(), 8)
    Dataset.from_list(rows).save_to_disk(str(tmp_path / "data"))
    calls = {"forward": 0, "reference": 0}
    ref = DPOTrainer.compute_ref_log_probs

    def count_forward(module, args):
        if isinstance(module, LlamaForCausalLM):
            calls["forward"] += 1

    def counting_ref(self, *a, **kw):
        calls["reference"] += 1
        return ref(self, *a, **kw)

    monkeypatch.setattr(DPOTrainer, "compute_ref_log_probs", counting_ref)
    hook = register_module_forward_pre_hook(count_forward)
    try:
        result = train_policy(
            tmp_path / "data", tiny_policy, None, cfg, ModelConfig(), tmp_path / "trainer", tmp_path / "model"
        )
    finally:
        hook.remove()
    monkeypatch.undo()
    return result, stats, calls


def test_reused_reference_means_no_reference_forward(tmp_path, tiny_policy, pairs_and_samples, monkeypatch):
    pairs, sampled = pairs_and_samples
    assert len(pairs) == 8
    result, stats, calls = train(tmp_path, tiny_policy, pairs, sampled, "precomputed", monkeypatch)
    assert stats == {"ref_logps_from_sampling": 16, "ref_logps_teacher_forced": 0}
    assert calls["reference"] == 0
    assert calls["forward"] == result["optimizer_steps"] == 2  # one policy forward per step, nothing else
    # Step 0: policy == reference on the same token ids, so beta * (logp - ref_logp) is 0 up to fp32 noise.
    assert abs(result["first_rewards_chosen"]) < 1e-4 and abs(result["first_rewards_rejected"]) < 1e-4


def test_trainer_reference_runs_a_reference_forward_every_step(
    tmp_path, tiny_policy, pairs_and_samples, monkeypatch
):
    pairs, sampled = pairs_and_samples
    result, stats, calls = train(tmp_path, tiny_policy, pairs, sampled, "trainer", monkeypatch)
    assert stats == {} and calls["forward"] == 2 * result["optimizer_steps"]
    assert abs(result["first_rewards_chosen"]) < 1e-4


def test_mismatched_tokens_are_teacher_forced(tmp_path, tiny_policy, pairs_and_samples):
    from dataclasses import replace

    from selfplay.train.data import training_rows

    pairs, sampled = pairs_and_samples
    # Pretend the sampler produced other ids for the first chosen response: it must not be reused.
    key = (pairs[0].prompt_id, pairs[0].chosen_index)
    tampered = {**sampled, key: replace(sampled[key], token_ids=sampled[key].token_ids[:-1])}
    rows, stats = training_rows(pairs, tampered, tiny_policy, tiny_policy, TrainConfig(), ModelConfig(), 8)
    exact, _ = training_rows(pairs, sampled, tiny_policy, tiny_policy, TrainConfig(), ModelConfig(), 8)
    assert stats == {"ref_logps_from_sampling": 15, "ref_logps_teacher_forced": 1}
    assert rows[0]["ref_chosen_logps"] == pytest.approx(exact[0]["ref_chosen_logps"], abs=1e-4)
