"""ATL networks against the report, generation, and BLEU on token lists."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from avtool.metrics.bleu import corpus_bleu, mean_sentence_bleu, sentence_bleu
from avtool.models.genre import (
    KERAS_PARAMETERS,
    GenreLSTM,
    keras_parameter_count,
    pad_sequences,
    parameter_count,
)
from avtool.models.lyrics import GeneratorConfig, LyricsGenerator, encode_clip, generate

# --- genre classifier -----------------------------------------------------------------------


def test_genre_lstm_has_the_keras_originals_parameter_count():
    model = GenreLSTM()
    # Keras: embedding 30,002 x 100 + LSTM 4 x (60 x (100 + 60) + 60) + dense 60 x 2 + 2.
    assert keras_parameter_count(model) == KERAS_PARAMETERS == 3_000_200 + 38_640 + 122
    # Torch's LSTM keeps a second bias vector (bias_hh, 4 x 60): 240 more than Keras.
    assert parameter_count(model) == KERAS_PARAMETERS + 240
    logits = model(torch.randint(0, 30_002, (3, 17)))
    assert logits.shape == (3, 2)
    assert torch.allclose(
        model.probabilities(torch.ones(2, 5, dtype=torch.long)).sum(1), torch.ones(2)
    )


def test_pad_sequences_pre_pads_and_pre_truncates_as_keras():
    padded = pad_sequences([[5, 6], [1, 2, 3, 4], []], 3)
    assert padded.tolist() == [[0, 5, 6], [2, 3, 4], [0, 0, 0]]


# --- lyric generator ------------------------------------------------------------------------


def _tiny(vocabulary: int = 12) -> LyricsGenerator:
    torch.manual_seed(0)
    return LyricsGenerator(vocabulary, GeneratorConfig(channels=[4, 8, 8, 8]))


def test_generator_layers_follow_the_report():
    model = LyricsGenerator(5690)  # the report's vocabulary size
    convs = [m for m in model.audio.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 128, 256, 512]
    assert all(c.kernel_size == (3, 3) and c.stride == (1, 1) for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.audio.blocks) == 4
    assert model.audio.dense.out_features == 256
    assert model.embedding.embedding_dim == 128
    assert model.lstm.hidden_size == 256 and model.lstm.num_layers == 2
    dense = [m for m in model.decoder if isinstance(m, nn.Linear)]
    assert [(d.in_features, d.out_features) for d in dense] == [(256, 256), (256, 5690)]
    # conv 576 + 73,728 + 294,912 + 1,179,648; BN 2 x (64+128+256+512) + input BN 2;
    # dense 512 x 256 + 256; embedding 5,690 x 128; LSTM 4 x 256 x (128 + 256 + 2) and
    # 4 x 256 x (256 + 256 + 2); decoder 256 x 256 + 256 + 256 x 5,690 + 5,690.
    assert sum(p.numel() for p in model.parameters()) == (
        576 + 73_728 + 294_912 + 1_179_648 + 1_920 + 2 + 131_328
        + 728_320 + 395_264 + 526_336 + 65_792 + 1_462_330
    )  # fmt: skip


def test_teacher_forcing_equals_every_prefix_on_its_own():
    model = _tiny().eval()
    clips = torch.randn(2, 64, 101)
    tokens = torch.tensor([[1, 4, 5, 6, 2], [1, 7, 3, 2, 0]])
    song = torch.tensor([0, 1])
    with torch.no_grad():
        whole = model(clips, tokens, song)  # [2, 5, vocabulary]
        for row in range(2):
            for length in range(1, 5):
                prefix = model(clips[row : row + 1], tokens[row : row + 1, :length])
                assert torch.allclose(whole[row, length - 1], prefix[0, -1], atol=1e-5)


def test_lines_of_a_song_share_its_clip():
    model = _tiny().eval()
    clips = torch.randn(2, 64, 101)
    tokens = torch.tensor([[1, 4], [1, 4], [1, 4]])
    with torch.no_grad():
        out = model(clips, tokens, torch.tensor([1, 1, 0]))
    assert torch.equal(out[0], out[1]) and not torch.allclose(out[0], out[2])


def test_generation_is_deterministic_with_dropout_off():
    model = _tiny()
    model.train()  # generate() must switch dropout off and restore the mode
    clip = encode_clip(model, torch.randn(64, 101))
    assert model.training and clip.shape == (256,)
    first = generate(model, clip, [1], end_id=2, max_words=6)
    assert first == generate(model, clip, [1], end_id=2, max_words=6)
    assert model.training
    assert len(first) <= 6 and 0 not in first and 2 not in first
    # top-1 sampling is greedy; seeded sampling repeats itself.
    assert generate(model, clip, [1], 2, 6, strategy="sample", top_k=1) == first

    def sampled(seed: int) -> list[int]:
        generator = torch.Generator().manual_seed(seed)
        return generate(model, clip, [1], 2, 6, "sample", temperature=2.0, generator=generator)

    assert sampled(3) == sampled(3)
    with pytest.raises(ValueError, match="greedy or sample"):
        generate(model, clip, [1], 2, 6, strategy="beam")


# --- BLEU -----------------------------------------------------------------------------------


def test_bleu_scores_tokens_not_characters():
    from nltk.translate.bleu_score import sentence_bleu as nltk_sentence_bleu

    line = ["street", "money", "flow", "all", "night", "long"]
    assert sentence_bleu(line, [line]) == pytest.approx(1.0)
    assert corpus_bleu([line], [[line]]) == pytest.approx(100.0)
    # The authors called NLTK on raw strings: the reference string became a list of
    # one-character references, so even an identical line scored about 0 ...
    with pytest.warns(UserWarning, match="0 counts"):
        authors = nltk_sentence_bleu(" ".join(line), " ".join(line))
    assert authors < 1e-100
    # ... and a reference in a list compared letters: unrelated words score high.
    letters = nltk_sentence_bleu(["street money flow"], "streets monday flowing")
    assert letters > 0.5
    assert sentence_bleu(["streets", "monday", "flowing"], [["street", "money", "flow"]]) < 0.01
    with pytest.raises(TypeError, match="list of tokens"):
        sentence_bleu(" ".join(line), [line])
    with pytest.raises(TypeError, match="list of tokens"):
        corpus_bleu([line], [[" ".join(line)]])


def test_corpus_bleu_takes_any_number_of_references():
    hypotheses = [["a", "b", "c", "d"], ["w", "x", "y", "z"]]
    references = [[["q", "r"], ["a", "b", "c", "d"]], [["w", "x", "y", "z"]]]
    assert corpus_bleu(hypotheses, references) == pytest.approx(100.0)
    partial = [["a", "b", "c", "e"], ["w", "x", "y", "z"]]
    assert 0 < corpus_bleu(partial, references) < 100
    assert 0 < mean_sentence_bleu(partial, references) < 1
