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


def make_tokenizer(vocab_size: int):
    """A word-level tokenizer built offline (no hub): tokens t0..tN plus special tokens."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import Whitespace
    from transformers import PreTrainedTokenizerFast

    vocab = {f"t{i}": i for i in range(vocab_size - 2)}
    vocab["<unk>"], vocab["</s>"] = vocab_size - 2, vocab_size - 1
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", eos_token="</s>")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tiny) -> Path:
    """The tiny preset saved as a real model folder: safetensors weights, config.json, tokenizer files."""
    path = tmp_path_factory.mktemp("tiny-checkpoint")
    models.save_checkpoint(tiny, path, tokenizer=make_tokenizer(tiny.vocab_size))
    assert json.loads((path / "config.json").read_text())["model_type"] == "qwen3"
    return path
