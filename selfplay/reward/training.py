"""Training a reward model (a one-output sequence classifier on a backbone) with TRL's RewardTrainer on
preference pairs, and its folder: the model and tokenizer as `judge.kind=reward_model` loads them, a model
card stating the held-out pairwise accuracy against the labelling judge, and a JSON summary."""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from selfplay.data.records import Pair
from selfplay.errors import SelfplayError
from selfplay.reward.pairs import add_label_noise, encode_pairs, pairwise_accuracy, split_heldout
from selfplay.train_rm_config import TrainRMConfig

log = logging.getLogger(__name__)

SUMMARY = "training_summary.json"


def check_config(cfg: TrainRMConfig) -> None:
    """Everything that can be refused before a model loads, in one line each."""
    if not cfg.output:
        raise SelfplayError("output: required (the folder the reward model is written to)")
    out = Path(cfg.output)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise SelfplayError(f"output={cfg.output}: exists and is not an empty folder; give a new one")
    if not 0 <= cfg.label_noise <= 0.5:
        raise SelfplayError(
            f"label_noise={cfg.label_noise} must be between 0 and 0.5 (more inverts the labels)"
        )
    if not 0 < cfg.heldout_share < 1:
        raise SelfplayError(f"heldout_share={cfg.heldout_share} must be between 0 and 1 (exclusive)")
    t = cfg.train
    for key, value in [
        ("batch_size", t.batch_size),
        ("gradient_accumulation_steps", t.gradient_accumulation_steps),
    ]:
        if value < 1:
            raise SelfplayError(f"train.{key}={value} must be >= 1")
    if t.learning_rate <= 0 or t.epochs <= 0 or t.max_length < 8:
        raise SelfplayError(
            f"train.learning_rate={t.learning_rate}, train.epochs={t.epochs} must be > 0 and "
            f"train.max_length={t.max_length} >= 8"
        )
    if cfg.input is None and cfg.num_prompts < 2:
        raise SelfplayError(f"num_prompts={cfg.num_prompts}: at least 2 prompts are needed to make pairs")
    check_trl_args(cfg.train.trl_args)


def check_trl_args(trl_args: dict[str, Any]) -> None:
    import dataclasses
    import difflib

    from trl import RewardConfig

    names = {f.name for f in dataclasses.fields(RewardConfig)}
    for key in trl_args:
        if key not in names:
            close = difflib.get_close_matches(key, sorted(names), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise SelfplayError(
                f"train.trl_args.{key}: not a field of TRL's RewardConfig in the installed TRL{hint}"
            )


def file_pairs_for(cfg: TrainRMConfig) -> tuple[list[Pair], dict[str, Any]]:
    """Source (a): the pairs of a preference file, read as `python -m selfplay.train` reads them."""
    from selfplay.data.preferences import file_pairs

    pairs, stats = file_pairs(cfg.input, cfg.split, cfg.pairs, cfg.prompts.system_prompt)
    return pairs, {"source": f"file {cfg.input}", "labels": "the file's chosen / rejected columns", **stats}


def sampled_pairs(cfg: TrainRMConfig) -> tuple[list[Pair], dict[str, Any]]:
    """Source (b): `generate.num_samples` responses of the policy to each of `num_prompts` prompts
    (the loop's sampling core), judged by `judge` (its judging core), best vs worst per prompt."""
    from selfplay.data.prompts import load_prompt_pool
    from selfplay.generate.engine_pool import POOL
    from selfplay.generate.sample import sample_completions
    from selfplay.judge.judging import judge_name, load_judge
    from selfplay.judge.kinds import judge_spec
    from selfplay.models.loading import resolve_policy_path
    from selfplay.reward.pairs import judged_pairs

    judge_spec(cfg.judge).check(cfg.judge, "judge")
    policy = resolve_policy_path(cfg.model)
    prompts = load_prompt_pool(cfg.prompts).pool[: cfg.num_prompts]
    gen = cfg.generate
    completions, backend = sample_completions(policy, prompts, gen, cfg.model, "train_rm", gen.num_samples, 0)
    POOL.close()  # the engine's memory goes back before training
    with load_judge(cfg.judge) as judge:
        judgments = judge(prompts, completions)
    pairs, stats = judged_pairs(prompts, completions, judgments)
    if not pairs:
        raise SelfplayError(
            f"judge {judge_name(cfg.judge)} gave no pair: every prompt's responses tie or are identical "
            f"({stats}); use more prompts or samples (num_prompts, generate.num_samples)"
        )
    source = f"{len(prompts)} prompts x {gen.num_samples} samples of {cfg.model.path} ({backend})"
    return pairs, {"source": source, "labels": f"best vs worst under {judge_name(cfg.judge)}", **stats}


def resolve_backbone(cfg: TrainRMConfig) -> str:
    from selfplay.models.loading import resolve_policy_path

    if cfg.backbone is None:
        return resolve_policy_path(cfg.model)
    try:
        return resolve_policy_path(replace(cfg.model, path=cfg.backbone))
    except SelfplayError as err:
        raise SelfplayError(str(err).replace("model.path", "backbone")) from None


def fit(cfg: TrainRMConfig, backbone: str, rows: list[dict[str, Any]], work: Path):
    """TRL's RewardTrainer on tokenised rows; returns the trainer (its model and log history)."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, PrinterCallback
    from trl import RewardConfig, RewardTrainer

    from selfplay.models.loading import load_tokenizer, loading

    LogLines = _log_lines_callback()
    on_cuda = torch.cuda.is_available()
    tokenizer = load_tokenizer(backbone, cfg.model.trust_remote_code, "backbone", cfg.model.chat_template)
    torch.manual_seed(cfg.seed)  # the score head's initial weights
    with loading(backbone, "backbone"):
        model = AutoModelForSequenceClassification.from_pretrained(
            backbone,
            num_labels=1,
            dtype=torch.float32,
            trust_remote_code=cfg.model.trust_remote_code,
            use_safetensors=None if cfg.model.allow_pickle else True,
        )
    model.config.pad_token_id = tokenizer.pad_token_id
    t = cfg.train
    args = RewardConfig(
        output_dir=str(work),
        learning_rate=t.learning_rate,
        num_train_epochs=t.epochs,
        per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        warmup_steps=t.warmup_ratio,
        weight_decay=t.weight_decay,
        logging_steps=t.logging_steps,
        seed=cfg.seed,
        use_cpu=not on_cuda,
        bf16=on_cuda,
        gradient_checkpointing=False,
        max_length=None,  # rows are cut to train.max_length already, as the judge cuts them
        save_strategy="no",
        report_to=[],
        disable_tqdm=True,
        **dict(t.trl_args),
    )
    trainer = RewardTrainer(
        model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer
    )
    trainer.remove_callback(PrinterCallback)  # its dicts would go to stdout, which holds the summary
    trainer.add_callback(LogLines())
    trainer.train()
    return trainer


def _log_lines_callback():
    from transformers import TrainerCallback

    class LogLines(TrainerCallback):
        """TRL's log entries as progress lines on stderr (logging), not on stdout."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            shown = {
                k: float(f"{v:.4g}") for k, v in (logs or {}).items() if k in SHOWN and isinstance(v, float)
            }
            log.info("train_rm step %d/%d: %s", state.global_step, state.max_steps, shown)

    return LogLines


SHOWN = ("loss", "accuracy", "margin", "learning_rate", "train_loss")


def accuracy_on(folder: Path, pairs: list[Pair], max_length: int) -> float:
    """Pairwise accuracy of the saved reward model, scored by the project's reward-model judge."""
    from selfplay.config import JudgeConfig, JudgeKind, JudgeModelConfig
    from selfplay.judge.reward_model import RewardModel

    judge = RewardModel(
        JudgeConfig(
            kind=JudgeKind.reward_model, model=JudgeModelConfig(path=str(folder), max_length=max_length)
        )
    )
    try:
        chosen, _ = judge.score([(p.messages, p.chosen) for p in pairs])
        rejected, _ = judge.score([(p.messages, p.rejected) for p in pairs])
    finally:
        judge.close()
    return pairwise_accuracy(chosen, rejected)


def train_reward_model(cfg: TrainRMConfig) -> dict[str, Any]:
    """Pairs -> held-out split -> label noise on the training pairs -> RewardTrainer -> the folder,
    its held-out accuracy (against the labelling judge: held-out labels are never flipped) and card."""
    check_config(cfg)
    started = time.time()
    pairs, source = file_pairs_for(cfg) if cfg.input else sampled_pairs(cfg)
    if len(pairs) < 2:
        counts = {k: v for k, v in source.items() if k not in ("source", "labels")}
        raise SelfplayError(
            f"{source['source']}: {len(pairs)} usable preference pair(s) {counts}; at least 2 are needed"
        )
    train, heldout = split_heldout(pairs, cfg.heldout_share, cfg.seed)
    noisy, flipped = add_label_noise(train, cfg.label_noise, cfg.seed)
    backbone = resolve_backbone(cfg)
    from selfplay.data.chat import require_chat_template
    from selfplay.models.loading import load_tokenizer

    tokenizer = load_tokenizer(backbone, cfg.model.trust_remote_code, "backbone", cfg.model.chat_template)
    require_chat_template(tokenizer, "backbone")  # the judge renders with it
    rows, cut = encode_pairs(tokenizer, noisy, cfg.train.max_length)
    out = Path(str(cfg.output))
    tmp = out.with_name(f"{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        trainer = fit(cfg, backbone, rows, tmp / "trainer")
        trainer.save_model(str(tmp))
        shutil.rmtree(tmp / "trainer", ignore_errors=True)
        (tmp / "training_args.bin").unlink(missing_ok=True)  # a pickle; the card and summary say it all
        summary = {
            "backbone": cfg.backbone or cfg.model.path,
            "backbone_path": backbone,
            **source,
            "pairs": len(pairs),
            "train_pairs": len(train),
            "heldout_pairs": len(heldout),
            "label_noise": cfg.label_noise,
            "flipped": len(flipped),
            "flipped_pair_ids": flipped,
            "cut_to_max_length": cut,
            "heldout_accuracy": accuracy_on(tmp, heldout, cfg.train.max_length),
            "train_accuracy_vs_judge": accuracy_on(tmp, train, cfg.train.max_length),
            "train_loss": trainer.state.log_history[-1].get("train_loss"),
            "steps": trainer.state.global_step,
            "seconds": round(time.time() - started, 1),
            "settings": {
                "seed": cfg.seed,
                "heldout_share": cfg.heldout_share,
                **{k: v for k, v in asdict(cfg.train).items() if k != "trl_args"},
            },
            "log_history": trainer.state.log_history,
        }
        (tmp / SUMMARY).write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(card_text(summary), encoding="utf-8")
        if out.exists():
            out.rmdir()  # checked empty at start
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {k: v for k, v in summary.items() if k not in ("log_history", "flipped_pair_ids")}


def card_text(s: dict[str, Any]) -> str:
    """The reward model's card: what it is, what it was trained on, and how well it ranks held-out pairs."""
    settings = s["settings"]
    lines = [
        "---",
        "library_name: transformers",
        "tags: [reward-model, selfplay, trl]",
        "---",
        "",
        "# Reward model",
        "",
        f"A one-output sequence classifier on `{s['backbone']}` (`{s['backbone_path']}`), trained by `python -m selfplay.train_rm` "
        "with TRL's RewardTrainer (Bradley-Terry loss). Use it as a judge: "
        "`judge.kind=reward_model judge.model.path=<this folder>`.",
        "",
        "| | |",
        "|---|---|",
        f"| **held-out pairwise accuracy** (vs the labelling judge) | **{s['heldout_accuracy']:.3f}** "
        f"on {s['heldout_pairs']} pairs |",
        f"| training pairs: accuracy vs the labelling judge | {s['train_accuracy_vs_judge']:.3f} on {s['train_pairs']} pairs |",
        f"| pairs from | {s['source']} |",
        f"| labels | {s['labels']} |",
        f"| label noise | {s['label_noise']} ({s['flipped']} of {s['train_pairs']} training pairs flipped; "
        "held-out pairs never) |",
        f"| held-out share, seed | {settings['heldout_share']}, {settings['seed']} |",
        f"| learning rate, epochs, batch | {settings['learning_rate']}, {settings['epochs']}, {settings['batch_size']} |",
        f"| max length (tokens) | {settings['max_length']} ({s['cut_to_max_length']} training pairs cut) |",
        f"| optimizer steps, final train loss | {s['steps']}, {s['train_loss']:.4f} |",
        "",
        "Accuracy: the share of pairs whose chosen response scores higher (ties count one half), scored by "
        "selfplay's reward-model judge. Details in `training_summary.json`.",
        "",
    ]
    return "\n".join(lines)
