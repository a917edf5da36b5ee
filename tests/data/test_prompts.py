"""Prompt sources (bundled, JSONL, Parquet, a saved datasets folder) and their bad inputs."""

import json

import pytest

from selfplay.config import PromptsConfig
from selfplay.data.prompts import iteration_window, load_prompt_pool
from selfplay.errors import SelfplayError


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_bundled_pool_and_heldout_are_disjoint_and_deterministic():
    a, b = load_prompt_pool(PromptsConfig()), load_prompt_pool(PromptsConfig())
    assert len(a.pool) == 320 and len(a.heldout) == 48
    assert [p.prompt_id for p in a.pool] == [p.prompt_id for p in b.pool]
    assert not {p.prompt_id for p in a.pool} & {p.prompt_id for p in a.heldout}
    w0, w1 = iteration_window(a.pool, 0, 96), iteration_window(a.pool, 1, 96)
    assert not {p.prompt_id for p in w0} & {p.prompt_id for p in w1} and w1[0].iteration == 1


def test_jsonl_strings_messages_system_prompt_and_duplicates(tmp_path):
    rows = [
        {"q": "Tell me about bees."},
        {"q": [{"role": "user", "content": "Tell me about cats."}]},
        {"q": "Tell me about bees."},
    ] + [{"q": f"Prompt {i}"} for i in range(5)]
    cfg = PromptsConfig(
        source="file",
        path=write_jsonl(tmp_path / "p.jsonl", rows),
        field="q",
        heldout_size=2,
        system_prompt="Be simple.",
    )
    pool = load_prompt_pool(cfg)
    assert pool.duplicates_dropped == 1 and len(pool.pool) + len(pool.heldout) == 7
    assert all(p.messages[0] == {"role": "system", "content": "Be simple."} for p in pool.pool)


def test_parquet_and_saved_dataset_folder(tmp_path):
    import datasets

    ds = datasets.Dataset.from_list([{"prompt": f"Question {i}?", "id": f"q{i}"} for i in range(6)])
    ds.to_parquet(str(tmp_path / "p.parquet"))
    ds.save_to_disk(str(tmp_path / "saved"))
    a = load_prompt_pool(
        PromptsConfig(source="file", path=str(tmp_path / "p.parquet"), id_field="id", heldout_size=1)
    )
    b = load_prompt_pool(
        PromptsConfig(source="hf", path=str(tmp_path / "saved"), id_field="id", heldout_size=1)
    )
    assert sorted(p.prompt_id for p in a.pool + a.heldout) == [f"q{i}" for i in range(6)]
    assert [p.prompt_id for p in a.pool] == [p.prompt_id for p in b.pool]


@pytest.mark.parametrize(
    "content,message",
    [
        (None, "does not exist"),
        ("", "no rows in file"),
        ('{"prompt": "ok"}\n{not json\n', r"p.jsonl:2: malformed JSON"),
        ('{"prompt": "ok"}\n{"prompt": "  "}\n', r"row 2: field 'prompt' is empty"),
        ('{"text": "ok"}\n', r"row 1 has no field 'prompt'"),
        ('{"prompt": [{"role": "user"}]}\n', "must hold {role, content} messages"),
        ('{"prompt": 7}\n', "must be a non-empty string or list of chat messages"),
    ],
)
def test_bad_prompt_files_name_the_problem(tmp_path, content, message):
    path = tmp_path / "p.jsonl"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SelfplayError, match=message):
        load_prompt_pool(PromptsConfig(source="file", path=str(path), heldout_size=0))


def test_window_past_the_pool_is_an_error():
    pool = load_prompt_pool(PromptsConfig()).pool
    with pytest.raises(SelfplayError, match="pool has 320"):
        iteration_window(pool, 3, 96)
