"""Prints the config reference (every field, its default and its one-line doc) as Markdown.

docs/config.md is this output under a short introduction (`python -m selfplay.config_doc --write
docs/config.md` refreshes it). A test keeps the two equal, so defaults are written once, in
`selfplay/config.py`.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
from enum import Enum

from selfplay import config as schema

SECTIONS = [
    "model",
    "model.tiny",
    "prompts",
    "generate",
    "judge",
    "logprobs",
    "selection",
    "train",
    "train.lora",
    "evolve",
    "evolve.selection",
    "evaluate",
    "evaluate.judge",
    "loop",
    "tracking",
    "hub",
    "cluster",
    "task",
    "",
]
"""Sections of `python -m selfplay.run`'s config, in page order."""
SELECT_SECTIONS = ["", "columns"]
"""Sections of `python -m selfplay.select`'s own fields (its selection/judge/model/logprobs are the above)."""


def field_docs(cls: type) -> dict[str, str]:
    """The string literal under each annotated field of a dataclass."""
    tree = ast.parse(inspect.getsource(cls))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:]):
        if (
            isinstance(node, ast.AnnAssign)
            and isinstance(node.target, ast.Name)
            and isinstance(nxt, ast.Expr)
            and isinstance(nxt.value, ast.Constant)
        ):
            docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def _value(v) -> str:
    if isinstance(v, Enum):
        v = v.value
    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    return str(v)


def _choices(annotation) -> str:
    cls = getattr(schema, str(annotation), None)
    if isinstance(cls, type) and issubclass(cls, Enum):
        return " (" + " \\| ".join(m.value for m in cls) + ")"
    return ""


def section(root, path: str, title: str) -> list[str]:
    node = root
    for part in filter(None, path.split(".")):
        node = getattr(node, part)
    cls = type(node)
    docs = field_docs(cls)
    lines = [
        f"### {title}",
        "",
        (cls.__doc__ or "").strip(),
        "",
        "| key | default | meaning |",
        "|---|---|---|",
    ]
    for f in dataclasses.fields(cls):
        value = getattr(node, f.name)
        if dataclasses.is_dataclass(value):
            continue
        key = f"{path}.{f.name}" if path else f.name
        doc = docs.get(f.name, "").replace("|", "\\|")
        lines.append(f"| `{key}` | `{_value(value)}` | {doc}{_choices(f.type)} |")
    return [*lines, ""]


def reference() -> str:
    lines = []
    for path in SECTIONS:
        lines += section(schema.Config(), path, f"`{path}`" if path else "Top level")
    for path in SELECT_SECTIONS:
        title = f"`python -m selfplay.select`{': `' + path + '`' if path else ''}"
        lines += section(schema.OfflineSelectConfig(), path, title)
    return "\n".join(lines)


def write_into(readme: str) -> None:
    """Replace everything after the page's introduction (from its first table on) with the current
    reference."""
    with open(readme) as f:
        text = f.read()
    head, sep, _ = text.partition("\n### `model`\n")
    if not sep:
        raise SystemExit(f"{readme}: no '### `model`' section to replace")
    with open(readme, "w") as f:
        f.write(head + "\n" + reference())


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:
        write_into(sys.argv[2] if len(sys.argv) > 2 else "docs/config.md")
    else:
        print(reference())
