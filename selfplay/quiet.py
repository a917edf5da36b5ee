"""Quiet, offline-friendly defaults for the libraries every entry point drives (a user's own setting of
each variable wins): their import-time notices and deprecation warnings are not the user's concern,
and our own progress lines replace their bars."""

from __future__ import annotations

import logging
import os
import warnings

DEFAULTS = {
    "TOKENIZERS_PARALLELISM": "false",
    "VLLM_LOGGING_LEVEL": "ERROR",
    "TRL_EXPERIMENTAL_SILENCE": "1",
    "TORCH_CPP_LOG_LEVEL": "ERROR",  # c10's C++ notices, e.g. vLLM CPU's "NUMA binding: Using MEMBIND ..."
}


def quiet_libraries() -> None:
    """Set the defaults (inherited by every process a run starts) and silence what prints at import."""
    for key, value in DEFAULTS.items():
        os.environ.setdefault(key, value)
    # vLLM logs through our root handler where its own is off ("Triton is installed, but doesn't include
    # CPU backend"): at the level VLLM_LOGGING_LEVEL names.
    logging.getLogger("vllm").setLevel(os.environ["VLLM_LOGGING_LEVEL"].upper())
    warnings.filterwarnings("ignore", message=r".*torch\.distributed\.reduce_op.*", category=FutureWarning)
