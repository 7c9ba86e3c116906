"""Layer-wise non-uniform weight quantization networks (LiMuSE eqs. 1-4).

Training: Q(w) = alpha * (sum_i s_i sigmoid(T (beta w - b_i)) - o), a soft staircase whose
temperature T grows with the epochs (T = 5 x epoch) until it is the step function used at
inference: Q(w) = alpha * (sum_i s_i [beta w >= b_i] - o). With `bits` b the levels are the
integers -(2^(b-1) - 1) .. 2^(b-1) - 1 (3 bits: -3..3, q = 6 thresholds, s_i = 1, o = 3), so
the inference value is alpha * (code - o) with code = #{i : beta w >= b_i} in 0..q, which
fits in `bits` bits.

Initialisation: k-means of the layer's weights into q + 1 clusters (Lloyd's iterations in
one dimension, started from quantiles: scikit-learn's KMeans costs ~70 ms a layer, too much
for the ~170 layers of a model in the demo; the result is the same local optimum); the sorted
centres c_j fit alpha by least squares (c_j ~ alpha * level_j), beta = 1 / alpha, and the
thresholds sit half-way between neighbouring centres, in the beta-scaled domain. alpha and
beta are trained (the authors' code never passes them to the optimiser); the thresholds stay
fixed, as in the paper. Each quantizer is a `torch.nn.utils.parametrize` parametrization of
the layer's weight, so the layer's own forward uses the quantized weight.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def levels(bits: int) -> np.ndarray:
    top = 2 ** (bits - 1) - 1
    if top < 1:
        raise ValueError(f"weight bits {bits}: need at least 2")
    return np.arange(-top, top + 1, dtype=np.float64)


def kmeans_1d(values: np.ndarray, clusters: int, iterations: int = 50) -> np.ndarray:
    """Sorted k-means centres of scalar `values` (Lloyd's algorithm from quantile starts)."""
    ordered = np.sort(values)
    centres = np.quantile(ordered, (np.arange(clusters) + 0.5) / clusters)
    for _ in range(iterations):
        # In one dimension the clusters are the runs between neighbouring mid-points.
        cuts = np.searchsorted(ordered, (centres[:-1] + centres[1:]) / 2)
        parts = np.split(ordered, cuts)
        updated = np.array(
            [p.mean() if p.size else c for p, c in zip(parts, centres, strict=False)]
        )
        if np.allclose(updated, centres):
            break
        centres = updated
    return np.sort(centres)


class WeightQuantizer(nn.Module):
    def __init__(self, bits: int, alpha: float, beta: float, thresholds: np.ndarray) -> None:
        super().__init__()
        self.bits = bits
        self.alpha = nn.Parameter(torch.tensor(float(alpha)))
        self.beta = nn.Parameter(torch.tensor(float(beta)))
        self.register_buffer("thresholds", torch.as_tensor(thresholds, dtype=torch.float32))
        self.register_buffer("temperature", torch.tensor(5.0))
        self.offset = float(len(thresholds)) / 2

    @classmethod
    def from_weights(cls, weight: torch.Tensor, bits: int) -> WeightQuantizer:
        target = levels(bits)
        values = weight.detach().double().cpu().numpy().reshape(-1, 1)
        clusters = min(len(target), len(np.unique(values)))
        if clusters < len(target):  # too few distinct weights to cluster: a uniform grid
            centres = target * max(float(np.abs(values).max()), 1e-8) / target[-1]
        else:
            centres = kmeans_1d(values[:, 0], clusters)
        alpha = float(np.dot(centres, target) / np.dot(target, target))
        alpha = alpha if alpha > 1e-12 else max(float(np.abs(values).max()), 1e-8) / target[-1]
        beta = 1.0 / alpha
        thresholds = beta * (centres[:-1] + centres[1:]) / 2
        return cls(bits, alpha, beta, np.sort(thresholds))

    def codes(self, weight: torch.Tensor) -> torch.Tensor:
        """Integer codes 0..q of the inference staircase (uint8)."""
        scaled = (self.beta * weight).unsqueeze(-1)
        return (scaled >= self.thresholds).sum(dim=-1).to(torch.uint8)

    def dequantize(self, codes: torch.Tensor) -> torch.Tensor:
        return self.alpha * (codes.to(torch.float32) - self.offset)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.training:
            scaled = (self.beta * weight).unsqueeze(-1) - self.thresholds
            steps = torch.sigmoid(self.temperature * scaled).sum(dim=-1)
            return self.alpha * (steps - self.offset)
        return self.dequantize(self.codes(weight))


def quantize_model(model: nn.Module, weight_bits: int, act_bits: int) -> None:
    """Put a weight quantizer on every layer of `model.quantizable_layers()` and switch on
    their `act_bits`-bit input quantization (0 = weights only)."""
    from torch.nn.utils import parametrize

    for _, layer in model.quantizable_layers():
        quantizer = WeightQuantizer.from_weights(layer.weight, weight_bits)
        parametrize.register_parametrization(layer, "weight", quantizer)
        layer.act_bits = act_bits


def quantizers(model: nn.Module) -> list[tuple[str, WeightQuantizer]]:
    return [(name, m) for name, m in model.named_modules() if isinstance(m, WeightQuantizer)]


def set_temperature(model: nn.Module, temperature: float) -> None:
    for _, quantizer in quantizers(model):
        quantizer.temperature.fill_(temperature)
