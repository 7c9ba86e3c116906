"""`avtool features logmel|mfcc|check` end to end on synthetic speech, against librosa."""

import json

import h5py
import librosa
import numpy as np
import pytest

from avtool.core.store import FeatureStore


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    from avtool.synth.speech import make_speech_corpus

    out = tmp_path_factory.mktemp("speech")
    make_speech_corpus(out, 9, seed=5, duration=2.0, sr=22050)
    return out / "manifest.jsonl"


LOGMEL = ("--sr", "22050", "--n-fft", "1024", "--hop", "366", "--n-mels", "64")


def test_logmel_equals_librosa_and_check_counts(cli, speech, tmp_path):
    code, out, _ = cli(
        "features", "logmel", "--manifest", speech, "--out", tmp_path / "lm", *LOGMEL
    )
    assert code == 0 and "done" in out
    item = json.loads(speech.read_text().splitlines()[0])
    y, _ = librosa.load(speech.parent / item["path"], sr=22050)
    reference = librosa.power_to_db(
        librosa.feature.melspectrogram(y=y, sr=22050, n_fft=1024, hop_length=366, n_mels=64)
    )
    with FeatureStore(tmp_path / "lm", expect={"extractor": "logmel"}) as store:
        assert len(store) == 9
        assert store[item["id"]].shape == reference.shape == (64, 121)
        assert np.max(np.abs(store[item["id"]] - reference)) < 0.01
        assert store.attrs["params"]["hop"] == 366
    code, out, _ = cli("features", "check", tmp_path / "lm")
    assert code == 0 and out.strip().splitlines()[-1] == "items: 9"
    code, out, _ = cli(
        "features", "logmel", "--manifest", speech, "--out", tmp_path / "lm", *LOGMEL
    )
    assert "up to date" in out


def test_mfcc_equals_librosa(cli, speech, tmp_path):
    code, _, _ = cli(
        "features",
        "mfcc",
        "--manifest",
        speech,
        "--out",
        tmp_path / "mf",
        "--n-mfcc",
        "13",
        *LOGMEL,
    )
    assert code == 0
    item = json.loads(speech.read_text().splitlines()[3])
    y, _ = librosa.load(speech.parent / item["path"], sr=22050)
    reference = librosa.feature.mfcc(
        y=y, sr=22050, n_mfcc=13, n_fft=1024, hop_length=366, n_mels=64
    )
    with FeatureStore(tmp_path / "mf") as store:
        assert np.max(np.abs(store[item["id"]] - reference)) < 1e-3


def test_changed_parameters_are_refused_then_forced(cli, speech, tmp_path):
    cli("features", "logmel", "--manifest", speech, "--out", tmp_path / "lm", *LOGMEL)
    code, _, err = cli(
        "features", "logmel", "--manifest", speech, "--out", tmp_path / "lm", "--n-mels", "32"
    )
    assert code == 2 and "config changed since it was made; rerun with --force" in err
    code, _, _ = cli(
        "features",
        "logmel",
        "--manifest",
        speech,
        "--out",
        tmp_path / "lm",
        "--n-mels",
        "32",
        "--force",
    )
    with FeatureStore(tmp_path / "lm") as store:
        assert code == 0 and store[next(iter(store))].shape[0] == 32


def test_bad_audio_is_rejected_and_the_rest_completes(cli, speech, tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all\n" * 50)
    rows = [json.loads(line) for line in speech.read_text().splitlines()]
    for row in rows:
        row["path"] = str(speech.parent / row["path"])
    rows += [
        {"id": "empty", "path": str(tmp_path / "empty.wav")},
        {"id": "text", "path": str(tmp_path / "text.wav")},
    ]
    manifest = tmp_path / "mixed.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code, out, _ = cli(
        "features", "logmel", "--manifest", manifest, "--out", tmp_path / "lm", *LOGMEL
    )
    assert code == 0 and "rejected 2" in out
    rejects = {
        json.loads(line)["id"]: json.loads(line)["reason"]
        for line in (tmp_path / "lm" / "rejects.jsonl").read_text().splitlines()
    }
    assert set(rejects) == {"empty", "text"}
    assert "empty.wav" in rejects["empty"] and "text.wav" in rejects["text"]
    with FeatureStore(tmp_path / "lm") as store:
        assert len(store) == 9


def test_three_shards_equal_the_single_run_and_store_checks_attrs(cli, speech, tmp_path):
    cli("features", "logmel", "--manifest", speech, "--out", tmp_path / "one", *LOGMEL)
    for index in range(3):
        code, _, _ = cli(
            "features",
            "logmel",
            "--manifest",
            speech,
            "--out",
            tmp_path / "three",
            "--shard",
            f"{index}/3",
            *LOGMEL,
        )
        assert code == 0
    with FeatureStore(tmp_path / "one") as one, FeatureStore(tmp_path / "three") as three:
        assert sorted(one) == sorted(three)
        for key in one:
            assert one[key].tobytes() == three[key].tobytes()
        assert len(three.files) == 3
    # A shard made with other parameters cannot join the store silently.
    with h5py.File(tmp_path / "three" / "shard-00001-of-00003.h5", "a") as handle:
        handle.attrs["params"] = json.dumps({"n_mels": 1})
    code, _, err = cli("features", "check", tmp_path / "three")
    assert code == 2 and "made by another extractor or parameters" in err


def test_store_dataset_view(cli, speech, tmp_path):
    cli("features", "logmel", "--manifest", speech, "--out", tmp_path / "lm", *LOGMEL)
    with FeatureStore(tmp_path / "lm") as store:
        keys = list(store)[:2]
        dataset = store.dataset(keys, labels={keys[0]: 0, keys[1]: 1})
        features, label = dataset[1]
        assert len(dataset) == 2 and label == 1
        assert tuple(features.shape) == (64, 121) and str(features.dtype) == "torch.float32"
