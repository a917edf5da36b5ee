"""The bad-input catalogue: what a user can get wrong, each answered by one clear line and exit code 2
(or a counted skip), and nothing marked done that should not be. The runs are in-process through the
same `run_command` that `python -m selfplay.run` calls (seconds each); Hydra's own compose-time messages
(a typo, an invalid choice) go through the real command line."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from selfplay.run import run_command, to_config
from tests.integration.cli import REPO, cli_env, run_cli

FAST = [
    "debug=tiny",
    "generate.backend=hf",
    "loop.iterations=1",
    "evaluate.enabled=false",
    "loop.progress=false",
]


def compose(overrides):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    from selfplay.config import register_configs

    register_configs()
    with initialize_config_module(config_module="selfplay.conf", version_base=None):
        return to_config(hydra_compose(config_name="config", overrides=list(overrides)))


def run(overrides, capsys):
    """(exit code, stderr lines) of `python -m selfplay.run <overrides>`, in this process."""
    code = 0
    try:
        run_command(compose(overrides), "selfplay.run")
    except SystemExit as exit:
        code = exit.code
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    return code, err


def one_line(code, err, needle):
    assert code == 2, err
    assert len(err) == 1 and err[0].startswith("selfplay: error: "), err
    assert needle in err[0], err[0]


def markers(out):
    return sorted(str(p.relative_to(out)) for p in Path(out).rglob("_SUCCESS"))


def prompt_file(path, rows, raw=None):
    path.write_text(raw if raw is not None else "".join(json.dumps(r) + "\n" for r in rows))
    return path


def words(i):
    return f"Tell me about topic number {i} and why it matters."


@pytest.fixture
def pool_file(tmp_path):
    return prompt_file(tmp_path / "pool.jsonl", [{"prompt": words(i)} for i in range(40)])


# Prompt files.


@pytest.mark.parametrize(
    "raw,needle",
    [
        ('{"prompt": "a"}\n{"prompt": "b"}\n{"prompt": \n', "p.jsonl:3: malformed JSON"),
        ('{"prompt": "a"}\n[1, 2]\n', "p.jsonl:2: expected a JSON object, got list"),
        ('{"prompt": "a"}\n{"question": "b"}\n', "row 2 has no field 'prompt' (fields: question)"),
        ('{"prompt": ""}\n', "row 1: field 'prompt' is empty"),
        ('{"prompt": "   "}\n', "row 1: field 'prompt' is empty"),
        ("", "no rows in file"),
    ],
    ids=["malformed-line", "array-row", "missing-field", "empty-prompt", "blank-prompt", "empty-file"],
)
def test_prompt_file_errors(tmp_path, capsys, raw, needle):
    p = prompt_file(tmp_path / "p.jsonl", [], raw)
    code, err = run(
        [*FAST, "prompts.source=file", f"prompts.path={p}", f"loop.output_dir={tmp_path}"], capsys
    )
    one_line(code, err, needle)
    assert markers(tmp_path) == []


def test_duplicate_prompts_are_counted(tmp_path, capsys):
    rows = [{"prompt": words(i % 30)} for i in range(40)]  # 10 duplicates
    p = prompt_file(tmp_path / "p.jsonl", rows)
    code, err = run(
        [
            *FAST,
            "prompts.source=file",
            f"prompts.path={p}",
            "prompts.heldout_size=4",
            "loop.stop_after=prompts",
            f"loop.output_dir={tmp_path}",
        ],
        capsys,
    )
    assert code == 0, err
    stats = json.loads((tmp_path / "default" / "iter_000" / "prompts" / "_SUCCESS").read_text())["stats"]
    assert stats["duplicates_dropped"] == 10


def test_overlong_prompts_are_counted(tmp_path, capsys):
    rows = [{"prompt": words(i) + (" and more" * 200 if i < 3 else "")} for i in range(40)]
    p = prompt_file(tmp_path / "p.jsonl", rows)
    code, err = run(
        [
            *FAST,
            "prompts.source=file",
            f"prompts.path={p}",
            "prompts.heldout_size=4",
            "prompts.shuffle_seed=1",
            "prompts.per_iteration=36",
            "generate.max_model_len=128",
            "loop.stop_after=generate",
            f"loop.output_dir={tmp_path}",
        ],
        capsys,
    )
    assert code == 0, err
    stats = json.loads((tmp_path / "default" / "iter_000" / "generate" / "_SUCCESS").read_text())["stats"]
    assert stats["prompts_too_long"] == 3


@pytest.mark.vllm
def test_a_kv_cache_smaller_than_one_sequence_is_one_line(tmp_path, capsys):
    code, err = run(
        [
            *FAST,
            "generate.backend=vllm",
            "generate.engine=per_stage",
            "generate.cpu_kv_cache_gib=0.0003",
            "generate.max_model_len=256",
            "loop.stop_after=generate",
            f"loop.output_dir={tmp_path}",
        ],
        capsys,
    )
    one_line(code, err, "generate.cpu_kv_cache_gib=0.0003: vLLM's KV cache is too small")
    assert "generate.max_model_len=256" in err[0]


def test_heldout_overlapping_the_pool_is_warned_and_removed(tmp_path, capsys, caplog, pool_file):
    heldout = prompt_file(tmp_path / "h.jsonl", [{"prompt": words(i)} for i in range(5)])  # all in the pool
    code, err = run(
        [
            *FAST,
            "prompts.source=file",
            f"prompts.path={pool_file}",
            f"prompts.heldout_path={heldout}",
            "prompts.per_iteration=20",
            "loop.stop_after=prompts",
            f"loop.output_dir={tmp_path}",
        ],
        capsys,
    )
    assert code == 0, err
    assert "5 prompt(s) of the pool are also held-out prompts" in caplog.text
    stats = json.loads((tmp_path / "default" / "iter_000" / "prompts" / "_SUCCESS").read_text())["stats"]
    assert stats["heldout_overlap_removed"] == 5 and stats["pool"] == 35


# Judges.


@pytest.mark.parametrize(
    "rule,extra,needle",
    [
        (
            "raises",
            [],
            "judge.rule=tests.integration.rules:raises raised ValueError: the judge broke (prompt",
        ),
        ("words", [], "judge.rule=tests.integration.rules:words returned 'high' (str), not a number (prompt"),
        ("constant", [], "no pairs to select from (all 12 prompts' responses tie in reward"),
        (
            "nan_sometimes",
            ["selection.on_nonfinite=error"],
            "(selection.on_nonfinite=error; use drop to skip them)",
        ),
    ],
    ids=["raises", "not-a-number", "all-ties", "nan-refused"],
)
def test_custom_judges(tmp_path, capsys, rule, extra, needle):
    code, err = run(
        [*FAST, f"judge.rule=tests.integration.rules:{rule}", *extra, f"loop.output_dir={tmp_path}"], capsys
    )
    one_line(code, err, needle)
    assert not any("selection" in m or "train" in m for m in markers(tmp_path))


def test_nan_rewards_are_counted_and_the_files_stay_valid_json(tmp_path, capsys):
    code, err = run(
        [*FAST, "judge.rule=tests.integration.rules:nan_sometimes", f"loop.output_dir={tmp_path}"], capsys
    )
    assert code == 0, err
    it = tmp_path / "default" / "iter_000"
    judge = json.loads((it / "judge" / "_SUCCESS").read_text())["stats"]
    selection = json.loads((it / "selection" / "_SUCCESS").read_text())["stats"]
    assert judge["nonfinite"] > 0 and selection["nonfinite_responses"] == judge["nonfinite"]

    def strict(constant):
        raise ValueError(f"{constant} is not JSON")

    for path in tmp_path.rglob("*.json*"):  # strict: NaN / Infinity are not JSON
        text = path.read_text()
        rows = text.splitlines() if path.suffix == ".jsonl" else [text]
        for row in rows:
            json.loads(row, parse_constant=strict)
    nulls = [json.loads(line) for line in (it / "judge" / "judgments.jsonl").open()]
    assert any(r["reward"] is None and r["nonfinite"] == "nan" for r in nulls)


# Models.


def copy_model(src, dst, **changes):
    shutil.copytree(src, dst)
    for name, edit in changes.items():
        path = Path(dst) / name
        data = json.loads(path.read_text())
        edit(data)
        path.write_text(json.dumps(data))
    return str(dst)


def test_model_without_chat_template(tmp_path, capsys, tiny_policy):
    model = copy_model(
        tiny_policy, tmp_path / "m", **{"tokenizer_config.json": lambda d: d.pop("chat_template", None)}
    )
    (Path(model) / "chat_template.jinja").unlink(missing_ok=True)
    code, err = run(
        [
            *FAST,
            "preset=none",
            "allow_toy=true",
            "generate.max_tokens=8",
            "generate.max_model_len=256",
            "train.learning_rate=1e-4",
            f"model.path={model}",
            f"loop.output_dir={tmp_path}",
        ],
        capsys,
    )
    one_line(code, err, f"model.path: the tokenizer of '{model}' has no chat_template")
    assert "model.chat_template=<Jinja text or file>" in err[0]

    # model.chat_template (a file) gives it one: the run trains, and the trained policy keeps it
    from transformers import AutoTokenizer

    template = AutoTokenizer.from_pretrained(tiny_policy).chat_template
    (tmp_path / "chat.jinja").write_text(template)
    args = [
        *FAST,
        "preset=none",
        "allow_toy=true",
        "generate.max_tokens=8",
        "generate.max_model_len=256",
        "train.batch_size=2",
        "train.gradient_accumulation_steps=1",
    ]
    code, err = run(
        [
            *args,
            f"model.path={model}",
            f"model.chat_template={tmp_path / 'chat.jinja'}",
            f"loop.output_dir={tmp_path}",
        ],
        capsys,
    )
    assert code == 0, err[-5:]
    trained = AutoTokenizer.from_pretrained(tmp_path / "default" / "final")
    assert trained.chat_template == template
    code, err = run(
        [
            *args,
            f"model.path={model}",
            "model.chat_template=/no/such.jinja",
            f"loop.output_dir={tmp_path}/bad",
        ],
        capsys,
    )
    one_line(code, err, "model.chat_template=/no/such.jinja: neither a Jinja template")


def test_missing_model(tmp_path, capsys):
    code, err = run(
        [*FAST, "preset=none", "allow_toy=true", "model.path=/no/such/model", f"loop.output_dir={tmp_path}"],
        capsys,
    )
    one_line(code, err, "model.path: model folder '/no/such/model' does not exist")


def test_the_real_recipe_without_its_reward_model_names_the_command(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the recipe's reward model is runs/rm-ifeval, relative to here
    code, err = run(["experiment=real_ifeval", f"loop.output_dir={tmp_path}"], capsys)
    one_line(
        code,
        err,
        "judge.model.path=runs/rm-ifeval: no reward model folder there; train it first: "
        "python -m selfplay.train_rm recipe=real_ifeval",
    )
    assert markers(tmp_path) == []  # refused before anything ran (no sampling first)
    code, err = run(
        [
            *FAST,
            "evaluate.enabled=true",
            "evaluate.judge.kind=reward_model",
            "evaluate.judge.model.path=./rm",
        ],
        capsys,
    )
    one_line(
        code,
        err,
        "evaluate.judge.model.path=./rm: no reward model folder there; train it first: "
        "python -m selfplay.train_rm output=./rm",
    )


def test_tokenizer_of_another_model(tmp_path, capsys, tiny_policy):
    model = copy_model(tiny_policy, tmp_path / "m", **{"config.json": lambda d: d.update(vocab_size=100)})
    code, err = run(
        [*FAST, "preset=none", "allow_toy=true", f"model.path={model}", f"loop.output_dir={tmp_path}"], capsys
    )
    one_line(code, err, "but the model's embedding only 100 (config.json vocab_size)")


def test_model_that_needs_remote_code(tmp_path, capsys, tiny_policy):
    model = copy_model(
        tiny_policy,
        tmp_path / "m",
        **{
            "config.json": lambda d: d.update(
                model_type="selfplay_custom",  # a type transformers does not know: only its code loads it
                auto_map={"AutoConfig": "custom.MyConfig", "AutoModelForCausalLM": "custom.MyModel"},
            )
        },
    )
    (Path(model) / "custom.py").write_text("raise RuntimeError('code ran')\n")
    code, err = run(
        [*FAST, "preset=none", "allow_toy=true", f"model.path={model}", f"loop.output_dir={tmp_path}"], capsys
    )
    one_line(
        code,
        err,
        "needs its own Python code to load; if you trust that code, set model.trust_remote_code=true",
    )


def test_pickle_only_model_is_refused_unless_allowed(tmp_path, capsys, tiny_policy):
    import torch
    from safetensors.torch import load_file

    model = Path(copy_model(tiny_policy, tmp_path / "m"))
    torch.save(load_file(str(model / "model.safetensors")), model / "pytorch_model.bin")
    (model / "model.safetensors").unlink()
    code, err = run(
        [*FAST, "preset=none", "allow_toy=true", f"model.path={model}", f"loop.output_dir={tmp_path}"], capsys
    )
    one_line(
        code,
        err,
        "has only pickle weights (*.bin), which can run code when loaded; convert them to "
        "safetensors, or set model.allow_pickle=true",
    )


class NotATensor:
    """Pickled beside the weights: torch's weights-only loader refuses it."""


def test_pickle_weights_the_safe_loader_refuses_are_one_line(tmp_path, capsys, tiny_policy):
    import torch
    from safetensors.torch import load_file

    model = Path(copy_model(tiny_policy, tmp_path / "m"))
    torch.save(
        {**load_file(str(model / "model.safetensors")), "extra": NotATensor()}, model / "pytorch_model.bin"
    )
    (model / "model.safetensors").unlink()
    code, err = run(
        [
            *FAST,
            "preset=none",
            "allow_toy=true",
            "model.allow_pickle=true",
            "train.warmup_ratio=0",
            f"model.path={model}",
            f"loop.output_dir={tmp_path}",
        ],
        capsys,
    )
    one_line(
        code,
        err,
        f"model.path: '{model}' holds pickle weights (pytorch_model.bin) that torch's weights-only loader refuses",
    )


def test_reward_model_with_several_outputs(tmp_path, capsys, tiny_reward_model):
    rm = copy_model(
        tiny_reward_model,
        tmp_path / "rm",
        **{
            "config.json": lambda d: d.update(
                num_labels=3, id2label={"0": "a", "1": "b", "2": "c"}, label2id={"a": 0, "b": 1, "c": 2}
            )
        },
    )
    from safetensors.torch import load_file, save_file

    weights = load_file(str(Path(rm) / "model.safetensors"))
    weights["score.weight"] = weights["score.weight"].repeat(3, 1)
    save_file(weights, str(Path(rm) / "model.safetensors"))
    code, err = run(
        [*FAST, "judge.kind=reward_model", f"judge.model.path={rm}", f"loop.output_dir={tmp_path}"], capsys
    )
    one_line(code, err, "judge.model.score_attribute: the reward model")


# Configuration.


@pytest.mark.parametrize(
    "override,needle",
    [
        (
            "selecton.ratio=0.5",
            "unknown key 'selecton.ratio' in 'selecton.ratio=0.5' (did you mean selection.ratio?)",
        ),
        ("generate.backend=tgi", "Invalid value 'tgi'"),
        (
            "selection.metric=bogus",
            "selfplay: error: selection.metric=bogus: unknown (known: alignment_potential",
        ),
    ],
    ids=["typo", "invalid-choice", "unknown-plug-in"],
)
def test_hydra_refuses_at_compose_time(tmp_path, override, needle):
    proc = run_cli(override, f"loop.output_dir={tmp_path}", timeout=120)
    assert proc.returncode != 0 and needle in proc.stderr and not (tmp_path / "default").exists()


@pytest.mark.parametrize("ratio", ["1.5", "0", "-0.2"])
def test_ratio_outside_the_interval(tmp_path, capsys, ratio):
    code, err = run([*FAST, f"selection.ratio={ratio}", f"loop.output_dir={tmp_path}"], capsys)
    one_line(code, err, f"selection.ratio={float(ratio)} must be in (0, 1]")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-iteration run to resume badly."""
    out = tmp_path_factory.mktemp("finished")
    cfg = compose([*FAST, "loop.iterations=2", f"loop.output_dir={out}"])
    run_command(cfg, "selfplay.run")
    return out


def copy_run(finished, tmp_path):
    shutil.copytree(finished, tmp_path / "runs", symlinks=True)  # final stays a link
    return tmp_path / "runs"


def test_changed_config_on_resume(finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path)
    code, err = run([*FAST, "loop.iterations=2", "train.beta=0.5", f"loop.output_dir={out}"], capsys)
    one_line(code, err, "was started with a different config (train.beta: 0.2 -> 0.5)")


@pytest.mark.parametrize(
    "value,needle",
    [
        ("0/bogus", "loop.restart_from='0/bogus': expected '<iteration>/<stage>'"),
        ("7/train", "loop.restart_from='7/train': the run has iterations 0..1"),
    ],
)
def test_bad_restart_from(finished, tmp_path, capsys, value, needle):
    out = copy_run(finished, tmp_path)
    code, err = run(
        [*FAST, "loop.iterations=2", f"loop.restart_from={value}", f"loop.output_dir={out}"], capsys
    )
    one_line(code, err, needle)


def test_deleted_policy_folder_before_a_resume(finished, tmp_path, capsys):
    out = copy_run(finished, tmp_path)
    shutil.rmtree(out / "default" / "iter_000" / "train" / "model")
    code, err = run([*FAST, "loop.iterations=2", f"loop.output_dir={out}"], capsys)
    one_line(code, err, "iteration 0 train is marked done but")
    assert "rerun with loop.restart_from=0/train to redo it" in err[0]
    code, err = run(
        [*FAST, "loop.iterations=2", "loop.restart_from=0/train", f"loop.output_dir={out}"], capsys
    )
    assert code == 0, err


def test_output_path_under_a_regular_file(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    code, err = run([*FAST, f"loop.output_dir={tmp_path / 'file'}"], capsys)
    one_line(code, err, "loop.output_dir: cannot write the run directory")


def mounted_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(
            ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True
        ).returncode
        == 0
    )


def test_read_only_output_directory(tmp_path, capsys):
    ro = tmp_path / "ro"
    if not mounted_tmpfs(ro, "ro,size=1m"):
        pytest.skip(
            "mounting a read-only tmpfs is not permitted here (root is needed; permissions do not stop root)"
        )
    try:
        code, err = run([*FAST, f"loop.output_dir={ro}"], capsys)
        one_line(code, err, "loop.output_dir: cannot write the run directory")
    finally:
        subprocess.run(["umount", "--lazy", str(ro)])


def test_disk_full_during_a_run(tmp_path, capsys):
    """A small tmpfs fills up inside a stage: one line, no marker for it, no half-written record left as
    final; after freeing space the same command finishes."""
    small = tmp_path / "small"
    if not mounted_tmpfs(small, "size=400k"):
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        code, err = run([*FAST, f"loop.output_dir={small}", "generate.max_tokens=16"], capsys)
        assert code == 2 and len(err) == 1 and ("No space left" in err[0] or "cannot write" in err[0]), err
        for partial in small.rglob(".*.partial"):
            assert not list(partial.glob("*.jsonl")) or all(
                p.stat().st_size > 0 for p in partial.glob("*.jsonl")
            )
        before = markers(small)
        subprocess.run(["mount", "-o", "remount,size=64m", str(small)], check=True)
        code, err = run([*FAST, f"loop.output_dir={small}", "generate.max_tokens=16"], capsys)
        assert code == 0, err
        assert set(before) <= set(markers(small))
    finally:
        subprocess.run(["umount", "--lazy", str(small)])


def test_a_full_disk_under_torch_save_is_a_storage_fault(tmp_path):
    """Trainer checkpoints go through torch.save, whose error on a full disk names no OS error."""
    import torch

    from selfplay.errors import storage_problem

    small = tmp_path / "small"
    if not mounted_tmpfs(small, "size=200k"):
        pytest.skip("mounting a tmpfs is not permitted here")
    try:
        with pytest.raises(RuntimeError) as raised:
            torch.save({"optimizer": torch.zeros(200_000)}, small / "optimizer.pt")
        assert storage_problem(raised.value) is not None, str(raised.value)
    finally:
        subprocess.run(["umount", "--lazy", str(small)])


def test_disk_full_inside_a_record_write(tmp_path, monkeypatch):
    """The writer itself on ENOSPC (no mount needed): no temporary or final file left, the error names the file."""
    import errno

    from selfplay.data import jsonl

    real = open

    def full(path, *a, **kw):
        handle = real(path, *a, **kw)
        if ".tmp-" in str(path):

            def write(_):
                raise OSError(errno.ENOSPC, "No space left on device")

            handle.write = write
        return handle

    monkeypatch.setattr("builtins.open", full)
    with pytest.raises(OSError, match="No space left"):
        jsonl.write_jsonl(tmp_path / "r.jsonl", [{"a": 1}])
    monkeypatch.undo()
    assert list(tmp_path.iterdir()) == []


def test_the_command_line_gives_the_same_one_line(tmp_path):
    proc = run_cli("selection.ratio=1.5", f"loop.output_dir={tmp_path}", timeout=120)
    assert (
        proc.returncode == 2
        and proc.stderr.strip()
        == "selfplay: error: selection.ratio=1.5 must be in (0, 1] (or set selection.count)"
    )
    assert os.listdir(tmp_path) == []
    _ = (REPO, cli_env, sys)
