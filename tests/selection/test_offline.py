"""`python -m selfplay.select`: the worked example of docs/method.md from a 4-row file, computed columns,
chat-message datasets, and bad input."""

import json

import pytest

from selfplay.config import (
    ColumnsConfig,
    OfflineJudgeConfig,
    OfflineModelConfig,
    OfflineSelectConfig,
    SelectionConfig,
)
from selfplay.errors import SelfplayError
from selfplay.selection.offline import select_offline
from tests.integration.cli import REPO

# d_ex = [4, 2, 2, 0], d_im = [0.5, -1.5, 0.5, 0.5]
EXAMPLE = [
    {
        "prompt": "Q0",
        "chosen": "a0",
        "rejected": "b0",
        "score_chosen": 4.0,
        "score_rejected": 0.0,
        "implicit_chosen": 0.5,
        "implicit_rejected": 0.0,
    },
    {
        "prompt": "Q1",
        "chosen": "a1",
        "rejected": "b1",
        "score_chosen": 2.0,
        "score_rejected": 0.0,
        "implicit_chosen": -1.5,
        "implicit_rejected": 0.0,
    },
    {
        "prompt": "Q2",
        "chosen": "a2",
        "rejected": "b2",
        "score_chosen": 3.0,
        "score_rejected": 1.0,
        "implicit_chosen": -0.5,
        "implicit_rejected": -1.0,
    },
    {
        "prompt": "Q3",
        "chosen": "a3",
        "rejected": "b3",
        "score_chosen": 1.0,
        "score_rejected": 1.0,
        "implicit_chosen": 1.5,
        "implicit_rejected": 1.0,
    },
]


def write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def read(path):
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pylist()
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize(
    "implicit_abs,kept,scores",
    [
        (True, ["Q0", "Q2"], [1.9915638, -1.7320508, 0.5773503, -0.8368633]),
        (False, ["Q1", "Q0"], [0.8368633, 1.7320508, -0.5773503, -1.9915638]),
    ],
)
def test_worked_example_from_a_four_row_file(tmp_path, implicit_abs, kept, scores):
    cfg = OfflineSelectConfig(
        input=write(tmp_path / "in.jsonl", EXAMPLE),
        output=str(tmp_path / "out"),
        selection=SelectionConfig(implicit_abs=implicit_abs, ratio=0.5),
    )
    summary = select_offline(cfg)
    selected = read(tmp_path / "out" / "selected.parquet")
    assert [r["prompt"] for r in selected] == kept
    scored = read(tmp_path / "out" / "scored.parquet")
    assert [r["score"] for r in scored] == pytest.approx(scores, abs=1e-7)
    assert summary["pool"] == 4 and summary["kept"] == 2 and summary["computed"] == []
    assert set(selected[0]) >= {
        "prompt",
        "chosen",
        "rejected",
        "explicit_margin",
        "implicit_margin",
        "score",
        "rank",
    }


def test_the_command_line(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "selfplay.select",
            f"input={write(tmp_path / 'in.jsonl', EXAMPLE)}",
            f"output={tmp_path / 'out'}",
            "selection.metric=explicit",
            "selection.count=1",
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == str(tmp_path / "out")
    assert [r["prompt"] for r in read(tmp_path / "out" / "selected.parquet")] == ["Q0"]


def test_missing_columns_are_computed(tmp_path, tiny_policy):
    import datasets

    from selfplay.data.chat import trainer_token_ids as response_ids
    from selfplay.judge.rules import topical_variety
    from selfplay.logprobs.teacher_forcing import response_logprobs
    from selfplay.models.loading import load_causal_lm, load_tokenizer

    rows = [
        {"prompt": "Tell me about bees.", "chosen": "bees make honey in the hive", "rejected": "bees bees"},
        {"prompt": "Tell me about cats.", "chosen": "cats purr and play", "rejected": "dogs bark"},
        {"prompt": "Explain chess.", "chosen": "the king and queen move", "rejected": "chess"},
    ]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "in.parquet"))
    summary = select_offline(
        OfflineSelectConfig(
            input=str(tmp_path / "in.parquet"),
            output=str(tmp_path / "out"),
            selection=SelectionConfig(ratio=1.0),
            judge=OfflineJudgeConfig(kind="rule", rule="topical_variety"),  # named: never a silent default
            model=OfflineModelConfig(path="tiny"),
        )
    )
    assert summary["computed"] == ["rewards", "implicit_rewards"] and summary["kept"] == 3
    scored = read(tmp_path / "out" / "scored.parquet")
    tok, model = load_tokenizer(tiny_policy), load_causal_lm(tiny_policy)
    for r in scored:
        assert r["chosen_reward"] == topical_variety(r["prompt"], r["chosen"])
        msgs = [{"role": "user", "content": r["prompt"]}]
        (lp,) = response_logprobs(model, [response_ids(tok, msgs, r["rejected"])])
        assert r["rejected_implicit"] == pytest.approx(sum(lp) / len(lp), abs=1e-5)
        assert response_ids(tok, msgs, r["rejected"])[1][-1] == tok.eos_token_id


def test_chat_message_dataset_folder(tmp_path):
    import datasets

    rows = [
        {
            "prompt": f"Q{i}",
            "chosen": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"good {i}"}],
            "rejected": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": f"bad {i}"}],
            "score_chosen": float(i + 1),
            "score_rejected": 0.0,
            "implicit_chosen": 0.0,
            "implicit_rejected": 0.0,
        }
        for i in range(4)
    ]
    datasets.DatasetDict({"train_prefs": datasets.Dataset.from_list(rows)}).save_to_disk(str(tmp_path / "ds"))
    select_offline(
        OfflineSelectConfig(
            input=str(tmp_path / "ds"),
            split="train_prefs",
            output=str(tmp_path / "out"),
            selection=SelectionConfig(metric="explicit", count=2),
        )
    )
    selected = read(tmp_path / "out" / "selected.parquet")
    assert [r["prompt"] for r in selected] == ["Q3", "Q2"]
    assert selected[0]["chosen"][-1]["content"] == "good 3"  # TRL's format kept as given


def test_nonfinite_identical_and_bad_input(tmp_path):
    rows = [dict(r) for r in EXAMPLE] + [
        {**EXAMPLE[0], "prompt": "Q4", "score_chosen": float("nan")},
        {**EXAMPLE[0], "prompt": "Q5", "rejected": "a0"},
    ]
    path = write(tmp_path / "in.jsonl", rows)
    summary = select_offline(OfflineSelectConfig(input=path, output=str(tmp_path / "o")))
    assert summary["dropped_nonfinite"] == 1 and summary["dropped_identical"] == 1 and summary["pool"] == 4
    with pytest.raises(SelfplayError, match="row 5: non-finite"):
        select_offline(
            OfflineSelectConfig(
                input=path, output=str(tmp_path / "o"), selection=SelectionConfig(on_nonfinite="error")
            )
        )


@pytest.mark.parametrize(
    "rows,kwargs,message",
    [
        (
            [{"question": "q", "chosen": "a", "rejected": "b"}],
            {},
            r"missing column\(s\) prompt \(has: question",
        ),
        ([], {}, "no rows in file"),
        (EXAMPLE, {"selection": SelectionConfig(ratio=1.5)}, r"selection.ratio=1.5 must be in \(0, 1\]"),
        (
            [{k: v for k, v in EXAMPLE[0].items() if k != "score_rejected"}],
            {},
            "column 'score_chosen' is present but 'score_rejected' is missing",
        ),
        ([{**EXAMPLE[0], "score_chosen": "high"}], {}, "must be numbers"),
        (
            [EXAMPLE[0], {k: v for k, v in EXAMPLE[1].items() if k != "score_rejected"}],
            {},
            r"row 2: no reward column 'score_rejected' \(row 1 has it: every row needs the same columns\)",
        ),
        (
            [EXAMPLE[0], {k: v for k, v in EXAMPLE[1].items() if k != "rejected"}],
            {},
            r"in.jsonl: row 2: no column 'rejected' \(row 1 has it",
        ),
        (EXAMPLE, {"columns": ColumnsConfig(chosen="answer")}, "missing column"),
        (EXAMPLE, {"judge": OfflineJudgeConfig(kind="rule", rule="nope")}, None),  # columns present: unused
        (
            [{k: v for k, v in EXAMPLE[0].items() if not k.startswith("score")}],
            {},
            r"no reward columns \('score_chosen'/'score_rejected' or 'all_rm_scores'\) and no judge named: set judge.kind",
        ),
        (
            [{k: v for k, v in EXAMPLE[0].items() if not k.startswith("implicit")}],
            {},
            r"no implicit-reward columns .* and no model named: set model.path",
        ),
    ],
)
def test_bad_input_names_the_problem(tmp_path, rows, kwargs, message):
    cfg = OfflineSelectConfig(input=write(tmp_path / "in.jsonl", rows), output=str(tmp_path / "o"), **kwargs)
    if message is None:
        select_offline(cfg)
        return
    with pytest.raises(SelfplayError, match=message):
        select_offline(cfg)


def test_the_simpo_datasets_list_wise_layout(tmp_path):
    """all_rm_scores (K rewards) and all_generated_responses (K responses): chosen = argmax, rejected =
    argmin, explicit margin = max - min; a row whose rewards all tie is dropped and counted."""
    rows = [
        {
            "prompt": f"Q{i}",
            "all_generated_responses": [f"r{i}-{k}" for k in range(5)],
            "all_rm_scores": scores,
            "chosen": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": "unused"}],
            "rejected": [{"role": "user", "content": f"Q{i}"}, {"role": "assistant", "content": "unused"}],
            "implicit_chosen": -1.0,
            "implicit_rejected": -1.0 - i,
        }
        for i, scores in enumerate(
            [[0.1, 0.5, 0.3, 0.2, 0.4], [0.7, 0.7, 0.7, 0.7, 0.7], [0.2, 0.1, 0.9, 0.3, 0.1]]
        )
    ]
    summary = select_offline(
        OfflineSelectConfig(
            input=write(tmp_path / "in.jsonl", rows),
            output=str(tmp_path / "out"),
            selection=SelectionConfig(metric="explicit", ratio=1.0),
        )
    )
    assert summary["dropped_tied"] == 1 and summary["pool"] == 2 and summary["computed"] == []
    scored = {r["prompt"]: r for r in read(tmp_path / "out" / "scored.parquet")}
    assert (scored["Q0"]["chosen_reward"], scored["Q0"]["rejected_reward"]) == (0.5, 0.1)
    assert scored["Q0"]["explicit_margin"] == pytest.approx(0.4)
    assert (scored["Q2"]["chosen_reward"], scored["Q2"]["rejected_reward"]) == (0.9, 0.1)
    selected = read(tmp_path / "out" / "selected.parquet")
    assert [r["prompt"] for r in selected] == ["Q2", "Q0"]


def test_the_dataset_presets_compose():
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from selfplay.config import register_configs

    register_configs()
    with initialize_config_module(config_module="selfplay.conf", version_base=None):
        cfg = OmegaConf.to_object(
            compose(config_name="select", overrides=["dataset=llama3_ultrafeedback_armorm"])
        )
    assert (
        cfg.input == "princeton-nlp/llama3-ultrafeedback-armorm"
        and cfg.columns.all_rewards == "all_rm_scores"
    )
    assert cfg.selection.ratio == 0.4 and cfg.model.path == "meta-llama/Meta-Llama-3-8B-Instruct"
    assert cfg.judge.kind is None  # the dataset's own ArmoRM scores, never a substitute judge


def test_columns_and_rows_give_the_same_selection_and_jsonl_on_request(tmp_path):
    """A dataset with every score column is selected column by column; the row-by-row path (what a
    dataset needing computed scores takes) keeps the same pairs with the same scores and ranks, ties
    included; format=jsonl writes JSON lines with the same rows."""
    import random

    from selfplay.selection.offline import scored_rows, select_table

    rng = random.Random(0)
    rows = [
        {
            "prompt": [{"role": "user", "content": f"q{i}"}],
            "chosen": [{"role": "assistant", "content": f"a{i}"}],
            "rejected": [{"role": "assistant", "content": "same" if i % 17 == 0 else f"b{i}"}],
            "score_chosen": float(rng.randint(2, 6)),  # a rule judge's grid: many ties
            "score_rejected": float(rng.randint(0, 2)),
            "implicit_chosen": rng.gauss(-2, 0.5),
            "implicit_rejected": rng.gauss(-2, 0.5),
        }
        for i in range(300)
    ]
    for i in range(0, 300, 17):
        rows[i]["chosen"] = [{"role": "assistant", "content": "same"}]  # identical: dropped
    path = tmp_path / "in.parquet"
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), path)
    cfg = OfflineSelectConfig(
        input=str(path), output=str(tmp_path / "out"), selection=SelectionConfig(ratio=0.3)
    )
    summary = select_offline(cfg)
    assert summary["reader"] == "columns" and summary["dropped_identical"] == 18
    _, pool, by_rows = select_table(rows, cfg)
    expected = scored_rows(*select_table(rows, cfg)[:2])
    scored = read(tmp_path / "out" / "scored.parquet")
    assert [(r["prompt"], r["rank"], r["kept"]) for r in scored] == [
        (r["prompt"], r["rank"], r["kept"]) for r in expected
    ]
    assert [r["score"] for r in scored] == pytest.approx([r["score"] for r in expected], abs=1e-12)
    assert {k: v for k, v in summary.items() if k not in ("reader", "files")} == by_rows
    selected = read(tmp_path / "out" / "selected.parquet")
    assert [r["rank"] for r in selected] == list(range(len(selected))) == list(range(by_rows["kept"]))
    select_offline(OfflineSelectConfig(input=str(path), output=str(tmp_path / "j"), format="jsonl",
                                       selection=SelectionConfig(ratio=0.3)))  # fmt: skip
    assert read(tmp_path / "j" / "selected.jsonl") == selected


def scoring_rows(n=9):
    return [
        {
            "prompt": f"Tell me about bees {i}.",
            "chosen": "bees make honey in the hive " * (1 + i % 3),
            "rejected": f"bees {i}",
        }
        for i in range(n)
    ]


def test_computed_columns_run_on_the_loops_machinery_sharded_and_equal_the_in_process_path(
    tmp_path, tiny_policy
):
    """A dataset lacking both score columns: the scoring run in <output>/work/ (3 shards, in process)
    writes checksummed, typed records and gives the same scored and selected tables as computing in
    this process (the Python API's path); a rerun skips everything."""
    import dataclasses

    import datasets

    from selfplay.rundir.layout import RunLayout
    from selfplay.rundir.stats import ImportStats, ScoreStats, typed
    from selfplay.select import WORK, run_select

    datasets.Dataset.from_list(scoring_rows()).to_parquet(str(tmp_path / "in.parquet"))
    base = OfflineSelectConfig(
        input=str(tmp_path / "in.parquet"),
        selection=SelectionConfig(ratio=0.5),
        judge=OfflineJudgeConfig(kind="rule", rule="topical_variety"),
        model=OfflineModelConfig(path="tiny"),
    )
    in_process = select_offline(dataclasses.replace(base, output=str(tmp_path / "here")))
    sharded = dataclasses.replace(base, output=str(tmp_path / "run"))
    sharded.loop.shards = 3
    summary = run_select(sharded, relaunch=[])
    assert summary["computed"] == ["rewards", "implicit_rewards"] and summary["work"] == str(
        tmp_path / "run" / WORK
    )
    for name in ("scored.parquet", "selected.parquet"):
        assert read(tmp_path / "run" / name) == read(tmp_path / "here" / name), name
    assert {k: v for k, v in summary.items() if k != "work"} == in_process
    layout = RunLayout(tmp_path / "run" / WORK)
    imported = typed(layout.finished(0, "import"), ImportStats)
    scored = typed(layout.finished(0, "score"), ScoreStats)
    assert (
        imported.compute_rewards
        and imported.compute_implicit
        and scored.rows == 9 == scored.implicit_computed
    )
    marker = json.loads(layout.marker(0, "score").read_text())
    assert "row_scores.jsonl" in marker["files"]  # checksummed
    again = run_select(sharded, relaunch=[])  # a rerun: the finished scoring run is reused as it is
    assert again == summary and json.loads(layout.marker(0, "score").read_text()) == marker


def test_a_scoring_run_with_rewards_only_needs_no_policy(tmp_path):
    import datasets

    from selfplay.select import run_select

    rows = [
        {**r, "implicit_chosen": -1.0, "implicit_rejected": -2.0 + i} for i, r in enumerate(scoring_rows(4))
    ]
    datasets.Dataset.from_list(rows).to_parquet(str(tmp_path / "in.parquet"))
    cfg = OfflineSelectConfig(
        input=str(tmp_path / "in.parquet"),
        output=str(tmp_path / "out"),
        judge=OfflineJudgeConfig(kind="rule", rule="topical_variety"),
    )
    summary = run_select(cfg, relaunch=[])
    assert summary["computed"] == ["rewards"] and summary["pool"] == 4
