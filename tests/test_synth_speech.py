import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile

from avtool.core.errors import InputError
from avtool.core.manifest import read_manifest
from avtool.synth import speech

TEXT = "Please place the green ball in the box now."


def median_f0(audio: np.ndarray, sr: int) -> float:
    """Median pitch of the loudest 40 ms frames, by autocorrelation (60-400 Hz)."""
    frame, hop = int(0.04 * sr), int(0.02 * sr)
    frames = np.lib.stride_tricks.sliding_window_view(audio, frame)[::hop]
    rms = np.sqrt((frames**2).mean(axis=1))
    lo, hi = int(sr / 400), int(sr / 60)
    f0 = []
    for x in frames[rms > 0.3 * rms.max()]:
        x = x - x.mean()
        ac = np.correlate(x, x, "full")[frame - 1 :]
        f0.append(sr / (lo + int(np.argmax(ac[lo:hi]))))
    return float(np.median(f0))


def test_same_arguments_give_same_samples_whatever_was_said_before():
    first = speech.synthesize(TEXT, "en-us+m1")
    # Voices with flutter, breath and echo move espeak-ng's internal state the most.
    speech.synthesize("Something else entirely, said at length!", "en+f2", rate=300, pitch=90)
    speech.synthesize("And again.", "en-us+f3")
    again = speech.synthesize(TEXT, "en-us+m1")
    assert first.dtype == np.float32 and first.ndim == 1
    assert np.array_equal(first, again)
    assert 0.1 < np.abs(first).max() <= 1.0
    assert np.sqrt(np.mean(first**2)) > 0.01


def test_same_samples_in_another_process():
    here = hashlib.sha256(speech.synthesize(TEXT, "en+f2", sr=16000).tobytes()).hexdigest()
    code = (
        "import hashlib; from avtool.synth import speech\n"
        f"print(hashlib.sha256(speech.synthesize({TEXT!r}, 'en+f2', sr=16000).tobytes()).hexdigest())"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert there.stdout.strip() == here


def test_threads_get_the_serial_result():
    expected = speech.synthesize(TEXT, "en-us+m7")
    results: list[np.ndarray] = []
    threads = [
        threading.Thread(target=lambda: results.append(speech.synthesize(TEXT, "en-us+m7")))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 4
    assert all(np.array_equal(r, expected) for r in results)


def test_sample_rate_and_word_positions():
    native, words = speech.synthesize_words(TEXT)
    resampled, moved = speech.synthesize_words(TEXT, sr=16000)
    assert abs(len(resampled) - len(native) * 16000 / 22050) <= 2
    assert len(native) / speech.NATIVE_SR == pytest.approx(2.5, abs=1.0)
    # espeak-ng reports most words (it folds some unstressed ones into the next), in order.
    spoken = [TEXT[w.offset :].split()[0] for w in words]
    assert len(spoken) >= 6 and spoken[0] == "Please" and spoken[-1] == "now."
    assert all(w.offset == 0 or TEXT[w.offset - 1] == " " for w in words)
    assert [w.offset for w in words] == sorted({w.offset for w in words})
    assert [w.offset for w in moved] == [w.offset for w in words]
    assert [w.start for w in moved] == [round(w.start * 16000 / 22050) for w in words]
    starts = [w.start for w in words]
    assert starts == sorted(starts) and starts[-1] < len(native)


def test_prosody_parameters_change_the_audio():
    plain = speech.synthesize(TEXT)
    assert len(speech.synthesize(TEXT, rate=300)) < 0.75 * len(plain)
    high = median_f0(speech.synthesize(TEXT, pitch=90), speech.NATIVE_SR)
    assert high > 1.3 * median_f0(plain, speech.NATIVE_SR)
    quiet = speech.synthesize(TEXT, volume=30)
    assert np.abs(quiet).max() < 0.5 * np.abs(plain).max()


def test_voices_are_distinct_and_sound_like_their_gender():
    names = [v.name for v in speech.VOICES]
    assert len(set(names)) == len(names) == 45
    assert len({v.speaker for v in speech.VOICES}) == 45
    assert len(speech.voices("male")) == 33 and len(speech.voices("female")) == 12
    digests = set()
    for voice in speech.VOICES:
        audio = speech.synthesize(TEXT, voice.name)
        digests.add(hashlib.sha256(audio.tobytes()).hexdigest())
        f0 = median_f0(audio, speech.NATIVE_SR)
        if voice.gender == "male":
            assert 70 < f0 < 140, (voice, f0)
        else:
            assert 165 < f0 < 300, (voice, f0)
    assert len(digests) == len(speech.VOICES)


@pytest.mark.parametrize(
    "voice", ["en-gb", "xx-nowhere", "en-us+nosuchvariant", "en-us+", "en+m1+f2"]
)
def test_unknown_voice_is_an_input_error_that_says_what_is_valid(voice):
    with pytest.raises(InputError) as error:
        speech.synthesize("hello", voice)
    message = str(error.value)
    assert repr(voice) in message
    assert "en-us+m3" in message and "voices()" in message


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"rate": 20}, "rate=20"), ({"pitch": 101}, "pitch=101"), ({"volume": -1}, "volume=-1")],
)
def test_out_of_range_parameters_are_refused(kwargs, named):
    with pytest.raises(InputError, match=named):
        speech.synthesize("hello", **kwargs)


def test_empty_text_is_refused():
    with pytest.raises(InputError, match="empty"):
        speech.synthesize("  ")


def test_sentences_are_seeded_and_varied():
    first = speech.sentences(3, 50)
    assert first == speech.sentences(3, 50)
    assert first != speech.sentences(4, 50)
    assert len(set(first)) >= 45
    for sentence in first:
        assert sentence[0].isupper() and sentence[-1] in ".?"
        assert 5 <= len(sentence.split()) <= 15


def corpus_files(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name not in ("stage.json", "stage.started.json")
    }


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A corpus made through the CLI: 6 clips of exactly 2.5 s at 16 kHz."""
    from avtool.cli.main import main

    out = tmp_path_factory.mktemp("speech") / "corpus"
    args = ["synth", "speech", "--out", str(out), "--count", "6", "--seed", "7"]
    args += ["--duration", "2.5", "--sr", "16000"]
    assert main(args) == 0
    return out, args


def test_cli_writes_clips_of_exact_length_and_a_manifest(corpus):
    out, _ = corpus
    assert sorted(p.name for p in (out / "wav").iterdir()) == [
        json.loads(line)["id"] + ".wav"
        for line in (out / "manifest.jsonl").read_text().splitlines()
    ]
    rows = read_manifest(out / "manifest.jsonl")
    assert len(rows) == 6
    assert [r["id"][:5] for r in rows] == ["00000", "00001", "00002", "00003", "00004", "00005"]
    genders = [r["gender"] for r in rows]
    assert genders.count("male") == genders.count("female") == 3
    assert genders[0] != genders[1]
    by_name = {v.name: v for v in speech.VOICES}
    raw = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [r["path"] for r in raw] == [f"wav/{r['id']}.wav" for r in raw]
    for row in rows:
        info = soundfile.info(row["path"])
        assert (info.samplerate, info.channels, info.frames) == (16000, 1, 40000)
        assert info.subtype == "PCM_16"
        assert (row["sr"], row["samples"], row["duration"]) == (16000, 40000, 2.5)
        voice = by_name[row["voice"]]
        assert (row["speaker"], row["gender"]) == (voice.speaker, voice.gender)
        assert row["id"].endswith(voice.speaker)
        assert 150 <= row["rate"] <= 200 and 40 <= row["pitch"] <= 60
        assert len(row["text"].split()) >= 3
        audio, _ = soundfile.read(row["path"], dtype="float32")
        assert np.sqrt(np.mean(audio[:20000] ** 2)) > 0.01
    stamp = json.loads((out / "stage.json").read_text())
    assert stamp["name"] == "synth.speech" and stamp["counts"] == {"clips": 6, "speakers": 6}


def test_cli_rerun_is_up_to_date_and_rewrites_nothing(corpus, capsys):
    from avtool.cli.main import main

    out, args = corpus
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    capsys.readouterr()
    assert main(args) == 0
    assert "up to date" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == before


def test_same_seed_same_bytes_and_a_resume_is_exact(corpus, tmp_path, monkeypatch):
    out, _ = corpus
    again = tmp_path / "again"
    speech.make_speech_corpus(again, 6, seed=7, duration=2.5, sr=16000)
    assert corpus_files(again) == corpus_files(out)

    made: list[str] = []
    make_clip = speech._make_clip

    def crash_after_two(clip, *args):
        if len(made) == 2:
            raise KeyboardInterrupt
        made.append(clip.id)
        return make_clip(clip, *args)

    resumed = tmp_path / "resumed"
    monkeypatch.setattr(speech, "_make_clip", crash_after_two)
    with pytest.raises(KeyboardInterrupt):
        speech.make_speech_corpus(resumed, 6, seed=7, duration=2.5, sr=16000)
    assert not (resumed / "manifest.jsonl").exists()
    (resumed / "wav" / ".00002-x.wav.abc.tmp").write_bytes(b"torn")
    made.clear()
    monkeypatch.setattr(
        speech, "_make_clip", lambda clip, *args: made.append(clip.id) or make_clip(clip, *args)
    )
    speech.make_speech_corpus(resumed, 6, seed=7, duration=2.5, sr=16000)
    assert [m[:5] for m in made] == ["00002", "00003", "00004", "00005"]
    assert corpus_files(resumed) == corpus_files(out)


def test_other_seed_other_corpus_and_changed_config_needs_force(corpus, tmp_path):
    out, _ = corpus
    other = tmp_path / "other"
    speech.make_speech_corpus(other, 6, seed=8, duration=2.5, sr=16000)
    assert (other / "manifest.jsonl").read_text() != (out / "manifest.jsonl").read_text()
    with pytest.raises(InputError, match="--force"):
        speech.make_speech_corpus(other, 3, seed=8, duration=2.5, sr=16000)
    assert speech.make_speech_corpus(other, 3, seed=8, duration=2.5, sr=16000, force=True)
    assert len(read_manifest(other / "manifest.jsonl")) == 3
    assert len(list((other / "wav").iterdir())) == 3


def test_without_duration_a_clip_is_one_sentence(tmp_path):
    stamp = speech.make_speech_corpus(tmp_path / "c", 3, seed=1, sr=8000)
    assert stamp["counts"]["clips"] == 3
    for row in read_manifest(tmp_path / "c" / "manifest.jsonl"):
        info = soundfile.info(row["path"])
        assert info.frames == row["samples"] and info.samplerate == 8000
        assert row["duration"] == pytest.approx(row["samples"] / 8000)
        assert 1.0 < row["duration"] < 6.0
        assert row["text"][-1] in ".?" and row["text"].count(".") + row["text"].count("?") == 1


def test_odd_durations_are_exact(tmp_path):
    speech.make_speech_corpus(tmp_path / "c", 2, seed=2, duration=1.2345, sr=8000)
    for row in read_manifest(tmp_path / "c" / "manifest.jsonl"):
        assert soundfile.info(row["path"]).frames == round(1.2345 * 8000) == row["samples"]


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [({"count": 0}, "--count"), ({"seed": -1}, "--seed"), ({"duration": 0.5}, "--duration")],
)
def test_bad_corpus_arguments_are_refused(tmp_path, kwargs, named):
    arguments = {"count": 2, "seed": 0, **kwargs}
    with pytest.raises(InputError, match=named):
        speech.make_speech_corpus(tmp_path / "c", **arguments)


def test_help_loads_no_numpy():
    code = (
        "import sys\n"
        "from avtool.cli.main import main\n"
        "assert main(['synth', 'speech', '--help']) == 0\n"
        "print('numpy' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip().splitlines()[-1] == "False"
