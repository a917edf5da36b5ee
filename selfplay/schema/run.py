"""The whole run: evolve, evaluation, the loop, tracking, the Hub, the cluster, the per-process task,
the root `Config`, and the keys that may change when a run resumes."""

from __future__ import annotations

from dataclasses import dataclass, field

from selfplay.schema.choices import ClusterKind, EvolveParents, Isolation, Preamble, TrackingBackend
from selfplay.schema.judge import EvaluateJudgeConfig, JudgeConfig
from selfplay.schema.policy import ModelConfig
from selfplay.schema.sampling import GenerateConfig, LogprobsConfig, PromptsConfig
from selfplay.schema.selection import SelectionConfig
from selfplay.schema.training import TrainConfig


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
    """none; tensorboard (offline event files in <run>/tracking/tensorboard: `tensorboard --logdir
    <run>/tracking`); wandb, trackio or mlflow (each needs its package installed; mlflow stores in
    <run>/tracking/mlflow.db unless MLFLOW_TRACKING_URI is set). Written through accelerate's trackers."""
    project: str = "selfplay"
    """W&B / Trackio project name, MLflow experiment name."""


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
