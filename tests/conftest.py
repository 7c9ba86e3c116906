"""Shared fixtures: run the CLI in-process and capture its output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def cli(capsys):
    """Call `avtool ARGS...` in-process; returns (exit code, stdout, stderr)."""
    from avtool.cli.main import main

    def call(*args: object) -> tuple[int, str, str]:
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return call


def write_manifest(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="session")
def tiny_wav2vec2(tmp_path_factory):
    """A tiny random wav2vec2 saved as a local model folder (nothing is downloaded)."""
    import torch
    from transformers import Wav2Vec2Model

    from avtool.features.wav2vec2 import tiny_random_config

    folder = tmp_path_factory.mktemp("w2v") / "tiny"
    torch.manual_seed(0)
    Wav2Vec2Model(tiny_random_config()).save_pretrained(folder)
    return folder
