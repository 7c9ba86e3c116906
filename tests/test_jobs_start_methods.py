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
