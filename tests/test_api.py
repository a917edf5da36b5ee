"""The Python API (selfplay/api.py): selection on arrays and on a datasets.Dataset equals the
command line's, bad input is one line, and a whole run from Python returns its directory, its final
policy and its metrics."""

import json

import numpy as np
import pytest

from selfplay import api
from selfplay.config import OfflineSelectConfig, SelectionConfig
from selfplay.errors import SelfplayError
from selfplay.selection.offline import select_offline
from tests.selection.test_offline import EXAMPLE, read, write


def test_select_on_arrays_is_the_worked_example():
    # docs/method.md: d_ex = [4, 2, 2, 0], d_im = [0.5, -1.5, 0.5, 0.5], keep half
    sel = api.select([4, 2, 2, 0], [0.5, -1.5, 0.5, 0.5], ratio=0.5)
    assert sel.scores == pytest.approx([1.9915638, -1.7320508, 0.5773503, -0.8368633], abs=1e-7)
    assert sel.rank.tolist() == [0, 3, 1, 2] and sel.kept.tolist() == [True, False, True, False]
    signed = api.select([4, 2, 2, 0], [0.5, -1.5, 0.5, 0.5], ratio=0.5, implicit_abs=False)
    assert np.flatnonzero(signed.kept).tolist() == [0, 1]
    explicit = api.select([4, 2, 2, 0], [0, 0, 0, 0], metric="explicit", count=2, ids=["d", "c", "b", "a"])
    assert explicit.rank.tolist() == [0, 2, 1, 3]  # the tie of pairs 1 and 2 goes to the smaller id ("b")


def test_select_on_arrays_equals_the_loops_selection_on_a_random_pool():
    from selfplay.data.records import Pair
    from selfplay.selection.pipeline import select_pool

    rng = np.random.default_rng(7)
    d_ex, d_im = rng.normal(size=500).round(1), rng.normal(size=500)  # rounded: many ties
    ids = [f"p{i:04d}" for i in rng.permutation(500)]
    pairs = [
        Pair(i, i, [], "a", "b", 0, 1, float(e), 0.0, float(m), 0.0, float(e), float(m))
        for i, e, m in zip(ids, d_ex, d_im)
    ]
    for metric in ("alignment_potential", "explicit", "implicit_small", "random"):
        loop = select_pool(pairs, SelectionConfig(metric=metric, ratio=0.3, weight=2.5, seed=3))
        sel = api.select(d_ex, d_im, metric=metric, ratio=0.3, weight=2.5, seed=3, ids=ids)
        assert sel.scores.tolist() == loop.scores.tolist()
        assert sel.rank.tolist() == loop.rank.tolist() and sel.kept.tolist() == loop.kept.tolist()


@pytest.mark.parametrize(
    "args,kwargs,message",
    [
        (([1, 2], [1]), {}, "must be two 1-D arrays of one length"),
        (([1, float("nan")], [1, 2]), {}, "NaN or inf"),
        (
            ([1, 2], [1, 2]),
            {"metric": "biggest"},
            "select.metric=biggest: unknown (known: alignment_potential",
        ),
        (([1, 2], [1, 2]), {"ratio": 1.5}, "select.ratio=1.5 must be in (0, 1]"),
        (([1, 2], [1, 2]), {"ids": ["a"]}, "1 ids for 2 pairs"),
    ],
)
def test_select_on_arrays_refuses_bad_input_in_one_line(args, kwargs, message):
    with pytest.raises(SelfplayError) as err:
        api.select(*args, **kwargs)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_select_dataset_equals_the_command_lines_files(tmp_path):
    import datasets

    select_offline(
        OfflineSelectConfig(
            input=write(tmp_path / "in.jsonl", EXAMPLE),
            output=str(tmp_path / "out"),
            selection=SelectionConfig(ratio=0.5),
        )
    )
    out = api.select_dataset(datasets.Dataset.from_list(EXAMPLE), ["selection.ratio=0.5"])
    assert out.scored.to_list() == read(tmp_path / "out" / "scored.parquet")
    assert out.selected.to_list() == read(tmp_path / "out" / "selected.parquet")
    on_disk = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert on_disk.pop("reader") == "columns" and on_disk.pop("files")["selected"] == "selected.parquet"
    assert out.summary == on_disk | {"input": "<dataset>"}
    for column in ("score_chosen", "score_rejected", "implicit_chosen", "implicit_rejected"):
        assert column not in out.selected.column_names  # each score once, under our name
    given = {r["prompt"]: r["score_chosen"] for r in EXAMPLE}
    assert all(r["chosen_reward"] == given[r["prompt"]] for r in out.selected.to_list())
    rows_path = api.select_dataset(list(EXAMPLE), ["selection.ratio=0.5"])  # the row path: the same columns
    assert rows_path.selected.column_names == out.selected.column_names
    with pytest.raises(SelfplayError, match="no reward columns"):
        api.select_dataset([{"prompt": "q", "chosen": "a", "rejected": "b"}])


def test_compose_gives_the_command_lines_config():
    demo = api.compose()
    assert demo.preset_name == "tiny" and demo.loop.iterations == 3
    real = api.compose(["model.path=/models/x"])
    assert real.preset_name == "none" and real.train.learning_rate == 5e-7
    with pytest.raises(SelfplayError, match=r"Error parsing override 'selection.ratio=\('"):
        api.compose(["selection.ratio=("])
    with pytest.raises(SelfplayError, match="no_such_key"):
        api.compose(["loop.no_such_key=1"])


def test_a_run_from_python_with_a_reward_model_judge(tmp_path, tiny_reward_model):
    """The default tier's end-to-end run of the reward-model judge (selection, TRL training, evaluation
    and the final policy link after it), and its resume."""
    args = [
        "debug=tiny",
        "generate.backend=hf",
        "loop.iterations=1",
        "loop.progress=false",
        "judge.kind=reward_model",
        f"judge.model.path={tiny_reward_model}",
        f"loop.output_dir={tmp_path}",
    ]
    result = api.run(args)
    assert result.run_dir == tmp_path / "default"
    assert result.final_policy == tmp_path / "default" / "final"
    assert (result.final_policy / "model.safetensors").is_file()
    assert {row.stage for row in result.metrics} >= {"generate", "judge", "selection", "train", "evaluate"}
    judgments = read(tmp_path / "default" / "iter_000" / "judge" / "judgments.jsonl")
    assert {j["judge"] for j in judgments} == {f"rm:{tiny_reward_model}"}
    again = api.run(args)
    assert again.metrics == result.metrics  # a resume: everything was done

    # python -m selfplay.report export: the kept pairs as a DatasetDict with a dataset card
    import datasets
    from huggingface_hub import DatasetCard

    from selfplay.report import main as report_main

    report_main(["export", str(result.run_dir), "--to", str(tmp_path / "pairs")])
    pairs = datasets.load_from_disk(str(tmp_path / "pairs"))
    kept = pd_read(result.run_dir / "iter_000" / "selection" / "kept_pairs.parquet")
    assert list(pairs) == ["iter_000"] and pairs["iter_000"].to_list() == kept
    card = DatasetCard.load(tmp_path / "pairs" / "README.md")
    assert "dpo" in card.data.tags and str(tiny_reward_model) not in card.text  # never a path of this machine
    assert "reward_model a local model" in card.text and "| iter_000 | 12 | 9 |" in card.text
    assert "count -" in card.text and "None" not in card.text
    with pytest.raises(SystemExit):
        report_main(["export", str(result.run_dir), "--to", str(tmp_path / "pairs")])  # not empty: refused
    with pytest.raises(SelfplayError, match=r"model.path: model folder '.*/m' does not exist"):
        api.run(
            [f"model.path={tmp_path}/m", f"loop.output_dir={tmp_path}"]
        )  # before the toy prompts' refusal


def pd_read(path):
    import datasets

    return datasets.Dataset.from_parquet(str(path)).to_list()
