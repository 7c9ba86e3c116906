"""SER end to end through the CLI on a 4-actor synthetic RAVDESS: splits, models, report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avtool.corpora.ravdess import EMOTIONS
from avtool.recipes.ser import SerConfig, split_items


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    from avtool.cli.main import main

    root = tmp_path_factory.mktemp("ser")
    steps = [
        ("synth", "ravdess", "--out", root / "corpus", "--actors", "4"),
        ("prepare", "ravdess", "--root", root / "corpus", "--out", root / "prep"),
        ("features", "ser-mfcc", "--manifest", root / "prep/manifest.jsonl", "--out",
         root / "mfcc"),
        ("features", "wav2vec2", "--manifest", root / "prep/manifest.jsonl", "--out",
         root / "w2v", "--model", "random:tiny", "--allow-random-weights"),
    ]  # fmt: skip
    for step in steps:
        assert main([str(a) for a in step]) == 0, step
    return root


def _items(n_actors: int = 4) -> tuple[list[dict], np.ndarray]:
    items = [
        {"id": f"{a}-{e}-{k}", "actor": a, "emotion": emotion}
        for a in range(1, n_actors + 1)
        for e, emotion in enumerate(EMOTIONS)
        for k in range(4 if e else 2)
    ]
    return items, np.array([EMOTIONS.index(i["emotion"]) for i in items])


def test_random_split_is_the_reports_stratified_80_20():
    items, y = _items(5)
    split = split_items(items, y, SerConfig(split="random", seed=1))
    test = split["test"]
    assert len(test) == round(0.2 * len(items))
    # Stratified: every emotion keeps its share in the test set (neutral has half as many).
    assert np.bincount(y[test], minlength=8).tolist() == [2, 4, 4, 4, 4, 4, 4, 4]
    assert (
        split_items(items, y, SerConfig(split="random", seed=1))["test"].tolist() == test.tolist()
    )
    everything = np.concatenate([split["train"], split["val"], test])
    assert sorted(everything.tolist()) == list(range(len(items)))


def test_actor_split_holds_out_whole_actors_of_both_genders():
    items, y = _items(10)
    split = split_items(items, y, SerConfig(split="actors", seed=0))
    held = split["test_actors"]
    assert len(held) == 2 and {a % 2 for a in held} == {0, 1}
    test_actors = {items[i]["actor"] for i in split["test"]}
    train_actors = {items[i]["actor"] for i in np.concatenate([split["train"], split["val"]])}
    assert test_actors == set(held) and not test_actors & train_actors
    chosen = split_items(items, y, SerConfig(split="actors", test_actors=[3]))
    assert chosen["test_actors"] == [3] and len(chosen["test"]) == 30


def test_train_evaluate_report_end_to_end(cli, workspace):
    manifest = workspace / "prep" / "manifest.jsonl"
    runs = {
        "cnn_lstm": ("--features", workspace / "mfcc", "--epochs", "12"),
        "cnn": ("--features", workspace / "mfcc", "--epochs", "12", "--set", "standardize=actor"),
        "w2v_rf": ("--features", workspace / "w2v", "--set", "rf_trees=30"),
    }
    for model, extra in runs.items():
        code, out, err = cli(
            "train", "ser", "--manifest", manifest, "--out", workspace / "runs" / model,
            "--model", model, "--split", "actors", *extra,
        )  # fmt: skip
        assert code == 0, err
        code, out, err = cli("evaluate", "ser", "--run", workspace / "runs" / model)
        assert code == 0, err
        assert f"model {model}, split actors" in out

    results = json.loads((workspace / "runs/cnn_lstm/evaluation/results.json").read_text())
    assert results["protocol"] == {"split": "actors", "test_actors": [3]}
    assert results["test_items"] == 60  # one of four actors
    assert set(results["per_class_f1"]) == set(EMOTIONS)
    assert np.asarray(results["confusion"]).sum() == 60
    assert results["parameters"]["total"] == 379_112
    assert "macro avg" in results["classification_report_text"]
    assert (workspace / "runs/cnn_lstm/evaluation/confusion.png").stat().st_size > 5000
    summary = json.loads((workspace / "runs/cnn_lstm/summary.json").read_text())
    assert summary["epochs_run"] <= 12 and summary["counts"]["test"] == 60
    # Speaker-normalised CNN on an unseen actor: clearly above chance (12.5%) after 12 epochs.
    cnn = json.loads((workspace / "runs/cnn/evaluation/results.json").read_text())
    assert cnn["accuracy"] > 0.25

    code, out, err = cli(
        "report", "ser", "--out", workspace / "report",
        *[arg for model in runs for arg in ("--run", workspace / "runs" / model)],
    )  # fmt: skip
    assert code == 0, err
    table = (workspace / "report" / "table.md").read_text()
    assert "| CNN + LSTM | actors 3 held out | 379,112 |" in table
    assert "| wav2vec2 + RF |" in table and "63.89%" in table
    assert (workspace / "report" / "figures" / "cnn-confusion.png").exists()
    assert "<table" in (workspace / "report" / "table.html").read_text()

    # Everything is stamped: a rerun does nothing; a changed config is refused.
    code, out, _ = cli("evaluate", "ser", "--run", workspace / "runs" / "cnn")
    assert code == 0 and "up to date" in out
    code, _, err = cli(
        "train", "ser", "--features", workspace / "mfcc", "--manifest", manifest,
        "--out", workspace / "runs" / "cnn", "--model", "lstm",
    )  # fmt: skip
    assert code == 2 and "--force" in err


def test_networks_refuse_features_that_are_not_160_d(cli, workspace):
    code, _, err = cli(
        "train", "ser", "--features", workspace / "w2v", "--manifest",
        workspace / "prep" / "manifest.jsonl", "--out", workspace / "runs" / "bad",
        "--model", "cnn",
    )  # fmt: skip
    assert code == 2 and "160-d" in err
