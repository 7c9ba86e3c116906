"""SER recipe options, model names and the report's published figures."""

from __future__ import annotations

from dataclasses import dataclass, field

from avtool.core.errors import ConfigError

NETWORKS = ("lstm", "cnn", "cnn_lstm", "mlp")
REPORT_NETWORKS = ("lstm", "cnn", "cnn_lstm")
BASELINES = ("svc", "rf", "logreg")
MODELS = (*NETWORKS, *BASELINES, "w2v_rf")
SPLITS = ("random", "actors")
STANDARDIZE = ("auto", "global", "block", "actor", "none")
DISPLAY = {
    "lstm": "LSTM",
    "cnn": "CNN",
    "cnn_lstm": "CNN + LSTM",
    "mlp": "MLP (baseline)",
    "svc": "SVC (baseline)",
    "rf": "Random forest (baseline)",
    "logreg": "Logistic regression (baseline)",
    "w2v_rf": "wav2vec2 + RF",
}
# The report's figures, all on its random 80/20 split of the 1440 speech files.
PAPER = {
    "lstm": {"train": 0.2161, "test": 0.2188},
    "cnn": {"train": 0.4557, "test": 0.4618},
    "cnn_lstm": {"train": 0.8828, "test": 0.6389},
    "w2v_rf": {"train": 1.0, "test": 0.4861},
}
# Each network's training defaults (a fixed epoch budget, no early stopping), set once in
# development on the 840 real vectors of actors 11-24 (see fit.py), the same for every fold.
# The MLP, small and cheap, takes more epochs and stronger regularisation.
# The LSTM, which must carry 160 steps to its last state, learns only with many small steps.
_COMMON = {"batch_size": 32, "lr": 3e-3, "dropout": 0.3, "weight_decay": 0.01, "input_noise": 0.1}
RECIPE = {
    "lstm": {**_COMMON, "epochs": 50, "batch_size": 8, "lr": 2e-3},
    "cnn": {**_COMMON, "epochs": 60},
    "cnn_lstm": {**_COMMON, "epochs": 40},
    "mlp": {**_COMMON, "epochs": 200, "dropout": 0.5, "weight_decay": 0.05, "input_noise": 0.3},
}


@dataclass
class SerConfig:
    model: str = "cnn_lstm"
    split: str = "random"  # random (stratified, seeded) | actors (speaker-independent)
    folds: int = 0  # random: 0/1 = one test_size split, K = stratified K-fold; actors: 0 = all
    test_size: float = 0.2  # random split with folds 0/1
    actors_per_fold: int = 2  # actors split: actors held out together in each fold
    test_actors: list[int] = field(default_factory=list)  # actors split: one fold of these
    split_seed: int = 0  # which files / actors go to test; the same for every model
    seed: int = 0  # first initialisation seed (and the forests' seed)
    seeds: int = 1  # networks: an ensemble of this many seeds per fold, softmax averaged
    # How the training folds' statistics scale the vector: global (per dimension), block (one
    # mean/std per 40-d block: MFCC, delta, delta-delta, log-mel), actor (each actor's rows by
    # that actor's own statistics, then global), none; auto = block for the report's networks,
    # which read the vector as a sequence, global for the rest (see fit.py).
    standardize: str = "auto"
    # Network training (see fit.py): fixed budget, AdamW, one-cycle, label smoothing.
    # epochs, batch_size, lr, dropout, weight_decay, input_noise: null = the model's RECIPE.
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None  # the one-cycle schedule's peak
    weight_decay: float | None = None
    schedule: str = "onecycle"  # onecycle | cosine | constant
    loss: str = "ce"  # ce | focal (the report's)
    label_smoothing: float = 0.1
    class_balance: bool = True  # weight classes by inverse frequency (neutral has half)
    dropout: float | None = None
    input_noise: float | None = None  # std of Gaussian noise on the standardised inputs
    mixup: float = 0.0  # Beta(a, a) mixup of training pairs; 0 = off
    focal_alpha: float = 0.25
    focal_gamma: float = 2.0
    device: str = "cpu"
    # Baselines (scikit-learn).
    svc_c: float = 10.0
    rf_trees: int = 500  # rf; w2v_rf uses w2v_rf_trees
    w2v_rf_trees: int = 100  # scikit-learn's default; the report gives none

    def __post_init__(self) -> None:
        choices = (
            ("model", MODELS),
            ("split", SPLITS),
            ("loss", ("focal", "ce")),
            ("standardize", STANDARDIZE),
            ("schedule", ("onecycle", "cosine", "constant")),
        )
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected one of {allowed}")
        if not 0 < self.test_size < 1:
            raise ConfigError("test_size must lie strictly between 0 and 1")
        if self.folds < 0:
            raise ConfigError(f"folds={self.folds}: must be 0 (default) or more")
        if self.epochs is not None and self.epochs < 1:
            raise ConfigError(f"epochs={self.epochs}: must be at least 1, or null (the model's)")
        for name in ("seeds", "batch_size", "actors_per_fold"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ConfigError(f"{name}={getattr(self, name)}: must be at least 1")

    def scaling(self) -> str:
        """The standardisation this model gets: `standardize`, with auto resolved."""
        if self.standardize != "auto":
            return self.standardize
        return "block" if self.model in REPORT_NETWORKS else "global"

    def recipe(self, name: str) -> float:
        """A training setting: the configured value, else the model's default in RECIPE."""
        value = getattr(self, name)
        return value if value is not None else RECIPE.get(self.model, RECIPE["cnn"])[name]
