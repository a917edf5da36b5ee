"""Pushing to the Hugging Face Hub (opt-in: `hub.push=true hub.repo_id=...`): the uploads that
selfplay/reporting/hub_layout.py plans, through huggingface_hub's HfApi. Every failure (offline, no
token, no permission) is one line; the run keeps its files, and resuming the run pushes again
(`upload_folder` skips what an interrupted push already committed)."""

from __future__ import annotations

from typing import Any

from selfplay.errors import SelfplayError


def push(uploads: list[Any], private: bool) -> None:
    """Create each repository if needed, upload each staged folder to its root at its revision (the
    remote mirrors the folder: files it no longer has are deleted), then create the upload's branch."""
    from huggingface_hub import HfApi

    api = HfApi()
    for up in uploads:
        try:
            api.create_repo(up.repo_id, repo_type=up.repo_type, private=private, exist_ok=True)
            commit = api.upload_folder(
                repo_id=up.repo_id,
                repo_type=up.repo_type,
                folder_path=str(up.folder),
                revision=up.revision,
                delete_patterns=["*"],
                commit_message=up.message or "selfplay",
            )
            if up.branch_after:
                api.create_branch(
                    up.repo_id,
                    repo_type=up.repo_type,
                    branch=up.branch_after,
                    revision=getattr(commit, "oid", None),
                    exist_ok=True,
                )
        except Exception as err:
            raise SelfplayError(
                f"hub.push: could not push to the {up.repo_type} repository '{up.repo_id}': {type(err).__name__}: {err}"
            ) from None
