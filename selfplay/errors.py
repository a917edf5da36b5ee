"""The error users see: one line naming the file, field or value at fault (no library traceback)."""

from __future__ import annotations

import contextlib
import errno
import signal
import threading

STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
# How libraries that wrap the OS error (safetensors' Rust writer, Arrow) still spell it.
STORAGE_TEXTS = ("No space left on device", "Disk quota exceeded", "Read-only file system")
# torch.save (trainer checkpoints: optimizer, scheduler, RNG states) reports a refused write without
# the OS error: "[enforce fail at inline_container.cc:...] . unexpected pos 576 vs 534", or
# "PytorchStreamWriter failed writing file ...: file write failed".
TORCH_WRITE_FAILURES = ("PytorchStreamWriter failed writing file", "unexpected pos")
TORCH_WRITE_PROBLEM = (
    "the disk refused a write (torch could not save its file: usually no space left on device)"
)


class SelfplayError(Exception):
    """A problem with the user's input or configuration; printed as one line by `selfplay.run`."""


class Terminated(BaseException):
    """SIGTERM (Ctrl-C is KeyboardInterrupt): raised in the main thread so that cleanup runs (launched
    processes stopped, the run's lock released) before the process exits with 128 + the signal."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def sigterm_raises():
    """Within the block, SIGTERM raises `Terminated` in the main thread (no-op in other threads)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise Terminated(signum)

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def storage_problem(exc: BaseException) -> str | None:
    """'No space left on device' and the like when `exc` (or what caused it) is the disk refusing a
    write, whichever library raised it; None for any other error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in STORAGE_ERRNOS:
            return STORAGE_TEXTS[[errno.ENOSPC, errno.EDQUOT, errno.EROFS].index(current.errno)]
        for text in STORAGE_TEXTS:
            if text in str(current):
                return text
        if isinstance(current, RuntimeError) and any(t in str(current) for t in TORCH_WRITE_FAILURES):
            return TORCH_WRITE_PROBLEM
        current = current.__cause__ or current.__context__
    return None
