"""The report's SER networks: parameter counts against its layer tables, focal loss values."""

from __future__ import annotations

import math

import pytest
import torch

from avtool.models.ser import (
    build_model,
    focal_loss,
    keras_parameter_count,
    parameter_count,
)

# (model, Keras total from the report, torch total, torch trainable, BN running statistics)
# LSTM:     Keras 264,192 + 32,896 + 8,256 + 520 = 305,864; torch adds bias_hh 4*256 = 1,024.
# CNN:      256+256 + 24,704+512 + 98,560+1,024 + 32,896 + 8,256 + 520 = 166,984, of which
#           896 = 2*(64+128+256) running mean/var (Keras' non-trainable); torch is exact.
# CNN+LSTM: convs 125,312 + LSTM 197,120 + LSTM 49,408 + 4,160 + 2,080 + 264 = 378,344;
#           torch adds bias_hh 4*128 + 4*64 = 768.
COUNTS = [
    ("lstm", 305_864, 306_888, 306_888, 0),
    ("cnn", 166_984, 166_984, 166_088, 896),
    ("cnn_lstm", 378_344, 379_112, 378_216, 896),
]


@pytest.mark.parametrize(("name", "keras", "total", "trainable", "statistics"), COUNTS)
def test_parameter_counts_match_the_report(name, keras, total, trainable, statistics):
    model = build_model(name)
    assert parameter_count(model) == {
        "trainable": trainable,
        "non_trainable": statistics,
        "total": total,
    }
    assert keras_parameter_count(model) == keras


@pytest.mark.parametrize("name", ["lstm", "cnn", "cnn_lstm"])
def test_networks_map_160_features_to_8_logits(name):
    model = build_model(name).eval()
    assert model(torch.randn(5, 160)).shape == (5, 8)


def test_focal_loss_is_the_reports_formula():
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 0.5, 0.0]])
    target = torch.tensor([0, 2])
    expected = []
    for row, label in zip(logits.tolist(), target.tolist(), strict=True):
        p = math.exp(row[label]) / sum(math.exp(v) for v in row)
        expected.append(0.25 * (1 - p) ** 2 * -math.log(p))
    assert float(focal_loss(logits, target)) == pytest.approx(sum(expected) / 2, rel=1e-6)
    # alpha 1, gamma 0 is plain cross-entropy.
    ce = torch.nn.functional.cross_entropy(logits, target)
    assert float(focal_loss(logits, target, alpha=1.0, gamma=0.0)) == pytest.approx(float(ce))


def test_focal_loss_down_weights_easy_examples():
    easy = focal_loss(torch.tensor([[6.0, 0.0]]), torch.tensor([0]))
    hard = focal_loss(torch.tensor([[0.0, 0.5]]), torch.tensor([0]))
    ce_easy = torch.nn.functional.cross_entropy(torch.tensor([[6.0, 0.0]]), torch.tensor([0]))
    assert float(easy) < 1e-3 * float(ce_easy) < float(hard)


def test_mlp_baseline_size_and_input_width():
    # 160*256+256 + 256*128+128 + 128*8+8 = 41,216 + 32,896 + 1,032
    assert parameter_count(build_model("mlp")) == {
        "trainable": 75_144,
        "non_trainable": 0,
        "total": 75_144,
    }
    wide = build_model("mlp", features=768).eval()
    assert wide(torch.randn(3, 768)).shape == (3, 8)


def test_lstm_reads_the_vector_back_to_front():
    model = build_model("lstm").eval()
    features = torch.randn(3, 160)
    _, (hidden, _) = model.lstm(features.flip(-1).unsqueeze(-1))
    torch.testing.assert_close(model(features), model.head(hidden[-1]))
    _, (forward_hidden, _) = model.lstm(features.unsqueeze(-1))
    assert not torch.allclose(model.head(forward_hidden[-1]), model(features))
