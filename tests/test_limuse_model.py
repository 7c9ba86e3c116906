"""LiMuSE and TasNet: the paper's parameter counts, shapes, grouped layout, CLI summary."""

from __future__ import annotations

import pytest
import torch

from avtool.models.limuse import LiMuSE, LimuseModelConfig, parameter_count
from avtool.models.tasnet import TasNet, TasNetConfig

# Table 2 with the authors' cue sizes (voiceprint 512, face 256).
COUNTS = [
    ({"groups": 32}, 360_667),
    ({"groups": 16}, 963_931),
    ({"groups": 1}, 8_947_237),
    ({"groups": 32, "voiceprint_dim": 0}, 186_843),
    ({"groups": 16, "voiceprint_dim": 0}, 517_851),
    ({"groups": 32, "face_dim": 0}, 219_611),
    ({"groups": 16, "face_dim": 0}, 550_619),
]


@pytest.mark.parametrize(("overrides", "expected"), COUNTS)
def test_parameter_counts_match_the_paper(overrides, expected):
    assert parameter_count(LiMuSE(LimuseModelConfig(**overrides))) == expected


def test_no_gc_block_has_no_tac_and_full_width():
    model = LiMuSE(LimuseModelConfig(groups=1))
    block = model.fusion_block.blocks[0]
    assert block.tac is None
    assert block.conv.expand.weight.shape == (1536, 384, 1)


def test_tasnet_baselines_are_the_papers_2_48m():
    dual = parameter_count(TasNet(TasNetConfig(channels=2)))
    single = parameter_count(TasNet(TasNetConfig(channels=1)))
    assert (dual, single) == (2_484_133, 2_482_085)
    assert round(dual / 1e6, 2) == round(single / 1e6, 2) == 2.48


def _small(**overrides) -> LimuseModelConfig:
    base = dict(groups=4, voiceprint_dim=8, face_dim=6, filters=16, audio_blocks=2,
                audio_repeats=1, fusion_blocks=2)  # fmt: skip
    return LimuseModelConfig(**{**base, **overrides})


def test_forward_shapes_and_odd_lengths():
    torch.manual_seed(0)
    model = LiMuSE(_small()).eval()
    for samples in (1600, 1601, 1234):
        out = model(torch.randn(2, 2, samples), torch.randn(2, 8), torch.randn(2, 5, 6))
        assert out.shape == (2, samples)


def test_fused_tac_equals_the_concatenation_it_replaces():
    torch.manual_seed(0)
    tac = LiMuSE(_small()).audio_block.blocks[0].tac
    x = torch.randn(3 * 4, 4, 50)
    f = tac.transform_act(tac.transform(x))
    mean = f.view(3, 4, -1, 50).mean(1)
    g = tac.average_act(tac.average(mean))
    cat = torch.cat([f, g.repeat_interleave(4, dim=0)], dim=1)
    reference = x + tac.norm(tac.concat_act(tac.concat(cat)))
    assert torch.allclose(tac(x), reference, atol=1e-5)


def test_groups_are_independent_apart_from_tac():
    """Without TAC mixing, changing group 0's channels leaves the other groups' outputs alone:
    the grouped view really splits channels into contiguous groups."""
    torch.manual_seed(0)
    block = LiMuSE(_small()).audio_block.blocks[0].conv
    x = torch.randn(4, 4, 40)
    y = x.clone()
    y[0] += 1.0
    assert torch.equal(block(x)[1:], block(y)[1:])


def test_visual_timing_reaches_the_output():
    torch.manual_seed(0)
    model = LiMuSE(_small()).eval()
    mixture, voiceprint = torch.randn(1, 2, 1600), torch.randn(1, 8)
    visual = torch.randn(1, 5, 6)
    shuffled = visual[:, torch.tensor([4, 2, 0, 3, 1])]
    assert not torch.allclose(
        model(mixture, voiceprint, visual), model(mixture, voiceprint, shuffled)
    )


def test_checkpointing_gives_the_same_gradients():
    torch.manual_seed(0)
    plain = LiMuSE(_small(checkpointing=False))
    saving = LiMuSE(_small(checkpointing=True))
    saving.load_state_dict(plain.state_dict())
    inputs = (torch.randn(2, 2, 800), torch.randn(2, 8), torch.randn(2, 3, 6))
    for model in (plain, saving):
        model(*inputs).pow(2).mean().backward()
    for a, b in zip(plain.parameters(), saving.parameters(), strict=True):
        assert torch.allclose(a.grad, b.grad, atol=1e-5)


def test_models_summary_cli(cli):
    code, out, err = cli("models", "summary", "limuse", "--set", "groups=16")
    assert code == 0, err
    assert "params: 963931" in out.splitlines()
    code, out, _ = cli("models", "summary", "limuse", "--set", "groups=32", "--set", "face_dim=0")
    assert out.splitlines() == ["params: 219611"]
    code, out, _ = cli("models", "summary", "tasnet", "--set", "channels=1")
    assert out.splitlines() == ["params: 2482085"]
    code, _, err = cli("models", "summary", "nope")
    assert code == 2 and "no such model" in err


@pytest.mark.parametrize("quantized", [False, True])
def test_running_in_pieces_equals_running_whole(monkeypatch, quantized):
    """The fp32 stack runs TAC over spans of frames and the conv block over rows; with pieces
    smaller than the input (2 spans, rows one at a time) outputs and gradients equal the
    one-piece run's. With 8-bit min-max activations, whose grids span the whole tensor, every
    block runs in one piece."""
    import avtool.models.limuse as limuse
    from avtool.quant.weights import quantize_model

    spans_run, rows_run = [], []
    mix, residual = limuse.TAC._mix, limuse.ConvBlock._residual
    monkeypatch.setattr(
        limuse.TAC, "_mix", lambda tac, x: spans_run.append(x.shape[-1]) or mix(tac, x)
    )
    monkeypatch.setattr(
        limuse.ConvBlock,
        "_residual",
        lambda conv, x: rows_run.append(x.shape[0]) or residual(conv, x),
    )
    torch.manual_seed(0)
    inputs = (torch.randn(2, 2, 1200), torch.randn(2, 8), torch.randn(2, 3, 6))
    runs = []
    for span, elements in ((10**9, 10**12), (110, 1)):
        monkeypatch.setattr(limuse, "TAC_SPAN_FRAMES", span)
        monkeypatch.setattr(limuse, "CONV_BLOCK_CHUNK_ELEMENTS", elements)
        torch.manual_seed(1)
        model = LiMuSE(_small(checkpointing=False))  # each block's pieces counted once
        if quantized:
            quantize_model(model, 3, 8)
        output = model(*inputs)
        output.pow(2).mean().backward()
        runs.append((output, [p.grad for p in model.parameters() if p.grad is not None]))
    # 4 blocks of 149 frames and 2 items x 4 groups: whole, then (fp32) spans of 110 + 39
    # frames and one row at a time.
    if quantized:
        assert spans_run == [149] * 8 and rows_run == [8] * 8
    else:
        assert spans_run == [149] * 4 + [110, 39] * 4
        assert rows_run == [8] * 4 + [1] * 32
    (whole, whole_grads), (pieces, piece_grads) = runs
    assert torch.allclose(whole, pieces, atol=1e-5)
    assert len(whole_grads) == len(piece_grads) > 0
    for a, b in zip(whole_grads, piece_grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)


def test_pointwise_matmul_equals_the_convolution():
    from avtool.models.limuse import QuantConv1d

    torch.manual_seed(0)
    layer = QuantConv1d(12, 144, 1)
    x = torch.randn(32, 12, 70)
    reference = torch.nn.functional.conv1d(x, layer.weight, layer.bias)
    assert torch.allclose(layer(x), reference, atol=1e-5)


def test_prelu_equals_torchs_with_gradients():
    from avtool.models.limuse import PReLU

    torch.manual_seed(0)
    ours, reference = PReLU(), torch.nn.PReLU()
    with torch.no_grad():
        ours.weight.fill_(0.3)
        reference.weight.fill_(0.3)
    x = torch.randn(4, 6, 50, requires_grad=True)
    grad = torch.randn(4, 6, 50)
    ours(x).backward(grad)
    ours_grads = x.grad.clone(), ours.weight.grad.clone()
    x.grad = None
    reference(x).backward(grad)
    assert torch.equal(ours(x), reference(x))
    assert torch.allclose(ours_grads[0], x.grad)
    assert torch.allclose(ours_grads[1], reference.weight.grad, rtol=1e-5)
    assert float(ours_grads[1]) != 0.0
