"""What `hub.push=true` puts on the Hugging Face Hub, laid out as the Hub expects.

- The model repository `hub.repo_id`: the newest policy at the root of `main` with its model card (so
  `from_pretrained("you/run")`, `vllm serve you/run` and Inference Endpoints find the weights), and,
  with `hub.revisions=true`, a branch `iter-<t>` at the commit that pushed iteration t's policy
  (`from_pretrained("you/run", revision="iter-1")`).
- The dataset repository `hub.dataset_repo_id` (default `<repo_id>-pairs`, `repo_type="dataset"`): the
  kept pairs of every finished iteration as `data/iter_<t>.parquet` (evolve's pool: `iter_<t>_evolved`),
  one split each, declared in the dataset card's `configs` so the dataset viewer and
  `load_dataset("you/run-pairs", split="iter_001")` read them.

Cards are built with huggingface_hub's `ModelCard`/`ModelCardData` and `DatasetCard`/`DatasetCardData`
(no hand-written YAML). Each push uploads a staged folder (hard links to the run's files, so nothing
is copied) with `HfApi.upload_folder`, which with `hf_xet` (installed with huggingface_hub) commits in
batches and resumes an interrupted upload when run again; the push stage is rerun by resuming the run.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Upload:
    """One folder uploaded to the root of a repository at a revision (the remote then mirrors it)."""

    repo_id: str
    repo_type: str
    """"model" or "dataset"."""
    revision: str
    folder: Path
    branch_after: str | None = None
    """A branch created at the commit of this upload (the model's `iter-<t>`)."""
    message: str = ""
    """The commit message."""

    def files(self) -> list[str]:
        return sorted(str(p.relative_to(self.folder)) for p in self.folder.rglob("*") if p.is_file())

    def describe(self, private: bool) -> str:
        visibility = "private" if private else "public"
        then = f"; then branch {self.branch_after} at that commit" if self.branch_after else ""
        return (
            f"{self.repo_type} {self.repo_id} ({visibility}) @{self.revision} <- {self.folder}: "
            f"{', '.join(self.files())}{then}"
        )


def dataset_repo(repo_id: str, dataset_repo_id: str | None) -> str:
    return dataset_repo_id or f"{repo_id}-pairs"


def hub_id(path: str | None) -> str | None:
    """A model's hub id ("org/name"), or None for a local folder or the built-in tiny policy."""
    from selfplay.models.loading import looks_local

    if not path or path == "tiny" or looks_local(path):
        return None
    return path


def public_model(path: str | None) -> str:
    """How a card names a model: its hub id, a registry model's name, the built-in tiny policy, or "a
    local model": never a path of the machine that ran it."""
    from selfplay.models.registry_policy import registry_model
    from selfplay.rundir.layout import RunLayout

    if not path:
        return "-"
    if path == "tiny":
        return "the built-in tiny policy"
    if registry_model(path) is not None:
        return f"`{path}` (built from the package registry)"
    t = RunLayout.policy_iteration(path)
    if t is not None:
        return f"this run's policy after iteration {t}"
    return f"`{path}`" if hub_id(path) else "a local model"


def link_tree(files: dict[str, Path], out: Path) -> Path:
    """`out` holding `files` (path in the folder -> local file) as hard links (a copy across file
    systems); rebuilt from scratch each time."""
    if out.exists():
        shutil.rmtree(out)
    for rel, src in files.items():
        dest = out / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src, dest)
        except OSError:
            shutil.copy2(src, dest)
    return out


def stage_model(policy: Path, card: str, out: Path) -> Path:
    """The policy folder's files with `card` as README.md."""
    files = {
        str(p.relative_to(policy)): p for p in policy.rglob("*") if p.is_file() and p.name != "README.md"
    }
    link_tree(files, out)
    (out / "README.md").write_text(card)
    return out


def stage_pairs(splits: dict[str, Path], card: str, out: Path) -> Path:
    """data/<split>.parquet for every split, with `card` as README.md."""
    link_tree({f"data/{name}.parquet": path for name, path in splits.items()}, out)
    (out / "README.md").write_text(card)
    return out


def model_card_text(
    card: str, base_model: str | None, tags: list[str], datasets: list[str], license: str | None
) -> str:
    """A model card: `card`'s body under metadata built by huggingface_hub's ModelCardData."""
    from huggingface_hub import ModelCard, ModelCardData

    data = ModelCardData(
        library_name="transformers",
        base_model=base_model,
        tags=tags,
        datasets=datasets or None,
        license=license,
        pipeline_tag="text-generation",
    )
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{card.lstrip()}"))


def model_card_body(text: str) -> str:
    """A card's text without its metadata block."""
    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            return text[end + 4 :].lstrip("\n")
    return text


def push_plan(
    hub: Any,
    iteration: int,
    policy: Path,
    card: str,
    splits: dict[str, Path],
    dataset_card: str,
    staging: Path,
) -> list[Upload]:
    """The uploads of iteration `iteration`'s push: its policy to the model repository (main, then the
    branch `iter-<t>`), and the kept pairs of every finished iteration so far to the dataset repository."""
    repo, pairs_repo = str(hub.repo_id), dataset_repo(str(hub.repo_id), hub.dataset_repo_id)
    uploads = [
        Upload(
            repo,
            "model",
            "main",
            stage_model(policy, card, staging / "model"),
            f"iter-{iteration}" if hub.revisions else None,
            f"selfplay: the policy after iteration {iteration}",
        )
    ]
    if splits:
        folder = stage_pairs(splits, dataset_card, staging / "pairs")
        message = f"selfplay: kept pairs through iteration {iteration}"
        uploads.append(Upload(pairs_repo, "dataset", "main", folder, None, message))
    return uploads
