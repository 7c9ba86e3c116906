"""The networks' training recipe: per-fold standardisation, class weights, the fixed budget."""

from __future__ import annotations

import numpy as np
import pytest

from avtool.core.errors import ConfigError
from avtool.recipes.ser.config import RECIPE, SerConfig
from avtool.recipes.ser.fit import Scaler, class_weights, fit_network, network_probabilities


def test_scaler_uses_the_training_rows_only():
    train = np.array([[1.0, -300.0], [3.0, -100.0]], np.float32)
    scaler = Scaler.fit(train, "global")
    assert scaler.mean.tolist() == [2.0, -200.0]
    assert scaler(np.array([[2.0, -200.0], [4.0, 0.0]], np.float32)) == pytest.approx(
        np.array([[0.0, 0.0], [2.0, 2.0]]), abs=1e-5
    )
    assert Scaler.fit(train, "none")(train) == pytest.approx(train)


def test_block_scaling_keeps_each_blocks_shape():
    rng = np.random.default_rng(0)
    envelope = np.linspace(-300, 50, 160).astype(np.float32)
    train = envelope + rng.normal(size=(30, 160)).astype(np.float32)
    scaled = Scaler.fit(train, "block")(train)
    for block in range(4):
        rows = scaled[:, 40 * block : 40 * (block + 1)]
        assert rows.mean() == pytest.approx(0, abs=1e-4)
        assert rows.std() == pytest.approx(1, abs=1e-4)
        # one scale per block: the envelope still rises along each block
        assert (np.diff(rows.mean(axis=0)) > 0).mean() > 0.9
    with pytest.raises(ConfigError, match="standardize=block scales blocks of 40"):
        Scaler.fit(train[:, :150], "block")


def test_report_networks_default_to_block_scaling():
    assert SerConfig(model="cnn").scaling() == "block"
    assert SerConfig(model="lstm").scaling() == "block"
    assert SerConfig(model="mlp").scaling() == "global"
    assert SerConfig(model="svc").scaling() == "global"
    assert SerConfig(model="cnn", standardize="actor").scaling() == "actor"


def test_class_weights_make_neutral_count_like_the_others():
    y = np.array([0] * 2 + [1] * 4 + [2] * 4)
    weights = class_weights(y)
    assert weights[:3] == pytest.approx([10 / 6, 10 / 12, 10 / 12])
    assert weights[3:].tolist() == [0.0] * 5  # absent classes
    assert (weights[y]).sum() == pytest.approx(len(y))


def test_config_falls_back_to_each_models_recipe():
    assert SerConfig(model="mlp").recipe("epochs") == RECIPE["mlp"]["epochs"]
    assert SerConfig(model="cnn", epochs=5).recipe("epochs") == 5
    assert SerConfig(model="cnn").recipe("dropout") == RECIPE["cnn"]["dropout"]


def test_mlp_learns_separable_classes_and_is_deterministic():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(8, 20)) * 2
    y = np.repeat(np.arange(8), 12)
    x = (centres[y] + rng.normal(size=(len(y), 20))).astype(np.float32)
    config = SerConfig(model="mlp", epochs=30)
    first = network_probabilities([fit_network(x, y, config, seed=0)], x)
    second = network_probabilities([fit_network(x, y, config, seed=0)], x)
    assert first == pytest.approx(second)
    assert (first.argmax(axis=1) == y).mean() > 0.9
    assert first.sum(axis=1) == pytest.approx(np.ones(len(y)), abs=1e-5)
