"""Reward models trained by the project (`python -m selfplay.train_rm`): their data and their training."""
