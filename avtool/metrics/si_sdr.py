"""Scale-invariant SDR (LiMuSE eq. 7): torchmetrics for scores, a closed-form loss for training.

SI-SDR = 10 log10(||s_t||^2 / ||e||^2), s_t = <s^, s> s / ||s||^2, e = s^ - s_t, on
zero-mean signals (torchmetrics' `zero_mean=True`, as in Conv-TasNet and the authors' code).
SI-SDR improvement (SI-SDRi) is the estimate's SI-SDR minus the unprocessed mixture's (its
reference microphone) against the same target.

Scores (`si_sdr`, `si_sdr_improvement`) come from torchmetrics. The training loss is the same
formula written out in torch (`si_sdr_loss_terms`), tested equal to torchmetrics: importing
torchmetrics costs ~5 s of CPU, paid by every training process otherwise.
"""

from __future__ import annotations

from typing import Any


def si_sdr(estimate: Any, target: Any) -> Any:
    """SI-SDR in dB over the last axis, from torchmetrics (torch tensors in and out)."""
    from torchmetrics.functional.audio import scale_invariant_signal_distortion_ratio

    return scale_invariant_signal_distortion_ratio(estimate, target, zero_mean=True)


def si_sdr_improvement(estimate: Any, mixture: Any, target: Any) -> tuple[Any, Any]:
    """(SI-SDR of the estimate, SI-SDRi over the mixture) against `target`."""
    value = si_sdr(estimate, target)
    return value, value - si_sdr(mixture, target)


def differentiable_si_sdr(estimate: Any, target: Any) -> Any:
    """SI-SDR in dB over the last axis, torchmetrics' formula (same eps), for training."""
    import torch

    eps = torch.finfo(estimate.dtype).eps
    estimate = estimate - estimate.mean(dim=-1, keepdim=True)
    target = target - target.mean(dim=-1, keepdim=True)
    scale = ((estimate * target).sum(-1, keepdim=True) + eps) / (
        (target**2).sum(-1, keepdim=True) + eps
    )
    projection = scale * target
    noise = projection - estimate
    ratio = ((projection**2).sum(-1) + eps) / ((noise**2).sum(-1) + eps)
    return 10 * torch.log10(ratio)


def negative_si_sdr(estimate: Any, target: Any) -> Any:
    """The training loss: minus the batch mean of the SI-SDR."""
    return -differentiable_si_sdr(estimate, target).mean()
