"""The shape of the package, checked: no import circle; the floors import downwards only (stage
adapters never reach the runner, launchers or cluster code); the run's file names are spelled in
one place; every package ships; nothing cites a file the repository does not have."""

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


def test_cores_never_import_the_loop():
    """Packages below the loop (data, generate, judge, logprobs, selection, evolve, train, evaluate,
    models) never import selfplay.loop: they take records and configs, not run directories."""
    for module, deps in imports().items():
        if module.startswith("selfplay.loop") or module in ENTRY_POINTS:
            continue
        assert not {d for d in deps if d.startswith("selfplay.loop")}, module


RUN_FILE = re.compile(
    r"^(_SUCCESS|_stats\.json|[a-z_]+\.jsonl|part-.*|iter_.*|\..*\.partial|.*\.log|"
    r"config\.yaml|manifest\.json|metrics\.jsonl|results\.md|train_stats\.json)$"
)
NOT_RUN_FILES = {
    "selfplay/data/prompts.py",  # bundled prompt assets, not run files
    "selfplay/models/tiny.py",
    "selfplay/selection/offline.py",  # the offline command's own output folder
}


def test_run_file_names_are_spelled_only_in_the_layout():
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        rel = str(path.relative_to(REPO))
        if rel in NOT_RUN_FILES or rel == "selfplay/loop/layout.py":
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


def test_losses_and_judge_kinds_are_tested_only_in_their_tables():
    """A new loss or judge kind is one entry of selfplay/training/losses.py or selfplay/judge/kinds.py (and
    its config choice): no other module compares a loss or a judge kind with a name."""
    names = "dpo|simpo|rule|reward_model|remote|generative|selection|none"
    pattern = re.compile(rf"""(loss|kind)\)? *(==|!=|in) *[\(\[\{{]?["']({names})["']""")
    tables = {PACKAGE / "training" / "losses.py", PACKAGE / "judge" / "kinds.py"}
    found = [
        f"{path.relative_to(REPO)}:{i}: {line.strip()}"
        for path in PACKAGE.rglob("*.py")
        if path not in tables
        for i, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []
