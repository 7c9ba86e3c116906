"""SER end to end through the CLI on a 4-actor synthetic RAVDESS: protocols, models, report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from avtool.core.errors import InputError
from avtool.corpora.ravdess import EMOTIONS
from avtool.recipes.ser import SerConfig, protocol_folds


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


def test_random_protocol_is_a_stratified_seeded_80_20_or_k_fold():
    items, y = _items(5)
    (fold,) = protocol_folds(items, y, SerConfig(split="random", split_seed=1))
    test = fold["test"]
    assert len(test) == round(0.2 * len(items))
    # Stratified: every emotion keeps its share in the test set (neutral has half as many).
    assert np.bincount(y[test], minlength=8).tolist() == [2, 4, 4, 4, 4, 4, 4, 4]
    again = protocol_folds(items, y, SerConfig(split="random", split_seed=1, seed=7))
    assert again[0]["test"].tolist() == test.tolist()  # the init seed does not move the split
    other = protocol_folds(items, y, SerConfig(split="random", split_seed=2))
    assert other[0]["test"].tolist() != test.tolist()
    assert sorted([*fold["train"], *test]) == list(range(len(items)))
    folds = protocol_folds(items, y, SerConfig(split="random", folds=5))
    assert len(folds) == 5
    assert sorted(i for f in folds for i in f["test"]) == list(range(len(items)))


def test_actor_protocol_leaves_two_actors_out_per_fold():
    items, y = _items(10)
    folds = protocol_folds(items, y, SerConfig(split="actors"))
    assert [f["test_actors"] for f in folds] == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
    for fold in folds:
        test_actors = {items[i]["actor"] for i in fold["test"]}
        train_actors = {items[i]["actor"] for i in fold["train"]}
        assert test_actors == set(fold["test_actors"]) and not test_actors & train_actors
        assert {a % 2 for a in test_actors} == {0, 1}  # one male, one female
        assert len(fold["train"]) + len(fold["test"]) == len(items)
    chosen = protocol_folds(items, y, SerConfig(split="actors", folds=2, split_seed=3))
    assert len(chosen) == 2 and all(f["test_actors"] in [g["test_actors"] for g in folds]
                                    for f in chosen)  # fmt: skip
    (single,) = protocol_folds(items, y, SerConfig(split="actors", test_actors=[3]))
    assert single["test_actors"] == [3] and len(single["test"]) == 30
    with pytest.raises(InputError, match="only 5 folds"):
        protocol_folds(items, y, SerConfig(split="actors", folds=6))
    with pytest.raises(InputError, match="not in the data"):
        protocol_folds(items, y, SerConfig(split="actors", test_actors=[11]))


def test_train_evaluate_report_end_to_end(cli, workspace):
    manifest = workspace / "prep" / "manifest.jsonl"
    runs = {
        "actors/cnn": ("cnn", "actors", workspace / "mfcc", "--epochs", "12"),
        "random/cnn": ("cnn", "random", workspace / "mfcc", "--epochs", "3"),
        "actors/svc": ("svc", "actors", workspace / "mfcc"),
        "random/w2v_rf": ("w2v_rf", "random", workspace / "w2v", "--set", "w2v_rf_trees=30"),
    }
    for name, (model, split, features, *extra) in runs.items():
        code, out, err = cli(
            "train", "ser", "--features", features, "--manifest", manifest,
            "--out", workspace / "runs" / name, "--model", model, "--split", split,
            "--set", "standardize=actor", *extra,
        )  # fmt: skip
        assert code == 0, err
        code, out, err = cli("evaluate", "ser", "--run", workspace / "runs" / name)
        assert code == 0, err
        assert f"model {model}, split {split}" in out

    results = json.loads((workspace / "runs/actors/cnn/evaluation/results.json").read_text())
    # Four actors: two folds of two actors, every file tested once.
    assert results["protocol"] == {"split": "actors", "folds": 2, "test_actors": [[1, 2], [3, 4]]}
    assert [f["test_actors"] for f in results["folds"]] == [[1, 2], [3, 4]]
    assert [f["test_items"] for f in results["folds"]] == [120, 120]
    accuracies = [f["accuracy"] for f in results["folds"]]
    assert results["accuracy"] == pytest.approx(np.mean(accuracies))
    assert results["accuracy_std"] == pytest.approx(np.std(accuracies))
    assert np.asarray(results["confusion"]).sum() == 240 and set(results["recall"]) == set(EMOTIONS)
    assert results["parameters"]["total"] == 166_984
    # Speaker-normalised CNN on unseen actors: clearly above chance (12.5%) after 12 epochs.
    assert results["accuracy"] > 0.25
    record = json.loads((workspace / "runs/actors/cnn/fold-00/fold.json").read_text())
    assert not set(record["train_ids"]) & set(record["test_ids"])
    assert (workspace / "runs/actors/cnn/fold-01/seed-0.pt").exists()

    code, out, err = cli(
        "report", "ser", "--out", workspace / "report",
        *[arg for name in runs for arg in ("--run", workspace / "runs" / name)],
    )  # fmt: skip
    assert code == 0, err
    table = (workspace / "report" / "table.md").read_text()
    lines = [line for line in table.splitlines() if line.startswith("| ")]
    rows = {" | ".join(line.split(" | ")[:2]): line for line in lines}
    # The report's 46.18% (CNN) and 48.61% (wav2vec2 + RF) only beside random 80/20 runs.
    assert "46.18%" in rows["| CNN | random 80/20"]
    assert "48.61%" in rows["| wav2vec2 + RF | random 80/20"]
    assert "n/a (other protocol)" in rows["| CNN | actors, 2 folds of 2"]
    assert table.count("46.18%") == 1
    assert "| SVC (baseline) | actors, 2 folds of 2 | 2 (" in table
    assert f"{100 * results['accuracy']:.2f}% ± {100 * results['accuracy_std']:.2f}" in table
    # One figure per run, none overwritten: random/cnn and actors/cnn both keep theirs.
    figures = sorted(p.name for p in (workspace / "report" / "figures").iterdir())
    assert figures == [
        "actors-cnn-confusion.png", "actors-svc-confusion.png",
        "random-cnn-confusion.png", "random-w2v_rf-confusion.png",
    ]  # fmt: skip
    assert "<table" in (workspace / "report" / "table.html").read_text()

    # Everything is stamped: a rerun does nothing; a changed config is refused.
    code, out, _ = cli("evaluate", "ser", "--run", workspace / "runs" / "actors" / "cnn")
    assert code == 0 and "up to date" in out
    code, _, err = cli(
        "train", "ser", "--features", workspace / "mfcc", "--manifest", manifest,
        "--out", workspace / "runs" / "actors" / "cnn", "--model", "lstm",
    )  # fmt: skip
    assert code == 2 and "--force" in err


def test_models_refuse_features_they_were_not_made_for(cli, workspace):
    manifest = workspace / "prep" / "manifest.jsonl"
    code, _, err = cli(
        "train", "ser", "--features", workspace / "w2v", "--manifest", manifest,
        "--out", workspace / "runs" / "bad", "--model", "cnn",
    )  # fmt: skip
    assert code == 2 and "160-d" in err
    code, _, err = cli(
        "train", "ser", "--features", workspace / "mfcc", "--manifest", manifest,
        "--out", workspace / "runs" / "bad-rf", "--model", "w2v_rf",
    )  # fmt: skip
    assert code == 2 and "extractor 'ser-mfcc'" in err and "--model rf" in err


def test_train_help_shows_every_default(cli):
    import re

    from avtool.recipes.ser.config import RECIPE

    code, out, _ = cli("train", "ser", "--help")
    assert code == 0
    text = re.sub(r"[\s│]+", " ", out)
    defaults = SerConfig()
    for option, value in [
        ("--model", defaults.model), ("--split", defaults.split), ("--folds", defaults.folds),
        ("--loss", defaults.loss), ("--seeds", defaults.seeds), ("--seed", defaults.seed),
        ("--split-seed", defaults.split_seed), ("--device", defaults.device),
    ]:  # fmt: skip
        assert re.search(rf"{option} .*?\(default: {value}\)", text), option
    budgets = ", ".join(f"{m} {RECIPE[m]['epochs']}" for m in ("lstm", "cnn", "cnn_lstm", "mlp"))
    assert f"(default: the model's: {budgets})" in text


@pytest.mark.parametrize(("model", "version", "stale"), [("lstm", 3, True), ("cnn", 3, False)])
def test_runs_of_a_changed_network_are_refused_until_retrained(tmp_path, model, version, stale):
    from avtool.recipes.ser.train import run_config

    (tmp_path / "stage.json").write_text(json.dumps({"name": "train.ser", "version": version}))
    (tmp_path / "summary.json").write_text("{}")
    (tmp_path / "config.yaml").write_text(f"model: {model}\n")
    if stale:
        with pytest.raises(InputError, match=r"older `train ser`.*--force"):
            run_config(tmp_path)
    else:
        assert run_config(tmp_path).model == model
