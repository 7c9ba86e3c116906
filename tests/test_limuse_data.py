"""LiMuSE data: synthetic GRID -> index -> mixture lists -> dual-channel mixtures -> cues."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avtool.core.journal import read_jsonl
from avtool.corpora.grid import GridConfig, MixtureCounts, SplitSpeakers, parse_align
from avtool.corpora.grid_mixtures import expected_delay, measure_snr, prepare_grid, simulate
from avtool.synth.grid import synth_grid


def tiny_config(**counts: int) -> GridConfig:
    return GridConfig(
        speakers=SplitSpeakers(valid=[], test=["s3", "s4"]),
        mixtures=MixtureCounts(**{"train": 6, "valid": 0, "test": 4, **counts}),
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("grid") / "GRID"
    synth_grid(root, 4, 3, seed=0)
    return root


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("prep") / "data"
    prepare_grid(corpus, out, tiny_config())
    return out


def test_align_files_are_grid_format_with_crlf(corpus, tmp_path):
    align = sorted((corpus / "alignments" / "s1").glob("*.align"))[0]
    assert b"\r\n" in align.read_bytes()
    rows = parse_align(align)
    assert rows[0][2] == "sil" and rows[-1] == (rows[-1][0], 75000, "sil")
    words = [w for _, _, w in rows if w != "sil"]
    assert len(words) == 6 and words[0] in ("bin", "lay", "place", "set")
    handmade = tmp_path / "x.align"
    handmade.write_bytes(b"0 23750 sil\r\n23750 29500 bin\r\n29500 75000 sil\r\n")
    assert parse_align(handmade) == [
        (0, 23750, "sil"),
        (23750, 29500, "bin"),
        (29500, 75000, "sil"),
    ]


def test_mixture_snr_measured_back_from_the_files(prepared):
    mixtures = list(read_jsonl(prepared / "lists" / "mixtures.jsonl"))
    assert len(mixtures) == 10
    for m in mixtures:
        target, sr = soundfile.read(prepared / "mix" / m["split"] / f"{m['id']}-target.wav")
        mix, _ = soundfile.read(prepared / "mix" / m["split"] / f"{m['id']}-mix.wav")
        assert sr == 16000 and target.shape == (48000,) and mix.shape == (48000, 2)
        snr = measure_snr(target, mix[:, 0])
        assert -5 <= m["snr_db"] <= 5
        assert abs(snr - m["snr_db"]) < 0.05, (m["id"], snr, m["snr_db"])


def test_enrolment_is_another_utterance_of_the_target_speaker(prepared):
    for m in read_jsonl(prepared / "lists" / "mixtures.jsonl"):
        assert m["enrol"] != m["target"]
        assert m["enrol"].split("_")[0] == m["target"].split("_")[0]
        assert m["interferer"].split("_")[0] != m["target"].split("_")[0]
        splits = {"train": {"s1", "s2"}, "test": {"s3", "s4"}}[m["split"]]
        assert {m["target"].split("_")[0], m["interferer"].split("_")[0]} == splits


def _delay_samples(a: np.ndarray, b: np.ndarray, up: int = 64) -> float:
    """Lag of b behind a, sub-sample, from the cross-power spectrum's peak (zero-padded)."""
    n = len(a)
    spectrum = np.conj(np.fft.rfft(a)) * np.fft.rfft(b)
    corr = np.fft.irfft(spectrum / np.maximum(np.abs(spectrum), 1e-12), n * up)
    lag = int(np.argmax(np.concatenate([corr[-8 * up :], corr[: 8 * up]]))) - 8 * up
    return lag / up


@pytest.mark.parametrize("azimuth", [0.0, 1.0, 2.2, np.pi, 4.5])
def test_inter_microphone_delay_matches_geometry(azimuth):
    noise = np.random.default_rng(0).standard_normal(16000)
    images = simulate([noise], [azimuth], [2.0], 16000, 0.07)
    measured = _delay_samples(images[0, 0], images[0, 1])
    far_field = 0.07 * np.cos(azimuth) / 343 * 16000
    assert abs(measured - far_field) < 0.1
    assert abs(expected_delay(azimuth, 2.0, 0.07) * 16000 - far_field) < 0.01


def test_rejects_unreadable_video_missing_speaker_short_audio(corpus, tmp_path):
    root = tmp_path / "GRID"
    shutil.copytree(corpus, root)
    broken = sorted((root / "s1").glob("*.mpg"))[0]
    broken.write_bytes(b"not an mpeg file at all" * 10)
    short = sorted((root / "audio_25k" / "s2").glob("*.wav"))[0]
    audio, sr = soundfile.read(short)
    soundfile.write(short, audio[: sr // 2], sr)
    config = tiny_config()
    config.speakers.test = ["s3", "s4", "s9"]
    result = prepare_grid(root, tmp_path / "out", config)
    reasons = {
        r["id"]: r["reason"] for r in read_jsonl(tmp_path / "out" / "index" / "rejects.jsonl")
    }
    assert "missing" in reasons["s9"]
    assert f"s1_{broken.stem}" in reasons
    assert "shorter" in reasons[f"s2_{short.stem}"]
    assert result["utterances"] == 10 and result["mix_rejected"] == 0


def test_mixing_resumes_and_reproduces_bytes(corpus, tmp_path):
    out = tmp_path / "out"
    prepare_grid(corpus, out, tiny_config(train=3, test=2))
    mix = out / "mix"
    first = {p.name: p.read_bytes() for p in sorted(mix.rglob("*.wav"))}
    lines = (mix / "journal.jsonl").read_text().splitlines(keepends=True)
    (mix / "journal.jsonl").write_text("".join(lines[:-1]))  # as if killed before the last
    (mix / "stage.json").unlink()
    prepare_grid(corpus, out, tiny_config(train=3, test=2))
    stamp = json.loads((mix / "stage.json").read_text())
    assert stamp["work"]["items_computed"] == 1  # only the item whose line was lost
    assert {p.name: p.read_bytes() for p in sorted(mix.rglob("*.wav"))} == first
