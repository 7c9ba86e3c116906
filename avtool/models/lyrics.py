"""The ATL lyric generator (report §2.2, Fig. 1): an audio-captioning model for lyrics.

Audio path: 4 conv blocks (3 x 3 kernels, stride 1, channels 64 -> 128 -> 256 -> 512, each
Conv -> BatchNorm -> ReLU -> 2 x 2 max-pool, as PANNs' CNN blocks the report cites) and a dense
layer to the 256-d latent. Text path: a 128-d embedding and stacked LSTMs (2 layers) to 256.
The two are added, then two dense layers (256 -> 256, ReLU, dropout; 256 -> vocabulary) give
the logits; the softmax is inside the cross-entropy loss and `next_word_probabilities`.

What the report leaves open is our choice, and said so: one conv per block; between the conv
stack and the dense layer, PANNs' global pooling (mean over mel bands, then max + mean over
time) rather than a flatten (a flatten of 512 x 4 x 62 into 256 would alone hold 32 M
weights); 2 LSTM layers; dropout 0.2 before the last dense layer.

Training uses teacher forcing over whole lines: the LSTM reads `startseq w1 ... wn` once and its
output at position i is the encoding of the prefix up to i, so the loss summed over positions is
the loss over every prefix -> next-word pair of the report's Table 2 (tests check the logits are
equal), without running the audio encoder once per pair.

Generation (`generate`) runs the model in eval mode: dropout off (the authors' code left it on)
and BatchNorm on its running statistics; greedy, or seeded sampling with temperature and top-k.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

CHANNELS = (64, 128, 256, 512)


@dataclass
class GeneratorConfig:
    embedding: int = 128
    latent: int = 256
    lstm_layers: int = 2
    dropout: float = 0.2
    channels: list[int] = field(default_factory=lambda: list(CHANNELS))


class AudioEncoder(nn.Module):
    """[B, n_mels, frames] log-mel -> [B, latent]."""

    def __init__(self, channels: tuple[int, ...] | list[int] = CHANNELS, latent: int = 256) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        previous = 1
        for width in channels:
            blocks += [
                nn.Conv2d(previous, width, kernel_size=3, stride=1, padding=1, bias=False),
                nn.BatchNorm2d(width),
                nn.ReLU(),
                nn.MaxPool2d(2),
            ]
            previous = width
        self.blocks = nn.Sequential(*blocks)
        self.dense = nn.Linear(previous, latent)
        # The dB log-mel sits far from zero; PANNs put a BatchNorm in front of the CNN too.
        self.input_norm = nn.BatchNorm2d(1)

    def forward(self, logmel: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.input_norm(logmel.unsqueeze(1)))  # [B, C, mels', frames']
        x = x.mean(dim=2)  # over mel bands
        x = x.max(dim=2).values + x.mean(dim=2)  # over time, as PANNs
        return torch.relu(self.dense(x))


class LyricsGenerator(nn.Module):
    """(log-mel [S, n_mels, frames], token ids [B, T]) -> next-word logits [B, T, vocabulary]."""

    def __init__(self, vocabulary: int, config: GeneratorConfig | None = None) -> None:
        super().__init__()
        config = config or GeneratorConfig()
        self.config = config
        self.vocabulary = vocabulary
        self.audio = AudioEncoder(tuple(config.channels), config.latent)
        self.embedding = nn.Embedding(vocabulary, config.embedding, padding_idx=0)
        self.lstm = nn.LSTM(
            config.embedding, config.latent, num_layers=config.lstm_layers, batch_first=True
        )
        self.decoder = nn.Sequential(
            nn.Linear(config.latent, config.latent),
            nn.ReLU(),
            nn.Dropout(config.dropout),
            nn.Linear(config.latent, vocabulary),
        )

    def encode_audio(self, logmel: torch.Tensor) -> torch.Tensor:
        return self.audio(logmel)

    def decode(self, audio: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Logits at every position from an audio encoding [B, latent] and tokens [B, T]."""
        text, _ = self.lstm(self.embedding(tokens))
        return self.decoder(text + audio.unsqueeze(1))

    def forward(
        self, logmel: torch.Tensor, tokens: torch.Tensor, song: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`song[i]` names the clip of token row i when clips are fewer than rows (a batch of
        songs with all their lines); by default row i goes with clip i."""
        audio = self.encode_audio(logmel)
        return self.decode(audio if song is None else audio[song], tokens)


def parameter_count(model: nn.Module) -> dict[str, int]:
    params = list(model.parameters())
    return {
        "total": sum(p.numel() for p in params),
        "trainable": sum(p.numel() for p in params if p.requires_grad),
    }


@torch.no_grad()
def encode_clip(model: LyricsGenerator, logmel: torch.Tensor) -> torch.Tensor:
    """The [latent] audio encoding of one clip [n_mels, frames], in eval mode (BatchNorm on its
    running statistics), computed once for all the lines generated from that clip."""
    was_training = model.training
    model.eval()
    try:
        return model.encode_audio(logmel.unsqueeze(0))[0]
    finally:
        model.train(was_training)


@torch.no_grad()
def generate_batch(
    model: LyricsGenerator,
    audio: torch.Tensor,
    seeds: list[list[int]],
    end_id: int,
    max_words: int,
    strategy: str = "greedy",
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Token ids continuing each of `seeds` (equal lengths, e.g. [startseq] or [startseq, w])
    given one clip's `encode_clip`, up to `max_words` new ids or `end_id` (not included).
    `strategy`: greedy | sample (temperature, then the `top_k` most likely words)."""
    if strategy not in ("greedy", "sample"):
        raise ValueError(f"strategy={strategy!r}: expected greedy or sample")
    if len({len(seed) for seed in seeds}) > 1:
        raise ValueError("generate_batch: seeds must have equal lengths")
    was_training = model.training
    model.eval()
    try:
        output, state = model.lstm(model.embedding(torch.tensor(seeds)))
        produced: list[list[int]] = [[] for _ in seeds]
        open_rows = torch.ones(len(seeds), dtype=torch.bool)
        for _ in range(max_words):
            logits = model.decoder(output[:, -1] + audio.unsqueeze(0))
            logits[:, 0] = float("-inf")  # padding is never a word
            if strategy == "greedy":
                choice = logits.argmax(dim=1)
            else:
                logits = logits / max(temperature, 1e-6)
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.shape[1]), dim=1).values[:, -1:]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                probabilities = torch.softmax(logits, dim=1)
                choice = torch.multinomial(probabilities, 1, generator=generator)[:, 0]
            open_rows &= choice != end_id
            if not open_rows.any():
                break
            for row in torch.nonzero(open_rows)[:, 0].tolist():
                produced[row].append(int(choice[row]))
            output, state = model.lstm(model.embedding(choice.unsqueeze(1)), state)
        return produced
    finally:
        model.train(was_training)


def generate(
    model: LyricsGenerator,
    audio: torch.Tensor,
    seed_ids: list[int],
    end_id: int,
    max_words: int,
    strategy: str = "greedy",
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> list[int]:
    """`generate_batch` for one seed."""
    return generate_batch(
        model, audio, [seed_ids], end_id, max_words, strategy, temperature, top_k, generator
    )[0]
