"""Run layout on disk, stage adapters, markers, the orchestrator and resume."""
