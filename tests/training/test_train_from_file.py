"""`python -m selfplay.train input=<file>`: a file of selected pairs (as `python -m selfplay.select` writes
it) trains the policy through the loop's own train stage, with no code: TRL's tokenisation of text pairs,
one teacher-forced reference pass, the tiny preset's settings; bad input is one line."""

import json
import subprocess
import sys

from tests.integration.cli import REPO, cli_env


def run_train(*args):
    return subprocess.run(
        [sys.executable, "-m", "selfplay.train", *args],
        cwd=REPO,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_selected_file_trains_the_policy(tmp_path):
    topics = ["bees", "cats", "chess", "rivers", "music", "bread", "stars", "trains"]
    rows = [
        {
            "prompt": [{"role": "user", "content": f"Tell me about {t}."}],
            "chosen": [
                {"role": "assistant", "content": f"{t} are a big part of life and people learn about {t}"}
            ],
            "rejected": [{"role": "assistant", "content": f"{t} {t} {t}"}],
            "chosen_reward": 0.9,
            "rejected_reward": 0.1,
        }
        for t in topics
    ]
    selected = tmp_path / "selected.jsonl"
    selected.write_text("".join(json.dumps(r) + "\n" for r in rows))
    proc = run_train(f"input={selected}", f"loop.output_dir={tmp_path}", "loop.run_name=ap40")
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dir = tmp_path / "ap40"
    assert proc.stdout.strip().splitlines()[-1] == str(run_dir)
    assert (run_dir / "iter_000" / "train" / "model" / "model.safetensors").is_file()
    stats = json.loads((run_dir / "iter_000" / "train" / "_SUCCESS").read_text())["stats"]
    assert stats["pairs"] == 8 and stats["responses_tokenised_from_text"] == 16
    assert stats["ref_logps_teacher_forced"] == 16 and stats["policy_changed"] is True
    assert stats["row_tokens"] > 8 * 4 and 0 < stats["train_seconds"] < 600  # the throughput's two terms
    pairs = [json.loads(line) for line in (run_dir / "iter_000" / "import" / "pairs.jsonl").open()]
    assert pairs[0]["chosen_reward"] == 0.9 and all(p["kept"] for p in pairs)


def test_bad_input_is_one_line(tmp_path):
    missing = run_train(f"input={tmp_path / 'nope.jsonl'}", f"loop.output_dir={tmp_path}")
    assert missing.returncode == 2 and missing.stderr.strip().count("\n") == 0
    assert "does not exist" in missing.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "q", "chosen": "a", "rejected": "b"}) + "\n")
    proc = run_train(f"input={bad}", f"loop.output_dir={tmp_path}")
    assert proc.returncode == 2 and "missing column(s) prompt" in proc.stderr.strip().splitlines()[-1]
