"""The 160-d SER features against the report's librosa function, and wav2vec2 embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avtool.core.store import FeatureStore
from avtool.features.ser_mfcc import (
    SerMfccExtractor,
    SerMfccParams,
    SerMfccWorker,
    _delta_operator,
    peak_normalise,
    preprocess,
    report_features,
    trim_silence,
)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    from avtool.corpora.ravdess import PrepareConfig, prepare_ravdess
    from avtool.synth.ravdess import synth_ravdess

    root = tmp_path_factory.mktemp("ser-features")
    synth_ravdess(root / "corpus", actors=1, seed=1)
    prepare_ravdess(root / "corpus", root / "prep", PrepareConfig())
    manifest = root / "prep" / "manifest.jsonl"
    items = [json.loads(line) for line in manifest.open()]
    return manifest, [str((manifest.parent / item["path"]).resolve()) for item in items]


@pytest.mark.parametrize("sr", [16000, 48000])
def test_vector_equals_the_reports_librosa_function(corpus, sr):
    _, paths = corpus
    worker = SerMfccWorker(SerMfccParams(sr=sr))
    worker.setup()
    try:
        for path in paths[::15]:
            reference = report_features(path, sr=sr)
            ours = worker({"id": "x", "path": path})
            assert ours.shape == reference.shape == (160,)
            # MFCC c0 is in the hundreds: a relative bound, with an absolute floor.
            np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=2e-3)
    finally:
        worker.teardown()


def test_sequence_mean_is_the_vector(corpus):
    from avtool.core.audio import load_audio

    _, paths = corpus
    extractor = SerMfccExtractor(SerMfccParams())
    y = preprocess(load_audio(paths[0], sr=16000)[0], 20.0)
    frames = extractor.frames(y)
    assert frames.shape[1] == 160 and frames.shape[0] > 9
    np.testing.assert_allclose(frames.mean(axis=0), extractor.vector(y), rtol=1e-5, atol=1e-4)


def test_trim_and_normalise_equal_librosa(corpus):
    """Restated in numpy so that workers skip librosa's import: equal to it, bit for bit."""
    import librosa

    from avtool.core.audio import load_audio

    rng = np.random.default_rng(3)
    bursts = [
        (rng.standard_normal(30000) * np.repeat(rng.uniform(0, 1, 30), 1000)).astype(np.float32)
        for _ in range(20)
    ]
    silence = np.zeros(5000, np.float32)  # librosa keeps all of it: no frame is below the peak
    clips = [load_audio(path, sr=16000)[0] for path in corpus[1][::6]] + bursts + [silence]
    for y in clips:
        ours, (theirs, _) = trim_silence(y, 20.0), librosa.effects.trim(y, top_db=20)
        assert ours.shape == theirs.shape and np.array_equal(ours, theirs)
        assert np.array_equal(peak_normalise(ours), librosa.util.normalize(theirs))


@pytest.mark.parametrize("frames", [9, 10, 23, 150])
@pytest.mark.parametrize("order", [1, 2])
def test_delta_operator_is_librosas_filter(frames, order):
    import librosa

    reference = librosa.feature.delta(np.eye(frames), order=order, axis=-1)
    np.testing.assert_allclose(_delta_operator(frames, order), reference, rtol=0, atol=1e-12)


def test_preprocess_trims_silence_and_normalises_peak():
    from avtool.core.errors import ItemError

    tone = 0.1 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    padded = np.concatenate([np.zeros(8000, np.float32), tone, np.zeros(8000, np.float32)])
    y = preprocess(padded, 20.0)
    assert abs(np.abs(y).max() - 1.0) < 1e-6
    assert len(y) < 20000  # most of the second of silence is gone
    with pytest.raises(ItemError, match="silent"):
        preprocess(np.zeros(16000, np.float32), 20.0)


def test_wav2vec2_from_a_local_folder(cli, corpus, tiny_wav2vec2, tmp_path):
    manifest, _ = corpus
    code, out, err = cli(
        "features", "wav2vec2", "--manifest", manifest, "--out", tmp_path / "w2v",
        "--model", tiny_wav2vec2,
    )  # fmt: skip
    assert code == 0, err
    assert "done 60" in out
    with FeatureStore(tmp_path / "w2v") as store:
        first = store[next(iter(store))]
        assert first.shape == (32,) and np.isfinite(first).all()
        assert store.attrs["extractor"] == "wav2vec2"
        assert len(store.attrs["weights_sha256"]) == 64
        assert store.attrs["random_weights"] is False
    code, out, err = cli(
        "features", "wav2vec2", "--manifest", manifest, "--out", tmp_path / "seq",
        "--model", tiny_wav2vec2, "--sequence", "--set", "top_db=30",
    )  # fmt: skip
    assert code == 0, err
    with FeatureStore(tmp_path / "seq") as store:
        sequence = store[next(iter(store))]
        # 20 ms frames: a 1-3 s utterance gives 50-150 hidden states of 32 values.
        assert sequence.ndim == 2 and sequence.shape[1] == 32 and 40 < sequence.shape[0] < 160


def test_wav2vec2_refuses_missing_or_random_weights(cli, corpus, tmp_path):
    manifest, _ = corpus
    args = ("features", "wav2vec2", "--manifest", manifest, "--out", tmp_path / "w")
    code, _, err = cli(*args, "--model", tmp_path / "nowhere")
    assert code == 2 and "no local wav2vec2 model" in err
    code, _, err = cli(*args, "--model", "random:tiny")
    assert code == 2 and "--allow-random-weights" in err
    code, _, err = cli(*args, "--model", "random:tiny", "--allow-random-weights")
    assert code == 0, err
    with FeatureStore(tmp_path / "w") as store:
        assert store.attrs["random_weights"] is True
