"""LiMuSE data: synthetic GRID -> index -> mixture lists -> dual-channel mixtures -> cues."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile

from avtool.core.errors import InputError, StageFailed
from avtool.core.journal import read_jsonl
from avtool.core.video import write_video
from avtool.corpora.grid import (
    GridConfig,
    MixtureCounts,
    SplitSpeakers,
    build_index,
    build_lists,
    parse_align,
)
from avtool.corpora.grid_mixtures import expected_delay, measure_snr, prepare_grid, simulate
from avtool.synth.grid import sentence_code, synth_grid

SMALL = (180, 144)  # frame size: the index and the mixtures never look at the pictures


def tiny_config(**counts: int) -> GridConfig:
    return GridConfig(
        speakers=SplitSpeakers(valid=[], test=["s3", "s4"]),
        mixtures=MixtureCounts(**{"train": 6, "valid": 0, "test": 4, **counts}),
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("grid") / "GRID"
    synth_grid(root, 4, 3, seed=0, size=SMALL)
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
    assert rows[0][2] == "sil" and rows[-1] == (rows[-1][0], 74500, "sil")
    words = [w for _, _, w in rows if w != "sil"]
    assert len(words) == 6 and words[0] in ("bin", "lay", "place", "set")
    handmade = tmp_path / "x.align"
    handmade.write_bytes(b"0 23750 sil\r\n23750 29500 bin\r\n29500 75000 sil\r\n")
    assert parse_align(handmade) == [
        (0, 23750, "sil"),
        (23750, 29500, "bin"),
        (29500, 75000, "sil"),
    ]


def test_synthetic_clips_have_real_grid_format(corpus):
    """FACTS.md of the real samples: MPEG-PS, MP2 stereo 44.1 kHz, 131,328 samples, 25 fps
    (base_rate 50), 75 frames or 74, z codes, no separate wav."""
    videos = sorted(corpus.glob("s*/*.mpg"))
    assert len(videos) == 12 and not list(corpus.rglob("*.wav"))
    frames = {}
    for video in videos:
        with av.open(str(video)) as container:
            assert container.format.name == "mpeg"
            stream, sound = container.streams.video[0], container.streams.audio[0]
            assert (stream.average_rate, stream.base_rate) == (25, 50)
            assert (sound.codec_context.name, sound.sample_rate, sound.channels) == (
                "mp2",
                44100,
                2,
            )
            assert sound.codec_context.bit_rate == 224000
            samples = sum(f.samples for f in container.decode(sound))
        with av.open(str(video)) as container:
            frames[video.stem] = sum(1 for _ in container.decode(video=0))
        assert samples == 131328, video
    # One clip in eight has 74 frames, as in GRID: here s1's first utterance.
    assert sorted(frames.values()) == [74] + [75] * 11
    # The digit zero is `z` (slot 5), never `0`; the letter z (slot 4) is z too.
    assert sentence_code(["bin", "blue", "in", "z", "zero", "now"]) == "bbizzn"
    assert sentence_code(["set", "red", "at", "a", "two", "soon"]) == "sraa2s"


def test_mixture_snr_measured_back_from_the_files(prepared):
    mixtures = list(read_jsonl(prepared / "lists" / "mixtures.jsonl"))
    assert len(mixtures) == 10
    utterances = {u["id"]: u for u in read_jsonl(prepared / "index" / "utterances.jsonl")}
    for m in mixtures:
        # 131,328 samples at 44.1 kHz are 0.022 s short of 3 s: padded, and recorded.
        assert m["target_pad_s"] == utterances[m["target"]]["pad_s"] == pytest.approx(0.022063)
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


def test_rejects_unreadable_and_short_clips_warns_on_align_and_missing_speaker(
    corpus, tmp_path, caplog
):
    root = tmp_path / "GRID"
    shutil.copytree(corpus, root)
    broken = sorted((root / "s1").glob("*.mpg"))[0]
    broken.write_bytes(b"not an mpeg file at all" * 10)
    short = sorted((root / "s2").glob("*.mpg"))[0]
    frames = np.full((25, 144, 180, 3), 90, np.uint8)
    write_video(short, frames, 25, audio=np.zeros((2, 44100), np.float32), sr=44100)
    bad_align = sorted((root / "alignments" / "s3").glob("*.align"))[0]
    bad_align.write_bytes(b"0 23750 sil\r\ngarbage\r\n")
    config = tiny_config()
    config.speakers.test = ["s3", "s4", "s9"]
    result = prepare_grid(root, tmp_path / "out", config)
    reasons = {
        r["id"]: r["reason"] for r in read_jsonl(tmp_path / "out" / "index" / "rejects.jsonl")
    }
    assert set(reasons) == {f"s1_{broken.stem}", f"s2_{short.stem}"}
    assert "shorter" in reasons[f"s2_{short.stem}"]
    assert result["speakers_missing"] == 1 and "s9" in caplog.text
    assert result["align_warnings"] == 1 and "1 clip(s) kept without words" in caplog.text
    kept = {u["id"]: u for u in read_jsonl(tmp_path / "out" / "index" / "utterances.jsonl")}
    assert "expected `start end word`" in kept[f"s3_{bad_align.stem}"]["align_warning"]
    assert result["utterances"] == 10 and result["mix_rejected"] == 0


def test_failed_split_says_which_rejects_and_where(corpus, tmp_path):
    config = tiny_config()
    config.samples = 80000  # 5 s: every 2.978 s clip is too short
    with pytest.raises(
        StageFailed,
        match=r"prepare.grid.index: 12 of 12 items rejected \(100.0%\); commonest: 12 x <file>: 2.978 s of audio",
    ):
        build_index(corpus, tmp_path / "index", config)
    build_index(corpus, tmp_path / "index", config, max_reject_rate=1.0)
    with pytest.raises(InputError) as caught:
        build_lists(tmp_path / "index", tmp_path / "lists", config)
    message = str(caught.value)
    assert "split train: 0 speaker(s) with usable utterances of 2 on disk" in message
    assert "6 rejected" in message and "shorter than the 5 s needed" in message
    assert str(tmp_path / "index" / "rejects.jsonl") in message


def test_mixture_lists_build_what_exists_and_seed_the_other_splits(corpus, tmp_path):
    present = sorted(p.stem for p in (corpus / "s3").glob("*.mpg"))
    other = sorted(p.stem for p in (corpus / "s4").glob("*.mpg"))
    fields = "target/test/x.wav ref/test/{es}/{eu}.wav lip/x.npy 1.0 2.0 3.0 4.0 m f"
    lines = [
        f"mixture/test/0_RIR0_s3_{present[0]}_s4_{other[0]}_mix.wav "
        + fields.format(es="s3", eu=present[1]),
        f"mixture/test/1_RIR1_s3_{present[0]}_s4_bbazzn_mix.wav "
        + fields.format(es="s3", eu=present[1]),
    ]
    listing = tmp_path / "datalist_2mix_test.txt"
    listing.write_text("\n".join(lines) + "\n")
    config = tiny_config(train=3, test=99)
    build_index(corpus, tmp_path / "index", config)
    counts = build_lists(tmp_path / "index", tmp_path / "lists", config, [listing])
    assert (counts["mixtures_train"], counts["mixtures_test"], counts["unbuildable"]) == (3, 1, 1)
    (missing,) = read_jsonl(tmp_path / "lists" / "unbuildable.jsonl")
    assert (
        missing["id"] == "test-000001"
        and "interferer s4_bbazzn is not on disk" in missing["reason"]
    )
    videos = list(read_jsonl(tmp_path / "lists" / "videos.jsonl"))
    assert all(v["seconds"] == pytest.approx(2.977937, abs=1e-5) for v in videos)


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
