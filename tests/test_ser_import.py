"""`avtool features import`: arrays from an .npz into a store, a RAVDESS manifest from names;
and the check on the shipped real RAVDESS features (skipped where they are absent)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from avtool.core.store import FeatureStore

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess_features"
REAL_NPZ = REAL / "ravdess_actors11-24_160d.npz"


def _npz(path: Path, names: list[str], dim: int = 4) -> Path:
    features = np.arange(len(names) * dim, dtype=np.float32).reshape(len(names), dim)
    np.savez(path, features=features, filenames=np.array(names))
    return path


def test_import_stores_rows_under_ids_from_names_and_writes_a_ravdess_manifest(cli, tmp_path):
    names = ["Actor_12/03-01-05-02-01-01-12.wav", "03-01-01-01-02-02-11.wav", "notes.wav"]
    npz = _npz(tmp_path / "f.npz", names)
    out = tmp_path / "store"
    code, stdout, err = cli(
        "features", "import", "--npz", npz, "--out", out, "--manifest", "ravdess",
        "--describes", "toy vectors",
    )  # fmt: skip
    assert code == 0, err
    assert "items 3, manifest_items 2, rejected 1" in stdout
    with FeatureStore(out) as store:
        assert sorted(store) == ["03-01-01-01-02-02-11", "03-01-05-02-01-01-12", "notes"]
        assert store["03-01-05-02-01-01-12"].tolist() == [0.0, 1.0, 2.0, 3.0]
        assert store["notes"].tolist() == [8.0, 9.0, 10.0, 11.0]
        assert store.attrs["extractor"] == "imported"
        assert store.attrs["params"]["describes"] == "toy vectors"
        assert store.attrs["params"]["shape"] == [4]
    rows = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert [(r["id"], r["emotion"], r["actor"], r["gender"]) for r in rows] == [
        ("03-01-05-02-01-01-12", "angry", 12, "female"),
        ("03-01-01-01-02-02-11", "neutral", 11, "male"),
    ]
    (reject,) = [json.loads(line) for line in (out / "rejects.jsonl").read_text().splitlines()]
    assert reject["id"] == "notes" and "MM-CC-EE-II-SS-RR-AA" in reject["reason"]
    code, stdout, _ = cli("features", "import", "--npz", npz, "--out", out, "--manifest", "ravdess")
    assert code == 2  # another --describes: a changed config is refused without --force


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"features": np.zeros((2, 3))}, "no array named filenames"),
        ({"features": np.zeros((2, 3)), "filenames": np.array(["a.wav"])}, "2 feature rows"),
        ({"features": np.zeros(3), "filenames": np.array(["a.wav"])}, "[N, D]"),
        ({"features": np.full((1, 2), np.nan), "filenames": np.array(["a.wav"])}, "NaN"),
        ({"features": np.zeros((2, 2)), "filenames": np.array(["x/a.wav", "a.wav"])}, "twice"),
    ],
)
def test_import_refuses_bad_arrays_naming_the_file(cli, tmp_path, arrays, message):
    npz = tmp_path / "bad.npz"
    np.savez(npz, **arrays)
    code, _, err = cli("features", "import", "--npz", npz, "--out", tmp_path / "store")
    assert code == 2 and "bad.npz" in err and message in err


@pytest.mark.skipif(not REAL_NPZ.exists(), reason=f"real RAVDESS features absent ({REAL_NPZ})")
def test_real_features_reproduce_the_reference_svc(tmp_path):
    """The shipped vectors through import + `train ser` + `evaluate ser` give the README's SVC
    line exactly: 67.86% (114 of 168) on the random 80/20 split (random_state 0)."""
    from avtool.features.imported import ImportConfig, import_features
    from avtool.recipes.ser import SerConfig, evaluate_ser, train_ser

    store = tmp_path / "store"
    import_features(REAL_NPZ, store, ImportConfig(manifest="ravdess"))
    train_ser(store, store / "manifest.jsonl", tmp_path / "svc", SerConfig(model="svc"))
    results = evaluate_ser(tmp_path / "svc")
    assert results["test_items"] == 168
    assert results["accuracy"] == pytest.approx(114 / 168)
