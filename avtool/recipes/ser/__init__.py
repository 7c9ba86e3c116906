"""SER recipe: the report's networks and honest baselines on RAVDESS features, under the
report's random 80/20 split and a speaker-independent protocol, evaluated per fold.

Modules: `config` (options, model names, the report's figures), `data` (features, protocols),
`fit` (the networks' training recipe and where it departs from the report's; the baselines),
`train`, `evaluate`, `report` (the three stages).
"""

from avtool.recipes.ser.config import MODELS, SerConfig
from avtool.recipes.ser.data import protocol_folds
from avtool.recipes.ser.evaluate import evaluate_ser
from avtool.recipes.ser.report import report_ser
from avtool.recipes.ser.train import train_ser

__all__ = ["MODELS", "SerConfig", "evaluate_ser", "protocol_folds", "report_ser", "train_ser"]
