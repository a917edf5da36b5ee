"""The shape of the package, checked: no import circle; the floors import downwards only (entry points
-> loop -> stages -> reporting and the cores -> rundir; stage adapters never reach the runner, launchers
or cluster code); the loop names no stage and reads no statistic; the run's file names are spelled in
one place; no module is over 400 code lines; every package ships; nothing cites a file the repository
does not have."""

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "selfplay"
ENTRY_POINTS = {"selfplay.run", "selfplay.select", "selfplay.train", "selfplay.report", "selfplay.api"}
LAUNCHING = {
    "selfplay.loop.runner",
    "selfplay.loop.launch",
    "selfplay.loop.shards",
    "selfplay.loop.cluster",
    "selfplay.loop.placement",
    "selfplay.loop.orchestrator",
    "selfplay.loop.workers",
    "selfplay.loop.preflight",
}


def module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports() -> dict[str, set[str]]:
    """Every selfplay module and the selfplay modules it imports (function-level imports included)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("selfplay"):
                found.add(node.module)
                for alias in node.names:  # `from selfplay.loop import report` imports a module
                    if f"{node.module}.{alias.name}" in modules:
                        found.add(f"{node.module}.{alias.name}")
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("selfplay")}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    graph = imports()
    # Package __init__ files import nothing, so an import of a package never hides a circle.
    assert cycles(graph) == []


def test_adapters_and_cores_never_reach_the_launching_floor():
    graph = imports()
    allowed = LAUNCHING | ENTRY_POINTS
    for module, deps in graph.items():
        if module in allowed:
            continue
        assert not deps & LAUNCHING, f"{module} imports {sorted(deps & LAUNCHING)}"
    # Only the runner (with its shard pool and the run's worker pool) launches processes.
    for module in ("selfplay.loop.launch", "selfplay.loop.shards"):
        users = {m for m, deps in graph.items() if module in deps}
        launchers = {
            "selfplay.loop.runner",
            "selfplay.loop.orchestrator",
            "selfplay.loop.shards",
            "selfplay.loop.workers",
        }
        assert users <= launchers, (
            module,
            users,
        )


FLOORS = ("selfplay.loop", "selfplay.stages", "selfplay.reporting", "selfplay.rundir")
"""The run's floors, top down: each imports only the floors below it."""
CORES = ("data", "generate", "judge", "logprobs", "selection", "evolve", "training", "evaluate", "models")


def floor(module: str) -> int | None:
    return next((i for i, f in enumerate(FLOORS) if module == f or module.startswith(f + ".")), None)


def test_the_run_floors_import_downwards_only():
    """loop -> stages -> reporting -> rundir: no arrow back up (the run directory is read by report and
    the reporting package without importing the loop or the stages)."""
    up = []
    for module, deps in imports().items():
        mine = floor(module)
        for dep in deps:
            theirs = floor(dep)
            if mine is not None and theirs is not None and theirs < mine:
                up.append(f"{module} -> {dep}")
    assert up == []


def test_cores_never_import_the_run_floors():
    """The cores (data, generate, judge, logprobs, selection, evolve, training, evaluate, models) take
    records and configs, never run directories: they import no floor of the run."""
    bad = []
    for module, deps in imports().items():
        if module.split(".")[1:2] and module.split(".")[1] in CORES:
            bad += [f"{module} -> {d}" for d in deps if floor(d) is not None]
    assert bad == []


def _stage_names() -> set[str]:
    from selfplay.rundir import stage_names

    return {v for k, v in vars(stage_names).items() if k.isupper() and isinstance(v, str)}


def _statistics() -> set[str]:
    from dataclasses import fields

    from selfplay.rundir.stats import STATS_OF

    return {f.name for cls in STATS_OF.values() for f in fields(cls)}


def test_the_loop_names_no_stage_and_reads_no_statistic():
    """selfplay/loop/ runs whatever the stage table holds: no stage name is spelled there (nor the
    stage-name module imported), and no statistic is read by key (a statistic is a field of its stage's
    record, read as an attribute where it is used)."""
    names, stats = _stage_names(), _statistics()
    found = []
    for path in (PACKAGE / "loop").rglob("*.py"):
        tree = ast.parse(path.read_text())
        rel = path.relative_to(REPO)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                found.append(f"{rel}:{node.lineno}: stage name {node.value!r}")
            key = None
            if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
                key = node.slice.value
            getter = (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "get"
            )
            if getter and node.args and isinstance(node.args[0], ast.Constant):
                key = node.args[0].value
            if isinstance(key, str) and key in stats:
                found.append(f"{rel}:{node.lineno}: statistic {key!r} read by key")
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and "stage_names" in (node.module + "".join(a.name for a in node.names))
            ):
                found.append(f"{rel}:{node.lineno}: imports the stage names")
    assert found == []


def code_lines(path: Path) -> int:
    """Lines of a module that are code: not blank, not comments, not docstrings."""
    tree = ast.parse(path.read_text())
    doc = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list):
            for stmt in body:
                if (
                    isinstance(stmt, ast.Expr)
                    and isinstance(stmt.value, ast.Constant)
                    and isinstance(stmt.value.value, str)
                ):
                    doc.update(range(stmt.lineno, (stmt.end_lineno or stmt.lineno) + 1))
    lines = path.read_text().splitlines()
    return sum(
        1
        for i, line in enumerate(lines, 1)
        if line.strip() and not line.strip().startswith("#") and i not in doc
    )


def test_no_module_is_over_400_code_lines():
    big = {str(p.relative_to(REPO)): n for p in PACKAGE.rglob("*.py") if (n := code_lines(p)) > 400}
    assert big == {}


RUN_FILE = re.compile(
    r"^(_SUCCESS|_stats\.json|[a-z_]+\.jsonl|part-.*|iter_.*|\..*\.partial|.*\.log|"
    r"config\.yaml|manifest\.json|metrics\.jsonl|results\.md|train_stats\.json)$"
)
NOT_RUN_FILES = {
    "selfplay/data/prompts.py",  # bundled prompt assets, not run files
    "selfplay/models/tiny.py",
    "selfplay/tasks/constraints.py",  # the bundled task's assets
    "selfplay/selection/offline.py",  # the offline command's own output folder
}


def test_run_file_names_are_spelled_only_in_the_layout():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(REPO))
        if rel in NOT_RUN_FILES or rel == "selfplay/rundir/layout.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and RUN_FILE.match(node.value):
                offenders.append(f"{rel}: {node.value!r}")
            if isinstance(node, ast.JoinedStr):  # f"iter_{t:03d}" and the like
                text = ast.unparse(node)
                if any(k in text for k in ("iter_", "part-", ".partial", "-shard-")):
                    offenders.append(f"{rel}: f-string {text}")
    assert offenders == []


def test_every_package_is_listed_for_the_wheel():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {module_name(p.parent / "__init__.py") for p in PACKAGE.rglob("__init__.py")}
    assert listed == found | {"selfplay.conf"}


CITATION = re.compile(r"(?<![\w./-])((?:[\w-]+/)+[\w-]+\.(?:md|yaml|json|py|sh|sbatch|txt))\b")
FOLDER = re.compile(r"`((?:selfplay|conf|launch|docs|results|bench|scripts|tests)/(?:[\w-]+/)*)`")
FOREIGN = re.compile(r"\b(METHOD\.md|DESIGN\.md|ENV-NOTES\.md)\b")


def test_nothing_cites_a_file_the_repository_does_not_have():
    """Every `*.md`-like file named in code, configs and docs exists in the repository."""
    skip = {"runs", "outputs", "build", "dist", "__pycache__"}
    files = {
        str(p.relative_to(REPO))
        for p in REPO.rglob("*")
        if p.is_file() and not any(part.startswith(".") or part in skip for part in p.relative_to(REPO).parts)
    }
    dirs = {str(Path(f).parent) + "/" for f in files}
    missing = []
    sources = [
        *PACKAGE.rglob("*.py"),
        *(REPO / "conf").rglob("*.yaml"),
        REPO / "README.md",
        *(REPO / "launch").iterdir(),
        *(REPO / "docs").rglob("*.md"),
    ]
    for src in sources:
        text = src.read_text()
        missing += [f"{src.relative_to(REPO)}: {name}" for name in FOREIGN.findall(text)]
        for cited in CITATION.findall(text):
            if cited not in files and not cited.startswith("data/"):
                missing.append(f"{src.relative_to(REPO)}: {cited}")
        for folder in FOLDER.findall(text):  # `conf/experiment/` and the like
            if folder not in dirs and not any(d.startswith(folder) for d in dirs):
                missing.append(f"{src.relative_to(REPO)}: {folder}")
    assert missing == []


def test_plug_ins_are_tested_only_in_their_tables():
    """A new loss, judge kind, pairing rule, metric or implicit-reward form is one entry of its table
    (selfplay/training/losses.py, selfplay/judge/kinds.py, selfplay/selection/pairing.py, metrics.py,
    implicit.py): no other module compares one with a name."""
    names = (
        "dpo|simpo|rule|reward_model|remote|generative|selection|none|best_vs_worst|best_vs_random|random_pair|"
        "all_pairs|alignment_potential|explicit|explicit_small|implicit_small|implicit_large|random|avg_logp|sum_logp"
    )
    pattern = re.compile(
        rf"""(loss|kind|pairing|strategy|metric|implicit_reward)\)? *(==|!=|in) *[\(\[\{{]?["']({names})["']"""
    )
    tables = {PACKAGE / "training" / "losses.py", PACKAGE / "judge" / "kinds.py"} | {
        PACKAGE / "selection" / f for f in ("pairing.py", "metrics.py", "implicit.py")
    }
    found = [
        f"{path.relative_to(REPO)}:{i}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if path not in tables
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


def test_the_architecture_page_states_the_import_graph():
    from selfplay.architecture_doc import MARKER, reference

    page = (REPO / "docs" / "architecture.md").read_text()
    generated = page.partition("\n## Packages, in import order\n")[2].partition(MARKER)[0]
    assert "## Packages, in import order\n" + generated == reference(), (
        "docs/architecture.md is stale: run python -m selfplay.architecture_doc --write docs/architecture.md"
    )
