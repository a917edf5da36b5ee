"""selfplay: self-play iterative alignment of LLMs."""

__version__ = "0.1.0"
