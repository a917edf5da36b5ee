"""Which policy folders one persistent engine can serve by reloading weights: checkpoints of one model
share an identity (a save's rewritten config fields do not matter); another chat format, architecture
or engine setting needs a new engine."""

import json
import shutil

from selfplay.config import GenerateConfig
from selfplay.generate.engine_pool import engine_key, model_identity


def edit(folder, name, change):
    path = folder / name
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def test_checkpoints_of_one_model_share_an_engine(tmp_path, tiny_policy, tiny_chatml_policy):
    saved = tmp_path / "checkpoint"
    shutil.copytree(tiny_policy, saved)
    edit(saved, "config.json", lambda d: d.update(use_cache=False, transformers_version="9.9"))
    edit(saved, "tokenizer_config.json", lambda d: d.update(is_local=True, max_length=None))
    assert model_identity(str(saved)) == model_identity(tiny_policy)
    assert model_identity(tiny_chatml_policy) != model_identity(tiny_policy)

    wider = tmp_path / "wider"
    shutil.copytree(tiny_policy, wider)
    edit(wider, "config.json", lambda d: d.update(num_hidden_layers=3))
    assert model_identity(str(wider)) != model_identity(tiny_policy)


def test_engine_settings_are_part_of_the_key_and_sampling_settings_are_not(tiny_policy):
    base = GenerateConfig(max_model_len=256)
    key = engine_key(tiny_policy, base, "auto", False, False)
    sampling = GenerateConfig(max_model_len=256, temperature=0.3, max_tokens=7, num_samples=2)
    assert engine_key(tiny_policy, sampling, "auto", False, False) == key
    assert engine_key(tiny_policy, GenerateConfig(max_model_len=128), "auto", False, False) != key
    assert engine_key(tiny_policy, base, "bfloat16", False, False) != key
