"""LiMuSE recipe: train, quantize (3-bit weights, 8-bit activations), evaluate, Table 2.

Modules: `config` (options, stage versions, the paper's Table 2 and training recipe), `data`
(the mixtures with their voiceprint and visual cues; where the cues depart from the paper's),
`model` (the networks, loss, validation, model-size reference; how the TasNet baselines are
scored), `train`, `quantize`, `evaluate`, `report` (the four stages, each stamped and resumable
through `avtool.train.loop.fit` where it trains).
"""

from avtool.recipes.limuse.config import PAPER, LimuseConfig, QuantizeConfig
from avtool.recipes.limuse.data import LimuseMixtures
from avtool.recipes.limuse.evaluate import evaluate_limuse, load_run_model, method_name
from avtool.recipes.limuse.model import build_model
from avtool.recipes.limuse.quantize import quantize_limuse
from avtool.recipes.limuse.report import find_runs, report_limuse
from avtool.recipes.limuse.train import train_limuse

__all__ = [
    "PAPER",
    "LimuseConfig",
    "LimuseMixtures",
    "QuantizeConfig",
    "build_model",
    "evaluate_limuse",
    "find_runs",
    "load_run_model",
    "method_name",
    "quantize_limuse",
    "report_limuse",
    "train_limuse",
]
