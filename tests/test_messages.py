"""Every config key an error message names (`train.beta`, `judge.model.trust_remote_code=true`, ...) is a real
key of our schema: no message sends a user to a setting that does not exist, or to a library's own
argument instead of ours."""

import ast
import dataclasses
import re
from pathlib import Path

from selfplay import config as schema

PACKAGE = Path(__file__).resolve().parents[1] / "selfplay"
SECTIONS = {
    f.name
    for cls in (schema.Config, schema.OfflineSelectConfig, schema.TrainFileConfig)
    for f in dataclasses.fields(cls)
}
KEY = re.compile(r"(?<![\w.{])([a-z_]+(?:\.[a-z_]+)+)")


def resolves(key: str) -> bool:
    for root in (schema.Config(), schema.OfflineSelectConfig(), schema.TrainFileConfig()):
        node = root
        for part in key.split("."):
            if not dataclasses.is_dataclass(node) or part not in {f.name for f in dataclasses.fields(node)}:
                break
            node = getattr(node, part)
        else:
            return True
    return False


def messages():
    """(file, message text) of every SelfplayError raised in the package (f-string holes as {...})."""
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "SelfplayError" and node.args:
                arg = node.args[0]
                parts = []
                for sub in ast.walk(arg):
                    if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                        parts.append(sub.value)
                yield path.relative_to(PACKAGE.parent), " ".join(parts)


def test_every_key_a_message_names_exists():
    bad, seen = [], 0
    for where, text in messages():
        for key in KEY.findall(text):
            if key.split(".")[0] not in SECTIONS:
                continue  # a module name, a file name, a method
            seen += 1
            if not resolves(key):
                bad.append(f"{where}: {key}")
    assert seen > 40 and bad == []


def test_no_message_gives_library_arguments():
    offenders = [
        f"{w}: {t[:80]}" for w, t in messages() if "trust_remote_code=True" in t or "model.tokenizer" in t
    ]
    assert offenders == []
