"""What a finished stage wrote, and that it is still what the next stages read: the stage's `_SUCCESS`
marker records the size and an xxHash (XXH3, 128 bits: 18 GB/s here) checksum of every file in its folder (weights included); a
resume checks every recorded size before it trusts a marker, and a stage checks the checksum of each
file it reads from a finished stage (once per process and file) before reading it. A mismatch, a
truncated or a missing file is one line naming the file and the `loop.restart_from` that redoes the
stage, never a library's traceback or a silent read of changed bytes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfplay.errors import SelfplayError
from selfplay.rundir.layout import MARKER, RunLayout
from selfplay.rundir.markers import read_marker

CHUNK = 8 << 20
DIGEST = "xxh3_128"
_verified: dict[Path, tuple[int, int]] = {}
"""Files this process has checked (or written and recorded), with the (size, mtime) it checked."""


def digest(path: Path) -> str:
    import xxhash  # a dependency of datasets, and ours

    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
    return h.hexdigest()


def checksums(folder: Path) -> dict[str, dict[str, Any]]:
    """Size and checksum of every file under a finished stage's folder (its marker aside)."""
    out = {}
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name != MARKER):
        stat = path.stat()
        out[str(path.relative_to(folder))] = {"size": stat.st_size, DIGEST: digest(path)}
        _verified[path.resolve()] = (stat.st_size, stat.st_mtime_ns)
    return out


def _fix(t: int, stage: str) -> str:
    return f"rerun with loop.restart_from={t}/{stage} to redo it and everything after it"


def check_sizes(layout: RunLayout, t: int, stage: str, marker: dict[str, Any]) -> None:
    """Every file the marker records is there with its size (cheap: a resume runs this on every
    finished stage before trusting it)."""
    folder = layout.stage_dir(t, stage)
    for rel, rec in (marker.get("files") or {}).items():
        path = folder / rel
        try:
            size = path.stat().st_size
        except OSError:
            raise SelfplayError(
                f"iteration {t} {stage} is marked done but {path} is missing (deleted or moved?); {_fix(t, stage)}"
            ) from None
        if size != rec["size"]:
            raise SelfplayError(
                f"{path} is {size} bytes but iteration {t} {stage} wrote {rec['size']} (truncated or changed "
                f"since); {_fix(t, stage)}"
            )


def verify(layout: RunLayout, path: Path) -> None:
    """Before a finished stage's file (or every file of a folder, e.g. a policy) is read: its bytes
    are the ones its stage recorded. Paths outside finished stages, and stages whose marker predates
    checksums, are not checked."""
    where = layout.locate(Path(path))
    if where is None:
        return  # not a finished stage's file of this run (pi_0, a user's file)
    t, stage, inner = where
    files = (read_marker(layout.marker(t, stage)) or {}).get("files")
    if not files:
        return
    wanted = {k: v for k, v in files.items() if k == inner or k.startswith(inner + "/")}
    for name, rec in wanted.items():
        _verify_one(layout.stage_dir(t, stage) / name, rec, t, stage)


def _verify_one(path: Path, rec: dict[str, Any], t: int, stage: str) -> None:
    try:
        stat = path.stat()
    except OSError:
        raise SelfplayError(
            f"iteration {t} {stage} is marked done but {path} is missing (deleted or moved?); {_fix(t, stage)}"
        ) from None
    key = path.resolve()
    if _verified.get(key) == (stat.st_size, stat.st_mtime_ns):
        return
    if stat.st_size != rec["size"]:
        raise SelfplayError(
            f"{path} is {stat.st_size} bytes but iteration {t} {stage} wrote {rec['size']} (truncated or "
            f"changed since); {_fix(t, stage)}"
        )
    if digest(path) != rec[DIGEST]:
        raise SelfplayError(
            f"{path} does not match the checksum iteration {t} {stage} recorded when it finished (its bytes "
            f"changed since: a disk or copy fault, or an edit); {_fix(t, stage)}"
        )
    _verified[key] = (stat.st_size, stat.st_mtime_ns)
