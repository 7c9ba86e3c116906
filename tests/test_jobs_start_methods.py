"""Every extractor with --jobs 2, its pool forked and spawned: the store equals --jobs 1.

Spawned workers receive the worker by pickle; a worker whose loaded model cannot be pickled
(wav2vec2 with weight-norm parametrizations) must still travel (core.items.travelling_copy).
The --jobs 2 run is a fresh `avtool` process, as a user's is: a fork from this test process,
which has run torch's thread pools already, could inherit a held lock.
"""

import os
import subprocess
import sys

import numpy as np
import pytest

from avtool.core.store import FeatureStore


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    from avtool.synth.speech import make_speech_corpus

    out = tmp_path_factory.mktemp("speech")
    make_speech_corpus(out, 4, seed=3, duration=1.0, sr=16000)
    return out / "manifest.jsonl"


EXTRACTORS = {
    "logmel": ["--sr", "16000", "--n-fft", "512", "--hop", "160", "--n-mels", "40"],
    "mfcc": ["--sr", "16000", "--n-fft", "512", "--hop", "160"],
    "ser-mfcc": [],
    "voiceprint": [],
    "wav2vec2": ["--model", "{wav2vec2}"],
}


def stored(path):
    with FeatureStore(path) as store:
        return {key: store[key] for key in store}


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
@pytest.mark.parametrize("extractor", sorted(EXTRACTORS))
def test_jobs_two_equals_one(cli, speech, tiny_wav2vec2, tmp_path, extractor, method):
    options = [o.format(wav2vec2=tiny_wav2vec2) for o in EXTRACTORS[extractor]]
    base = ["features", extractor, "--manifest", str(speech), *options]
    command = [sys.executable, "-m", "avtool.cli.main", *base]
    code, _, err = cli(*base, "--out", tmp_path / "one")
    assert code == 0, err
    run = subprocess.run(
        [*command, "--out", str(tmp_path / "two"), "--jobs", "2"],
        env={**os.environ, "AVTOOL_START_METHOD": method},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    one, two = stored(tmp_path / "one"), stored(tmp_path / "two")
    assert sorted(one) == sorted(two) and len(one) == 4
    for key in one:
        if one[key].dtype.names:
            for name in one[key].dtype.names:
                np.testing.assert_allclose(two[key][name], one[key][name], rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_allclose(two[key], one[key], rtol=1e-5, atol=1e-5)


def run_fresh(args: list, method: str) -> None:
    """`avtool ARGS` in a new process with the pool's start method forced."""
    run = subprocess.run(
        [sys.executable, "-m", "avtool.cli.main", *map(str, args)],
        env={**os.environ, "AVTOOL_START_METHOD": method},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr


def same_stores(one, two):
    a, b = stored(one), stored(two)
    assert sorted(a) == sorted(b) and a
    for key in a:
        fields = a[key].dtype.names or [None]
        for name in fields:
            left = a[key][name] if name else a[key]
            right = b[key][name] if name else b[key]
            np.testing.assert_allclose(right, left, rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def grid(tmp_path_factory):
    from avtool.synth.grid import synth_grid

    root = tmp_path_factory.mktemp("grid") / "GRID"
    synth_grid(root, 4, 2, seed=0, size=(180, 144))
    return root


GRID_SETS = ["--set", "speakers.valid=[]", "--set", "speakers.test=[s3,s4]"]
GRID_SETS += ["--set", "mixtures.train=3", "--set", "mixtures.valid=0", "--set", "mixtures.test=2"]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_grid_mixing_and_face_cues_with_two_jobs(cli, grid, tmp_path, method):
    prepare = ["prepare", "grid", "--root", grid, *GRID_SETS]
    code, _, err = cli(*prepare, "--out", tmp_path / "one")
    assert code == 0, err
    run_fresh([*prepare, "--out", tmp_path / "two", "--jobs", 2], method)
    same_stores(tmp_path / "one" / "mix", tmp_path / "two" / "mix")
    for name in ("train", "test"):
        for wav in sorted((tmp_path / "one" / "mix" / name).glob("*.wav")):
            assert wav.read_bytes() == (tmp_path / "two" / "mix" / name / wav.name).read_bytes()
    videos = tmp_path / "one" / "lists" / "videos.jsonl"
    code, _, err = cli("features", "face", "--manifest", videos, "--out", tmp_path / "f1")
    assert code == 0, err
    run_fresh(
        ["features", "face", "--manifest", videos, "--out", tmp_path / "f2", "--jobs", 2], method
    )
    same_stores(tmp_path / "f1", tmp_path / "f2")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_segmentation_with_two_jobs(cli, tmp_path, method):
    from avtool.synth.bsds import synth_bsds

    synth_bsds(tmp_path / "bsds", count=4, height=24, width=32, seed=2)
    code, _, err = cli("prepare", "bsds", "--root", tmp_path / "bsds", "--out", tmp_path / "prep")
    assert code == 0, err
    manifest = tmp_path / "prep" / "manifest.jsonl"
    train = ["train", "mmt", "--manifest", manifest, "--method", "kanezaki", "--iterations", 3]
    train += ["--set", "channels=8"]
    code, _, err = cli(*train, "--out", tmp_path / "one")
    assert code == 0, err
    run_fresh([*train, "--out", tmp_path / "two", "--jobs", 2], method)
    a, b = stored(tmp_path / "one"), stored(tmp_path / "two")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[k], b[k]) for k in a)
