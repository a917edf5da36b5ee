"""Prints the structural part of docs/architecture.md from the code itself: the packages in import order
(each with what it imports), and every module with the first sentence of its docstring.

`python -m selfplay.architecture_doc --write docs/architecture.md` refreshes the page's generated part
(up to its "## How it runs" section); a test keeps the two equal, so the page cannot drift from the
import graph.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent
MARKER = "\n## How it runs\n"
"""Where the generated part of the page ends and the hand-written part begins."""


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports() -> dict[str, set[str]]:
    """Every selfplay module and the selfplay modules it imports (function-level imports included)."""
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("selfplay"):
                found.add(node.module)
                found |= {
                    f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules
                }
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("selfplay")}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def unit(module: str) -> str:
    """A module's package (selfplay.loop, ...) or, for a top-level module, the module itself."""
    parts = module.split(".")
    return ".".join(parts[:2])


def units(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    """Package-level import graph (a package importing itself left out)."""
    out: dict[str, set[str]] = {}
    for module, deps in graph.items():
        if module == "selfplay":
            continue
        mine = unit(module)
        out.setdefault(mine, set()).update(unit(d) for d in deps if unit(d) != mine and d != "selfplay")
    return out


def layers(graph: dict[str, set[str]]) -> list[list[str]]:
    """The packages in floors: each floor imports only floors below it (longest path to a leaf).
    Packages that import each other (a circle between packages, never between modules: the
    architecture test refuses those) share a floor."""
    deps = units(graph)
    reach = {u: _reachable(u, deps) for u in deps}
    group = {u: frozenset(v for v in reach[u] | {u} if u in reach.get(v, set()) or v == u) for u in deps}
    height: dict[frozenset, int] = {}

    def h(g: frozenset) -> int:
        if g not in height:
            below = {group[d] for u in g for d in deps.get(u, ()) if group[d] != g}
            height[g] = 1 + max((h(b) for b in below), default=-1)
        return height[g]

    levels = {u: h(group[u]) for u in deps}
    top = max(levels.values(), default=0)
    return [sorted(u for u, v in levels.items() if v == level) for level in range(top, -1, -1)]


def _reachable(start: str, deps: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(deps.get(start, ()))
    while todo:
        u = todo.pop()
        if u not in seen:
            seen.add(u)
            todo += deps.get(u, ())
    return seen


def first_sentence(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    text = " ".join(doc.split())
    end = text.find(". ")
    return (text if end < 0 else text[: end + 1]).replace("|", "\\|")


def reference() -> str:
    graph = imports()
    deps = units(graph)
    lines = [
        "## Packages, in import order",
        "",
        "Generated from the import graph (`python -m selfplay.architecture_doc --write docs/architecture.md`;",
        "a test keeps this part equal to the code). Each floor imports only floors below it; the",
        "architecture test also checks that the run's floors (loop -> stages -> reporting -> rundir) never",
        "import upwards, that the cores never import them, and that the loop names no stage.",
        "",
        "| floor | package or module | imports |",
        "|---|---|---|",
    ]
    for i, floor in enumerate(layers(graph)):
        for u in floor:
            used = ", ".join(f"`{d.removeprefix('selfplay.')}`" for d in sorted(deps.get(u, ()))) or "-"
            lines.append(f"| {i} | `{u}` | {used} |")
    lines += ["", "## Modules", "", "| module | what it is |", "|---|---|"]
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py" and path.parent == PACKAGE:
            continue
        rel = path.relative_to(PACKAGE.parent)
        lines.append(f"| `{rel}` | {first_sentence(path)} |")
    return "\n".join(lines) + "\n"


def write_into(page: str) -> None:
    """Replace the page's generated part (from its first "## Packages" heading to the hand-written
    "## How it runs" section) with the current one."""
    text = Path(page).read_text()
    head, sep, _ = text.partition("\n## Packages, in import order\n")
    _, sep2, tail = text.partition(MARKER)
    if not sep or not sep2:
        raise SystemExit(f"{page}: needs a '## Packages, in import order' and a '## How it runs' section")
    Path(page).write_text(head + "\n" + reference() + MARKER + tail)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        write_into(sys.argv[2] if len(sys.argv) > 2 else "docs/architecture.md")
    else:
        print(reference())
