"""SLURM's compact host lists ("gpu[01-03,07],login1", "rack[1-2]-node[01-02]"), read without SLURM's
tools (the fallback where `scontrol` is absent, and for processes that only need a rank's node)."""

from __future__ import annotations

import re
from itertools import product


def expand_nodelist(nodelist: str) -> list[str]:
    """SLURM's compact host list ("gpu[01-03,07],login1", "rack[1-2]-node[01-02]") as host names, in
    SLURM's order (the last bracket varies fastest). The fallback where `scontrol` is absent."""
    hosts: list[str] = []
    for part in re.findall(r"(?:[^,\[]|\[[^\]]*\])+", nodelist):
        pieces = re.split(r"(\[[^\]]*\])", part)
        choices: list[list[str]] = []
        for piece in pieces:
            if piece.startswith("["):
                values = []
                for r in piece[1:-1].split(","):
                    lo, _, hi = r.partition("-")
                    values += [f"{i:0{len(lo)}d}" for i in range(int(lo), int(hi or lo) + 1)]
                choices.append(values)
            elif piece:
                choices.append([piece])
        hosts += ["".join(combo) for combo in product(*choices)]
    return hosts
