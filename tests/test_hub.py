"""The hub push, planned and staged offline: the model repository holds the newest policy at its root
with a card huggingface_hub reads back (base_model = pi_0's hub id, never a local path) and a branch
per iteration; the kept pairs go to a dataset repository whose card declares one split per iteration,
which `datasets` loads from the staged folder as the Hub would serve it; a dry run uploads nothing; a
real push without network is one line."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from selfplay.config import Config, HubConfig, ModelConfig
from selfplay.errors import SelfplayError
from selfplay.rundir.context import StageContext
from selfplay.rundir.layout import RunLayout
from selfplay.rundir.markers import write_marker
from selfplay.stages.pushing import run_push
from selfplay.stages.table import stages_for

BASE = "Qwen/Qwen2.5-0.5B-Instruct"


def finished_iteration(layout: RunLayout, t: int) -> None:
    policy = layout.policy_dir(t)
    policy.mkdir(parents=True)
    (policy / "config.json").write_text('{"model_type": "qwen2"}')
    (policy / "model.safetensors").write_bytes(b"weights %d" % t)
    (policy / "README.md").write_text("the train stage's card")
    selection = layout.stage_dir(t, "selection")
    selection.mkdir(parents=True)
    rows = {
        "prompt": [[{"role": "user", "content": f"q{t}-{i}"}] for i in range(3)],
        "chosen": [[{"role": "assistant", "content": "good"}]] * 3,
        "rejected": [[{"role": "assistant", "content": "bad"}]] * 3,
    }
    pq.write_table(pa.table(rows), selection / "kept_pairs.parquet")
    write_marker(layout.marker(t, "selection"), {"stats": {"pool": 7, "kept": 3}})
    write_marker(layout.marker(t, "train"), {"stats": {"pairs": 3, "optimizer_steps": 1, "train_loss": 0.69}})
    layout.stage_dir(t, "evaluate").mkdir(parents=True)
    write_marker(layout.marker(t, "evaluate"), {"stats": {"heldout_prompts": 4, "win_rate_vs_initial": 0.6}})


def push(tmp_path, hub: HubConfig, t: int = 1):
    cfg = Config(hub=hub, model=ModelConfig(path=BASE))
    layout = RunLayout(tmp_path / "run")
    for it in range(t + 1):
        finished_iteration(layout, it)
    out = layout.partial_dir(t, "push")
    out.mkdir(parents=True)
    return run_push(StageContext(cfg, layout, t, out, str(layout.policy_dir(t - 1)), BASE, "push")), out


def test_the_plan_puts_weights_at_the_root_and_pairs_in_a_dataset_repo(tmp_path, monkeypatch, caplog):
    import logging

    from huggingface_hub import DatasetCard, ModelCard

    from selfplay.models import hub

    assert "push" not in stages_for(Config())
    assert stages_for(Config(hub=HubConfig(push=True, repo_id="me/run")))[-1] == "push"
    monkeypatch.setattr(hub, "push", lambda *a: pytest.fail("a dry run uploaded"))
    with caplog.at_level(logging.INFO, logger="selfplay.stages.pushing"):
        stats, out = push(
            tmp_path, HubConfig(push=True, repo_id="me/run", license="apache-2.0", dry_run=True)
        )
    plan = " ".join(r.getMessage() for r in caplog.records)
    assert (
        str(out) not in plan and str(tmp_path / "run" / "iter_001" / "push" / "staged") in plan
    )  # where it stays
    assert stats.to_dict() == {"repo_id": "me/run", "dry_run": True, "uploads": 2, "files": 6}
    model, pairs = json.loads((out / "pushed.json").read_text())
    assert model == {
        "repo_id": "me/run",
        "repo_type": "model",
        "revision": "main",
        "branch_after": "iter-1",
        "files": ["README.md", "config.json", "model.safetensors"],
    }
    assert pairs["repo_id"] == "me/run-pairs" and pairs["repo_type"] == "dataset"
    assert pairs["files"] == ["README.md", "data/iter_000.parquet", "data/iter_001.parquet"]
    staged = out / "staged"
    assert (staged / "model" / "model.safetensors").read_bytes() == b"weights 1"  # this iteration's policy
    card = ModelCard.load(staged / "model" / "README.md")
    assert card.data.base_model == BASE  # pi_0's hub id, not the local path of pi_1
    assert card.data.license == "apache-2.0" and card.data.datasets == ["me/run-pairs"]
    assert "## Held-out evaluation" in card.text and "policy after self-play iteration 1" in card.text
    assert (
        str(tmp_path) not in card.text and "this run's policy after iteration 0" in card.text
    )  # no local path
    assert "None" not in card.text and "final train loss 0.69" in card.text
    data_card = DatasetCard.load(staged / "pairs" / "README.md")
    assert data_card.data.license == "apache-2.0"
    assert [f["split"] for f in data_card.data.configs[0]["data_files"]] == ["iter_000", "iter_001"]
    import datasets

    loaded = datasets.load_dataset(str(staged / "pairs"), split="iter_001")  # as the Hub would serve it
    assert loaded["prompt"][0] == [{"role": "user", "content": "q1-0"}] and len(loaded) == 3


def test_without_revisions_no_branch_and_a_named_dataset_repo(tmp_path, monkeypatch):
    from selfplay.models import hub

    monkeypatch.setattr(hub, "push", lambda *a: None)
    _, out = push(
        tmp_path, HubConfig(push=True, repo_id="me/run", dataset_repo_id="me/pairs", revisions=False)
    )
    model, pairs = json.loads((out / "pushed.json").read_text())
    assert model["branch_after"] is None and pairs["repo_id"] == "me/pairs"


def test_a_push_without_network_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SelfplayError) as err:
        push(tmp_path, HubConfig(push=True, repo_id="me/run"))
    message = str(err.value)
    assert (
        message.startswith("hub.push: could not push to the model repository 'me/run': ")
        and "\n" not in message
    )


def test_hub_repo_id_is_required():
    from selfplay.checks import check_config

    with pytest.raises(SelfplayError, match="hub.repo_id: required"):
        check_config(Config(hub=HubConfig(push=True)))


@pytest.mark.parametrize(
    "env,needle",
    [
        ({"HF_HUB_OFFLINE": "1"}, "hub.push=true but the Hub is in offline mode (HF_HUB_OFFLINE is set)"),
        (
            {"HF_HUB_OFFLINE": "0", "HF_TOKEN": "", "HF_TOKEN_PATH": "/nonexistent/token"},
            "hub.push=true but no Hugging Face token",
        ),
    ],
)
def test_a_push_that_cannot_happen_is_refused_before_any_work(tmp_path, monkeypatch, env, needle):
    """As transformers' Trainer checks in its constructor: not after an iteration's work."""
    from selfplay import api

    for k, v in env.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    with pytest.raises(SelfplayError) as err:
        api.run(["debug=tiny", "hub.push=true", "hub.repo_id=me/run", f"loop.output_dir={tmp_path}"])
    assert str(err.value).startswith(needle) and "\n" not in str(err.value)
    assert not list(tmp_path.glob("*/iter_*"))  # nothing ran
    dry = api.compose(["debug=tiny", "hub.push=true", "hub.repo_id=me/run", "hub.dry_run=true"])
    from selfplay.loop.preflight import preflight
    from selfplay.stages.table import STAGES

    preflight(dry, STAGES)  # a dry run of the push needs neither network nor token
