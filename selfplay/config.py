"""The one configuration schema: structured-config dataclasses, each field's default written once.

Hydra composes YAML from `conf/` (shipped as `selfplay.conf`) on top of these and `run.py` converts the result into these
dataclasses once (they are not `frozen`: OmegaConf makes frozen nodes read-only, which breaks
command-line overrides; stages treat them as read-only). No logic lives here beyond registering.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from hydra.core.config_store import ConfigStore


class Choice(str, Enum):
    """A closed set of names; compares equal to its plain string and prints as it."""

    def __str__(self) -> str:
        return self.value


class Dtype(Choice):
    auto = "auto"
    float32 = "float32"
    bfloat16 = "bfloat16"
    float16 = "float16"


class PromptSource(Choice):
    bundled = "bundled"
    file = "file"
    hf = "hf"


class Backend(Choice):
    auto = "auto"
    vllm = "vllm"
    hf = "hf"


class JudgeKind(Choice):
    rule = "rule"
    reward_model = "reward_model"
    remote = "remote"
    generative = "generative"


class JudgeMode(Choice):
    pointwise = "pointwise"
    pairwise = "pairwise"


class TrackingBackend(Choice):
    none = "none"
    tensorboard = "tensorboard"
    wandb = "wandb"
    trackio = "trackio"


class LogprobSource(Choice):
    generation = "generation"
    teacher_forcing = "teacher_forcing"


class LogprobsMode(Choice):
    raw = "raw"
    processed = "processed"


class EngineLifetime(Choice):
    persistent = "persistent"
    per_stage = "per_stage"


class Pairing(Choice):
    best_vs_worst = "best_vs_worst"
    best_vs_random = "best_vs_random"
    random_pair = "random_pair"
    all_pairs = "all_pairs"


class SelectionPool(Choice):
    iteration = "iteration"
    all = "all"


class Nonfinite(Choice):
    drop = "drop"
    error = "error"


class Metric(Choice):
    alignment_potential = "alignment_potential"
    random = "random"
    explicit = "explicit"
    explicit_small = "explicit_small"
    implicit_small = "implicit_small"
    implicit_large = "implicit_large"


class ImplicitReward(Choice):
    avg_logp = "avg_logp"
    sum_logp = "sum_logp"
    dpo = "dpo"


class TableFormat(Choice):
    parquet = "parquet"
    jsonl = "jsonl"


class Loss(Choice):
    dpo = "dpo"
    simpo = "simpo"


class EvolveParents(Choice):
    all = "all"
    top = "top"


class Preamble(Choice):
    strip = "strip"  # type: ignore[assignment]  # shadows str.strip on members only; the name is the config value
    drop = "drop"


class ClusterKind(Choice):
    local = "local"
    gpus = "gpus"
    slurm = "slurm"


class Isolation(Choice):
    auto = "auto"
    in_process = "in_process"
    process = "process"


class RefLogprobs(Choice):
    auto = "auto"
    teacher_forced = "teacher_forced"
    trainer = "trainer"


class TinyTemplate(Choice):
    plain = "plain"
    chatml = "chatml"


class Reference(Choice):
    previous = "previous"
    initial = "initial"


TINY_MODEL = "tiny"
"""Model path that means: the built-in tiny policy, built locally and cached (no download)."""


@dataclass
class TinyModelConfig:
    """How the built-in tiny policy is built (only used when `model.path == "tiny"`)."""

    seed: int = 0
    """Seed for the tokenizer corpus, weight init and pre-training; same seed -> same model."""
    hidden_size: int = 64
    """Hidden width (head_dim = hidden_size / num_heads must be >= 32 for vLLM's CPU kernels)."""
    num_layers: int = 2
    """Decoder layers."""
    num_heads: int = 2
    """Attention heads."""
    pretrain_steps: int = 1200
    """Steps of next-token training on templated chat text, so samples vary but are not noise."""
    template: TinyTemplate = TinyTemplate.plain
    """Chat format: plain (<|user|> ... <|end|>, a BOS) or chatml (<|im_start|>role, <|im_end|> and a
    newline after every turn, a default system turn, no BOS: the shape of Qwen-style templates)."""
    cache_dir: str | None = None
    """Where built models are cached; null means $SELFPLAY_CACHE or ~/.cache/selfplay."""


@dataclass
class ModelConfig:
    """The starting policy pi_0."""

    path: str = TINY_MODEL
    """Hugging Face model folder or hub name, or "tiny" for the built-in tiny policy (with preset=tiny;
    any other model needs preset=none or a preset of conf/preset/)."""
    trust_remote_code: bool = False
    """Allow the model's own Python code to run (explicit per-model opt-in)."""
    allow_pickle: bool = False
    """Allow pickle weights (pytorch_model.bin), which can run code when loaded; by default only
    safetensors load."""
    chat_template: str | None = None
    """A Jinja chat template (the string, or a file holding it) for a model whose tokenizer ships none or
    the wrong one; it replaces the tokenizer's wherever the policy's prompts and responses are rendered,
    and is saved with every trained policy. null = the tokenizer's own."""
    dtype: Dtype = Dtype.auto
    """Weights dtype: auto = bfloat16 on CUDA, float32 on CPU."""
    tiny: TinyModelConfig = field(default_factory=TinyModelConfig)
    """Settings of the built-in tiny policy."""


@dataclass
class PromptsConfig:
    """Where the prompt pool and the held-out prompts come from and how iterations draw on them."""

    source: PromptSource = PromptSource.bundled
    """bundled = the prompt set shipped in the package; file = local JSONL/Parquet; hf = datasets."""
    path: str | None = None
    """File path (source=file) or dataset name / saved-dataset folder (source=hf)."""
    split: str = "train"
    """Dataset split (source=hf)."""
    field: str = "prompt"
    """Column holding the prompt: a string, or a list of chat messages ({role, content})."""
    id_field: str | None = None
    """Column with a stable prompt id; null means ids are derived from the prompt text."""
    heldout_path: str | None = None
    """Held-out prompts (same formats); null with source=bundled uses the bundled held-out set,
    otherwise the last `heldout_size` prompts of the pool are held out."""
    heldout_size: int = 48
    """Number of held-out prompts used for evaluation."""
    per_iteration: int = 96
    """Prompts drawn for each iteration (disjoint windows of the shuffled pool)."""
    shuffle_seed: int = 0
    """Seed of the pool's shuffle before it is cut into iteration windows."""
    system_prompt: str | None = None
    """System message prepended to every prompt (also at training time)."""


@dataclass
class GenerateConfig:
    """Sampling K responses per prompt with the current policy."""

    backend: Backend = Backend.auto
    """vllm = offline vllm.LLM; hf = transformers generate; auto = vllm when it imports."""
    num_samples: int = 5
    """K: responses sampled per prompt (the paper: 5)."""
    temperature: float = 0.8
    """Sampling temperature."""
    top_p: float = 0.95
    """Nucleus sampling mass."""
    top_k: int = -1
    """Top-k sampling (-1 = off)."""
    max_tokens: int = 1024
    """Maximum new tokens per response."""
    seed: int = 0
    """Run seed; each prompt's sampling seed is derived from (seed, iteration, prompt id)."""
    max_model_len: int | None = None
    """Context length given to the engine (prompt + response); null = the model's own (its config's
    max_position_embeddings), as vLLM does. Set it lower where KV-cache memory is short (CPUs)."""
    tensor_parallel_size: int = 1
    """vLLM tensor parallelism inside one engine."""
    gpu_memory_utilization: float = 0.85
    """vLLM's GPU memory fraction."""
    enforce_eager: bool = True
    """Skip CUDA graph capture (faster start; slower decode on GPUs)."""
    cpu_kv_cache_gib: float = 1.0
    """KV cache size on a CPU (vLLM otherwise takes ~11 GiB)."""
    hf_batch_size: int = 64
    """Sequences (prompts x K) per forward pass of the transformers backend (generate.backend=hf);
    lower it where the KV cache of that many sequences does not fit."""
    stop: list[str] = field(default_factory=list)
    """Stop strings: a response ends before the first one (finish_reason "stop")."""
    ignore_eos: bool = False
    """Keep sampling past end-of-sequence up to max_tokens (benchmarks)."""
    logprobs_mode: LogprobsMode = LogprobsMode.raw
    """Which log-prob of each sampled token is recorded: raw = the model's distribution (before
    temperature and top-p; what teacher forcing computes, and what DPO's reference needs), processed =
    the distribution actually sampled from (after temperature and top-p; what vLLM's V0 engine returned,
    and so very likely what the paper's self-play runs used). Processed values are never reused as DPO
    reference log-probs."""
    engine: EngineLifetime = EngineLifetime.persistent
    """persistent = one vLLM engine per process serves every sampling stage of every iteration, its weights
    reloaded in place for each new policy (on GPUs it sleeps while other stages need the memory);
    per_stage = a new engine for each sampling stage, closed at its end (isolation, debugging). Records
    are identical either way."""
    engine_args: dict[str, Any] = field(default_factory=dict)
    """Extra keyword arguments for `vllm.LLM` (vLLM's engine arguments, e.g. max_num_seqs,
    enable_prefix_caching, quantization), applied last, over our own CPU scheduler settings; set them
    as `+generate.engine_args.max_num_seqs=64`. Keys that have a generate.* or model.* setting of their
    own (model, seed, dtype, max_model_len, ...) are refused: set those instead."""


@dataclass
class JudgeConfig:
    """Explicit rewards r_ex(x, y)."""

    kind: JudgeKind = JudgeKind.rule
    """rule = a Python reward function; reward_model = a sequence-classification model; remote = a
    reward server over HTTP (OpenRLHF's remote reward model format)."""
    rule: str = "topical_variety"
    """Built-in rule name (see selfplay/judge/rules.py) or "module:function" for your own: per response
    `f(prompt, response) -> float`, or batched `f(prompts, responses[, metadata]) -> list` (full message
    lists, judge.batch_size at a time); either may be async."""
    model_path: str | None = None
    """Reward model folder or hub name (kind=reward_model)."""
    chat_template: str | None = None
    """A Jinja chat template (string or file) for a reward model whose tokenizer ships none; null = its own."""
    trust_remote_code: bool = False
    """Allow the reward model's own code (e.g. ArmoRM) to run."""
    allow_pickle: bool = False
    """Allow the reward model's pickle weights (pytorch_model.bin); by default only safetensors load."""
    batch_size: int = 16
    """Responses per reward-model forward pass, per batched rule call, per remote request."""
    url: str | None = None
    """kind=remote: the reward server's URL; each request POSTs {"query", "prompts", "responses",
    "messages", "metadata"} and reads {"rewards": [...]} (docs/judges.md)."""
    concurrency: int = 4
    """kind=remote: requests in flight at once."""
    timeout: float = 120.0
    """kind=remote: seconds one request may take before it is retried."""
    retries: int = 3
    """kind=remote: retries of a request after a timeout, a lost connection, 429 or 5xx (backoff 1, 2,
    4 ... s); then the stage fails naming the URL."""
    auth_env: str | None = None
    """kind=remote: the name of an environment variable holding a bearer token, sent as the
    Authorization header (the token itself is never written to the run's config)."""
    mode: JudgeMode = JudgeMode.pointwise
    """kind=generative: pointwise = a rating per response (the expected label under the judge's
    probabilities); pairwise = A/B comparisons of every ordered pair of a prompt's responses, both orders,
    turned into rewards by a Bradley-Terry fit."""
    labels: list[str] = field(default_factory=lambda: ["1", "2", "3", "4", "5"])
    """kind=generative, pointwise: the rating labels, lowest first (each one token of the judge's
    tokenizer); label i is worth i + 1."""
    pair_labels: list[str] = field(default_factory=lambda: ["A", "B"])
    """kind=generative, pairwise: the labels of the first and the second response."""
    llm_backend: Backend = Backend.hf
    """kind=reward_model|generative: where the judge model runs. hf = transformers (the default;
    measured faster on this project's CPU, bench/judge.py); vllm = reward_model: vLLM's pooling
    (classification) runner, an engine of its own for the stage, freed after it; generative: prompt
    log-probs on the run's vLLM engine (no second model in memory when the judge is the policy);
    auto = the generation backend."""
    template: str | None = None
    """kind=generative: the judge's instruction with {prompt} and {response} (pointwise; also {labels},
    {lowest}, {highest}) or {response_a}, {response_b}, {label_a}, {label_b} (pairwise); sent as a user
    turn in the judge's chat template. null = our rubric (docs/judges.md)."""
    max_length: int = 4096
    """Truncation length of rendered prompt + response for the reward model."""
    score_attribute: str | None = None
    """Output attribute holding the reward (e.g. "score" for ArmoRM); null = logits[:, 0]."""


@dataclass
class LogprobsConfig:
    """Where the implicit rewards' log-probabilities come from (docs/method.md section 3)."""

    source: LogprobSource = LogprobSource.generation
    """generation = the sampler's raw log-probs; teacher_forcing = a separate forward pass."""
    batch_size: int = 16
    """Sequences per teacher-forced forward pass."""


@dataclass
class SelectionConfig:
    """Pairing per prompt, margins, the selection metric and top-k."""

    pairing: Pairing = Pairing.best_vs_worst
    """best_vs_worst: highest vs lowest reward; best_vs_random: highest vs a random other;
    random_pair: two random responses; all_pairs: every pair whose margin >= min_margin."""
    min_margin: float = 0.0
    """all_pairs only: smallest explicit margin a pair needs (ties never pair)."""
    exclude_truncated: bool = False
    """Drop responses cut at max_tokens before pairing."""
    keep_ties: bool = False
    """Keep a prompt whose responses all tie in reward as a pair with margin 0 (its last response chosen,
    its first rejected), as the reference code does; false drops and counts it (`tied`). Offline
    selection keeps a given pair whose rewards tie either way (the metrics rank it)."""
    on_nonfinite: Nonfinite = Nonfinite.drop
    """NaN/inf rewards or log-probs: drop and count them, or stop with an error."""
    pool: SelectionPool = SelectionPool.iteration
    """Rank this iteration's pairs (iteration) or all pairs of this and earlier iterations (all)."""
    metric: Metric = Metric.alignment_potential
    """Score used to rank pairs (higher = kept)."""
    weight: float = 1.0
    """w in M_AP = z(d_ex) - w * z(|d_im|)."""
    implicit_abs: bool = True
    """Use |d_im| (true) or the signed d_im (false) in alignment potential."""
    implicit_reward: ImplicitReward = ImplicitReward.avg_logp
    """avg_logp / sum_logp: mean / sum of response-token log-probs under pi_t; dpo: log pi_t(y|x) -
    log pi_0(y|x) (needs train.reference=initial; pi_0's log-probs come from a teacher-forced pass). dpo
    is refused with a metric that reads it: at iteration 0 pi_t = pi_0 and it is identically zero."""
    ratio: float | None = 0.4
    """Keep round(ratio * pool) pairs; used when `count` is null (the paper: 0.4)."""
    count: int | None = None
    """Keep exactly this many pairs (at most the pool)."""
    seed: int = 0
    """Seed of the `random` metric and of the random pairing strategies."""


@dataclass
class LoraConfig:
    """LoRA adapters through PEFT; the saved policy is always a merged, plain model."""

    enabled: bool = False
    """Train LoRA adapters instead of all weights."""
    r: int = 16
    """Adapter rank."""
    alpha: int = 32
    """LoRA alpha."""
    dropout: float = 0.05
    """Adapter dropout."""
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj"])
    """Module names (suffixes) that get adapters; each must exist in the model."""


@dataclass
class TrainConfig:
    """Preference training of pi_{t+1} from pi_t with TRL."""

    loss: Loss = Loss.dpo
    """dpo: TRL's DPOTrainer with `dpo_loss_type`; simpo: TRL's CPO trainer in SimPO mode (no reference)."""
    dpo_loss_type: str = "sigmoid"
    """TRL DPO loss_type (sigmoid, ipo, hinge, robust, ...; checked against the installed TRL)."""
    beta: float | None = None
    """null = the loss's usual value: DPO 0.1 (the DPO paper; TRL's default), SimPO 2.5 (SimPO's
    instruct-model recipes use 2.5 to 10; the paper presets 10). DPO's beta is usually 0.01 to 0.5,
    SimPO's 1 to 10: a value outside that is warned about at start."""
    simpo_gamma_beta_ratio: float = 0.5
    """SimPO margin as a fraction of beta: gamma = ratio * beta (SimPO's recipes: 0.3 to 0.55)."""
    learning_rate: float = 5e-7
    """Peak learning rate. DPO and SimPO recipes for 7-9B instruct models use 3e-7 to 1e-6 (SimPO
    paper; the paper presets); small models tolerate more (~5e-6 at 0.5B). Above 1e-4 on a model
    over 100M parameters is warned about at start."""
    epochs: float = 1.0
    """Passes over the training pairs (the recipes: 1)."""
    batch_size: int = 4
    """Per-device micro-batch size."""
    gradient_accumulation_steps: int = 8
    """Micro-batches per optimiser step (ignored when global_batch_size is set): the default makes 32
    pairs per step and process; the paper presets use a global batch of 128."""
    global_batch_size: int | None = None
    """Pairs per optimiser step over all processes; accumulation = global / (batch_size x processes)."""
    lr_scheduler: str = "cosine"
    """transformers scheduler name."""
    warmup_ratio: float = 0.1
    """Fraction of steps spent warming up."""
    max_length: int = 2048
    """Truncation length of prompt + response in tokens (keep the start, as TRL does)."""
    seed: int = 42
    """Trainer seed."""
    reference: Reference = Reference.previous
    """DPO reference: pi_t (previous) or pi_0 (initial); recorded in the manifest."""
    reference_logprobs: RefLogprobs = RefLogprobs.auto
    """Where DPO's reference log-probs come from. auto: the sampled log-probs wherever the reference
    policy sampled the trained tokens and the numerics are exact (fp32), the rest from one teacher-forced
    pass of the reference before training (in bf16 on GPUs: all of them); teacher_forced: that one pass
    for every pair; trainer: TRL runs the reference model at every step."""
    accumulate: bool = False
    """Train on the kept pairs of this and all earlier iterations (false: this iteration's only)."""
    gradient_checkpointing: bool | None = None
    """null = on with CUDA, off on a CPU."""
    num_processes: int = 1
    """Training processes (GPUs); > 1 launches the train stage as that many rank processes."""
    deepspeed: str | None = None
    """DeepSpeed config: zero2, zero3 (shipped in conf/deepspeed/) or a JSON path; null = none."""
    save_steps: int = 100
    """Save a trainer checkpoint (weights, optimizer, scheduler, RNG) every this many optimizer steps in
    the stage's partial folder; a rerun of a killed train stage resumes from the newest one. 0 = never."""
    save_total_limit: int = 1
    """Trainer checkpoints kept (the oldest are deleted); all are deleted when the stage finishes."""
    trl_args: dict[str, Any] = field(default_factory=dict)
    """Extra fields of TRL's DPOConfig / CPOConfig (SimPO), passed through as given and checked against the
    installed TRL at start (a misspelled field is a one-line error), e.g. +train.trl_args.max_grad_norm=0.5
    (the leading + because Hydra needs it for keys the schema does not list)."""
    lora: LoraConfig = field(default_factory=LoraConfig)


def _evolved_selection() -> SelectionConfig:
    return SelectionConfig(weight=2.5, ratio=0.5)


@dataclass
class EvolveConfig:
    """Evolve-then-select (docs/method.md section 5): the policy rewrites prompts, the evolved prompts are
    sampled, judged and paired, and the best evolved pairs join the seed pairs for training."""

    enabled: bool = False
    """Run the evolve, evolved_generate, evolved_judge and evolved_selection stages after selection."""
    strategies: list[str] = field(
        default_factory=lambda: ["breadth", "deepen", "constraints", "concretize", "reasoning"]
    )
    """Rewrite strategies; each is a template file <name>.txt with a {prompt} placeholder."""
    templates_dir: str | None = None
    """Folder of <strategy>.txt templates; null = the bundled ones (selfplay/assets/evolve/);
    "selfplay:evolve_tiny" = the short ones in the tiny model's vocabulary."""
    parents: EvolveParents = EvolveParents.all
    """Which prompts are evolved: all of the iteration's, or the top fraction by their seed pair's score."""
    top_fraction: float = 0.25
    """With parents=top: the fraction of the iteration's scored seed pairs whose prompts are evolved."""
    rewrites_per_prompt: int = 1
    """Strategies applied to each parent (a seeded draw without repeats; at most len(strategies))."""
    max_tokens: int | None = None
    """Length limit of a rewrite in tokens; null = generate.max_tokens (the reference code allows 4096).
    A rewrite cut at the limit is dropped and counted (`truncated`): it is not a whole prompt."""
    min_length_ratio: float = 0.2
    """Keep a rewrite only if len(new) / len(original) in characters is above this..."""
    max_length_ratio: float = 5.0
    """...and below this."""
    preamble: Preamble = Preamble.strip
    """Rewrites starting like "Here is the rewritten prompt:": strip the preamble, or drop the rewrite."""
    selection: SelectionConfig = field(default_factory=_evolved_selection)
    """Pairing and top-k of the evolved pairs (the paper: alignment potential, w = 2.5, top 10k)."""


@dataclass
class EvaluateJudgeConfig(JudgeConfig):
    """The judge of held-out evaluation: kind=null (default) evaluates with the selection judge
    (`judge`); a kind with these fields sets another one, e.g. evaluate.judge.kind=reward_model
    evaluate.judge.model_path=/models/other-rm."""

    kind: JudgeKind | None = None  # type: ignore[assignment]
    """null = the same judge as `judge`; a judge kind = the judge these fields describe."""


@dataclass
class EvaluateConfig:
    """Held-out evaluation of each new policy with the judge."""

    enabled: bool = True
    """Run the evaluate stage."""
    num_samples: int = 4
    """Responses sampled per held-out prompt (same sampling settings as generate)."""
    judge: EvaluateJudgeConfig = field(default_factory=lambda: EvaluateJudgeConfig())
    """The evaluation judge (the paper selects with one reward model and evaluates with another judge)."""
    completions: int = 8
    """Held-out prompts in each iteration's completion table (evaluate/completions.jsonl, logged to the
    tracker as a table): the first N held-out prompts' first sample from pi_0 and from the new policy,
    their rewards and the winner. 0 = no table."""


@dataclass
class LoopConfig:
    """The outer loop, where it writes, and how it resumes."""

    iterations: int = 3
    """T: number of self-play iterations."""
    output_dir: str = "runs"
    """Parent folder of run directories."""
    run_name: str = "default"
    """Run directory name; rerunning with the same name resumes the run."""
    restart_from: str | None = None
    """"<iteration>/<stage>" (e.g. "1/train"): redo that stage and everything after it."""
    threads: int | None = None
    """torch CPU threads (null = torch's default)."""
    shards: int = 1
    """Prompt shards of the generate, judge and logprobs stages; each shard writes its own part."""
    shard_workers: int = 0
    """0 = run shards one after another in this process; n = up to n shard processes at a time (on
    GPUs each gets its own `generate.tensor_parallel_size` devices: one vLLM engine per group)."""
    isolation: Isolation = Isolation.auto
    """process: every stage runs as its own `python -m selfplay.run ... task.stage=<s>` process (GPU
    memory is free between stages); in_process: stages run in the orchestrator; auto: in_process with
    cluster=local, process otherwise."""
    workers: bool | None = None
    """Long-lived workers, one per engine slot (a GPU group, a CPU slot), started once per run: each
    holds its generation engine for the whole run (weights reloaded in place for each new policy,
    asleep while others need the GPU) and runs every shard of generate, judge, logprobs, evolve and
    evaluate sent to it. null = on with cluster=gpus|slurm and wherever shards run as processes
    (loop.shard_workers > 0 or loop.isolation=process); false = a process (and an engine) per shard."""
    dry_run: bool = False
    """Print every command each stage would launch for the cluster config, run nothing."""
    stop_after: str | None = None
    """Stop the run after this stage of its last iteration, e.g. `selection` to generate, judge and pair a
    pool without training it (then select it offline with different metrics and train on the files)."""
    progress: bool = True
    """Progress lines (counts, rate, ETA) of long stages, and heartbeat lines of running processes;
    false silences them (CI, batch jobs)."""
    progress_interval: float = 10.0
    """Seconds between progress lines of one loop, and between heartbeat lines of a running process."""
    log_level: str = "INFO"
    """Verbosity of the run's log lines on stderr (and of every process it starts): DEBUG, INFO, WARNING
    or ERROR. Hydra's own `hydra.verbose=true` turns on its debug lines too."""
    hang_timeout: float | None = 3600.0
    """A stage, shard or training process whose heartbeat (written as it makes progress) is silent this
    many seconds is killed and its stage fails, naming it, its log and the silence; null = never."""
    stage_timeout: float | None = None
    """Wall-clock limit of each stage, shard or training process in seconds; null = none."""


@dataclass
class TrackingConfig:
    """Experiment tracking: one tracked run per selfplay run, resumed with it."""

    backend: TrackingBackend = TrackingBackend.none
    """none, tensorboard (offline event files in <run>/tracking/tensorboard, tensorboardX), wandb or
    trackio (each needs its package installed)."""
    project: str = "selfplay"
    """W&B / Trackio project name."""


@dataclass
class HubConfig:
    """Pushing each iteration's policy and kept pairs to the Hugging Face Hub (never by default;
    docs/guide.md "Seeing a run" shows the layout)."""

    push: bool = False
    """Push after each iteration's evaluation (a `push` stage): the policy with its model card to the root
    of the model repository, the kept pairs of every finished iteration to the dataset repository."""
    repo_id: str | None = None
    """The model repository ("user/name"); required with hub.push=true."""
    dataset_repo_id: str | None = None
    """The dataset repository of the kept pairs (repo_type=dataset); null = "<repo_id>-pairs"."""
    revisions: bool = True
    """Also keep each iteration's policy as a branch `iter-<t>` of the model repository (main always holds
    the newest)."""
    private: bool = True
    """Create the repositories private."""
    license: str | None = None
    """The license named in both cards (e.g. apache-2.0; null = none stated)."""
    dry_run: bool = False
    """Write and print the push plan (every repository, revision and file) and upload nothing."""


@dataclass
class ClusterConfig:
    """Where stages run: this process (local), one node's GPUs (gpus), or a SLURM allocation (slurm)."""

    kind: ClusterKind = ClusterKind.local
    """local: as configured in loop/train; gpus: one vLLM engine per tensor-parallel group of this
    node's GPUs, training on all of them; slurm: the same over every node of the allocation."""
    gpus_per_node: int | None = None
    """GPUs per node; null = all visible (gpus) or SLURM_GPUS_ON_NODE / SLURM_GPUS_PER_NODE (slurm)."""
    master_addr: str | None = None
    """Address that rank 0 of training binds and the other ranks connect to; null = 127.0.0.1 on one
    machine, the first node of the allocation on SLURM (its name resolved on that node; a name that
    resolves to a loopback address there while other nodes are elsewhere is refused at start)."""
    master_port: int | None = None
    """Rendezvous port of training; null = a free port chosen by rank 0 at each launch and published to
    the other ranks through the stage's folder (no fixed port for two jobs to collide on)."""
    rendezvous_timeout: float = 300.0
    """Seconds the training ranks wait for each other to join; past it rank 0 fails naming the ranks
    that never arrived (and their nodes), the others naming the address they could not reach."""
    srun_args: list[str] = field(default_factory=list)
    """Extra arguments for every srun step the run starts (slurm), e.g. ["--mem-per-gpu=64G"] where
    the site enforces memory, or a container option."""


@dataclass
class TaskConfig:
    """Set by the orchestrator when it launches one stage (or one shard of it) as its own process."""

    stage: str | None = None
    """Stage to run; null = run the whole loop."""
    iteration: int | None = None
    """Iteration of that stage."""
    shard: int | None = None
    """Shard index of a sharded stage (generate, judge, logprobs), 0 <= shard < shards."""
    worker: int | None = None
    """Run as the long-lived worker of this engine slot (loop.workers)."""


@dataclass
class Config:
    """The whole run."""

    seed: int | None = None
    """Sets generate.seed, selection.seed, evolve.selection.seed and train.seed at once (handy in sweeps:
    -m seed=1,2,3); null = each section's own."""
    preset_name: str | None = None
    """The conf/preset/ file in effect (each preset sets it): tiny = the built-in tiny policy's settings,
    none = the schema's real-model defaults, or a paper preset. Checked against model.path at start."""
    allow_toy: bool = False
    """Let a model of one's own run on the demo's toy parts (the bundled prompts, a built-in rule judge),
    e.g. as a smoke test; without it such a run is refused at start, naming the keys to set."""
    model: ModelConfig = field(default_factory=ModelConfig)
    prompts: PromptsConfig = field(default_factory=PromptsConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    logprobs: LogprobsConfig = field(default_factory=LogprobsConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    evolve: EvolveConfig = field(default_factory=EvolveConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    task: TaskConfig = field(default_factory=TaskConfig)


RESOURCE_KEYS = frozenset(
    {
        # Where the run lives and how far it goes: a moved run directory resumes; more iterations extend it.
        "loop.output_dir",
        "loop.run_name",
        "loop.iterations",
        "loop.restart_from",
        "loop.dry_run",
        "loop.stop_after",
        # How the work is spread over processes, engines and devices. Sampling seeds are per prompt, so
        # shards and batch shapes do not change what is sampled (in fp32; in bf16 rounding may).
        "loop.threads",
        "loop.shards",
        "loop.shard_workers",
        "loop.isolation",
        "loop.workers",
        "generate.engine",
        "generate.hf_batch_size",
        "generate.tensor_parallel_size",
        "generate.gpu_memory_utilization",
        "generate.enforce_eager",
        "generate.cpu_kv_cache_gib",
        "generate.engine_args",
        "judge.batch_size",
        "evaluate.judge.batch_size",
        "logprobs.batch_size",
        "train.num_processes",
        "train.deepspeed",
        "train.gradient_checkpointing",
        "train.save_steps",
        "train.save_total_limit",
        "cluster.kind",
        "cluster.gpus_per_node",
        "cluster.master_addr",
        "cluster.master_port",
        "cluster.rendezvous_timeout",
        "cluster.srun_args",
        # Watching, reporting and publishing.
        "loop.progress",
        "loop.progress_interval",
        "loop.hang_timeout",
        "loop.stage_timeout",
        "tracking.backend",
        "tracking.project",
        "hub.push",
        "hub.repo_id",
        "hub.dataset_repo_id",
        "hub.revisions",
        "hub.private",
        "hub.license",
        "hub.dry_run",
        # Set per launched process.
        "task.stage",
        "task.iteration",
        "task.shard",
        "task.worker",
    }
)
"""Keys that choose resources, not results: they may change when a run resumes (finished stages are
kept; unfinished ones run with the new values). Every other key defines the run's records, and a
resume with a changed value is refused, naming it. A key that a later version adds resumes as its
default. (train.num_processes changes the batch per optimizer step unless train.global_batch_size is
set; tensor parallelism and process counts change floating-point summation order.)"""


@dataclass
class PairColumnsConfig:
    """Column names of a preference file (training on a file; offline selection adds its own below)."""

    prompt: str = "prompt"
    """Prompt: a string or a list of chat messages."""
    chosen: str = "chosen"
    """Chosen response: a string, or chat messages whose last assistant message is the response."""
    rejected: str = "rejected"
    """Rejected response, same forms as `chosen`."""
    id: str | None = None
    """Stable row id (ties in the ranking break by it); null = the row number."""


@dataclass
class ColumnsConfig(PairColumnsConfig):
    """Column names of a preference dataset (offline selection)."""

    chosen_reward: str = "score_chosen"
    """Explicit reward of the chosen response (UltraFeedback's name); computed with `judge` if absent."""
    rejected_reward: str = "score_rejected"
    """Explicit reward of the rejected response; computed with `judge` if absent."""
    chosen_implicit: str = "implicit_chosen"
    """Implicit reward of the chosen response, in the `selection.implicit_reward` form; computed by
    teacher forcing with `model` if absent."""
    rejected_implicit: str = "implicit_rejected"
    """Implicit reward of the rejected response; computed with `model` if absent."""
    all_rewards: str = "all_rm_scores"
    """The SimPO datasets' layout: a list of K rewards per prompt (chosen = the highest, rejected = the
    lowest, explicit margin = max - min); used when the two reward columns above are absent."""
    all_responses: str = "all_generated_responses"
    """The K responses `all_rewards` scores (chosen and rejected are taken from it when present)."""


@dataclass
class OfflineJudgeConfig(JudgeConfig):
    """The judge that computes missing rewards. kind=null (default): the dataset's columns must hold
    them (a silent fall-back to a built-in judge on your dataset is never made)."""

    kind: JudgeKind | None = None  # type: ignore[assignment]
    """null = rewards come from the dataset; a judge kind = compute the missing ones with it."""


@dataclass
class OfflineModelConfig(ModelConfig):
    """The policy whose implicit rewards are computed when the dataset lacks them."""

    path: str | None = None  # type: ignore[assignment]
    """Model folder or hub name; null = implicit rewards must come from the dataset's columns."""


@dataclass
class OfflineSelectConfig:
    """`python -m selfplay.select`: select pairs of an existing preference dataset."""

    input: str | None = None
    """Parquet, JSONL/JSON file, or a `datasets` folder (save_to_disk) or hub name."""
    output: str | None = None
    """Folder for selected.parquet (the kept pairs, best first, in TRL's preference format with every
    score), scored.parquet (every usable row, input order) and summary.json."""
    format: TableFormat = TableFormat.parquet
    """parquet, or jsonl (selected.jsonl / scored.jsonl: slower, for tools that read JSON lines)."""
    split: str = "train"
    """Split of a datasets folder / hub dataset."""
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    judge: OfflineJudgeConfig = field(default_factory=OfflineJudgeConfig)
    model: OfflineModelConfig = field(default_factory=OfflineModelConfig)
    logprobs: LogprobsConfig = field(default_factory=LogprobsConfig)


@dataclass
class TrainFileConfig(Config):
    """`python -m selfplay.train input=<file> [preset=...]`: train the policy (`model`) on a preference
    file (e.g. `selected.parquet` of `python -m selfplay.select`) with the loop's train stage: the same
    TRL path, presets, tokenisation, reference handling, processes and resume."""

    input: str | None = None
    """Parquet, JSONL/JSON file, a `datasets` folder (save_to_disk) or hub name with preference pairs."""
    split: str = "train"
    """Split of a datasets folder / hub dataset."""
    pairs: PairColumnsConfig = field(default_factory=PairColumnsConfig)


def register_configs() -> None:
    """Register the schema so that `conf/config.yaml` composes on top of it."""
    cs = ConfigStore.instance()
    cs.store(name="schema", node=Config)
    cs.store(name="select_schema", node=OfflineSelectConfig)
    cs.store(name="train_file_schema", node=TrainFileConfig)
    for group, node in [
        ("model", ModelConfig),
        ("prompts", PromptsConfig),
        ("generate", GenerateConfig),
        ("judge", JudgeConfig),
        ("logprobs", LogprobsConfig),
        ("selection", SelectionConfig),
        ("train", TrainConfig),
        ("evolve", EvolveConfig),
        ("evaluate", EvaluateConfig),
        ("loop", LoopConfig),
        ("tracking", TrackingConfig),
        ("hub", HubConfig),
        ("cluster", ClusterConfig),
        ("task", TaskConfig),
    ]:
        cs.store(group=group, name=f"schema_{group}", node=node)
