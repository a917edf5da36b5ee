"""The run directory: where everything of a run lives, its markers and checksums, and what a stage is given."""
