"""Quantization: eqs. 1-4 staircase, min-max activations, bit packing, packed loader, SI-SDR."""

from __future__ import annotations

import math
from dataclasses import asdict

import numpy as np
import pytest
import torch

from avtool.models.limuse import LiMuSE, LimuseModelConfig
from avtool.quant.activations import minmax_quantize
from avtool.quant.pack import MAGIC, export_packed, load_packed, pack_codes, unpack_codes
from avtool.quant.weights import WeightQuantizer, kmeans_1d, quantize_model, quantizers


def test_pack_unpack_roundtrip_and_size():
    codes = np.random.default_rng(0).integers(0, 7, size=1001).astype(np.uint8)
    packed = pack_codes(codes, 3)
    assert len(packed) == math.ceil(1001 * 3 / 8)
    assert np.array_equal(unpack_codes(packed, 1001, 3), codes)
    assert pack_codes(np.array([5, 3]), 3) == bytes([0b10101100])  # 101 011 00
    with pytest.raises(ValueError):
        pack_codes(np.array([8]), 3)


def test_three_bit_levels_and_hard_staircase():
    weight = torch.linspace(-1, 1, 2001)
    quantizer = WeightQuantizer.from_weights(weight, 3)
    assert quantizer.thresholds.numel() == 6 and quantizer.offset == 3
    quantizer.eval()
    values = quantizer(weight)
    levels = torch.unique(torch.round(values / quantizer.alpha.detach()))
    assert levels.tolist() == [-3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0]
    assert int(quantizer.codes(weight).max()) == 6
    # Every weight lands on its nearest k-means centre's level.
    assert float((values - weight).abs().max()) < 0.2


def test_soft_staircase_approaches_the_step_function_and_trains_alpha_beta():
    weight = torch.randn(500) * 0.1
    quantizer = WeightQuantizer.from_weights(weight, 3)
    hard = quantizer.eval()(weight).detach()
    quantizer.train()
    gaps = []
    for temperature in (5.0, 50.0, 500.0):
        quantizer.temperature.fill_(temperature)
        gaps.append(float((quantizer(weight) - hard).abs().mean()))
    assert gaps[0] > gaps[1] > gaps[2] and gaps[2] < 1e-3
    quantizer.temperature.fill_(5.0)
    quantizer(weight).pow(2).sum().backward()
    assert quantizer.alpha.grad is not None and quantizer.beta.grad is not None
    assert {n for n, p in quantizer.named_parameters()} == {"alpha", "beta"}


def test_kmeans_1d_finds_separated_clusters():
    values = np.concatenate([np.full(10, -2.0), np.full(10, 0.5), np.full(10, 3.0)])
    assert np.allclose(kmeans_1d(values + 1e-3 * np.arange(30) % 0.01, 3), [-2, 0.5, 3], atol=0.02)


def test_minmax_activation_grid_and_straight_through():
    x = torch.linspace(-1.0, 3.0, 1000, requires_grad=True)
    q = minmax_quantize(x, 8)
    assert len(torch.unique(q.detach())) <= 256
    step = 4.0 / 255
    assert float((q - x).abs().max()) <= step / 2 + 1e-6
    q.sum().backward()
    assert torch.equal(x.grad, torch.ones_like(x))


def _model(groups=4):
    config = LimuseModelConfig(groups=groups, voiceprint_dim=8, face_dim=6, filters=16,
                               audio_blocks=2, audio_repeats=1, fusion_blocks=2)  # fmt: skip
    return config, LiMuSE(config)


def test_packed_model_equals_fake_quantized_and_size_is_the_codes(tmp_path):
    torch.manual_seed(0)
    config, model = _model()
    quantize_model(model, 3, 8)
    model.eval()
    fresh = LiMuSE(config)
    header = {"arch": "limuse", "model": asdict(config)}
    size = export_packed(model, fresh, tmp_path / "m.avtq", header, 3, 8)
    assert size == (tmp_path / "m.avtq").stat().st_size
    layers = fresh.quantizable_layers()
    coded = sum(layer.weight.numel() for _, layer in layers)
    dense = sum(p.numel() for p in fresh.parameters()) - coded
    body = 4 * dense + 4 * len(layers) * 8 + math.ceil(coded * 3 / 8)
    assert body < size < body + 1000  # the rest is the magic and a short JSON header
    assert (tmp_path / "m.avtq").read_bytes().startswith(MAGIC)

    from avtool.recipes.limuse import build_model

    loaded, meta = load_packed(tmp_path / "m.avtq", build_model)
    assert meta["weight_bits"] == 3 and meta["act_bits"] == 8
    inputs = (torch.randn(1, 2, 1600), torch.randn(1, 8), torch.randn(1, 5, 6))
    with torch.no_grad():
        assert torch.equal(model(*inputs), loaded(*inputs))
    # The decoder is not quantized: its weights are carried in full precision.
    assert torch.equal(loaded.decoder.weight, model.decoder.weight)
    assert len(quantizers(model)) == len(layers)


def test_truncated_packed_file_is_refused(tmp_path):
    from avtool.core.errors import InputError
    from avtool.recipes.limuse import build_model

    torch.manual_seed(0)
    config, model = _model()
    quantize_model(model, 3, 8)
    path = tmp_path / "m.avtq"
    export_packed(
        model.eval(), LiMuSE(config), path, {"arch": "limuse", "model": asdict(config)}, 3, 8
    )
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(InputError, match="truncated"):
        load_packed(path, build_model)
    path.write_bytes(b"nonsense")
    with pytest.raises(InputError, match="bad magic"):
        load_packed(path, build_model)


def test_packed_k32_authors_model_size():
    """K=32 with the authors' cues, 3-bit codes: near the paper's 0.16 MB."""
    config = LimuseModelConfig()
    fresh = LiMuSE(config)
    coded = sum(layer.weight.numel() for _, layer in fresh.quantizable_layers())
    dense = sum(p.numel() for p in fresh.parameters()) - coded
    estimate = 4 * dense + math.ceil(coded * 3 / 8)
    assert 0.12e6 < estimate < 0.20e6


def test_si_sdr_matches_closed_form():
    from avtool.metrics.si_sdr import si_sdr, si_sdr_improvement

    rng = np.random.default_rng(0)
    target = rng.standard_normal(4000)
    noise = rng.standard_normal(4000)
    estimate = 2.0 * target + 0.5 * noise
    t, e = target - target.mean(), estimate - estimate.mean()
    projection = (e @ t) / (t @ t) * t
    expected = 10 * np.log10((projection @ projection) / ((e - projection) @ (e - projection)))
    value = float(si_sdr(torch.from_numpy(estimate), torch.from_numpy(target)))
    assert value == pytest.approx(expected, abs=1e-6)
    # Scale invariance, and the improvement over a mixture.
    assert float(si_sdr(torch.from_numpy(7 * estimate), torch.from_numpy(target))) == pytest.approx(
        expected, abs=1e-6
    )
    _, gain = si_sdr_improvement(
        torch.from_numpy(estimate), torch.from_numpy(target + 2 * noise), torch.from_numpy(target)
    )
    assert float(gain) > 0


def test_training_loss_equals_torchmetrics():
    from avtool.metrics.si_sdr import differentiable_si_sdr, si_sdr

    torch.manual_seed(0)
    target = torch.randn(3, 2000)
    estimate = target + torch.randn(3, 2000) * torch.tensor([[0.1], [1.0], [3.0]])
    assert torch.allclose(
        differentiable_si_sdr(estimate, target), si_sdr(estimate, target), atol=1e-4
    )
