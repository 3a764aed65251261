"""Shared fixtures: tiny models (real MLX on the CPU, no mocks) and an offline tokenizer."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from mlx_workbook import models  # noqa: E402


@pytest.fixture(scope="session")
def tiny():
    return models.build_preset("tiny", dtype="float32")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny) -> Path:
    """The tiny preset saved as a real model folder: safetensors weights, config.json, tokenizer files."""
    path = tmp_path_factory.mktemp("tiny-checkpoint")
    models.save_checkpoint(tiny, path, tokenizer=models.offline_tokenizer(tiny.vocab_size))
    assert json.loads((path / "config.json").read_text())["model_type"] == "qwen3"
    return path
