"""SER data: feature vectors from a store, speaker normalisation, and the two protocols' folds.

- `random`: stratified by emotion and seeded (`split_seed`). One `test_size` split (the report's
  80/20) by default, or a stratified K-fold with `folds: K`. The same actors appear in training
  and test, so it measures recognition of known voices.
- `actors`: speaker-independent. Actors are sorted and grouped `actors_per_fold` at a time
  (2 by default: RAVDESS numbers a male and a female actor consecutively, so a pair holds one
  of each); each group is one fold's test set. `folds: K` runs K of those groups, chosen by
  `split_seed`; `test_actors` runs the one fold of those actors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.corpora.ravdess import EMOTIONS
from avtool.recipes.ser.config import SerConfig


def load_features(
    features: Path, manifest: Path
) -> tuple[list[dict], np.ndarray, np.ndarray, dict[str, Any]]:
    """(manifest items in the store, features [N, D], emotion indices [N], store attributes).

    Per-frame sequences ([frames, D] items) are reduced to their time mean.
    """
    from avtool.core.manifest import read_manifest
    from avtool.core.store import FeatureStore

    with FeatureStore(features) as store:
        items = [item for item in read_manifest(manifest) if item["id"] in store]
        if not items:
            raise InputError(f"{features}: no item of {manifest} is in the store; extract first")
        unknown = [item["id"] for item in items if item.get("emotion") not in EMOTIONS]
        if unknown:
            raise InputError(
                f"{manifest}: items without a RAVDESS emotion (e.g. {unknown[0]}); "
                "use the manifest of `avtool prepare ravdess` or `avtool features import`"
            )
        x = np.stack([np.atleast_2d(store[item["id"]]).mean(axis=0) for item in items])
        attrs = dict(store.attrs)
    y = np.array([EMOTIONS.index(item["emotion"]) for item in items])
    return items, x.astype(np.float32), y, attrs


def normalize_per_actor(items: list[dict], x: np.ndarray) -> np.ndarray:
    """Each actor's rows standardised by that actor's mean and deviation (no labels used)."""
    actors = np.array([int(item["actor"]) for item in items])
    out = np.empty_like(x)
    for actor in np.unique(actors):
        rows = actors == actor
        out[rows] = (x[rows] - x[rows].mean(axis=0)) / (x[rows].std(axis=0) + 1e-6)
    return out


def prepared_features(
    features: Path, manifest: Path, config: SerConfig
) -> tuple[list[dict], np.ndarray, np.ndarray, dict[str, Any]]:
    """`load_features`, speaker-normalised when the config's scaling is "actor"."""
    items, x, y, attrs = load_features(features, manifest)
    if config.scaling() == "actor":
        x = normalize_per_actor(items, x)
    return items, x, y, attrs


def actor_groups(items: list[dict], config: SerConfig) -> list[list[int]]:
    """The actors each fold holds out under the `actors` protocol."""
    actors = sorted({int(item["actor"]) for item in items})
    if config.test_actors:
        missing = sorted(set(config.test_actors) - set(actors))
        if missing:
            raise InputError(f"test_actors {missing}: not in the data (actors {actors})")
        if set(config.test_actors) == set(actors):
            raise InputError("test_actors: every actor is held out; nothing is left to train on")
        return [sorted(config.test_actors)]
    size = config.actors_per_fold
    if len(actors) <= size:
        raise InputError(
            f"--split actors holds out {size} actors per fold; the data has only {actors}"
        )
    groups = [actors[i : i + size] for i in range(0, len(actors), size)]
    if config.folds and config.folds < len(groups):
        chosen = np.random.default_rng(config.split_seed).permutation(len(groups))
        groups = [groups[i] for i in sorted(chosen[: config.folds])]
    elif config.folds > len(groups):
        raise InputError(
            f"--folds {config.folds}: {len(actors)} actors make only {len(groups)} folds of "
            f"{size}; lower --folds or actors_per_fold"
        )
    return groups


def protocol_folds(items: list[dict], y: np.ndarray, config: SerConfig) -> list[dict[str, Any]]:
    """Every fold: {"train": indices, "test": indices, plus what defines it}."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    everything = np.arange(len(items))
    if config.split == "random":
        if config.folds <= 1:
            train, test = train_test_split(
                everything, test_size=config.test_size, stratify=y, random_state=config.split_seed
            )
            return [{"train": np.sort(train), "test": np.sort(test)}]
        splitter = StratifiedKFold(config.folds, shuffle=True, random_state=config.split_seed)
        return [
            {"train": np.sort(train), "test": np.sort(test)}
            for train, test in splitter.split(everything, y)
        ]
    actors = np.array([int(item["actor"]) for item in items])
    return [
        {
            "train": everything[~np.isin(actors, group)],
            "test": everything[np.isin(actors, group)],
            "test_actors": group,
        }
        for group in actor_groups(items, config)
    ]


def describe_protocol(config: SerConfig, folds: list[dict[str, Any]]) -> dict[str, Any]:
    """The protocol as results.json and the report state it."""
    if config.split == "random":
        if len(folds) == 1:
            return {"split": "random", "test_size": config.test_size, "folds": 1}
        return {"split": "random", "folds": len(folds)}
    return {
        "split": "actors",
        "folds": len(folds),
        "test_actors": [fold["test_actors"] for fold in folds],
    }


def is_paper_protocol(protocol: dict[str, Any]) -> bool:
    """The report's own protocol: one stratified random 80/20 split."""
    return (
        protocol.get("split") == "random"
        and protocol.get("folds", 1) == 1
        and protocol.get("test_size") == 0.2
    )
