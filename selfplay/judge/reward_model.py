"""Sequence-classifier reward models: prompt + response rendered with the reward model's own chat
template (never the policy's), scored in length-sorted batches."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from selfplay.config import GenerateConfig, JudgeConfig
from selfplay.data.chat import require_chat_template
from selfplay.data.records import Message
from selfplay.errors import SelfplayError
from selfplay.models.loading import check_model_dir, default_device, load_tokenizer, loading, torch_dtype

log = logging.getLogger(__name__)


class RewardModel:
    """Scores (messages, response) pairs with a sequence classifier: transformers'
    `AutoModelForSequenceClassification` (judge.model.backend=hf) or vLLM's pooling runner (vllm)."""

    def __init__(
        self,
        cfg: JudgeConfig,
        device: str | None = None,
        key: str = "judge",
        generate: GenerateConfig | None = None,
    ):
        if not cfg.model.path:
            raise SelfplayError("judge.model.path: required with judge.kind=reward_model")
        check_model_dir(cfg.model.path, f"{key}.model.path", cfg.model.allow_pickle)
        self.cfg, self.key = cfg, key
        self.device = device or default_device()
        self.tokenizer = load_tokenizer(
            cfg.model.path, cfg.model.trust_remote_code, f"{key}.model.path", cfg.model.chat_template
        )
        require_chat_template(self.tokenizer, f"{key}.model.path")
        self.engine: Any = None
        self.backend = reward_model_backend(cfg, generate, key)
        if self.backend == "vllm":
            self.model: Any = None
            self._start_vllm(generate or GenerateConfig())
            return
        from transformers import AutoModelForSequenceClassification

        with loading(cfg.model.path, f"{key}.model.path"):
            self.model = (
                AutoModelForSequenceClassification.from_pretrained(
                    cfg.model.path,
                    dtype=torch_dtype("auto", self.device),
                    trust_remote_code=cfg.model.trust_remote_code,
                    use_safetensors=None if cfg.model.allow_pickle else True,
                )
                .to(self.device)
                .eval()
            )
        outputs = getattr(self.model.config, "num_labels", 1)
        if outputs != 1 and not cfg.model.score_attribute:
            raise SelfplayError(
                f"{key}.model.score_attribute: the reward model '{cfg.model.path}' gives {outputs} values per response "
                f"(num_labels={outputs}); name the output that holds the reward ({key}.model.score_attribute=...), "
                "or use a model with one output"
            )
        if self.model.config.pad_token_id is None:
            self.model.config.pad_token_id = self.tokenizer.pad_token_id

    def _start_vllm(self, generate: GenerateConfig) -> None:
        import json
        from pathlib import Path

        from selfplay.generate.vllm_backend import VllmClassifier
        from selfplay.models.loading import model_context_length

        config_file = Path(str(self.cfg.model.path)) / "config.json"
        config = json.loads(config_file.read_text()) if config_file.is_file() else {}
        outputs = config.get("num_labels", len(config.get("id2label") or {}) or 1)
        if self.cfg.model.score_attribute or outputs != 1:
            raise SelfplayError(
                f"{self.key}.model.backend=vllm: the reward model '{self.cfg.model.path}' gives "
                f"{outputs} values per response"
                + (" through a custom output" if self.cfg.model.score_attribute else "")
                + f"; vLLM's classifier reads one score per response: use {self.key}.model.backend=hf"
            )
        context = model_context_length(str(self.cfg.model.path), self.cfg.model.trust_remote_code)
        length = min(self.cfg.model.max_length, context) if context else self.cfg.model.max_length
        self.cfg = replace(self.cfg, model=replace(self.cfg.model, max_length=length))
        from selfplay.generate.engine_pool import POOL

        if POOL.engine is not None:
            # vLLM keeps one distributed state per process: two in-process engines break each other
            # (measured: the sampling engine fails once this one is closed), so the sampling engine goes
            # and the next sampling stage starts it again.
            log.info(
                "judge.model.backend=vllm: closing this process's sampling engine for the reward model's"
            )
            POOL.close()
        self.engine = VllmClassifier(
            str(self.cfg.model.path),
            length,
            generate,
            self.cfg.model.trust_remote_code,
            self.cfg.model.allow_pickle,
        )

    def close(self) -> None:
        """Free the model's memory (a vLLM engine is shut down; transformers' model is dropped)."""
        if self.engine is not None:
            self.engine.close()
            self.engine = None
        self.model = None

    def render(self, messages: list[Message], response: str) -> list[int]:
        conversation = [*messages, {"role": "assistant", "content": response}]
        text = self.tokenizer.apply_chat_template(conversation, tokenize=False)
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def score(self, items: list[tuple[list[Message], str]], progress=None) -> tuple[list[float], list[bool]]:
        """Rewards and truncation flags, in input order."""
        import torch

        encoded = [self.render(m, r) for m, r in items]
        truncated = [len(ids) > self.cfg.model.max_length for ids in encoded]
        encoded = [ids[: self.cfg.model.max_length] for ids in encoded]
        order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
        rewards = [0.0] * len(encoded)
        batch_size, start = self.cfg.batch_size, 0
        while start < len(order):
            idx = order[start : start + batch_size]
            try:
                values = self._forward([encoded[i] for i in idx])
            except torch.OutOfMemoryError:
                if batch_size == 1:
                    raise SelfplayError(
                        f"judge: the reward model runs out of memory on one sequence of {len(encoded[idx[0]])} "
                        "tokens; lower judge.model.max_length"
                    ) from None
                batch_size = max(1, batch_size // 2)
                log.warning("judge: out of memory; retrying with batch size %d", batch_size)
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
                continue
            for i, v in zip(idx, values):
                rewards[i] = float(v)
            start += len(idx)
            if progress is not None:
                progress.update(len(idx))
        return rewards, truncated

    def _forward(self, rows: list[list[int]]) -> list[float]:
        import torch

        if self.engine is not None:
            return self.engine.classify(rows)

        batch = self.tokenizer.pad({"input_ids": rows}, return_tensors="pt")
        with torch.inference_mode():
            out = self.model(**{k: v.to(self.device) for k, v in batch.items()})
        return self._scalar(out).float().cpu().tolist()

    def _scalar(self, out):
        if self.cfg.model.score_attribute:
            if not hasattr(out, self.cfg.model.score_attribute):
                raise SelfplayError(
                    f"judge.model.score_attribute: the reward model output has no '{self.cfg.model.score_attribute}'"
                )
            value = getattr(out, self.cfg.model.score_attribute)
        else:
            value = out.logits
        return value.reshape(value.shape[0], -1)[:, 0]


def reward_model_backend(cfg: JudgeConfig, generate: GenerateConfig | None, key: str) -> str:
    """hf or vllm, from judge.model.backend (auto = the generation backend, hf where there is none)."""
    choice = str(cfg.model.backend)
    if choice == "auto":
        if generate is None:
            return "hf"
        from selfplay.generate.sample import resolve_backend

        choice = resolve_backend(generate)
    if choice == "vllm":
        from selfplay.generate.vllm_backend import vllm_available

        if not vllm_available():
            raise SelfplayError(f"{key}.model.backend=vllm: vLLM is not installed here (use hf)")
    return choice
