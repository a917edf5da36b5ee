"""The stages' names: each one is a folder of an iteration (`iter_000/<name>/`) and a key of the stage
table; spelled here once, so a consumer that reads a stage's records or statistics names a constant."""

from __future__ import annotations

PROMPTS = "prompts"
GENERATE = "generate"
JUDGE = "judge"
LOGPROBS = "logprobs"
SELECTION = "selection"
EVOLVE = "evolve"
EVOLVED_GENERATE = "evolved_generate"
EVOLVED_JUDGE = "evolved_judge"
EVOLVED_SELECTION = "evolved_selection"
TRAIN = "train"
EVALUATE = "evaluate"
PUSH = "push"
IMPORT = "import"
"""`python -m selfplay.train`: a preference file's rows as the run's kept pairs."""
SCORE = "score"
"""`python -m selfplay.select` with a model or judge: the dataset's missing rewards, computed in shards."""
