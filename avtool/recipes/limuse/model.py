"""The networks of a run, their loss and validation, and Table 2's model-size reference.

Where avtool departs from the paper: the TasNet baselines separate without a cue and are
scored with their output nearer the target. Model size: bytes of the packed file for a
quantized run, 4 x #params for a full-precision one (the paper's convention); compression
ratio against the fp32 no-GC model of the same cue sizes.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from avtool.models.limuse import LimuseModelConfig
from avtool.models.tasnet import TasNetConfig
from avtool.recipes.limuse.config import LimuseConfig


def build_model(header: dict[str, Any]):
    """The network of a run's header ({"arch", "model"}), unquantized."""
    from avtool.core.config import from_dict
    from avtool.models.limuse import LiMuSE
    from avtool.models.tasnet import TasNet

    if header["arch"] == "tasnet":
        return TasNet(from_dict(TasNetConfig, header["model"]))
    return LiMuSE(from_dict(LimuseModelConfig, header["model"]))


def forward(model, mixture, voiceprint, visual):
    return model(
        mixture, voiceprint if voiceprint.numel() else None, visual if visual.numel() else None
    )


def estimate_target(model, arch: str, mixture, voiceprint, visual, target):
    """The target estimate [B, S]: for TasNet, the output with the higher SI-SDR."""
    import torch

    from avtool.metrics.si_sdr import differentiable_si_sdr as si_sdr

    output = forward(model, mixture, voiceprint, visual)
    if arch != "tasnet":
        return output
    scores = si_sdr(output, target.unsqueeze(1).expand_as(output))
    return output[torch.arange(len(output)), scores.argmax(dim=1)]


def loss(model, arch: str, batch) -> Any:
    import torch

    from avtool.metrics.si_sdr import differentiable_si_sdr as si_sdr
    from avtool.metrics.si_sdr import negative_si_sdr

    mixture, voiceprint, visual, target = batch
    output = forward(model, mixture, voiceprint, visual)
    if arch != "tasnet":
        return negative_si_sdr(output, target)
    # uPIT over (target, interferer at microphone 0 = mixture - target).
    sources = torch.stack([target, mixture[:, 0] - target], dim=1)
    direct = si_sdr(output, sources).mean(dim=1)
    swapped = si_sdr(output, sources.flip(1)).mean(dim=1)
    return -torch.maximum(direct, swapped).mean()


def validate(arch: str):
    def evaluate(model, teacher, loader) -> dict[str, float]:
        from avtool.metrics.si_sdr import differentiable_si_sdr as si_sdr

        total, count = 0.0, 0
        for mixture, voiceprint, visual, target in loader:
            estimate = estimate_target(model, arch, mixture, voiceprint, visual, target)
            total += float(si_sdr(estimate, target).sum())
            count += len(target)
        return {"loss": -total / max(count, 1), "si_sdr": total / max(count, 1)}

    return evaluate


def run_header(config: LimuseConfig, dims: dict[str, int]) -> dict[str, Any]:
    if config.arch == "tasnet":
        return {"arch": "tasnet", "model": asdict(config.tasnet)}
    model = asdict(config.model)
    model["voiceprint_dim"] = dims["voiceprint_dim"] if config.voiceprint else 0
    model["face_dim"] = dims["face_dim"] if config.visual else 0
    return {"arch": "limuse", "model": model}


def parameter_count(model) -> int:
    return sum(p.numel() for p in model.parameters())


def fp32_no_gc_bytes(header: dict[str, Any]) -> int:
    """Bytes of the fp32 no-GC LiMuSE with the run's cue sizes: Table 2's reference."""
    model = dict(header["model"]) if header["arch"] == "limuse" else asdict(LimuseModelConfig())
    model["groups"] = 1
    return 4 * parameter_count(build_model({"arch": "limuse", "model": model}))
