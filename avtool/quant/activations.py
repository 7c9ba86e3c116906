"""8-bit min-max linear activation quantization (LiMuSE eqs. 5-6) with a straight-through
gradient: Q(x) = round((x - x_min) / s) * s + x_min, s = (x_max - x_min) / (2^n - 1).

x_min and x_max are those of the whole tensor (as in the authors' code), so a layer's grid
depends on the batch; evaluate one mixture at a time for results independent of batching.
"""

from __future__ import annotations

import torch


def minmax_quantize(
    x: torch.Tensor,
    bits: int,
    low: torch.Tensor | None = None,
    high: torch.Tensor | None = None,
) -> torch.Tensor:
    """`x` on a (2^bits)-level grid spanning [low, high] (default: x's min and max).

    The forward value is the quantized one; the gradient passes straight through to `x`.
    """
    with torch.no_grad():
        if low is None and high is None:
            low, high = torch.aminmax(x)  # one pass instead of two
        elif low is None or high is None:
            low, high = (x.min(), high) if low is None else (low, x.max())
        step = (high - low).clamp_min(1e-12) / (2**bits - 1)
        quantized = (x - low).div_(step).round_().mul_(step).add_(low)
    if not x.requires_grad:  # inference: no gradient to pass through
        return quantized
    return x + (quantized - x).detach()
