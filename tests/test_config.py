from dataclasses import dataclass, field

import pytest
import yaml

from avtool.core.config import apply_overrides, config_hash, resolve, write_resolved
from avtool.core.errors import ConfigError, InputError


@dataclass
class Optim:
    lr: float = 0.001
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])


@dataclass
class Train:
    epochs: int = 10
    name: str = "run"
    optim: Optim = field(default_factory=Optim)
    clip: float | None = None


def test_defaults_then_file_then_flags_then_sets(tmp_path):
    config_file = tmp_path / "c.yaml"
    config_file.write_text("epochs: 20\noptim: {lr: 0.01}\nname: fromfile\n")
    cfg = resolve(
        Train, config_file, ["optim.lr=0.5", "clip=1"], flags={"name": "flag", "epochs": None}
    )
    assert cfg.epochs == 20  # file wins over default, None flag ignored
    assert cfg.name == "flag"  # flag wins over file
    assert cfg.optim.lr == 0.5 and isinstance(cfg.optim.lr, float)  # --set wins, int coerced
    assert cfg.optim.betas == [0.9, 0.999]
    assert cfg.clip == 1.0


def test_unknown_key_and_wrong_type_are_named():
    with pytest.raises(ConfigError, match=r"config.optim: unknown option\(s\) lrr"):
        resolve(Train, sets=["optim.lrr=1"])
    with pytest.raises(ConfigError, match=r"config.epochs: expected int, got 'ten'"):
        resolve(Train, sets=["epochs=ten"])
    with pytest.raises(ConfigError, match="expected key=value"):
        apply_overrides({}, ["novalue"])


def test_missing_config_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="config file not found"):
        resolve(Train, tmp_path / "nope.yaml")


def test_hash_is_order_independent_and_resolved_config_written(tmp_path):
    assert config_hash({"a": 1, "b": 2}) == config_hash({"b": 2, "a": 1})
    assert config_hash(Train()) != config_hash(Train(epochs=11))
    path = write_resolved(tmp_path, Train(epochs=3))
    assert yaml.safe_load(path.read_text())["epochs"] == 3
    assert config_hash(yaml.safe_load(path.read_text())) == config_hash(Train(epochs=3))
