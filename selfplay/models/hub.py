"""Pushing to the Hugging Face Hub (opt-in: `hub.push=true hub.repo_id=...`): the uploads that
selfplay/reporting/hub_layout.py plans, through huggingface_hub's HfApi. Every failure (offline, no
token, no permission) is one line; the run keeps its files, and resuming the run pushes again
(`upload_folder` skips what an interrupted push already committed)."""

from __future__ import annotations

from typing import Any

from selfplay.errors import SelfplayError


def offline() -> bool:
    """The Hub's offline mode, read now (huggingface_hub reads HF_HUB_OFFLINE once, at import)."""
    import os

    from huggingface_hub import constants

    value = os.environ.get("HF_HUB_OFFLINE")
    return (
        constants.is_offline_mode() if value is None else value.strip().upper() in ("1", "ON", "YES", "TRUE")
    )


def check_push(repos: list[tuple[str, str]], private: bool) -> None:
    """Before any iteration's work (as transformers' Trainer does in its constructor): the Hub is
    reachable, a token is there and accepted, and every repository (repo id, repo type) exists or can
    be created; each failure is one line naming hub.* and what to do."""
    from huggingface_hub import HfApi, get_token

    if offline():
        raise SelfplayError(
            "hub.push=true but the Hub is in offline mode (HF_HUB_OFFLINE is set): unset it, or set "
            "hub.dry_run=true to write the push plan without uploading"
        )
    if not get_token():
        raise SelfplayError(
            "hub.push=true but no Hugging Face token: run `hf auth login` or set HF_TOKEN (or hub.dry_run=true)"
        )
    api = HfApi()
    try:
        user = api.whoami()
    except Exception as err:
        raise SelfplayError(
            f"hub.push=true: the Hub did not accept the token or could not be reached ({type(err).__name__}: {err})"
        ) from None
    for repo_id, repo_type in repos:
        try:
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
        except Exception as err:
            name = user.get("name", "?") if isinstance(user, dict) else "?"
            raise SelfplayError(
                f"hub.push=true: cannot create or write the {repo_type} repository '{repo_id}' as '{name}' "
                f"({type(err).__name__}: {err})"
            ) from None


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
