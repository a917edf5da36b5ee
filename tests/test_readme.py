"""Every command in the README runs as written: each `python -m selfplay.run` line (and each sbatch
line's overrides) composes to a config the run would accept at start, every script and file it names
exists, and its Python blocks use the API that exists. CI runs the quick start itself for real."""

import ast
import re
import shlex
from pathlib import Path

import pytest

from selfplay import api
from selfplay.checks import check_config, check_no_toy_parts

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text()


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def commands() -> list[list[str]]:
    """Every shell command of the README's bash blocks: continuations joined, `&&` chains split,
    comments dropped."""
    out = []
    for block in blocks("bash"):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split(" #", 1)[0].strip()
            if line and not line.startswith("#"):
                out += [shlex.split(part) for part in line.split("&&")]
    return out


def sweep(overrides: list[str]) -> list[list[str]]:
    """A multirun's jobs: one override list per value of each comma-separated key."""
    jobs = [[]]
    for o in overrides:
        key, _, value = o.partition("=")
        values = value.split(",") if "," in value and not value.startswith("[") else [value]
        jobs = [[*job, f"{key}={v}"] for job in jobs for v in values]
    return jobs


def selfplay_runs() -> list[list[str]]:
    runs = []
    for cmd in commands():
        if cmd[:3] == ["python", "-m", "selfplay.run"]:
            args = cmd[3:]
            runs += sweep([a for a in args if a != "-m"]) if "-m" in args else [args]
        elif cmd[0] == "sbatch":
            script = next(i for i, a in enumerate(cmd) if a.endswith(".sbatch"))
            runs.append(["cluster=slurm", *cmd[script + 1 :]])
    return runs


def test_the_readme_has_the_commands_we_test():
    runs = selfplay_runs()
    assert [] in runs  # the quick start
    assert any("model.path=Qwen/Qwen2.5-1.5B-Instruct" in r for r in runs)
    assert sum(r[:1] == ["cluster=slurm"] for r in runs) == 2
    assert any("selection.metric=random" in r for r in runs)
    assert ["experiment=real_ifeval"] in runs and train_rm_recipes() == {"real_ifeval"}


def train_rm_recipes() -> set[str]:
    """The train_rm recipes the README runs (`python -m selfplay.train_rm recipe=<name>`)."""
    return {
        a.split("=", 1)[1]
        for cmd in commands()
        if cmd[:3] == ["python", "-m", "selfplay.train_rm"]
        for a in cmd[3:]
        if a.startswith("recipe=")
    }


@pytest.mark.parametrize("overrides", selfplay_runs(), ids=" ".join)
def test_every_selfplay_command_composes_and_passes_the_start_checks(overrides, tmp_path, monkeypatch):
    from selfplay.errors import SelfplayError
    from selfplay.train_rm_config import recipe_writing

    monkeypatch.chdir(tmp_path)  # relative paths (a recipe's reward model folder) resolve to nothing here
    cfg = api.compose(overrides)
    recipe = recipe_writing(str(cfg.judge.model.path)) if cfg.judge.kind == "reward_model" else None
    if recipe is not None:  # its reward model comes from the README's train_rm command, which says so
        assert recipe in train_rm_recipes(), (overrides, recipe)
        with pytest.raises(
            SelfplayError, match=f"train it first: python -m selfplay.train_rm recipe={recipe}$"
        ):
            check_config(cfg)
        (tmp_path / str(cfg.judge.model.path)).mkdir(parents=True)  # as if trained: the rest passes
    check_config(cfg)
    check_no_toy_parts(cfg)  # a model of one's own in the README is never refused for toy parts
    if cfg.model.path != "tiny":
        assert cfg.preset_name in ("none", "llama3_8b_dpo"), (overrides, cfg.preset_name)


def test_every_other_command_names_what_exists():
    for cmd in commands():
        if cmd[:3] == ["python", "-m", "selfplay.run"]:
            continue
        for arg in cmd:
            if re.fullmatch(r"[\w./-]+\.(py|sh|sbatch)", arg):
                assert (REPO / arg).is_file(), f"README runs {arg}, which the repository lacks"
        if cmd[:2] == ["python", "-m"]:
            module = cmd[2]
            assert module in ("selfplay.report", "selfplay.select", "selfplay.train", "selfplay.train_rm"), (
                cmd
            )
            assert (REPO / (module.replace(".", "/") + ".py")).is_file()
        if cmd[:3] == ["python", "-m", "selfplay.train_rm"]:
            from selfplay import train_rm

            assert train_rm.compose(cmd[3:]).output, cmd  # its recipe exists and names its folder
        if cmd[0] == "pytest":
            markers = {m for i, m in enumerate(cmd) if i and cmd[i - 1] == "-m"}
            assert markers <= {"integration", "slow", "slurm", "real"}, cmd


def test_the_python_blocks_use_the_api_that_exists():
    for block in blocks("python"):
        tree = ast.parse(block)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "api"
            ):
                assert hasattr(api, node.attr), f"README uses api.{node.attr}, which selfplay.api lacks"
    fields = {"run_dir", "final_policy", "metrics", "scores", "rank", "kept", "selected", "scored", "summary"}
    used = set(re.findall(r"\b(?:result|sel|out)\.(\w+)", "\n".join(blocks("python"))))
    assert used <= fields, used - fields


def test_the_readme_is_a_door_not_a_manual():
    assert len(README.splitlines()) <= 260


def test_the_readmes_report_line_compares_the_readmes_sweep():
    """The sweep lands in its own folder beside the quick start's run (never inside it), and the
    README's report line names that folder, so it compares the sweep's jobs and nothing else."""
    from selfplay.run import SWEEP_SUFFIX

    cmds = commands()
    sweeps = [c for c in cmds if c[:3] == ["python", "-m", "selfplay.run"] and "-m" in c]
    reports = [c for c in cmds if c[:3] == ["python", "-m", "selfplay.report"] and c[3] != "export"]
    assert sweeps and reports
    run_name = next((a.split("=", 1)[1] for a in sweeps[0] if a.startswith("loop.run_name=")), "default")
    output = next((a.split("=", 1)[1] for a in sweeps[0] if a.startswith("loop.output_dir=")), "runs")
    assert reports[0][3] == f"{output}/{run_name}{SWEEP_SUFFIX}"
