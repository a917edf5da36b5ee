"""Every config in conf/ composes and converts; typos and bad choices fail at compose time;
a resumed run with a changed config is refused with the changed keys named."""

import re
from importlib import resources
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException

from selfplay.config import Config
from selfplay.errors import SelfplayError
from selfplay.loop.run_config import save_or_check
from selfplay.run import to_config
from selfplay.rundir.layout import RunLayout

CONF = resources.files("selfplay.conf")


def compose_config(overrides=()):
    with initialize_config_module(config_module="selfplay.conf", version_base=None):
        return to_config(compose(config_name="config", overrides=list(overrides)))


SELECT_ONLY = {"dataset"}  # groups of `python -m selfplay.select` (tested with it)
NOT_CONFIG = {"deepspeed", "hydra"}  # JSON for DeepSpeed; Hydra's own settings


def group_options():
    for group in sorted(
        p.name
        for p in CONF.iterdir()
        if p.is_dir() and not p.name.startswith("_") and p.name not in SELECT_ONLY | NOT_CONFIG
    ):
        for f in sorted((CONF / group).iterdir()):
            if f.name.endswith(".yaml"):
                yield f"{group}={f.name[:-5]}"


def test_default_config_composes():
    cfg = compose_config()
    assert isinstance(cfg, Config) and cfg.loop.iterations == 3 and cfg.model.path == "tiny"


@pytest.mark.parametrize("override", list(group_options()))
def test_every_conf_option_composes(override):
    assert isinstance(compose_config([override]), Config)


@pytest.mark.parametrize(
    "override",
    ["selection.metrc=explicit", "generate.backend=tgi", "train.beta=abc"],
)
def test_typos_and_unknown_choices_fail_at_compose_time(override):
    with pytest.raises(ConfigCompositionException):
        compose_config([override])


@pytest.mark.parametrize(
    "override,needle",
    [
        ("selection.metric=bogus", "selection.metric=bogus: unknown (known: alignment_potential"),
        ("selection.pairing=best_v_worst", "did you mean best_vs_worst"),
        ("train.loss=orpo", "train.loss=orpo: unknown (known: dpo, simpo; or module:attr"),
        ("evolve.enabled=true evolve.selection.metric=nope", "evolve.selection.metric=nope: unknown"),
    ],
)
def test_plug_in_names_are_checked_at_start_in_one_line(override, needle):
    """Metrics, pairing rules and losses are names of their tables or "module:attr": checked before
    anything runs."""
    from selfplay.checks import check_config

    with pytest.raises(SelfplayError) as err:
        check_config(compose_config(override.split()), 1)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_changed_config_is_refused_naming_the_keys(tmp_path):
    layout = RunLayout(tmp_path / "run")
    save_or_check(layout, compose_config())
    save_or_check(layout, compose_config(["loop.iterations=5"]))  # extending the run is allowed
    with pytest.raises(SelfplayError, match=r"selection.weight: 1.0 -> 2.5.*train.beta"):
        save_or_check(layout, compose_config(["selection.weight=2.5", "train.beta=0.5"]))


RESOURCE_CHANGES = [
    "generate.gpu_memory_utilization=0.6",
    "generate.tensor_parallel_size=2",
    "generate.enforce_eager=false",
    "+generate.engine_args.max_num_seqs=64",
    "judge.batch_size=64",
    "logprobs.batch_size=4",
    "train.save_steps=10",
    "train.num_processes=8",
    "cluster.kind=slurm",
    "cluster.rendezvous_timeout=60",
]


def test_resource_keys_may_change_on_resume_result_keys_may_not(tmp_path):
    layout = RunLayout(tmp_path / "run")
    first = save_or_check(layout, compose_config())
    assert save_or_check(layout, compose_config(RESOURCE_CHANGES)) == first  # same stage fingerprints
    with pytest.raises(SelfplayError, match=r"generate.temperature: 0.8 -> 0.5"):
        save_or_check(layout, compose_config(["generate.temperature=0.5"]))


def test_every_resource_key_is_a_key_of_the_schema():
    from selfplay.config import RESOURCE_KEYS
    from selfplay.loop.run_config import config_dict, flatten

    assert set(flatten(config_dict(Config()))) >= RESOURCE_KEYS


def test_a_key_added_by_a_later_version_resumes_as_its_default(tmp_path):
    import yaml

    layout = RunLayout(tmp_path / "run")
    first = save_or_check(layout, compose_config())
    saved = yaml.safe_load(layout.config_file.read_text())
    del saved["generate"]["top_k"]  # what a run started before this (result) key existed saved
    layout.config_file.write_text(yaml.safe_dump(saved))
    resumed = save_or_check(layout, compose_config())
    assert "generate.top_k" not in resumed and resumed == {
        k: v for k, v in first.items() if k != "generate.top_k"
    }
    assert "top_k" not in yaml.safe_load(layout.config_file.read_text())["generate"]  # stays out
    with pytest.raises(SelfplayError, match=r"generate.top_k: '<absent>' -> 20"):
        save_or_check(layout, compose_config(["generate.top_k=20"]))  # not its default: a change


def test_config_reference_page_is_current():
    from selfplay.config_doc import reference

    page = (Path(__file__).resolve().parents[2] / "docs" / "config.md").read_text()
    assert reference().strip() in page, (
        "docs/config.md is stale: run python -m selfplay.config_doc --write docs/config.md"
    )


def test_offline_select_config_composes():
    from selfplay.config import OfflineSelectConfig

    with initialize_config_module(config_module="selfplay.conf", version_base=None):
        from omegaconf import OmegaConf

        cfg = OmegaConf.to_object(
            compose(config_name="select", overrides=["input=x.jsonl", "selection.weight=2.5"])
        )
    assert isinstance(cfg, OfflineSelectConfig) and cfg.selection.weight == 2.5 and cfg.input == "x.jsonl"


@pytest.mark.parametrize(
    "name,path,loss,beta,lr,ratio",
    [
        ("llama3_8b_dpo", "meta-llama/Meta-Llama-3-8B-Instruct", "dpo", 0.01, 3e-7, None),
        ("llama3_8b_simpo", "meta-llama/Meta-Llama-3-8B-Instruct", "simpo", 10.0, 1e-6, 0.3),
        ("gemma2_9b_dpo", "google/gemma-2-9b-it", "dpo", 0.01, 5e-7, None),
        ("gemma2_9b_simpo", "google/gemma-2-9b-it", "simpo", 10.0, 8e-7, 0.5),
    ],
)
def test_paper_presets(name, path, loss, beta, lr, ratio):
    cfg = compose_config([f"experiment={name}"])
    assert (cfg.model.path, cfg.train.loss, cfg.train.beta, cfg.train.learning_rate) == (path, loss, beta, lr)
    if ratio is not None:
        assert cfg.train.simpo_gamma_beta_ratio == ratio
    assert cfg.judge.model.path == "RLHFlow/ArmoRM-Llama3-8B-v0.1" and cfg.judge.model.trust_remote_code
    assert (cfg.generate.num_samples, cfg.generate.temperature, cfg.generate.top_p) == (5, 0.8, 0.95)
    t = cfg.train
    assert (t.global_batch_size, t.epochs, t.lr_scheduler, t.warmup_ratio, t.max_length) == (
        128,
        1,
        "cosine",
        0.1,
        2048,
    )
    assert t.global_batch_size % (t.batch_size * t.num_processes) == 0


def test_self_play_protocol_arms():
    ap, explicit, fresh = (
        compose_config([f"experiment={n}"]) for n in ("evolve_ap", "evolve_explicit", "fresh_prompts")
    )
    assert ap.evolve.enabled and ap.prompts.per_iteration == 10000 and ap.selection.ratio == 1.0
    assert (ap.evolve.selection.metric, ap.evolve.selection.weight, ap.evolve.selection.count) == (
        "alignment_potential",
        2.5,
        10000,
    )
    assert ap.evolve.strategies == ["breadth", "deepen", "constraints", "concretize", "reasoning"]
    assert ap.evolve.rewrites_per_prompt == 5
    assert explicit.evolve.enabled and explicit.evolve.selection.metric == "explicit"
    assert not fresh.evolve.enabled and fresh.prompts.per_iteration == 20000
    swapped = compose_config(["experiment=evolve_ap", "preset=gemma2_9b_simpo"])  # protocol x preset
    assert (swapped.model.path, swapped.train.loss, swapped.train.beta) == (
        "google/gemma-2-9b-it",
        "simpo",
        10.0,
    )
    assert (
        swapped.evolve.enabled
        and swapped.evolve.selection.count == 10000
        and swapped.prompts.system_prompt is None
    )
    assert ap.prompts.system_prompt == "You are a helpful assistant."  # the reference code's, for Llama
    tiny = compose_config(["experiment=evolve_tiny"])
    assert tiny.evolve.enabled and tiny.evolve.templates_dir == "selfplay:evolve_tiny"


@pytest.mark.parametrize("command", ["selfplay.run", "selfplay.select", "selfplay.train"])
def test_help_is_the_schemas_and_runs(command):
    """Each entry point's --help is generated from its schema: every section and every key of it (no
    internal one), the config groups of conf/, and how to see the rest."""
    import dataclasses
    import subprocess
    import sys

    from selfplay.help_text import HIDDEN, ROOTS
    from tests.integration.cli import REPO

    proc = subprocess.run(
        [sys.executable, "-m", command, "--help"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    text = " ".join(proc.stdout.split())
    root = ROOTS[command]()
    for f in dataclasses.fields(root):
        value = getattr(root, f.name)
        if f.name in HIDDEN:
            assert f"{f.name} " not in text.split("== Sections")[1].split("==")[0], f.name
            continue
        assert re.search(rf"(^|\s){f.name}[\s,.:]", text), f.name
        if dataclasses.is_dataclass(value):
            for sub in dataclasses.fields(value):
                assert sub.name in text, f"{f.name}.{sub.name}"
    assert "docs/config.md" in text and "--cfg job" in text and "schema_" not in text
    if command != "selfplay.select":
        assert "preset: " in text and "llama3_8b_dpo" in text  # the groups of conf/


def test_report_help_names_both_commands():
    import subprocess
    import sys

    from tests.integration.cli import REPO

    proc = subprocess.run(
        [sys.executable, "-m", "selfplay.report", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0 and "export RUN --to DIR" in proc.stdout


def test_log_level_is_one_key_and_a_bad_value_is_one_line(capsys):
    import logging

    from selfplay.run import set_log_level

    root = logging.getLogger()
    before = root.level
    try:
        set_log_level("warning")
        assert root.level == logging.WARNING
        with pytest.raises(SelfplayError) as err:  # one line; the command line prints it and exits 2
            set_log_level("LOUD")
        assert str(err.value) == "loop.log_level=LOUD: expected one of DEBUG, INFO, WARNING, ERROR"
    finally:
        root.setLevel(before)


@pytest.mark.parametrize(
    "command,override,nearest",
    [
        ("selfplay.run", "+selecton.metric=random", "selection.metric"),
        ("selfplay.run", "selecton.metric=random", "selection.metric"),
        ("selfplay.run", "+judge.model_path=/m", "judge.model.path"),
        ("selfplay.select", "+columns.chosn=a", "columns.chosen"),
        ("selfplay.train", "+train.los=dpo", "train.loss"),
    ],
)
def test_an_unknown_key_is_one_line_naming_the_nearest_on_every_entry_point(command, override, nearest):
    """Hydra's own advice for a misspelt key is `+key=value`, which used to run with the default: every
    entry point refuses a key the schema does not know, `+` or not, before anything starts."""
    import subprocess
    import sys

    from tests.integration.cli import REPO

    proc = subprocess.run(
        [sys.executable, "-m", command, override], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"did you mean {nearest}?" in proc.stderr


def test_an_unknown_key_through_the_api_and_in_a_yaml_file(tmp_path):
    from omegaconf import OmegaConf

    from selfplay import api
    from selfplay.schema.keys import check_composed

    with pytest.raises(SelfplayError, match=r"unknown key 'selecton.metric'.*did you mean selection.metric"):
        api.compose(["+selecton.metric=random"])
    assert api.compose(["+train.trl_args.max_grad_norm=0.5"]).train.trl_args == {
        "max_grad_norm": 0.5
    }  # free-form
    composed = OmegaConf.create(OmegaConf.to_container(OmegaConf.structured(Config)))
    yaml_typo = OmegaConf.merge(composed, {"selection": {"metrc": "x"}})  # as a YAML file's typo composes
    with pytest.raises(SelfplayError, match=r"unknown key 'selection.metrc' in the composed config"):
        check_composed(yaml_typo, Config)
