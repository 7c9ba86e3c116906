"""LiMuSE's fused inference kernels against torch's path: same outputs, and when each runs."""

from __future__ import annotations

import platform
import shutil

import pytest
import torch

from avtool.models import limuse_fused
from avtool.models.limuse import LiMuSE, LimuseModelConfig

pytestmark = pytest.mark.skipif(
    shutil.which("c++") is None, reason="no C++ compiler on PATH: the kernels cannot be built"
)


def _model(**overrides) -> LiMuSE:
    """A model whose norms, biases and PReLU slopes are all away from their initial values."""
    torch.manual_seed(0)
    model = LiMuSE(LimuseModelConfig(**overrides)).eval()
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.2 * torch.randn_like(parameter))
    return model


def _both_paths(model: LiMuSE, inputs: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    with torch.no_grad():
        fused = model(*inputs)
        with limuse_fused.torch_path():
            reference = model(*inputs)
    return fused, reference


def _inputs(batch: int, samples: int, voiceprint: int, face: int) -> tuple:
    torch.manual_seed(1)
    frames = max(1, round(samples / 16000 * 25))
    return (torch.randn(batch, 2, samples), torch.randn(batch, voiceprint),
            torch.randn(batch, frames, face))  # fmt: skip


@pytest.mark.parametrize(
    ("overrides", "samples"),
    [
        # The paper's K=32 (widths 4 and 12 a group), 1 s: 1999 frames, a partial last tile.
        ({}, 16000),
        # K=16 with our cue sizes, 37 frames: fewer than one tile, and fewer than the
        # dilation-32 conv's padding on either side.
        ({"groups": 16, "voiceprint_dim": 256, "face_dim": 20}, 300),
        # Without GC: no TAC, the conv block on all 384 channels (hidden 1536).
        ({"groups": 1, "audio_blocks": 2, "fusion_blocks": 2}, 4000),
        # Without the voiceprint, a depthwise kernel of 5 taps.
        ({"voiceprint_dim": 0, "conv_kernel": 5}, 8000),
    ],
)
def test_fused_kernels_equal_torchs_path(overrides, samples):
    model = _model(**overrides)
    config = model.config
    inputs = _inputs(2, samples, config.voiceprint_dim or 1, config.face_dim or 1)
    if not config.voiceprint_dim:
        inputs = (inputs[0], None, inputs[2])
    unchanged = inputs[0].clone()
    fused, reference = _both_paths(model, inputs)
    assert limuse_fused.kernels() is not None  # the fused path really ran
    assert fused.shape == reference.shape == (2, samples)
    scale = reference.abs().max()
    assert scale > 1
    assert (fused - reference).abs().max() <= 2e-5 * scale
    assert torch.equal(inputs[0], unchanged)


def test_items_of_a_batch_are_independent():
    model = _model(groups=16)
    inputs = _inputs(2, 3200, 512, 256)
    with torch.no_grad():
        both = model(*inputs)
        second = model(*(t[1:] for t in inputs))
    assert (both[1:] - second).abs().max() <= 1e-5 * second.abs().max()


def test_which_path_runs(monkeypatch):
    """Kernels at inference only: not while a gradient is wanted, not when some layers quantize
    their inputs and others do not, not under `torch_path()` or `AVTOOL_NATIVE=0`."""
    from avtool.quant.weights import quantize_model

    model = _model(groups=16)
    x = torch.randn(16, 24, 50)
    stack = model.fusion_block
    with torch.no_grad():
        assert limuse_fused.applies(stack, x)
        assert not limuse_fused.applies(stack, x.double())
        with limuse_fused.torch_path():
            assert not limuse_fused.applies(stack, x)
    assert not limuse_fused.applies(stack, x)  # grad enabled: parameters want one
    quantize_model(model, 3, 8)
    with torch.no_grad():
        assert limuse_fused.applies(model.fusion_block, x)
        model.fusion_block.blocks[0].conv.project.act_bits = 0  # grids of two kinds: torch's
        assert not limuse_fused.applies(model.fusion_block, x)
    monkeypatch.setenv("AVTOOL_NATIVE", "0")
    limuse_fused.load_library.cache_clear()
    try:
        with torch.no_grad():
            assert not limuse_fused.applies(_model(groups=16).fusion_block, x)
    finally:
        limuse_fused.load_library.cache_clear()


def test_quantized_weights_are_used_as_the_layers_use_them():
    """Weights are read through the modules: 3-bit weights (parametrizations) in the kernels
    give the fake-quantized layers' outputs."""
    from avtool.quant.weights import quantize_model

    model = _model(groups=16)
    quantize_model(model, 3, 0)
    inputs = _inputs(1, 4000, 512, 256)
    fused, reference = _both_paths(model, inputs)
    full_precision = _model(groups=16)
    with torch.no_grad():
        unquantized = full_precision(*inputs)
    assert (fused - reference).abs().max() <= 2e-5 * reference.abs().max()
    assert (fused - unquantized).abs().max() > 1e-2  # the weights did change


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="x86 instruction sets"
)
@pytest.mark.parametrize("arch", ["-march=haswell", "-march=x86-64"])
def test_other_instruction_sets_give_the_same_outputs(monkeypatch, arch):
    """The same source built for AVX2 (8-lane vectors, 4-row blocks) and for SSE2 (4 lanes),
    which this machine runs too: the vector width changes the tiles, not the outputs."""
    from avtool.core import native

    monkeypatch.setattr(native, "_arch_flag", lambda: arch)
    native.load_library.cache_clear()
    try:
        model = _model(groups=16)
        fused, reference = _both_paths(model, _inputs(1, 3000, 512, 256))
        assert limuse_fused.kernels() is not None
    finally:
        native.load_library.cache_clear()
    assert (fused - reference).abs().max() <= 2e-5 * reference.abs().max()


@pytest.mark.parametrize("act_bits", [0, 8])
def test_threads_share_the_work_and_not_the_result(act_bits):
    """Each norm's sums are added in the order of the frames, whoever computed them: the stacks'
    outputs are the same bits on 1, 2 and 3 threads."""
    from avtool.quant.weights import quantize_model

    model = _model(groups=16)
    if act_bits:
        quantize_model(model, 3, act_bits)
    x = torch.randn(2 * 16, 24, 700)
    outputs = []
    previous = torch.get_num_threads()
    try:
        for threads in (1, 2, 3):
            torch.set_num_threads(threads)
            with torch.no_grad():
                outputs.append(limuse_fused.gctcn_forward(model.fusion_block, x))
    finally:
        torch.set_num_threads(previous)
    assert all(torch.equal(output, outputs[0]) for output in outputs[1:])


@pytest.mark.parametrize("frames", [37, 700])
def test_8bit_blocks_agree_with_torchs_up_to_rounding_flips(frames):
    """With 8-bit min-max activations each layer's input is rounded to a grid, so float
    rounding in the sums (the kernels' and torch's differ) moves a value by one grid step
    where it falls on a rounding boundary. Per block, TAC and conv block, on a batch of two
    (the grids span the batch): fewer than 0.5% of the values differ from torch's by more than
    1e-3 of the largest (0.08% at most measured), none by 1% (0.22%); without the grids 20% or
    more would."""
    from avtool.quant.weights import quantize_model

    model = _model(groups=16)
    quantize_model(model, 3, 8)
    library = limuse_fused.kernels()
    torch.manual_seed(2)
    for stack, width in ((model.audio_block, 8), (model.fusion_block, 24)):
        x = 2 * torch.randn(2 * 16, width, frames)
        block = stack.blocks[-1]  # dilation 32: wider than 37 frames
        for step, module in (
            (limuse_fused._tac, block.tac),
            (limuse_fused._conv_block, block.conv),
        ):
            fused = torch.empty_like(x)
            with torch.no_grad():
                step(library, module, x, fused)
                reference = module(x)
            scale = reference.abs().max()
            off = (fused - reference).abs() > 1e-3 * scale
            assert off.float().mean() < 5e-3
            assert (fused - reference).abs().max() < 1e-2 * scale
            # What the bound tells apart: the same block without its 8-bit grids.
            layers = [m for m in module.modules() if hasattr(m, "act_bits")]
            for layer in layers:
                layer.act_bits = 0
            with torch.no_grad():
                unquantized = module(x)
            for layer in layers:
                layer.act_bits = 8
            assert ((unquantized - reference).abs() > 1e-3 * scale).float().mean() > 0.2
