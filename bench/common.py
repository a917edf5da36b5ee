"""What every benchmark prints: the machine line and the result, printed and written to --out."""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def machine() -> str:
    """ "x86_64, 2 CPUs" (with the GPU where one is visible)."""
    line = f"{platform.machine()}, {os.cpu_count()} CPUs"
    try:
        import torch

        if torch.cuda.is_available():
            line += f", {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    return line


def today() -> str:
    return time.strftime("%Y-%m-%d")


def emit(text: str, out: str | None) -> None:
    """Print the result and, with --out, write it there."""
    text = text.rstrip("\n") + "\n"
    print(text, end="")
    if out:
        Path(out).write_text(text)


if __name__ == "__main__":
    print("usage: imported by the scripts of bench/ (python bench/<name>.py --help); not a command itself")
