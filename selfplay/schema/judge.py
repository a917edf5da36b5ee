"""The judge's section: its kind, and each kind's own settings in a group of their own (the judge's
model for reward models and LLM judges, the server of a remote judge, an LLM judge's prompting)."""

from __future__ import annotations

from dataclasses import dataclass, field

from selfplay.schema.choices import Backend, JudgeKind, JudgeMode


@dataclass
class JudgeModelConfig:
    """The judge's model: a sequence classifier (kind=reward_model) or a causal LM (kind=generative)."""

    path: str | None = None
    """Model folder or hub name; kind=generative also takes "policy" (the iteration's own policy judges
    its responses: self-rewarding)."""
    chat_template: str | None = None
    """A Jinja chat template (string or file) for a judge model whose tokenizer ships none; null = its own.
    kind=remote: the template that renders the request's `query`; null = the policy's."""
    trust_remote_code: bool = False
    """Allow the judge model's own code (e.g. ArmoRM) to run."""
    allow_pickle: bool = False
    """Allow the judge model's pickle weights (pytorch_model.bin); by default only safetensors load."""
    backend: Backend = Backend.hf
    """Where the judge model runs. hf = transformers (the default; measured faster on this project's CPU,
    bench/judge.py); vllm = reward_model: vLLM's pooling (classification) runner, an engine of its own
    for the stage, freed after it; generative: prompt log-probs on the run's vLLM engine (no second model
    in memory when the judge is the policy); auto = the generation backend."""
    max_length: int = 4096
    """Truncation length of the rendered prompt + response the judge model reads."""
    score_attribute: str | None = None
    """kind=reward_model: the output attribute holding the reward (e.g. "score" for ArmoRM); null =
    logits[:, 0]."""


@dataclass
class RemoteJudgeConfig:
    """A reward server over HTTP (kind=remote; OpenRLHF's remote reward model format, docs/judges.md)."""

    url: str | None = None
    """The reward server's URL; each request POSTs {"query", "prompts", "responses", "messages",
    "metadata"} (`query`: the conversation in a chat template, OpenRLHF's) and reads {"rewards": [...]}."""
    concurrency: int = 4
    """Requests in flight at once."""
    timeout: float = 120.0
    """Seconds one request may take before it is retried."""
    retries: int = 3
    """Retries of a request after a timeout, a lost connection, 408, 429 or 5xx (backoff 1, 2, 4 ... s)
    and of a failed connect (httpx's transport, backoff 0, 0.5, 1 ... s), each logged; then the stage
    fails naming the URL."""
    auth_env: str | None = None
    """The name of an environment variable holding a bearer token, sent as the Authorization header
    (the token itself is never written to the run's config)."""


@dataclass
class GenerativeJudgeConfig:
    """An LLM as judge (kind=generative), scored from its label probabilities."""

    mode: JudgeMode = JudgeMode.pointwise
    """pointwise = a rating per response (the expected label under the judge's probabilities); pairwise =
    A/B comparisons of every ordered pair of a prompt's responses, both orders, turned into rewards by a
    Bradley-Terry fit."""
    labels: list[str] = field(default_factory=lambda: ["1", "2", "3", "4", "5"])
    """pointwise: the rating labels, lowest first (each one token of the judge's tokenizer); label i is
    worth i + 1."""
    pair_labels: list[str] = field(default_factory=lambda: ["A", "B"])
    """pairwise: the labels of the first and the second response."""
    template: str | None = None
    """The judge's instruction with {prompt} and {response} (pointwise; also {labels}, {lowest},
    {highest}) or {response_a}, {response_b}, {label_a}, {label_b} (pairwise); sent as a user turn in
    the judge's chat template. null = our rubric (docs/judges.md)."""


@dataclass
class JudgeConfig:
    """Explicit rewards r_ex(x, y)."""

    kind: JudgeKind = JudgeKind.rule
    """rule = a Python reward function; reward_model = a sequence-classification model; remote = a
    reward server over HTTP; generative = an LLM as judge."""
    rule: str = "topical_variety"
    """kind=rule: a built-in rule's name (selfplay/judge/rules.py) or "module:function" for your own: per
    response `f(prompt, response) -> float`, or batched `f(prompts, responses[, metadata]) -> list`
    (full message lists, judge.batch_size at a time); either may be async."""
    batch_size: int = 16
    """Responses per reward-model forward pass, per batched rule call, per remote request."""
    model: JudgeModelConfig = field(default_factory=JudgeModelConfig)
    """kind=reward_model|generative: the judge's model (kind=remote: its chat_template only)."""
    remote: RemoteJudgeConfig = field(default_factory=RemoteJudgeConfig)
    """kind=remote: the reward server."""
    generative: GenerativeJudgeConfig = field(default_factory=GenerativeJudgeConfig)
    """kind=generative: how the LLM judge is asked."""


@dataclass
class EvaluateJudgeConfig(JudgeConfig):
    """The judge of held-out evaluation: kind=null (default) evaluates with the selection judge
    (`judge`); a kind with these fields sets another one, e.g. evaluate.judge.kind=reward_model
    evaluate.judge.model.path=/models/other-rm."""

    kind: JudgeKind | None = None  # type: ignore[assignment]
    """null = the same judge as `judge`; a judge kind = the judge these fields describe."""


@dataclass
class OfflineJudgeConfig(JudgeConfig):
    """The judge that computes missing rewards. kind=null (default): the dataset's columns must hold
    them (a silent fall-back to a built-in judge on your dataset is never made)."""

    kind: JudgeKind | None = None  # type: ignore[assignment]
    """null = rewards come from the dataset; a judge kind = compute the missing ones with it."""
