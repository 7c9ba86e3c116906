"""Segmentation networks, label alignment and metrics: sizes, values, behaviour on easy images."""

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from avtool.metrics.segmentation import contingency, match_scores, score_against_annotators
from avtool.models import segmentation as seg
from avtool.synth.bsds import make_image


def test_parameter_counts_match_layer_tables():
    # MMT feature net, M=3, q=100 (paper §4):
    #   conv 3→100 3×3: 3·9·100 + 100 = 2,800;  conv 100→100 3×3: 100·9·100 + 100 = 90,100 (×2)
    #   conv 100→100 1×1: 100·100 + 100 = 10,100;  BatchNorm γ,β: 200 (×4)
    #   2,800 + 2·90,100 + 10,100 + 4·200 = 193,900
    assert seg.parameter_count(seg.SegmentationNet(channels=100, n_conv=3)) == 193_900
    # Kanezaki 2018 / Kim 2020 (two 3×3 conv layers + 1×1): 2,800 + 90,100 + 10,100 + 3·200
    assert seg.parameter_count(seg.SegmentationNet(channels=100, n_conv=2)) == 103_600
    # MMT holds two students and two EMA teachers of the same net: 4 · 193,900 = 775,600.


def test_alignment_with_unequal_cluster_counts():
    # Teacher: 3 clusters (ids 7, 2, 5); student: 2 clusters (ids 0, 4).
    teacher = torch.tensor([7, 7, 7, 2, 2, 2, 5, 5])
    student = torch.tensor([4, 4, 0, 0, 0, 0, 0, 0])
    aligned = seg.align_labels(teacher, student, n_labels=10)
    # 7 overlaps 4 most (2 px), 2 overlaps 0 (3 px); 5 has no partner left and gets an id the
    # student does not use, so it stays its own cluster.
    assert aligned[:6].tolist() == [4, 4, 4, 0, 0, 0]
    assert aligned[6] == aligned[7] and int(aligned[6]) not in (0, 4)
    # Fewer teacher clusters than student clusters: each maps to its best partner.
    aligned = seg.align_labels(torch.tensor([1, 1, 1, 1]), torch.tensor([3, 3, 3, 8]), 10)
    assert aligned.tolist() == [3, 3, 3, 3]


def test_hungarian_accuracy_and_miou():
    truth = np.array([[1, 1, 2, 2], [1, 1, 2, 2]])
    relabelled = np.array([[9, 9, 4, 4], [9, 9, 4, 4]])
    assert match_scores(relabelled, truth) == (1.0, 1.0)
    one_segment = np.zeros_like(truth)
    accuracy, miou = match_scores(one_segment, truth)
    assert accuracy == 0.5 and miou == pytest.approx((0.5 + 0.0) / 2)
    assert contingency(relabelled, truth).tolist() == [[0, 4], [4, 0]]
    mean = score_against_annotators(relabelled, [truth, np.ones_like(truth)])
    assert mean[0] == pytest.approx(0.75)


def test_every_method_separates_an_easy_image():
    torch.set_num_threads(1)
    image, labels, _ = make_image(np.random.default_rng(0), 24, 32, noise=4.0)
    easy = seg.NetConfig(iterations=40, channels=32, n_conv=2)
    results = {
        "kmeans": seg.segment_kmeans(image, 5, seed=0),
        "felzenszwalb": seg.segment_felzenszwalb(image, 100),
        "kim": seg.segment_kim(image, 0, easy, mu=5.0)[0],
        "kanezaki": seg.segment_kanezaki(image, 0, easy, segments=60)[0],
        "mmt": seg.segment_mmt(image, 0, seg.NetConfig(iterations=40, channels=32), alpha=0.9)[0],
    }
    accuracy = {name: match_scores(out, labels)[0] for name, out in results.items()}
    chance = np.bincount(labels.ravel()).max() / labels.size
    assert all(out.shape == labels.shape for out in results.values())
    assert accuracy["kmeans"] > 0.95, accuracy
    assert all(value > chance + 0.1 for value in accuracy.values()), (accuracy, chance)


def test_mmt_is_deterministic_per_seed_and_differs_across_seeds():
    torch.set_num_threads(1)
    image, _, _ = make_image(np.random.default_rng(1), 16, 16)
    config = seg.NetConfig(iterations=3, channels=16)
    first = seg.segment_mmt(image, 5, config)[0]
    assert np.array_equal(first, seg.segment_mmt(image, 5, config)[0])
    assert not np.array_equal(first, seg.segment_mmt(image, 6, config)[0])


@pytest.mark.parametrize(
    ("memory_format", "weight"),
    [(torch.contiguous_format, 5.0), (torch.channels_last, 1.0), (torch.channels_last, 0.0)],
)
def test_fused_loss_matches_cross_entropy_plus_continuity(memory_format, weight):
    torch.manual_seed(0)
    response = torch.randn(1, 7, 5, 6, dtype=torch.float64)
    response = response.contiguous(memory_format=memory_format).requires_grad_()
    target = torch.randint(0, 7, (5, 6))
    pixels = response[0].flatten(1).t()
    reference = F.cross_entropy(pixels, target.flatten()) + weight * seg.continuity_loss(response)
    (expected,) = torch.autograd.grad(2.5 * reference, response)
    loss = seg.segmentation_loss(response, target, weight)
    (gradient,) = torch.autograd.grad(2.5 * loss, response)
    assert abs(loss.item() - reference.item()) < 1e-12
    assert (gradient - expected).abs().max().item() < 1e-14
    assert gradient.is_contiguous(memory_format=memory_format)
    bf16 = response.detach().bfloat16().requires_grad_()
    seg.segmentation_loss(bf16, target, weight).backward()
    assert bf16.grad.dtype == torch.bfloat16


def test_precision_resolution_and_bf16_path(monkeypatch):
    assert seg.use_bf16("fp32") is False and seg.use_bf16("bf16") is True
    with pytest.raises(ValueError, match="expected fp32, bf16 or auto"):
        seg.use_bf16("fp16")
    # auto never times anything where bf16 is not native: it stays fp32.
    monkeypatch.setattr(seg, "_BF16_FAST", None)
    monkeypatch.setattr(seg, "_native_bf16", lambda: False)
    monkeypatch.setattr(seg, "_probe_speedup", lambda: pytest.fail("probed without native bf16"))
    assert seg.use_bf16("auto") is False
    monkeypatch.setattr(seg, "_BF16_FAST", None)
    monkeypatch.setattr(seg, "_native_bf16", lambda: True)
    monkeypatch.setattr(seg, "_probe_speedup", lambda: 1.2)  # native, but not fast enough
    assert seg.use_bf16("auto") is False
    torch.set_num_threads(1)
    image, _, _ = make_image(np.random.default_rng(2), 12, 16)
    config = seg.NetConfig(iterations=2, channels=8, precision="bf16")
    labels, steps = seg.segment_mmt(image, 0, config)
    assert labels.shape == (12, 16) and steps == 2 and labels.max() < 8


def test_progress_reports_iteration_loss_and_segments():
    torch.set_num_threads(1)
    image, _, _ = make_image(np.random.default_rng(3), 12, 16)
    lines = []
    progress = seg.Throttle(lambda *line: lines.append(line), every=0.0)
    seg.segment_mmt(image, 0, seg.NetConfig(iterations=3, channels=8), progress=progress)
    assert [line[0] for line in lines] == [1, 2, 3]
    assert all(loss > 0 and 1 <= segments <= 8 for _, loss, segments in lines)
    seen = []
    seg.segment_mmt(
        image,
        0,
        seg.NetConfig(iterations=2, channels=8),
        observe=lambda i, labels: seen.append((i, labels().shape)),
    )
    assert seen == [(1, (12, 16)), (2, (12, 16))]


def test_figure_colours_follow_the_matched_ground_truth():
    from avtool.recipes.mmt import matched_colours

    truth = np.array([[1, 1, 2, 2], [3, 3, 2, 2]])
    renamed = np.array([[7, 7, 0, 0], [5, 5, 0, 0]])  # the same segments, other ids
    extra = np.array([[7, 7, 0, 0], [5, 9, 0, 0]])  # one segment no human drew
    truth_picture, (same, other) = matched_colours(truth, [renamed, extra])
    assert np.array_equal(same, truth_picture)
    assert np.array_equal(other[0], truth_picture[0]) and np.array_equal(other[1, 0], same[1, 0])
    assert not any(np.array_equal(other[1, 1], colour) for colour in truth_picture.reshape(-1, 3))


@pytest.mark.parametrize(("capability", "fp32_nhwc"), [("AVX2", False), ("AVX512", True)])
def test_trained_memory_format_follows_the_cpu(monkeypatch, capability, fp32_nhwc):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    assert seg.trains_channels_last(False) is fp32_nhwc
    assert seg.trains_channels_last(True) is True
    assert seg.trains_channels_last(False, "cuda") is False
