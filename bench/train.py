"""Training with reused reference log-probs vs TRL's default DPO, side by side in one run:

  ours   selfplay's train path: trained on the sampled token ids, whose sampled log-probs are the
         reference log-probs, handed to TRL, which then runs no reference forward pass
  trl    TRL's DPOTrainer as usual: the reference model runs at every step

Same tiny policy, same pairs (sampled by that policy, judged by the built-in rule), same trainer
settings. Prints seconds of each (median of --reps) and the ratio.

  python bench/train.py [--out results/train_bench_cpu.md] [--prompts 128] [--reps 3] [--size tiny|30m]

--size 30m widens the tiny policy to ~30M parameters (hidden 512, 8 layers, 8 heads, MLP 2048: the
generate bench's model shape) with 128-token responses, where the forward passes, not fixed costs,
dominate a step.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import emit, machine, today  # noqa: E402

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=None)
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--size", choices=["tiny", "30m"], default="tiny")
    args = ap.parse_args()

    import torch
    import trl
    from datasets import Dataset
    from transformers.utils import logging as hf_logging

    from selfplay.config import (
        GenerateConfig,
        ModelConfig,
        PromptsConfig,
        RefLogprobs,
        SelectionConfig,
        TinyModelConfig,
        TrainConfig,
    )
    from selfplay.data.prompts import load_prompt_pool
    from selfplay.generate.sample import sample_completions
    from selfplay.judge.rules import topical_variety
    from selfplay.models.loading import load_tokenizer
    from selfplay.models.tiny import tiny_model_path
    from selfplay.selection.pairing import Candidate, make_pairs
    from selfplay.selection.pipeline import select_pairs
    from selfplay.training.data import sampled_key, training_rows
    from selfplay.training.trainer import train_policy

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    wide = args.size == "30m"
    shape = (
        TinyModelConfig(hidden_size=512, num_layers=8, num_heads=8, pretrain_steps=100)
        if wide
        else TinyModelConfig()
    )
    policy = str(tiny_model_path(shape))
    prompts = load_prompt_pool(PromptsConfig()).pool[: args.prompts]
    max_tokens = 128 if wide else 48
    comps, backend = sample_completions(
        policy,
        prompts,
        GenerateConfig(max_tokens=max_tokens, max_model_len=512, ignore_eos=wide),  # 30m: 128-token responses
        ModelConfig(),
        "bench",
        4,
        0,
    )
    text = {p.prompt_id: p.messages[-1]["content"] for p in prompts}
    cands = [
        Candidate(
            c.prompt_id,
            c.sample_index,
            c.text,
            topical_variety(text[c.prompt_id], c.text),
            c.logprob_sum / max(1, c.num_tokens),
            c.truncated,
        )
        for c in comps
    ]
    pairs = [p for p in select_pairs(make_pairs(prompts, cands, 0)[0], SelectionConfig(ratio=1.0)) if p.kept]
    sampled = {sampled_key(c): c for c in comps}
    tokenizer = load_tokenizer(policy)

    def run(mode: RefLogprobs) -> tuple[float, dict]:
        cfg = TrainConfig(  # the tiny preset's training settings (conf/preset/tiny.yaml)
            reference_logprobs=mode,
            epochs=args.epochs,
            learning_rate=1e-5 if wide else 1e-3,
            beta=0.2,
            batch_size=8,
            gradient_accumulation_steps=1,
            max_length=512,
        )
        work = Path(tempfile.mkdtemp(prefix=f"bench-train-{mode}-"))
        start = time.perf_counter()
        rows, ref_stats = training_rows(pairs, sampled, tokenizer, cfg, policy)
        Dataset.from_list(rows).save_to_disk(str(work / "data"))
        stats = train_policy(
            work / "data", policy, None, cfg, ModelConfig(tiny=shape), work / "trainer", work / "model"
        )
        seconds = time.perf_counter() - start
        shutil.rmtree(work)
        return seconds, {**ref_stats, **stats}

    results = {}
    for mode in (RefLogprobs.auto, RefLogprobs.trainer):
        run(mode)  # warm-up (imports, caches)
        times: list[float] = []
        stats: dict = {}
        for _ in range(args.reps):
            secs, stats = run(mode)
            times.append(secs)
        results[mode] = (statistics.median(times), stats)
    ours, theirs = results[RefLogprobs.auto], results[RefLogprobs.trainer]
    lines = [
        f"# Training: reused reference log-probs vs TRL's reference pass ({today()})",
        "",
        f"Machine: {machine()}, CUDA {torch.cuda.is_available()}; torch "
        f"{torch.__version__}, trl {trl.__version__}.",
        f"Policy: {'the tiny policy widened to hidden 512, 8 layers, 8 heads, MLP 2048' if wide else 'the built-in tiny policy (hidden 64, 2 layers)'}, "
        f"{sum(p.numel() for p in __import__('transformers').AutoModelForCausalLM.from_pretrained(policy).parameters()) / 1e6:.1f}M parameters; "
        f"responses up to {max_tokens} tokens (mean {statistics.mean(c.num_tokens for c in comps):.0f}).",
        f"Data: {len(pairs)} pairs sampled by that policy ({backend} backend, "
        f"{args.prompts} prompts x 4), {args.epochs:g} epochs, batch 8; median of {args.reps} runs "
        "(each: building the training rows + TRL training, model load and save included).",
        f"Command: `python bench/train.py --size {args.size} --prompts {args.prompts} --reps {args.reps}`.",
        "",
        "| mode | seconds | optimizer steps | reference log-probs |",
        "|---|---|---|---|",
        f"| ours (reference_logprobs=auto) | {ours[0]:.2f} | {ours[1]['optimizer_steps']} | "
        f"{ours[1]['ref_logps_from_sampling']} from sampling, {ours[1]['ref_logps_teacher_forced']} teacher-forced |",
        f"| TRL default (reference model every step) | {theirs[0]:.2f} | {theirs[1]['optimizer_steps']} | "
        "reference forward at every step |",
        "",
        f"TRL default / ours = {theirs[0] / ours[0]:.2f}x time",
        f"step-0 DPO reward of chosen: ours {ours[1]['first_rewards_chosen']:.2e}, TRL {theirs[1]['first_rewards_chosen']:.2e}",
    ]
    out = "\n".join(lines)
    emit(out, args.out)


if __name__ == "__main__":
    main()
