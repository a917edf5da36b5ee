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


def sections(root: object, path: str = "") -> list[str]:
    """Every section of a config, depth first in field order (a section = a dataclass node; the top
    level, "", last): generated from the schema, so a new group is documented without a list to edit."""
    out = [path] if path else []
    for f in dataclasses.fields(root):  # type: ignore[arg-type]
        value = getattr(root, f.name)
        if dataclasses.is_dataclass(value):
            out += sections(value, f"{path}.{f.name}" if path else f.name)
    return out if path else [*out, ""]


SELECT_OWN = {"", "columns"}
"""`python -m selfplay.select`'s own sections (its selection, judge, model and logprobs are the loop's)."""
TRAIN_OWN = {"", "pairs"}
"""`python -m selfplay.train`'s own sections (every other section is the loop's)."""


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


def own_section(root: object, path: str, command: str) -> list[str]:
    """A section of another entry point's config; its top level lists only the fields the loop's lacks."""
    title = f"`python -m {command}`{': `' + path + '`' if path else ''}"
    lines = section(root, path, title)
    if path:
        return lines
    loop_keys = {f.name for f in dataclasses.fields(schema.Config)}
    return [line for line in lines if not any(line.startswith(f"| `{k}` |") for k in loop_keys)]


def reference() -> str:
    lines = []
    for path in sections(schema.Config()):
        lines += section(schema.Config(), path, f"`{path}`" if path else "Top level")
    for path in sorted(
        (p for p in sections(schema.OfflineSelectConfig()) if p.split(".")[0] in SELECT_OWN), key=bool
    ):
        lines += own_section(schema.OfflineSelectConfig(), path, "selfplay.select")
    for path in sorted(
        (p for p in sections(schema.TrainFileConfig()) if p.split(".")[0] in TRAIN_OWN), key=bool
    ):
        lines += own_section(schema.TrainFileConfig(), path, "selfplay.train")
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
