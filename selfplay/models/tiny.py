"""The built-in tiny policy: a word-level tokenizer with a chat template and a 2-layer Llama, built
locally (no download), briefly pre-trained on templated chat text, cached, deterministic from a seed.

It exists so that `python -m selfplay.run` runs the real loop (vLLM, judge, TRL) on any CPU in minutes.
Its answers are word salad about the prompt's topic, of varied length and sometimes repetitive: enough
spread between samples for preference training to have something to learn.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from dataclasses import asdict
from importlib import resources
from pathlib import Path

from selfplay.config import TinyModelConfig

log = logging.getLogger(__name__)

BUILDER_VERSION = 1
SPECIALS = ["<pad>", "<unk>", "<bos>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}<|{{ message['role'] }}|> {{ message['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
CHATML_SPECIALS = ["<pad>", "<unk>", "<|im_start|>", "<|im_end|>"]
CHATML_SYSTEM = "You are a helpful assistant."
CHATML_TEMPLATE = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\n" + CHATML_SYSTEM + "<|im_end|>\n{% endif %}"
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
"""Qwen-style ChatML: a default system turn, no BOS, and a newline token after every <|im_end|> (so a
trainer that renders a response through the template appends "<|im_end|>\n" where the sampler
stopped at <|im_end|>)."""
FILLER = [
    "the",
    "a",
    "and",
    "of",
    "to",
    "in",
    "is",
    "it",
    "that",
    "for",
    "on",
    "with",
    "as",
    "this",
    "are",
    "be",
    "at",
    "by",
    "from",
    "or",
    "an",
    "can",
    "will",
    "more",
    "some",
    "very",
    "also",
    "many",
    "most",
    "often",
    "well",
    "good",
    "new",
    "first",
    "other",
    "time",
    "way",
    "people",
    "make",
    "use",
    "help",
    "find",
    "keep",
    "take",
    "try",
    "start",
    "learn",
    "see",
    "know",
    "think",
    "need",
    "want",
    "give",
    "small",
    "big",
    "important",
    "simple",
    "easy",
    "hard",
    "better",
    "best",
    "each",
    "every",
    "day",
    "work",
    "part",
    "place",
    "life",
    "world",
    "thing",
    "things",
    "idea",
    "ideas",
    "because",
    "when",
    "while",
    "after",
    "before",
    "then",
    "so",
    "but",
    "if",
    "not",
    "just",
    "like",
    "about",
    "into",
    "over",
]


def _asset(name: str) -> str:
    return (resources.files("selfplay") / "assets" / name).read_text(encoding="utf-8")


def _topics() -> dict[str, list[str]]:
    return json.loads(_asset("topics.json"))


def _bundled_prompt_texts() -> list[str]:
    texts = []
    for name in ("prompts.jsonl", "heldout.jsonl"):
        texts += [json.loads(line)["prompt"] for line in _asset(name).splitlines() if line.strip()]
    return texts


def tiny_fingerprint(cfg: TinyModelConfig) -> str:
    """Identity of a built model: its settings, the builder version and the bundled assets."""
    settings = {k: v for k, v in asdict(cfg).items() if k != "cache_dir"}
    if settings.get("template") == "plain":
        del settings["template"]  # models built before the option existed keep their cache folder
    blob = json.dumps([BUILDER_VERSION, settings, _asset("topics.json"), _asset("prompts.jsonl")])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def cache_root(cfg: TinyModelConfig) -> Path:
    if cfg.cache_dir:
        return Path(cfg.cache_dir)
    return Path(os.environ.get("SELFPLAY_CACHE", Path.home() / ".cache" / "selfplay"))


def tiny_model_path(cfg: TinyModelConfig) -> Path:
    """Folder of the built tiny model for these settings, building it on first use."""
    path = cache_root(cfg) / f"tiny-{tiny_fingerprint(cfg)}"
    if (path / "config.json").is_file():
        return path
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("building the tiny policy into %s (once; cached)", path)
    build_tiny_model(cfg, tmp)
    try:
        os.replace(tmp, path)
    except OSError:  # another process finished the same build first
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def build_tokenizer(words: list[str], template: str = "plain"):
    """A word-level tokenizer: plain (whitespace dropped) or chatml (newlines kept as tokens)."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chatml = template == "chatml"
    specials = CHATML_SPECIALS if chatml else SPECIALS
    vocab = {tok: i for i, tok in enumerate(specials)}
    extra = (
        ["\n", "system", "user", "assistant", *CHATML_SYSTEM.lower().rstrip(".").split()] if chatml else []
    )
    for w in sorted(set(words) | set(extra)):
        vocab.setdefault(w, len(vocab))
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    if chatml:
        core.pre_tokenizer = pre_tokenizers.Split(Regex(r"\n|\w+|[^\w\s]+"), behavior="removed", invert=True)
        tok = PreTrainedTokenizerFast(
            tokenizer_object=core,
            eos_token="<|im_end|>",
            pad_token="<pad>",
            unk_token="<unk>",
            additional_special_tokens=CHATML_SPECIALS[2:],
        )
        tok.chat_template = CHATML_TEMPLATE
        return tok
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<bos>",
        eos_token="<|end|>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=SPECIALS[4:],
    )
    tok.chat_template = CHAT_TEMPLATE
    return tok


def _corpus_words(topics: dict[str, list[str]], prompts: list[str]) -> list[str]:
    from tokenizers import pre_tokenizers

    split = pre_tokenizers.Whitespace()
    words = list(FILLER) + ["."]
    for topic, related in topics.items():
        words += topic.lower().split() + related
    for text in prompts:
        words += [w for w, _ in split.pre_tokenize_str(text.lower())]
    return words


def _sample_answer(rng: random.Random, topic: str, related: list[str]) -> str:
    """Templated answer: topic words and filler, random length, sometimes stuck repeating a word."""
    length = rng.randint(1, 36)
    topical = topic.lower().split() + related
    words = []
    for _ in range(length):
        words.append(rng.choice(topical) if rng.random() < 0.45 else rng.choice(FILLER))
        if rng.random() < 0.08:
            words.append(".")
    if rng.random() < 0.35:  # degenerate tail: one word over and over
        stuck = rng.choice(words)
        words += [stuck] * rng.randint(3, 20)
    return " ".join(words)


def build_tiny_model(cfg: TinyModelConfig, out_dir: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    topics = _topics()
    prompts = _bundled_prompt_texts()
    tok = build_tokenizer(_corpus_words(topics, prompts), str(cfg.template))
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.hidden_size * 4,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_heads,
        max_position_embeddings=512,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    model = LlamaForCausalLM(config)
    texts = []
    topic_names = sorted(topics)
    for _ in range(4096):
        topic = rng.choice(topic_names)
        prompt = rng.choice([p for p in prompts if topic in p.lower()] or [f"Tell me about {topic}."])
        messages = [
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": _sample_answer(rng, topic, topics[topic])},
        ]
        texts.append(tok.apply_chat_template(messages, tokenize=False))
    _pretrain(model, tok, texts, cfg.pretrain_steps, rng)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.generation_config.bos_token_id = tok.bos_token_id
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)
    tok.save_pretrained(out_dir)


def _pretrain(model, tok, texts: list[str], steps: int, rng: random.Random, batch: int = 32) -> None:
    import torch

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    for step in range(steps):
        chunk = rng.sample(texts, batch)
        enc = tok(chunk, add_special_tokens=False, padding=True, return_tensors="pt")
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
        if step % 100 == 0 or step == steps - 1:
            log.info("tiny policy pre-training step %d/%d loss %.3f", step + 1, steps, loss.item())
    model.eval()
