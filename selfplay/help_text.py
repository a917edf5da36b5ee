"""`--help` of each entry point, generated from the schema (sections, their one-line docs and keys) and
from conf/ (the config groups a user picks from), so it never drifts from what the command accepts."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

from selfplay import config as schema

HIDDEN = {"task", "preset_name"}
"""Fields the run sets itself (for the processes it starts, or from the preset files)."""
GROUPS = ("preset", "experiment", "cluster", "debug", "dataset")
"""conf/ folders a user picks an option of (`group=option`); conf/hydra and conf/deepspeed are not."""

HEADERS = {
    "selfplay.run": (
        "python -m selfplay.run [key=value ...] [group=option ...]",
        "Self-play iterative alignment: every iteration generates K responses per prompt (vLLM), judges them, "
        "pairs them, keeps the pairs with the highest alignment potential, trains the policy on them (TRL DPO "
        "or SimPO) and evaluates it on held-out prompts; a rerun of the same command resumes where it stopped. "
        "With no arguments it runs the demo (a tiny built-in policy, no download, ~30 s on a CPU).",
    ),
    "selfplay.select": (
        "python -m selfplay.select input=<dataset> output=<folder> [key=value ...]",
        "Offline selection of an existing preference dataset (Parquet, JSONL, a datasets folder or hub "
        "name): rewards and implicit rewards from its columns, or computed with judge.* and model.*; every "
        "pair scored over the whole dataset by the selection metric, the top-k written in TRL's preference "
        "format (selected.parquet) with every score (scored.parquet) and a summary.",
    ),
    "selfplay.train": (
        "python -m selfplay.train input=<preference file> [preset=...] [key=value ...]",
        "Train the policy (model.path) on the pairs of a preference file (e.g. the selected.parquet of "
        "python -m selfplay.select) with the loop's own train stage: the same TRL path, presets, "
        "reference handling, processes, checkpoints and resume.",
    ),
}
ROOTS = {
    "selfplay.run": schema.Config,
    "selfplay.select": schema.OfflineSelectConfig,
    "selfplay.train": schema.TrainFileConfig,
}


def first_sentence(text: str | None) -> str:
    text = " ".join((text or "").split())
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def section_line(name: str, node: object) -> str:
    """`name  <its doc's first sentence> Keys: a, b, c; group.*`."""
    keys: list[str] = []
    groups: list[str] = []
    for f in dataclasses.fields(node):  # type: ignore[arg-type]
        value = getattr(node, f.name)
        (groups if dataclasses.is_dataclass(value) else keys).append(f.name)
    keys_text = ", ".join(keys) + "".join(f"; {name}.{g}.*" for g in groups)
    text = f"{first_sentence(type(node).__doc__)} Keys: {keys_text}."
    wrapped = textwrap.wrap(text, 96, initial_indent=f"  {name:<11} ", subsequent_indent=" " * 14)
    return "\n".join(wrapped)


def config_groups(conf: Path) -> list[str]:
    out = []
    for group in GROUPS:
        folder = conf / group
        if folder.is_dir():
            options = sorted(p.stem for p in folder.glob("*.yaml") if not p.name.startswith("_"))
            out += textwrap.wrap(
                ", ".join(options), 96, initial_indent=f"  {group}: ", subsequent_indent=" " * 6
            )
    return out


def help_text(command: str = "selfplay.run") -> str:
    usage, about = HEADERS[command]
    root = ROOTS[command]()
    lines = [
        usage,
        "",
        *textwrap.wrap(about, 100),
        "",
        "== Sections (override any key as section.key=value) ==",
    ]
    top = []
    for f in dataclasses.fields(root):  # type: ignore[arg-type]
        if f.name in HIDDEN:
            continue
        value = getattr(root, f.name)
        if dataclasses.is_dataclass(value):
            lines.append(section_line(f.name, value))
        else:
            top.append(f.name)
    if top:
        lines.append(f"  {'(top level)':<11} {', '.join(top)}")
    import selfplay.conf  # conf/ of the repository, shipped inside the package

    conf = Path(next(iter(selfplay.conf.__path__)))
    groups = config_groups(conf) if command != "selfplay.select" else []
    if groups:
        lines += ["", "== Config groups (group=option) ==", *groups]
    lines += [
        "",
        f"See the whole composed config:      python -m {command} --cfg job [overrides]",
        "Every key, its default and meaning: docs/config.md",
    ]
    if command == "selfplay.run":
        lines += [
            "Print a cluster run's commands:     python -m selfplay.run cluster=slurm loop.dry_run=true",
            "Log verbosity:                      loop.log_level=DEBUG|INFO|WARNING|ERROR (loop.progress=false: "
            "no progress lines)",
        ]
    lines.append("Hydra's own flags:                  --hydra-help")
    return "\n".join(lines)


def wants_help(argv: list[str]) -> bool:
    return any(a in ("--help", "-h") for a in argv)
