"""SER on real features: every model under both protocols, beside the shipped reference lines.

Data: `../shared/data/ravdess_features/ravdess_actors11-24_160d.npz` (the report's 160-d vectors
of the 840 speech files of RAVDESS actors 11-24), imported with `avtool features import`, then
`train ser` + `evaluate ser` per model, protocol and seed, through the same stages a user runs.
Protocols: `random` (stratified 80/20, split_seed 0) and `actors` (folds of 2 actors, all 7 by
default). Each cell is the mean ± std of the test accuracy over every fold and seed; the
reference lines are scikit-learn's on exactly these vectors (the data's README). Also prints the
per-class recall of the best network under the speaker-independent protocol, summed over seeds.

    .venv/bin/python bench/ser_real.py [--models mlp,cnn] [--seeds 3] [--jobs 2] [--work DIR]

Runs are stages under --work, so an interrupted bench resumes where it stopped. Times are on a
shared machine: compare them only within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "ravdess_features"
NPZ = DATA / "ravdess_actors11-24_160d.npz"
# From the data's README (scikit-learn 1.9 on these vectors): random 80/20, actors mean ± std.
REFERENCE = {
    "SVC (RBF, C=10), reference": (0.679, None, 0.432, 0.047),
    "Random forest (500 trees), reference": (0.673, None, 0.408, 0.069),
    "Logistic regression, reference": (0.494, None, 0.380, 0.054),
}
MODELS = ("lstm", "cnn", "cnn_lstm", "mlp", "svc", "rf", "logreg")
NETWORKS = ("lstm", "cnn", "cnn_lstm", "mlp")


def _job(args: tuple) -> dict:
    """Train and evaluate one (model, protocol, seed) run; returns its results.json."""
    import torch

    from avtool.core.config import from_dict
    from avtool.recipes.ser import SerConfig, evaluate_ser, train_ser

    store, run, model, split, seed, folds, overrides, threads = args
    torch.set_num_threads(threads)
    config = from_dict(
        SerConfig, {"model": model, "split": split, "seed": seed, "folds": folds, **overrides}
    )
    started = time.time()
    train_ser(store, store / "manifest.jsonl", run, config)
    evaluate_ser(run)
    results = json.loads((run / "evaluation" / "results.json").read_text())
    results["seconds"] = time.time() - started
    print(
        f"  {model:9s} {split:7s} seed {seed}: {100 * results['accuracy']:.1f}% "
        f"({results['seconds']:.0f} s)",
        flush=True,
    )
    return results


def seed_ensemble(runs: list[Path], features: dict[str, np.ndarray]) -> list[float]:
    """Per fold, the accuracy of the softmax mean of every run's networks: what one
    `train ser --seed S --seeds N` run gives, whose members are seeds S..S+N-1, here the
    bench's N one-seed runs."""
    from avtool.corpora.ravdess import parse_name
    from avtool.recipes.ser.fit import Scaler, network_probabilities
    from avtool.recipes.ser.train import fold_dir, fold_networks, run_config

    config = run_config(runs[0])
    accuracies = []
    for index in range(len(list(runs[0].glob("fold-*")))):
        records = [json.loads((fold_dir(run, index) / "fold.json").read_text()) for run in runs]
        ids = records[0]["test_ids"]
        x = np.stack([features[i] for i in ids])
        y = np.array([parse_name(f"{i}.wav")["emotion_code"] - 1 for i in ids])
        scaler = Scaler(records[0]["scaler"]["mean"], records[0]["scaler"]["std"])
        models = [
            m
            for run, r in zip(runs, records, strict=True)
            for m in fold_networks(run, config, r, x.shape[1])
        ]
        predicted = network_probabilities(models, scaler(x)).argmax(axis=1)
        accuracies.append(float((predicted == y).mean()))
    return accuracies


def _cell(accuracies: list[float], runs: int) -> str:
    if not accuracies:
        return "–"
    if len(accuracies) == 1:
        return f"{100 * accuracies[0]:.1f}%"
    shape = f"{len(accuracies) // runs} folds x {runs} seeds"
    return f"{100 * np.mean(accuracies):.1f}% ± {100 * np.std(accuracies):.1f} ({shape})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", nargs="?", help="ignored (bench/run.py passes the bench's name)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated [all]")
    parser.add_argument("--protocols", default="random,actors", help="[random,actors]")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per network [3]")
    parser.add_argument("--folds", type=int, default=0, help="actor folds; 0 = all 7 [0]")
    parser.add_argument(
        "--per-model", default="", help="model=SEEDS[:FOLDS],... e.g. lstm=1:3 (CPU budget)"
    )
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs [2]")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run [1]")
    parser.add_argument("--work", type=Path, default=Path("data/bench/ser_real"))
    parser.add_argument("--set", action="append", default=[], help="SerConfig key=value")
    args = parser.parse_args()
    if not NPZ.exists():
        print(f"ser_real: skipped, {NPZ} is absent")
        return
    from avtool.core.config import parse_set
    from avtool.features.imported import ImportConfig, import_features

    overrides = {}
    for expression in args.set:
        keys, value = parse_set(expression)
        overrides[keys[0]] = value
    store = args.work / "features"
    import_features(NPZ, store, ImportConfig(describes="ser-mfcc 160-d", manifest="ravdess"))
    models = [m for m in args.models.split(",") if m]
    protocols = [p for p in args.protocols.split(",") if p]
    budget = {m: (args.seeds if m in (*NETWORKS, "rf") else 1, args.folds) for m in models}
    for entry in filter(None, args.per_model.split(",")):
        model, _, spec = entry.partition("=")
        seeds, _, folds = spec.partition(":")
        budget[model] = (int(seeds), int(folds or args.folds))
    jobs = [
        (store, args.work / "runs" / protocol / model / f"seed-{seed}", model, protocol, seed,
         budget[model][1] if protocol == "actors" else 0, overrides, args.threads)
        for model in models
        for protocol in protocols
        for seed in range(budget[model][0])
    ]  # fmt: skip
    started = time.time()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(_job, jobs))
    seconds = time.time() - started
    table: dict[tuple[str, str], list[dict]] = {}
    for job, result in zip(jobs, results, strict=True):
        table.setdefault((job[2], job[3]), []).append(result)

    def accuracies(model: str, protocol: str) -> list[float]:
        runs = table.get((model, protocol), [])
        return [fold["accuracy"] for run in runs for fold in run["folds"]]

    print(f"\nSER on real RAVDESS features (actors 11-24, 840 files), {seconds:.0f} s in all")
    print("mean ± std of test accuracy over folds x seeds; chance 12.5%\n")
    print("| model | random 80/20 | speaker-independent (2 actors per fold) | s/run |")
    print("|---|---|---|---|")
    for model in models:
        runs = [r for p in protocols for r in table.get((model, p), [])]
        mean_seconds = np.mean([r["seconds"] for r in runs]) if runs else 0
        cells = [
            _cell(accuracies(model, protocol), len(table.get((model, protocol), [])) or 1)
            for protocol in ("random", "actors")
        ]
        print(f"| {model} | {cells[0]} | {cells[1]} | {mean_seconds:.0f} |")
    for name, (random, _, actors, actors_std) in REFERENCE.items():
        print(
            f"| {name} | {100 * random:.1f}% | {100 * actors:.1f}% ± {100 * actors_std:.1f} | – |"
        )
    networks = [m for m in models if m in NETWORKS and (m, "actors") in table]
    if networks:
        best = max(networks, key=lambda m: np.mean(accuracies(m, "actors")))
        confusion = sum(np.asarray(r["confusion"]) for r in table[(best, "actors")])
        recall = confusion.diagonal() / confusion.sum(axis=1)
        from avtool.corpora.ravdess import EMOTIONS

        print(
            f"\nBest network speaker-independent: {best}; confusion (rows true, summed over "
            f"{len(table[(best, 'actors')])} seeds), per-class recall:"
        )
        print("| true \\ predicted | " + " | ".join(e[:4] for e in EMOTIONS) + " | recall |")
        print("|---|" + "---|" * (len(EMOTIONS) + 1))
        for emotion, row, value in zip(EMOTIONS, confusion, recall, strict=True):
            print(f"| {emotion} | " + " | ".join(map(str, row)) + f" | {100 * value:.0f}% |")
    seed_runs: dict[tuple[str, str], list[Path]] = {}
    for job in jobs:
        seed_runs.setdefault((job[2], job[3]), []).append(job[1])
    ensembles = {
        key: runs for key, runs in seed_runs.items() if key[0] in NETWORKS and len(runs) > 1
    }
    if ensembles:
        data = np.load(NPZ)
        features = {
            str(name).rsplit(".", 1)[0]: row
            for name, row in zip(data["filenames"], data["features"], strict=True)
        }
        print(
            "\nSoftmax mean of the seeds' networks per fold (what `train ser --seeds N` gives: "
            "one ensemble per fold, so the spread is over folds only):\n"
        )
        print("| model | random 80/20 | speaker-independent (2 actors per fold) |")
        print("|---|---|---|")
        for model in [m for m in models if m in NETWORKS]:
            cells = []
            for protocol in ("random", "actors"):
                runs = ensembles.get((model, protocol))
                scores = seed_ensemble(runs, features) if runs else []
                cells.append(_cell(scores, 1).replace(" x 1 seeds", "") if scores else "–")
            print(
                f"| {model} ({len(ensembles.get((model, 'actors'), []))} seeds) | {cells[0]} | {cells[1]} |"
            )
    summary = {f"{m}/{p}": accuracies(m, p) for m, p in table}
    os.makedirs(args.work, exist_ok=True)
    (args.work / "accuracies.json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
