"""Regenerates the prompt set bundled with selfplay (selfplay/assets/*.jsonl) deterministically.

The prompts are templated questions over everyday topics: varied enough to exercise the loop, simple
enough that the built-in tiny policy can learn the built-in rule reward on them.
Run: python scripts/make_bundled_prompts.py
"""

import argparse
import json
import random
from pathlib import Path

ASSETS = Path(__file__).resolve().parents[1] / "selfplay" / "assets"

TEMPLATES = [
    "Tell me about {t}.",
    "Explain {t} to a beginner.",
    "What should I know about {t}?",
    "Give me three tips about {t}.",
    "Why do people care about {t}?",
    "Describe {t} in a few sentences.",
    "How would you teach a child about {t}?",
    "What are common mistakes with {t}?",
    "Write a short note about {t}.",
    "Summarize the basics of {t}.",
    "What is the history of {t}?",
    "How can I get better at {t}?",
    "Compare {t} today with {t} in the past.",
    "List the main ideas behind {t}.",
]


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n\n")[0]).parse_args()
    topics = json.loads((ASSETS / "topics.json").read_text())
    rng = random.Random(20261127)
    combos = [(t, i) for t in sorted(topics) for i in range(len(TEMPLATES))]
    rng.shuffle(combos)
    heldout_combos, train_combos = combos[:48], combos[48:368]
    for name, chosen in [("prompts.jsonl", train_combos), ("heldout.jsonl", heldout_combos)]:
        with open(ASSETS / name, "w") as f:
            for topic, i in chosen:
                f.write(json.dumps({"prompt": TEMPLATES[i].format(t=topic), "topic": topic}) + "\n")
        print(f"{name}: {len(chosen)} prompts")


if __name__ == "__main__":
    main()
