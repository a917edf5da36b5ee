"""The error users see: one line naming the file, field or value at fault (no library traceback)."""

from __future__ import annotations

import errno

STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}
# How libraries that wrap the OS error (safetensors' Rust writer, Arrow) still spell it.
STORAGE_TEXTS = ("No space left on device", "Disk quota exceeded", "Read-only file system")


class SelfplayError(Exception):
    """A problem with the user's input or configuration; printed as one line by `selfplay.run`."""


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
        current = current.__cause__ or current.__context__
    return None
