"""RAVDESS names, the synthetic corpus, and `prepare ravdess` on good and broken files."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import soundfile

from avtool.core.errors import ItemError
from avtool.corpora.ravdess import parse_name


def test_parse_name_decodes_the_reports_example():
    fields = parse_name("03-01-06-01-02-01-12.wav")
    assert fields == {
        "id": "03-01-06-01-02-01-12",
        "modality": "audio-only",
        "vocal_channel": "speech",
        "emotion": "fearful",
        "emotion_code": 6,
        "intensity": "normal",
        "statement": "Dogs are sitting by the door",
        "statement_code": 2,
        "repetition": 1,
        "actor": 12,
        "gender": "female",
    }
    assert parse_name("03-02-01-01-01-02-07.wav")["vocal_channel"] == "song"
    assert parse_name("03-02-01-01-01-02-07.wav")["gender"] == "male"


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("03-01-06-01-02-01.wav", "seven two-digit fields"),
        ("03-01-09-01-02-01-12.wav", "emotion 09"),
        ("03-01-06-03-02-01-12.wav", "intensity 03"),
        ("03-01-06-01-02-01-25.wav", "actor 25"),
        ("03-01-06-01-02-01-12.mp3", "not a .wav"),
    ],
)
def test_parse_name_says_what_is_wrong(name, reason):
    with pytest.raises(ItemError, match=reason):
        parse_name(name)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    from avtool.synth.ravdess import synth_ravdess

    out = tmp_path_factory.mktemp("ravdess") / "corpus"
    stamp = synth_ravdess(out, actors=2, seed=3)
    return out, stamp


def test_synthetic_corpus_has_the_real_layout(synthetic):
    out, stamp = synthetic
    files = sorted(out.glob("Actor_*/*.wav"))
    assert stamp["counts"] == {"files": 120, "actors": 2}
    assert [p.parent.name for p in files[::60]] == ["Actor_01", "Actor_02"]
    emotions = [parse_name(p.name)["emotion"] for p in files if p.parent.name == "Actor_01"]
    # As in RAVDESS: neutral has one intensity (4 files), the other emotions two (8 files).
    assert emotions.count("neutral") == 4 and emotions.count("angry") == 8
    info = soundfile.info(files[0])
    assert (info.samplerate, info.channels, info.subtype) == (48000, 1, "PCM_16")
    assert stamp["voices"]["Actor_01"] != stamp["voices"]["Actor_02"]


def test_synthetic_emotions_differ_in_prosody(synthetic):
    out, _ = synthetic
    calm = soundfile.read(out / "Actor_01" / "03-01-04-02-01-01-01.wav")[0]  # sad, strong
    angry = soundfile.read(out / "Actor_01" / "03-01-05-02-01-01-01.wav")[0]  # angry, strong
    # Sad is slower (longer) and darker (less high-frequency energy) than angry.
    assert len(calm) > 1.2 * len(angry)

    def brightness(y):
        spectrum = np.abs(np.fft.rfft(y)) ** 2
        return spectrum[len(spectrum) // 4 :].sum() / spectrum.sum()

    assert brightness(angry) > 2 * brightness(calm)


def test_prepare_rejects_broken_files_with_reasons_and_keeps_the_rest(cli, synthetic, tmp_path):
    source, _ = synthetic
    root = tmp_path / "RAVDESS"
    shutil.copytree(source / "Actor_01", root / "Actor_01")
    actor2 = root / "Actor_02"
    actor2.mkdir()
    good = sorted((source / "Actor_02").glob("*.wav"))[:3]
    for path in good:
        shutil.copy(path, actor2 / path.name)
    data = good[0].read_bytes()
    broken = {
        "notes.wav": "seven two-digit fields",
        "03-01-09-01-01-01-02.wav": "emotion 09",
        "03-01-02-01-01-01-04.wav": "actor 04 in folder Actor_02",
        "03-01-02-02-01-01-02.wav": "empty",  # zero bytes
        "03-01-02-02-02-01-02.wav": "truncated",
        "03-01-02-02-02-02-02.wav": "not",  # text, not audio
    }
    (actor2 / "notes.wav").write_bytes(data)
    (actor2 / "03-01-09-01-01-01-02.wav").write_bytes(data)
    (actor2 / "03-01-02-01-01-01-04.wav").write_bytes(data)
    (actor2 / "03-01-02-02-01-01-02.wav").write_bytes(b"")
    (actor2 / "03-01-02-02-02-01-02.wav").write_bytes(data[: len(data) // 2])
    (actor2 / "03-01-02-02-02-02-02.wav").write_text("Kids are talking by the door\n" * 50)
    # A stereo 44.1 kHz take and a song file: the first is kept, the second left out.
    stereo = np.stack([np.sin(np.linspace(0, 3000, 44100))] * 2, axis=1) * 0.3
    soundfile.write(actor2 / "03-01-03-01-01-01-02.wav", stereo, 44100, subtype="PCM_16")
    shutil.copy(good[0], actor2 / "03-02-01-01-01-01-02.wav")

    code, out, err = cli("prepare", "ravdess", "--root", root, "--out", tmp_path / "prep")
    assert code == 0, err
    assert "files 64" in out and "rejected 6" in out and "song_skipped 1" in out
    rejects = [json.loads(line) for line in (tmp_path / "prep" / "rejects.jsonl").open()]
    reasons = {r["id"]: r["reason"] for r in rejects}
    assert set(reasons) == {name.removesuffix(".wav") for name in broken}
    for name, words in broken.items():
        assert words in reasons[name.removesuffix(".wav")], reasons[name.removesuffix(".wav")]
    manifest = [json.loads(line) for line in (tmp_path / "prep" / "manifest.jsonl").open()]
    kept = {row["id"]: row for row in manifest}
    assert kept["03-01-03-01-01-01-02"]["channels"] == 2
    assert kept["03-01-03-01-01-01-02"]["sr"] == 44100
    assert kept["03-01-03-01-01-01-02"]["duration"] == pytest.approx(1.0)
    assert kept["03-01-01-01-01-01-01"]["emotion"] == "neutral"

    # The rest goes through feature extraction, the stereo take down-mixed and resampled.
    code, out, err = cli(
        "features", "ser-mfcc", "--manifest", tmp_path / "prep" / "manifest.jsonl",
        "--out", tmp_path / "mfcc",
    )  # fmt: skip
    assert code == 0, err
    assert "done 64" in out and "rejected 0" in out
    from avtool.core.store import FeatureStore

    with FeatureStore(tmp_path / "mfcc") as store:
        assert store["03-01-03-01-01-01-02"].shape == (160,)


def test_prepare_refuses_a_folder_without_actors(cli, tmp_path):
    code, _, err = cli("prepare", "ravdess", "--root", tmp_path, "--out", tmp_path / "prep")
    assert code == 2 and "Actor_NN" in err
