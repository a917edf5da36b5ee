"""Pushing a run's outputs to the Hugging Face Hub (opt-in: `hub.push=true hub.repo_id=...`): each
iteration's policy folder (weights, tokenizer, model card) and its kept pairs (TRL's format), under
`iter_<t>/` in one repository."""

from __future__ import annotations

from pathlib import Path

from selfplay.errors import SelfplayError


def upload(repo_id: str, items: list[tuple[Path, str]], private: bool) -> None:
    """Create the repository if needed and upload every (local file or folder, path in the repo)."""
    try:
        from huggingface_hub import HfApi

        api = HfApi()
        api.create_repo(repo_id, private=private, exist_ok=True)
        for local, remote in items:
            if local.is_dir():
                api.upload_folder(repo_id=repo_id, folder_path=str(local), path_in_repo=remote)
            else:
                api.upload_file(repo_id=repo_id, path_or_fileobj=str(local), path_in_repo=remote)
    except Exception as err:  # offline, no token, no permission: one line, the run keeps its files
        raise SelfplayError(f"hub.push: could not push to '{repo_id}': {type(err).__name__}: {err}") from None
