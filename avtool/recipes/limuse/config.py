"""LiMuSE recipe options, stage versions, Table 2 of the paper and its training recipes
(described in `train` and `quantize`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from avtool.core.errors import ConfigError
from avtool.models.limuse import LimuseModelConfig
from avtool.models.tasnet import TasNetConfig
from avtool.train.loop import TrainConfig

ARCHS = ("limuse", "tasnet")
TRAIN_VERSION = 1
QUANTIZE_VERSION = 1
EVALUATE_VERSION = 1
REPORT_VERSION = 1
PACKED = "model.avtq"
# Table 2 of the paper: (method, K) -> SI-SDR dB, #params, model size MB.
PAPER = {
    ("LiMuSE", 32): (16.72, "0.36M", "0.16MB"),
    ("LiMuSE", 16): (18.08, "0.96M", "0.40MB"),
    ("LiMuSE (w/o Q)", 32): (23.77, "0.36M", "1.44MB"),
    ("LiMuSE (w/o Q)", 16): (24.90, "0.96M", "3.84MB"),
    ("LiMuSE (w/o Q and VP)", 32): (18.60, "0.19M", "0.76MB"),
    ("LiMuSE (w/o Q and VP)", 16): (24.20, "0.52M", "2.08MB"),
    ("LiMuSE (w/o Q and VIS)", 32): (15.68, "0.22M", "0.88MB"),
    ("LiMuSE (w/o Q and VIS)", 16): (21.91, "0.55M", "2.20MB"),
    ("LiMuSE (w/o Q and GC)", 1): (23.67, "8.95M", "35.8MB"),
    ("TasNet (dual-channel)", 1): (19.94, "2.48M", "9.92MB"),
    ("TasNet (single-channel)", 1): (13.15, "2.48M", "9.92MB"),
}


def _paper_train_config() -> TrainConfig:
    return TrainConfig(
        epochs=50,
        batch_size=8,
        lr=1e-3,
        grad_clip=5.0,
        scheduler="plateau",
        plateau_factor=0.5,
        plateau_patience=1,  # halved when the 2nd epoch in a row brings no improvement
        early_stopping_patience=6,
        restore_best=True,
        device="auto",
        log_every=100,
    )


def _paper_quant_train_config() -> TrainConfig:
    config = _paper_train_config()
    config.epochs, config.lr = 10, 1e-4
    return config


@dataclass
class LimuseConfig:
    arch: str = "limuse"  # limuse | tasnet
    voiceprint: bool = True  # use the voiceprint cue (its size comes from the store)
    visual: bool = True  # use the visual cue
    visual_features: str = "mouth"  # mouth | mouth+identity (read_visual stores only)
    visual_order: str = "time"  # time | shuffled (ablation: frames permuted per item)
    model: LimuseModelConfig = field(default_factory=LimuseModelConfig)
    tasnet: TasNetConfig = field(default_factory=TasNetConfig)
    max_train_items: int = 0  # 0 = every training mixture
    train: TrainConfig = field(default_factory=_paper_train_config)

    def __post_init__(self) -> None:
        choices = (
            ("arch", ARCHS),
            ("visual_features", ("mouth", "mouth+identity")),
            ("visual_order", ("time", "shuffled")),
        )
        for name, allowed in choices:
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}={getattr(self, name)!r}: expected one of {allowed}")


@dataclass
class QuantizeConfig:
    weight_bits: int = 3
    act_bits: int = 8
    temperature_per_epoch: float = 5.0  # T = 5 x epoch
    check_items: int = 4  # mixtures on which packed and fake-quantized outputs are compared
    train: TrainConfig = field(default_factory=_paper_quant_train_config)

    def __post_init__(self) -> None:
        if not 2 <= self.weight_bits <= 8 or not 0 <= self.act_bits <= 16:
            raise ConfigError("weight_bits must lie in 2..8 and act_bits in 0..16 (0 = off)")
