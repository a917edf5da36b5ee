"""Regenerates the instruction-following task bundled with selfplay (selfplay/assets/ifeval_train.jsonl and
ifeval_heldout.jsonl) deterministically: every bundled prompt with one or two checkable constraints
(selfplay/tasks/constraints.py). A test checks that this reproduces the committed files.
Run: python scripts/make_ifeval_task.py
"""

import argparse
import json
from collections import Counter
from pathlib import Path

from selfplay.tasks.constraints import HELDOUT_FILE, TRAIN_FILE, build_task

ASSETS = Path(__file__).resolve().parents[1] / "selfplay" / "assets"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    train, heldout = build_task()
    for name, rows in [(TRAIN_FILE, train), (HELDOUT_FILE, heldout)]:
        with open(ASSETS / name, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
        kinds = Counter(i for row in rows for i in row["instruction_id_list"])
        two = sum(len(row["instruction_id_list"]) == 2 for row in rows)
        print(f"{name}: {len(rows)} prompts, {two} with two constraints; {dict(sorted(kinds.items()))}")


if __name__ == "__main__":
    main()
