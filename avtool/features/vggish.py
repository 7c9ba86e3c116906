"""VGGish embeddings (Hershey et al. 2017) as a per-item stage: [patches, 128] per clip.

Input as in the AudioSet release (`vggish_input`/`mel_features`, restated here in numpy):
audio at 16 kHz, mono; |STFT| with a 400-sample periodic Hann window, hop 160, FFT 512;
64 HTK-mel bands over 125-7500 Hz; log(mel + 0.01); patches of 96 frames (0.96 s). The SED
paper's patches overlap by 0.9 s, so patches start every 6 frames (0.06 s): a 10 s clip gives
998 frames and 1 + (998 - 96) // 6 = **151 patches**, the CRNN's 151 time steps.

Where avtool departs from the paper: the paper writes 128 mel bins for these features, but
VGGish's input is 96 x 64 (its first dense layer takes 512 x 6 x 4 values), so 64 bands it is.
Resampling is soxr's (as librosa.load), not resampy's. The embedding is the last dense layer's
output after its ReLU, as torchvggish computes it, without the AudioSet PCA/quantisation
post-processing (the paper uses "the outputs of the last feedforward layer").

The network is a plain torch module whose state-dict keys are torchvggish's, so the published
`vggish-10086976.pth` (`avtool models fetch vggish`) loads strictly. All of a clip's patches go
through it in batches, channels-last, under bf16 autocast on AMX CPUs and as int8 elsewhere,
kept only within cosine 0.999 of fp32 on the corpus's own patches (`precision: auto`; see
avtool/features/pretrained.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import ConfigError
from avtool.core.items import ItemStageResult, run_manifest_stage
from avtool.features.pretrained import PretrainedWorker, check_precision

STAGE_VERSION = 1
SR = 16000
WINDOW = 400
HOP = 160
FFT = 512
MEL_BANDS = 64
FMIN, FMAX = 125.0, 7500.0
LOG_OFFSET = 0.01
PATCH_FRAMES = 96
EMBEDDING = 128


@dataclass(frozen=True)
class VGGishParams:
    weights: str = ""  # checkpoint file or folder; empty: the `avtool models fetch` cache
    allow_random_weights: bool = False
    patch_hop_seconds: float = 0.06  # 0.96 s patches overlapping by 0.9 s
    precision: str = "auto"  # auto (bf16 on AMX CPUs, else int8 if faithful) | fp32 | bf16 | int8
    batch_size: int = 256  # patches per forward pass
    calibration_clips: int = 2  # int8: the manifest's first N readable clips set its ranges

    def __post_init__(self) -> None:
        if self.patch_hop_seconds <= 0:
            raise ConfigError(f"patch_hop_seconds={self.patch_hop_seconds}: must be positive")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size}: must be at least 1")
        check_precision(self.precision, self.calibration_clips)

    @property
    def patch_hop_frames(self) -> int:
        return max(1, round(self.patch_hop_seconds * SR / HOP))


def _hz_to_htk_mel(hz: np.ndarray | float) -> np.ndarray:
    return 1127.0 * np.log(1.0 + np.asarray(hz, dtype=np.float64) / 700.0)


def mel_matrix() -> np.ndarray:
    """[FFT // 2 + 1, 64]: AudioSet's `spectrogram_to_mel_matrix` (DC bin weighted 0)."""
    bins = FFT // 2 + 1
    bins_mel = _hz_to_htk_mel(np.linspace(0.0, SR / 2, bins))
    edges = np.linspace(_hz_to_htk_mel(FMIN), _hz_to_htk_mel(FMAX), MEL_BANDS + 2)
    weights = np.empty((bins, MEL_BANDS))
    for i in range(MEL_BANDS):
        lower, centre, upper = edges[i : i + 3]
        rising = (bins_mel - lower) / (centre - lower)
        falling = (upper - bins_mel) / (upper - centre)
        weights[:, i] = np.maximum(0.0, np.minimum(rising, falling))
    weights[0, :] = 0.0
    return weights


_MEL = mel_matrix()
_WINDOW = 0.5 - 0.5 * np.cos(2 * np.pi / WINDOW * np.arange(WINDOW))  # periodic Hann


def n_frames(n_samples: int) -> int:
    return 1 + (n_samples - WINDOW) // HOP


def log_mel(waveform: np.ndarray) -> np.ndarray:
    """[frames, 64] float64 log-mel of 16 kHz mono audio, as AudioSet's `log_mel_spectrogram`."""
    frames = np.lib.stride_tricks.sliding_window_view(waveform.astype(np.float64), WINDOW)[::HOP]
    magnitude = np.abs(np.fft.rfft(frames * _WINDOW, FFT))
    return np.log(magnitude @ _MEL + LOG_OFFSET)


def examples(waveform: np.ndarray, hop_frames: int = 6) -> np.ndarray:
    """[patches, 96, 64] float32 network inputs; audio shorter than one patch is zero-padded."""
    shortest = WINDOW + (PATCH_FRAMES - 1) * HOP
    if waveform.size < shortest:
        waveform = np.pad(waveform, (0, shortest - waveform.size))
    mel = log_mel(waveform)
    patches = np.lib.stride_tricks.sliding_window_view(mel, PATCH_FRAMES, axis=0)[::hop_frames]
    return np.ascontiguousarray(patches.transpose(0, 2, 1), dtype=np.float32)


def n_patches(n_samples: int, hop_frames: int = 6) -> int:
    """Patches (= output rows) for a 16 kHz clip of `n_samples` samples: 151 for 10 s."""
    return 1 + (max(n_frames(n_samples), PATCH_FRAMES) - PATCH_FRAMES) // hop_frames


def build_vggish():
    """VGGish with torchvggish's module names: `features.{0,3,6,8,11,13}`, `embeddings.{0,2,4}`."""
    import torch
    from torch import nn

    class VGGish(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            channels = 1
            for width in (64, "M", 128, "M", 256, 256, "M", 512, 512, "M"):
                if width == "M":
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                else:
                    layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(True)]
                    channels = width
            self.features = nn.Sequential(*layers)
            self.embeddings = nn.Sequential(
                nn.Linear(512 * 4 * 6, 4096),
                nn.ReLU(True),
                nn.Linear(4096, 4096),
                nn.ReLU(True),
                nn.Linear(4096, EMBEDDING),
                nn.ReLU(True),
            )

        def forward(self, patches: torch.Tensor) -> torch.Tensor:
            """[N, 1, 96, 64] log-mel patches -> [N, 128] embeddings."""
            x = self.features(patches)
            # The TF model flattens (height, width, channels): transpose to match its dense weights.
            x = x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)
            return self.embeddings(x)

    return VGGish()


def load_vggish(params: VGGishParams):
    """(model in eval mode, whether its weights are random, sha256 of its state dict).

    Cached per process (the stage's pre-check, the store attributes and the worker share one
    network), and never pickled with a worker.
    """
    return _load(params.weights, params.allow_random_weights)


@functools.lru_cache(maxsize=1)
def _load(weights: str, allow_random: bool):
    from avtool.features.pretrained import load_weights

    model, random, sha256 = load_weights(build_vggish, weights, "vggish", allow_random)
    return model.eval(), random, sha256


def embed(model, patches: np.ndarray, precision: str = "fp32", batch_size: int = 256):
    """[N, 128] float32 embeddings of [N, 96, 64] patches, in batches, channels-last."""
    from avtool.features.pretrained import embed_in_batches

    return embed_in_batches(model, patches[:, None], precision, batch_size)


def clip_patches(path: str, params: VGGishParams) -> np.ndarray:
    """[N, 96, 64] log-mel patches of one audio file, as the network reads them."""
    from avtool.core.audio import load_audio

    waveform, _ = load_audio(path, sr=SR)
    return examples(waveform, params.patch_hop_frames)


@functools.lru_cache(maxsize=1)
def quantized_vggish(params: VGGishParams, paths: tuple[str, ...]) -> tuple[Any, float]:
    """(int8 VGGish, the smallest cosine of its embeddings with fp32's), calibrated on patches
    of the first `params.calibration_clips` readable `paths`."""
    from avtool.features.pretrained import calibration_inputs, quantize_int8

    model, _, _ = load_vggish(params)
    patches = calibration_inputs(
        paths, lambda path: clip_patches(path, params)[:, None], params.calibration_clips
    )
    return quantize_int8(model, model, patches, params.batch_size)


@dataclass
class VGGishWorker(PretrainedWorker):
    params: VGGishParams
    calibration_paths: tuple[str, ...] = field(default_factory=tuple)
    can_quantize = True
    extractor = "vggish"

    def load_network(self) -> tuple[Any, bool, str]:
        return load_vggish(self.params)

    def quantized(self) -> tuple[Any, float]:
        return quantized_vggish(self.params, self.calibration_paths)

    def __call__(self, item: dict[str, Any]) -> np.ndarray:
        patches = clip_patches(item["path"], self.params)
        return embed(self._model, patches, self._precision, self.params.batch_size)


def extract_vggish(
    manifest: Path, out: Path, params: VGGishParams, **options: Any
) -> ItemStageResult:
    """[patches, 128] VGGish embeddings of every manifest item into the store `out`."""
    from avtool.features.pretrained import calibration_candidates

    paths = calibration_candidates(manifest, params.calibration_clips, "path")
    worker = VGGishWorker(params, paths)
    return run_manifest_stage(
        "features.vggish", STAGE_VERSION, manifest, out, params, worker, **options
    )
