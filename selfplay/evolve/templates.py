"""Rewrite-strategy templates: one text file per strategy with a {prompt} placeholder."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from selfplay.errors import SelfplayError

PLACEHOLDER = "{prompt}"


def template_path(strategy: str, templates_dir: str | None) -> Path:
    """null = the bundled templates; "selfplay:<name>" = bundled folder selfplay/assets/<name>; else a path."""
    if templates_dir is None or templates_dir.startswith("selfplay:"):
        name = "evolve" if templates_dir is None else templates_dir.split(":", 1)[1]
        return Path(str(resources.files("selfplay") / "assets" / name / f"{strategy}.txt"))
    return Path(templates_dir) / f"{strategy}.txt"


def load_templates(strategies: list[str], templates_dir: str | None) -> dict[str, str]:
    """Every strategy's template, checked: the file exists and has exactly one {prompt}."""
    if not strategies:
        raise SelfplayError("evolve.strategies: empty list")
    out = {}
    for s in strategies:
        path = template_path(s, templates_dir)
        if not path.is_file():
            known = sorted(p.stem for p in path.parent.glob("*.txt")) if path.parent.is_dir() else []
            raise SelfplayError(
                f"evolve.strategies: no template for strategy '{s}' ({path}; known: {', '.join(known)})"
            )
        text = path.read_text(encoding="utf-8")
        if text.count(PLACEHOLDER) != 1:
            raise SelfplayError(
                f"evolve template {path}: needs exactly one {PLACEHOLDER} placeholder, "
                f"has {text.count(PLACEHOLDER)}"
            )
        out[s] = text
    return out


def render(template: str, prompt: str) -> str:
    return template.replace(PLACEHOLDER, prompt).strip()
