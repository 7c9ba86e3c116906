"""SED CRNN (paper §2.1, §3): parameter counts from the layer table, shapes, pooling, fusion;
mean-teacher pieces: learning-rate schedule, loss, batches."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from avtool.models.crnn import (
    COMBINATIONS,
    CRNN,
    CRNNConfig,
    align_steps,
    linear_softmax_pool,
    parameter_count,
)
from avtool.train.mean_teacher import (
    PairedClips,
    collate_pairs,
    lr_factor,
    mean_teacher_step,
    scheduled_lr,
)


@pytest.fixture(autouse=True)
def one_thread():
    """Batches of one: a second OpenMP thread only adds a barrier per GRU step."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def conv_bn(cin: int, cout: int) -> int:
    return 9 * cin * cout + cout + 2 * cout  # 3x3 kernel and bias, BatchNorm weight and bias


def gru_layer(inputs: int, hidden: int = 128) -> int:
    # Per direction: 3 gates x (input weights, recurrent weights, two biases); two directions.
    return 2 * 3 * (hidden * inputs + hidden * hidden + 2 * hidden)


def expected_parameters(inputs: tuple[str, ...]) -> int:
    """Table 1/2 of the paper and §3's projection sizes, counted by hand."""
    spectral = "spectral" in inputs
    total = 0
    gru_in = 0
    if spectral:
        channels = [1, 16, 32, 64, 128, 128, 128, 128]
        total += sum(conv_bn(a, b) for a, b in itertools.pairwise(channels))
        gru_in += 128
    sizes = {"vggish": (128, 16 if spectral else 64), "vgg16": (4096, 4 if spectral else 16)}
    for stream, (dim, projected) in sizes.items():
        if stream in inputs:
            total += dim * projected + projected
            gru_in += projected
    total += gru_layer(gru_in) + gru_layer(256)
    return total + 256 * 10 + 10


def test_spectral_crnn_has_the_hand_counted_parameters():
    assert expected_parameters(("spectral",)) == 1_038_314
    assert parameter_count(CRNN(CRNNConfig(inputs=("spectral",)))) == 1_038_314


@pytest.mark.parametrize("inputs", COMBINATIONS, ids="+".join)
def test_every_table3_combination_counts_and_shapes(inputs):
    torch.manual_seed(0)
    model = CRNN(CRNNConfig(inputs=inputs)).eval()
    assert parameter_count(model) == expected_parameters(inputs)
    batch = {
        "spectral": torch.randn(1, 604, 128),
        "vggish": torch.randn(1, 151, 128),
        "vgg16": torch.randn(1, 151, 4096),
    }
    with torch.no_grad():
        frames, clips = model({k: v for k, v in batch.items() if k in inputs})
    assert frames.shape == (1, 151, 10)
    assert clips.shape == (1, 10)
    assert torch.allclose(clips, linear_softmax_pool(frames))
    assert ((frames > 0) & (frames < 1)).all()


def test_fusion_sizes_follow_section_3():
    assert CRNNConfig(inputs=("spectral", "vggish", "vgg16")).gru_input == 128 + 16 + 4
    assert CRNNConfig(inputs=("vggish", "vgg16")).gru_input == 64 + 16
    assert CRNNConfig(inputs=("vgg16",)).gru_input == 16
    with pytest.raises(ValueError, match="128 bands"):
        CRNNConfig(inputs=("spectral",), n_mels=64)
    with pytest.raises(ValueError, match="non-empty set"):
        CRNNConfig(inputs=("spectral", "mfcc"))


def test_linear_softmax_pooling_is_equation_1():
    frames = torch.tensor([[[0.2], [0.8]], [[0.0], [0.0]]])
    pooled = linear_softmax_pool(frames)
    assert pooled[0, 0].item() == pytest.approx((0.04 + 0.64) / 1.0)
    assert pooled[1, 0].item() == 0.0


def test_align_steps_is_identity_at_equal_length_and_nearest_otherwise():
    x = torch.arange(10.0).reshape(1, 10, 1)
    assert align_steps(x, 10) is x
    assert align_steps(x, 5)[0, :, 0].tolist() == [1.0, 3.0, 5.0, 7.0, 9.0]
    assert align_steps(x, 20)[0, :, 0].tolist() == [float(i // 2) for i in range(20)]


def test_learning_rate_ramps_up_exponentially_then_decays():
    assert lr_factor(1, 12500, 0.99995) == pytest.approx(math.exp(-5 * (1 - 1 / 12500) ** 2))
    assert lr_factor(6250, 12500, 0.99995) == pytest.approx(math.exp(-5 * 0.25))
    assert lr_factor(12500, 12500, 0.99995) == 1.0
    assert lr_factor(12600, 12500, 0.99995) == pytest.approx(0.99995**100)


def test_scheduled_lr_sets_each_step_of_this_models_optimiser_only():
    model = torch.nn.Linear(2, 1)
    other = torch.nn.Linear(2, 1)
    optimiser = torch.optim.Adam(model.parameters(), lr=1.0)
    foreign = torch.optim.Adam(other.parameters(), lr=0.5)
    seen = []
    with scheduled_lr(model, 1e-3, lambda step: float(step)):
        for _ in range(3):
            model(torch.ones(1, 2)).sum().backward()
            optimiser.step()
            seen.append(optimiser.param_groups[0]["lr"])
            other(torch.ones(1, 2)).sum().backward()
            foreign.step()
    assert seen == pytest.approx([1e-3, 2e-3, 3e-3])
    assert foreign.param_groups[0]["lr"] == 0.5
    model(torch.ones(1, 2)).sum().backward()
    optimiser.step()  # outside the context: left alone
    assert optimiser.param_groups[0]["lr"] == pytest.approx(3e-3)


class _Constant(torch.nn.Module):
    """Frames all `value`, whatever the input: makes the loss computable by hand."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value = torch.nn.Parameter(torch.tensor(value))

    def forward(self, inputs):
        batch = inputs["spectral"].shape[0]
        frames = self.value.expand(batch, 4, 2)
        return frames, linear_softmax_pool(frames)


def test_mean_teacher_loss_is_bce_plus_twice_the_consistencies():
    labels = {"a": np.array([1.0, 0.0], np.float32), "b": np.array([0.0, 1.0], np.float32)}
    pairs = PairedClips(["a", "b"], labels, ["u"], lambda _: {"spectral": np.zeros((8, 3))})
    assert len(pairs) == 2
    batch = collate_pairs([pairs[0], pairs[1]])
    assert batch["inputs"]["spectral"].shape == (4, 8, 3)
    assert batch["labels"].tolist() == [[1.0, 0.0], [0.0, 1.0]]
    student, teacher = _Constant(0.7), _Constant(0.4)
    loss, parts = mean_teacher_step(2.0)(student, teacher, batch)
    bce = -math.log(0.7) / 2 - math.log(0.3) / 2
    consistency = (0.7 - 0.4) ** 2 * 2  # clip MSE + frame MSE, each (0.3)^2
    assert parts["bce"].item() == pytest.approx(bce, rel=1e-5)
    assert parts["consistency"].item() == pytest.approx(consistency, rel=1e-5)
    assert loss.item() == pytest.approx(bce + 2 * consistency, rel=1e-5)
