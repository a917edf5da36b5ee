"""Judge configs in tests from flat settings (e.g. parametrised `retries=0`), each put into its group
(judge.model.*, judge.remote.*, judge.generative.*) the way the schema holds it."""

from __future__ import annotations

from typing import Any

from selfplay.config import GenerativeJudgeConfig, JudgeConfig, JudgeModelConfig, RemoteJudgeConfig

GROUPS = {
    "model": (
        JudgeModelConfig,
        {
            "path",
            "chat_template",
            "trust_remote_code",
            "allow_pickle",
            "backend",
            "max_length",
            "score_attribute",
        },
    ),
    "remote": (RemoteJudgeConfig, {"url", "concurrency", "timeout", "retries", "auth_env"}),
    "generative": (GenerativeJudgeConfig, {"mode", "labels", "pair_labels", "template"}),
}


def judge_config(**flat: Any) -> JudgeConfig:
    grouped: dict[str, Any] = {
        k: v for k, v in flat.items() if not any(k in names for _, names in GROUPS.values())
    }
    for group, (cls, names) in GROUPS.items():
        mine = {k: v for k, v in flat.items() if k in names}
        if mine:
            grouped[group] = cls(**mine)
    return JudgeConfig(**grouped)
