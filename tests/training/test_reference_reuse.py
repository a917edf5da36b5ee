"""DPO trains on the token ids the policy sampled, and their sampled log-probs are the reference
log-probs: with both chat formats (plain, and ChatML whose template adds "<|im_end|>\\n" where the
sampler stopped at "<|im_end|>"), every response's reference log-prob is reused, TRL runs zero reference
forward passes, and at step 0 the implicit rewards are 0. Missing values are computed by one
teacher-forced pass inside the trainer (TRL's own forward), and agree with the sampled ones."""

import math

import pytest

from selfplay.config import GenerateConfig, ModelConfig, PromptsConfig, SelectionConfig, TrainConfig
from selfplay.data.prompts import load_prompt_pool
from selfplay.generate.sample import sample_completions
from selfplay.judge.rules import topical_variety
from selfplay.models.loading import load_tokenizer
from selfplay.selection.pairing import Candidate, make_pairs
from selfplay.selection.pipeline import select_pairs
from selfplay.training.data import sampled_key, training_rows


@pytest.fixture(scope="module")
def pairs_and_samples(any_tiny_policy):
    prompts = load_prompt_pool(PromptsConfig()).pool[:12]
    comps, _ = sample_completions(
        any_tiny_policy, prompts, GenerateConfig(backend="hf", max_tokens=40), ModelConfig(), "r", 4, 0
    )
    text = {p.prompt_id: p.messages[-1]["content"] for p in prompts}
    cands = [
        Candidate(
            c.prompt_id, c.sample_index, c.text, topical_variety(text[c.prompt_id], c.text), 0.0, c.truncated
        )
        for c in comps
    ]  # truncated responses included: they are reused too now
    pairs, _ = make_pairs(prompts, cands, 0)
    pairs = [p for p in select_pairs(pairs, SelectionConfig(ratio=1.0)) if p.kept][:8]
    return any_tiny_policy, pairs, {sampled_key(c): c for c in comps}


def train(tmp_path, policy, pairs, sampled, reference_logprobs, monkeypatch, reuse=True):
    from datasets import Dataset
    from torch.nn.modules.module import register_module_forward_pre_hook
    from transformers import LlamaForCausalLM
    from trl import DPOTrainer

    from selfplay.training.trainer import train_policy

    cfg = TrainConfig(
        reference_logprobs=reference_logprobs,
        epochs=1,
        batch_size=4,
        gradient_accumulation_steps=1,
        learning_rate=1e-3,
        beta=0.2,
        warmup_ratio=0.0,
        max_length=512,
    )
    rows, stats = training_rows(pairs, sampled, load_tokenizer(policy), cfg, policy if reuse else None)
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
            tmp_path / "data", policy, None, cfg, ModelConfig(), tmp_path / "trainer", tmp_path / "model"
        )
    finally:
        hook.remove()
    monkeypatch.undo()
    return rows, result, stats, calls


def test_every_response_reuses_its_sampled_log_probs(tmp_path, pairs_and_samples, monkeypatch):
    policy, pairs, sampled = pairs_and_samples
    assert len(pairs) == 8
    rows, result, stats, calls = train(tmp_path, policy, pairs, sampled, "auto", monkeypatch)
    assert stats["ref_logps_from_sampling"] == 16 and stats["ref_logps_teacher_forced"] == 0
    assert stats["responses_sampled_ids"] == 16
    for row, p in zip(rows, pairs):  # trained on the sampled ids, no template suffix
        assert row["chosen_ids"] == sampled[(0, p.prompt_id, p.chosen_index)].token_ids
    assert calls["reference"] == 0
    assert calls["forward"] == result["optimizer_steps"] == 2  # one policy forward per step, nothing else
    # Step 0: policy == reference on the same token ids, so beta * (logp - ref_logp) is 0 up to fp32 noise.
    assert abs(result["first_rewards_chosen"]) < 1e-4 and abs(result["first_rewards_rejected"]) < 1e-4


def test_trainer_reference_runs_a_reference_forward_every_step(tmp_path, pairs_and_samples, monkeypatch):
    policy, pairs, sampled = pairs_and_samples
    _, result, stats, calls = train(tmp_path, policy, pairs, sampled, "trainer", monkeypatch)
    assert "ref_logps_from_sampling" not in stats and calls["forward"] == 2 * result["optimizer_steps"]
    assert abs(result["first_rewards_chosen"]) < 1e-4


@pytest.mark.parametrize("mode", ["missing", "teacher_forced"])
def test_missing_reference_log_probs_are_teacher_forced_once(tmp_path, pairs_and_samples, monkeypatch, mode):
    """A response without sampled log-probs (here: the first chosen one), or every response with
    reference_logprobs=teacher_forced, gets them from one teacher-forced pass inside the trainer."""
    from dataclasses import replace

    policy, pairs, sampled = pairs_and_samples
    if mode == "missing":
        key = (0, pairs[0].prompt_id, pairs[0].chosen_index)
        sampled = {**sampled, key: replace(sampled[key], model="another policy")}
        _, result, stats, calls = train(tmp_path, policy, pairs, sampled, "auto", monkeypatch)
        assert stats["ref_logps_from_sampling"] == 15 and stats["ref_logps_teacher_forced"] == 1
        assert calls["reference"] == 1  # one batch: the one row with a missing value
    else:
        _, result, stats, calls = train(tmp_path, policy, pairs, sampled, "teacher_forced", monkeypatch)
        assert stats["ref_logps_teacher_forced"] == 16 and calls["reference"] == 2  # 8 rows, batches of 4
    assert abs(result["first_rewards_chosen"]) < 1e-4 and abs(result["first_rewards_rejected"]) < 1e-4


def test_truncation_keeps_the_start_and_sums_the_kept_tokens(pairs_and_samples):
    policy, pairs, sampled = pairs_and_samples
    tok = load_tokenizer(policy)
    full, _ = training_rows(pairs, sampled, tok, TrainConfig(max_length=512), policy)
    prompt_len = len(full[0]["prompt_ids"])
    cut, stats = training_rows(pairs, sampled, tok, TrainConfig(max_length=prompt_len + 3), policy)
    c = sampled[(0, pairs[0].prompt_id, pairs[0].chosen_index)]
    assert cut[0]["chosen_ids"] == c.token_ids[:3]
    assert cut[0]["ref_chosen_logps"] == pytest.approx(sum(c.logprobs[:3]), abs=1e-6)
    fed = [2 * len(r["prompt_ids"]) + len(r["chosen_ids"]) + len(r["rejected_ids"]) for r in cut]
    assert stats["row_tokens"] == sum(fed) and max(fed) <= 2 * (prompt_len + 3)  # the rows as cut
    none, stats = training_rows(pairs[:1], sampled, tok, TrainConfig(max_length=prompt_len), policy)
    assert none == [] and stats["pairs_prompt_too_long"] == 1


def test_text_pairs_are_tokenised_like_trl(pairs_and_samples):
    """Pairs without sampled records (e.g. from a file) get TRL's own split of the rendered conversation."""
    from trl import DPOConfig, DPOTrainer

    policy, pairs, _ = pairs_and_samples
    tok = load_tokenizer(policy)
    rows, stats = training_rows(pairs, {}, tok, TrainConfig(), None)
    assert stats["responses_tokenised_from_text"] == 16 and all(
        math.isnan(r["ref_chosen_logps"]) for r in rows
    )
    from datasets import Dataset

    from selfplay.training.data import preference_rows

    trl_rows = DPOTrainer._prepare_dataset(
        type("T", (), {"_tokenizer": tok, "_is_vision_dataset": False})(),
        Dataset.from_list(preference_rows(pairs)),
        tok,
        DPOConfig(output_dir="/tmp/unused", max_length=2048, use_cpu=True, bf16=False),
        "train",
    )
    for ours, theirs in zip(rows, trl_rows):
        assert (ours["prompt_ids"], ours["chosen_ids"], ours["rejected_ids"]) == (
            theirs["prompt_ids"],
            theirs["chosen_ids"],
            theirs["rejected_ids"],
        )
