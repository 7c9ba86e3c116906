"""The ATL lyric genre classifier (report §2.3, after Connor et al. 2018) and a linear baseline.

`GenreLSTM`: Embedding(30,000 words + 2, 100) -> LSTM(60, every step) -> global max-pool over
time -> Dense(2) with softmax (inside the loss; `probabilities` applies it). As in Keras without
masking, the max-pool also sees the LSTM's outputs on the padding (sequences are pre-padded,
Keras' `pad_sequences` default), so results do not depend on batch composition.

Parameter count: the Keras original has 3,038,962 = embedding 30,002 x 100 = 3,000,200, LSTM
4 x (60 x (100 + 60) + 60) = 38,640, dense 60 x 2 + 2 = 122. Torch's LSTM holds two bias
vectors (`bias_ih`, `bias_hh`, 4 x 60 each) where Keras holds one, so torch counts 240 more:
3,039,202; `keras_parameter_count` subtracts them (tests/test_atl_models.py asserts both).

`tfidf_baseline`: TF-IDF (unigrams and bigrams, sublinear tf) + logistic regression, the linear
model every genre table is compared against; not in the report.
"""

from __future__ import annotations

import torch
from torch import nn

VOCABULARY_WORDS = 30_000
VOCABULARY = VOCABULARY_WORDS + 2  # + padding (0) + OOV (1)
EMBEDDING = 100
UNITS = 60
KERAS_PARAMETERS = 3_038_962


class GenreLSTM(nn.Module):
    """Token ids [B, T] (0 = padding) -> class logits [B, classes]."""

    def __init__(
        self,
        vocabulary: int = VOCABULARY,
        embedding: int = EMBEDDING,
        units: int = UNITS,
        classes: int = 2,
    ) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary, embedding)
        self.lstm = nn.LSTM(embedding, units, batch_first=True)
        self.dense = nn.Linear(units, classes)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        steps, _ = self.lstm(self.embedding(tokens))
        return self.dense(steps.max(dim=1).values)

    @torch.no_grad()
    def probabilities(self, tokens: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self(tokens), dim=1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def keras_parameter_count(model: nn.Module) -> int:
    """The count Keras reports for the same layers: one LSTM bias vector, not two."""
    extra = sum(m.bias_hh_l0.numel() for m in model.modules() if isinstance(m, nn.LSTM))
    return parameter_count(model) - extra


def pad_sequences(sequences: list[list[int]], length: int) -> torch.Tensor:
    """Keras' `pad_sequences(maxlen=length)` defaults: pre-padding and pre-truncation."""
    out = torch.zeros(len(sequences), length, dtype=torch.long)
    for row, sequence in enumerate(sequences):
        kept = sequence[-length:] if sequence else []
        if kept:
            out[row, length - len(kept) :] = torch.tensor(kept, dtype=torch.long)
    return out


def tfidf_baseline(seed: int = 0):
    """A scikit-learn pipeline: TF-IDF on words (1-2 grams) + logistic regression."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=200_000),
        LogisticRegression(max_iter=1000, random_state=seed),
    )
