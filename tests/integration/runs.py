"""What the whole-run tests of every tier check: a finished run's files, records compared between runs,
a stage's statistics as its marker holds them."""

import json

STAGES = ["prompts", "generate", "judge", "selection", "train", "evaluate"]


def metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def check_finished_run(run_dir, proc, iterations, backend, stages=STAGES, check_stdout=True):
    assert proc.returncode == 0, proc.stderr[-3000:]
    if check_stdout:
        assert proc.stdout.strip().splitlines()[-1] == str(run_dir)
    rows = metrics(run_dir)
    assert [(r["iteration"], r["stage"]) for r in rows] == [(t, s) for t in range(iterations) for s in stages]
    assert {r["backend"] for r in rows if r["stage"] == "generate"} == {backend}
    for t in range(iterations):
        model = run_dir / f"iter_{t:03d}" / "train" / "model"
        assert (model / "config.json").is_file() and (model / "model.safetensors").is_file()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    for t in range(1, iterations):
        assert manifest["iterations"][f"{t:03d}"]["policy"] == str(
            run_dir / f"iter_{t - 1:03d}" / "train" / "model"
        )
    results = (run_dir / "results.md").read_text()
    assert "| start (pi_0) |" in results and f"| {iterations - 1} |" in results


def assert_same_records(run_dir, reference, iterations):
    for t in range(iterations):
        for rel in (
            "generate/completions.parquet",
            "judge/judgments.jsonl",
            "selection/pairs.jsonl",
            "evaluate/heldout.jsonl",
        ):
            ours, theirs = run_dir / f"iter_{t:03d}" / rel, reference / f"iter_{t:03d}" / rel
            assert record_text(ours) == record_text(theirs).replace(str(reference), str(run_dir)), rel


def record_text(path):
    """A record file as text: JSON Lines as they are, a Parquet table as one JSON line per row."""
    if path.suffix != ".parquet":
        return path.read_text()
    import pyarrow.parquet as pq

    return "".join(json.dumps(row) + "\n" for row in pq.read_table(path).to_pylist())


def stage_stats(run_dir, t, stage):
    return json.loads((run_dir / f"iter_{t:03d}" / stage / "_SUCCESS").read_text())["stats"]
