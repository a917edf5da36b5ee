"""An LLM as judge (`judge.kind=generative`): a causal language model (any instruct model, or the policy
itself, `judge.model.path=policy`: self-rewarding) scores responses from the probabilities of label
tokens at the first position of its answer, never from sampled text, so every response gets a number.

- pointwise: the judge is asked to rate one response with one of `judge.generative.labels` (default "1".."5");
  the reward is the expected rating, sum_i (i + 1) * p(label_i) with p renormalised over the labels.
- pairwise: for every ordered pair (i, j) of one prompt's responses the judge is asked whether response
  A (= i) or B (= j) is better; with p_ij = p("A") renormalised over the two labels, the preference is
  P(i > j) = (p_ij + 1 - p_ji) / 2 (both orders: position bias cancels), and the rewards are the
  log-strengths of a Bradley-Terry fit over the prompt's K responses (K(K-1) judge prompts per prompt).

The probabilities come from one forward pass of the judge prompt (transformers) or from vLLM's prompt
log-probs of the prompt followed by each label (the run's engine when the judge is the policy, so no
second engine starts); both are the raw model distribution.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from selfplay.config import JudgeConfig
from selfplay.errors import SelfplayError

log = logging.getLogger(__name__)

POINTWISE_TEMPLATE = """Rate the response to the request below for helpfulness, correctness and clarity, on a scale from {lowest} (worst) to {highest} (best): {labels}.

Request:
{prompt}

Response:
{response}

Answer with one of {labels} only."""

PAIRWISE_TEMPLATE = """Which response answers the request below better (more helpful, correct and clear): {label_a} or {label_b}?

Request:
{prompt}

Response {label_a}:
{response_a}

Response {label_b}:
{response_b}

Answer with {label_a} or {label_b} only."""

BT_PSEUDO_WINS = 0.01
"""A small win each way added to every pair before the Bradley-Terry fit, so that a response that wins
every comparison gets a finite score."""


def label_ids(tokenizer, labels: list[str], key: str) -> list[int]:
    """The token id of each label: each must be one token of its own, known to the tokenizer."""
    ids = []
    for label in labels:
        tokens = tokenizer.encode(label, add_special_tokens=False)
        unknown = tokenizer.unk_token_id is not None and tokens == [tokenizer.unk_token_id]
        if len(tokens) != 1 or unknown:
            why = "an unknown token" if unknown else f"{len(tokens)} tokens"
            raise SelfplayError(
                f"{key}.generative.labels: '{label}' is {why} for the judge's tokenizer; each label must be one token "
                f"of its own (set {key}.generative.labels / {key}.generative.pair_labels to labels it has, e.g. other words)"
            )
        ids.append(tokens[0])
    if len(set(ids)) != len(ids):
        raise SelfplayError(f"{key}.generative.labels {labels}: two labels are the same token")
    return ids


def expected_rating(logprobs: np.ndarray) -> np.ndarray:
    """[n, S] label log-probs -> the expected rating 1..S under p renormalised over the labels."""
    p = np.exp(logprobs - logprobs.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    return p @ np.arange(1, logprobs.shape[1] + 1, dtype=float)


def prefer_first(logprobs: np.ndarray) -> np.ndarray:
    """[n, 2] log-probs of (A, B) -> p(A) renormalised over the two labels."""
    return 1.0 / (1.0 + np.exp(logprobs[:, 1] - logprobs[:, 0]))


def bradley_terry(wins: np.ndarray, iterations: int = 500, tol: float = 1e-10) -> np.ndarray:
    """Log-strengths (mean 0) of a Bradley-Terry fit to soft wins (wins[i, j] = P(i beats j), one
    comparison per unordered pair), by Hunter's MM iterations."""
    k = wins.shape[0]
    if k < 2:
        return np.zeros(k)
    w = wins + BT_PSEUDO_WINS * (1 - np.eye(k))
    n = w + w.T  # comparisons per pair
    total = w.sum(axis=1)
    p = np.ones(k)
    for _ in range(iterations):
        denom = (n / (p[:, None] + p[None, :])).sum(axis=1)
        new = total / denom
        new /= np.exp(np.log(new).mean())
        if np.max(np.abs(new - p)) < tol:
            p = new
            break
        p = new
    scores = np.log(p)
    return scores - scores.mean()


@dataclass(frozen=True)
class JudgePrompt:
    ids: list[int]
    truncated: bool


class PromptRenderer:
    """Judge prompts as token ids: the template filled in, rendered as a user turn with the judge's chat
    template and its generation prompt; responses cut (and flagged) where the prompt would pass
    `judge.model.max_length` tokens."""

    def __init__(self, tokenizer, cfg: JudgeConfig, key: str):
        self.tok, self.cfg, self.key = tokenizer, cfg, key

    def render(self, fill: Callable[[list[str]], str], responses: list[str]) -> JudgePrompt:
        from selfplay.data.chat import render_prompt_ids

        ids = render_prompt_ids(
            self.tok, [{"role": "user", "content": fill(responses)}], f"{self.key}.model.path"
        )
        if len(ids) <= self.cfg.model.max_length:
            return JudgePrompt(ids, False)
        over = len(ids) - self.cfg.model.max_length
        cut = []
        for r in responses:  # take the overflow from the responses, evenly
            toks = self.tok.encode(r, add_special_tokens=False)
            keep = max(0, len(toks) - math.ceil(over / len(responses)) - 2)
            cut.append(self.tok.decode(toks[:keep]))
        ids = render_prompt_ids(self.tok, [{"role": "user", "content": fill(cut)}], f"{self.key}.model.path")
        if len(ids) > self.cfg.model.max_length:
            raise SelfplayError(
                f"{self.key}.model.max_length={self.cfg.model.max_length}: the judge prompt alone (template and request) "
                f"takes {len(ids)} tokens; raise it"
            )
        return JudgePrompt(ids, True)


def pointwise_prompts(renderer: PromptRenderer, items, template: str, labels: list[str]) -> list[JudgePrompt]:
    shown = ", ".join(labels)
    out = []
    for messages, response, _ in items:
        request = messages[-1]["content"]

        def fill(rs: list[str], request=request) -> str:
            return template.format(
                prompt=request, response=rs[0], labels=shown, lowest=labels[0], highest=labels[-1]
            )

        out.append(renderer.render(fill, [response]))
    return out


def pairwise_prompts(renderer: PromptRenderer, items, template: str, pair: list[str]):
    """The ordered pairs (i, j) of each prompt's responses (item indices) and their judge prompts."""
    groups: dict[str, list[int]] = {}
    for index, (_, _, meta) in enumerate(items):
        groups.setdefault(str(meta.get("prompt_id")), []).append(index)
    pairs, prompts = [], []
    for members in groups.values():
        for i in members:
            for j in members:
                if i == j:
                    continue
                request = items[i][0][-1]["content"]

                def fill(rs: list[str], request=request) -> str:
                    return template.format(
                        prompt=request, response_a=rs[0], response_b=rs[1], label_a=pair[0], label_b=pair[1]
                    )

                pairs.append((i, j))
                prompts.append(renderer.render(fill, [items[i][1], items[j][1]]))
    return groups, pairs, prompts


def hf_label_logprobs(
    model, prompts: list[list[int]], labels: list[int], batch_size: int, progress=None
) -> np.ndarray:
    """[n, S] log p(label | prompt) from one forward pass per prompt (left-padded batches, length-sorted,
    positions counted per row so that padding changes nothing)."""
    import torch

    device = next(model.parameters()).device
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    out = np.zeros((len(prompts), len(labels)))
    pad = 0
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            rows = order[start : start + batch_size]
            width = max(len(prompts[i]) for i in rows)
            ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                ids[r, width - len(prompts[i]) :] = torch.tensor(prompts[i])
                mask[r, width - len(prompts[i]) :] = 1
            positions = (mask.cumsum(dim=1) - 1).clamp(min=0)
            logits = (
                model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=positions.to(device),
                )
                .logits[:, -1, :]
                .float()
            )
            lp = torch.log_softmax(logits, dim=-1)[:, labels].cpu().numpy()
            for r, i in enumerate(rows):
                out[i] = lp[r]
            if progress is not None:
                progress.update(0)
    return out


def vllm_label_logprobs(engine, prompts: list[list[int]], labels: list[int]) -> np.ndarray:
    """[n, S] log p(label | prompt) from vLLM: each prompt followed by each label, its prompt log-prob
    at the label's position (the raw distribution)."""
    from vllm import SamplingParams
    from vllm.inputs import TokensPrompt

    requests = [TokensPrompt(prompt_token_ids=[*p, label]) for p in prompts for label in labels]  # type: ignore[typeddict-item]
    params = SamplingParams(max_tokens=1, temperature=1.0, prompt_logprobs=0, detokenize=False)
    outputs = engine.llm.generate(requests, params, use_tqdm=False)
    values = [out.prompt_logprobs[-1][out.prompt_token_ids[-1]].logprob for out in outputs]
    return np.array(values, dtype=float).reshape(len(prompts), len(labels))


class GenerativeScorer:
    def __init__(self, cfg: JudgeConfig, key: str, runtime=None):
        from selfplay.data.chat import require_chat_template
        from selfplay.models.loading import load_tokenizer

        check_generative(cfg, key)
        if cfg.model.path == POLICY:
            if runtime is None or runtime.policy is None:
                raise SelfplayError(f"{key}.model.path=policy: no policy here to judge with")
            self.path = str(runtime.policy)
        else:
            self.path = str(cfg.model.path)
        self.cfg, self.key, self.runtime = cfg, key, runtime
        self.tokenizer = load_tokenizer(
            self.path, cfg.model.trust_remote_code, f"{key}.model.path", cfg.model.chat_template
        )
        require_chat_template(self.tokenizer, f"{key}.model.path")
        self.pairwise = str(cfg.generative.mode) == "pairwise"
        self.labels = label_ids(
            self.tokenizer, list(cfg.generative.pair_labels if self.pairwise else cfg.generative.labels), key
        )
        self.template = cfg.generative.template or (
            PAIRWISE_TEMPLATE if self.pairwise else POINTWISE_TEMPLATE
        )
        self.backend = self._backend()
        self.model: Any = None  # the transformers judge, loaded on first use and kept for every score call

    def _backend(self) -> str:
        choice = str(self.cfg.model.backend)
        gen = getattr(self.runtime, "generate", None)
        if choice == "hf" or (choice == "auto" and gen is None):
            return "hf"
        if gen is None:
            raise SelfplayError(f"{self.key}.model.backend=vllm: no generation engine here (use hf)")
        from dataclasses import replace

        from selfplay.generate.sample import resolve_backend

        return resolve_backend(gen if choice == "auto" else replace(gen, backend="vllm"))

    def score(self, items, progress=None) -> tuple[list[float], list[bool]]:
        renderer = PromptRenderer(self.tokenizer, self.cfg, self.key)
        if not self.pairwise:
            prompts = pointwise_prompts(renderer, items, self.template, list(self.cfg.generative.labels))
            ratings = expected_rating(self.label_logprobs([p.ids for p in prompts]))
            if progress is not None:
                progress.update(len(items))
            return [float(r) for r in ratings], [p.truncated for p in prompts]
        groups, pairs, prompts = pairwise_prompts(
            renderer, items, self.template, list(self.cfg.generative.pair_labels)
        )
        first = prefer_first(self.label_logprobs([p.ids for p in prompts])) if prompts else np.zeros(0)
        q = {pair: float(v) for pair, v in zip(pairs, first)}
        truncated = [False] * len(items)
        for (i, j), p in zip(pairs, prompts):
            if p.truncated:
                truncated[i] = truncated[j] = True
        rewards: list[float] = [0.0] * len(items)
        for members in groups.values():
            wins = np.zeros((len(members), len(members)))
            for a, i in enumerate(members):
                for b, j in enumerate(members):
                    if i != j:
                        wins[a, b] = (q[(i, j)] + 1.0 - q[(j, i)]) / 2  # i first, and i second
            for a, value in zip(range(len(members)), bradley_terry(wins)):
                rewards[members[a]] = float(value)
            if progress is not None:
                progress.update(len(members))
        return rewards, truncated

    def label_logprobs(self, prompts: list[list[int]]) -> np.ndarray:
        if self.backend == "vllm":
            from selfplay.generate.engine_pool import vllm_engine

            gen, model = self.runtime.generate, self.runtime.model
            context = gen.max_model_len
            if context is not None and max(map(len, prompts)) >= context:
                raise SelfplayError(
                    f"{self.key}.model.max_length={self.cfg.model.max_length}: judge prompts of {max(map(len, prompts))} "
                    f"tokens do not fit the engine's generate.max_model_len={context}; lower it"
                )
            dtype = str(model.dtype) if model is not None else "auto"
            with vllm_engine(
                self.path, gen, dtype, self.cfg.model.trust_remote_code, self.cfg.model.allow_pickle
            ) as engine:
                return vllm_label_logprobs(engine, prompts, self.labels)
        from selfplay.models.loading import load_causal_lm

        if self.model is None:  # once per scorer: evaluate scores two policies' samples with one judge
            dtype = (
                str(self.runtime.model.dtype) if getattr(self.runtime, "model", None) is not None else "auto"
            )
            self.model = load_causal_lm(
                self.path, dtype, self.cfg.model.trust_remote_code, allow_pickle=self.cfg.model.allow_pickle
            )
        return hf_label_logprobs(self.model, prompts, self.labels, max(1, self.cfg.batch_size))


POLICY = "policy"
"""judge.model.path=policy: the policy of the iteration judges its own samples (self-rewarding)."""


def check_generative(cfg: JudgeConfig, key: str) -> None:
    if not cfg.model.path:
        raise SelfplayError(
            f"{key}.model.path: required with {key}.kind=generative (a causal LM folder or hub name, or "
            "'policy' for the policy itself)"
        )
    if str(cfg.generative.mode) == "pairwise" and len(cfg.generative.pair_labels) != 2:
        raise SelfplayError(
            f"{key}.generative.pair_labels={list(cfg.generative.pair_labels)}: expected two labels (A, B)"
        )
    if str(cfg.generative.mode) != "pairwise" and len(cfg.generative.labels) < 2:
        raise SelfplayError(
            f"{key}.generative.labels={list(cfg.generative.labels)}: expected at least two labels (lowest first)"
        )
    if cfg.generative.template:
        fields = {"prompt", "response_a", "response_b", "label_a", "label_b"} if str(cfg.generative.mode) == "pairwise" else {
            "prompt", "response", "labels", "lowest", "highest"}  # fmt: skip
        import string

        used = {f for _, f, _, _ in string.Formatter().parse(cfg.generative.template) if f}
        unknown = used - fields
        if unknown or "prompt" not in used:
            raise SelfplayError(
                f"{key}.generative.template: placeholders {sorted(unknown) or '{prompt} missing'}; a {cfg.generative.mode} template may use "
                f"{', '.join('{' + f + '}' for f in sorted(fields))}"
            )
