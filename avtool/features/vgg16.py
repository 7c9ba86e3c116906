"""VGG16 (Simonyan & Zisserman 2015) frame embeddings as a per-item stage: [frames, 4096].

As in the SED paper: frames sampled from the video at 15.1 fps (the rate that gives the CRNN's
151 time steps: **151 frames for 10 s**), ImageNet normalisation, and the 4096-d output of
VGG16's last hidden layer (fc7, after its ReLU). Frames are resized to `image_size` squared
(224, VGG16's training size; the whole picture is kept, not a centre crop, as the paper does
not say). Where avtool departs: `image_size` below 224 is allowed for the demo (random weights
on tiny synthetic videos); VGG16's adaptive pooling to 7 x 7 keeps the dense layers' shapes.

Cost: ~15.5 GFLOP a frame at 224 x 224. The fast path decodes the stream once and converts
(and rescales, in swscale) only the frames that the 15.1 fps grid picks, and runs a clip's
frames through the network in batches, channels-last, under bf16 autocast on AMX CPUs and as
int8 elsewhere, kept only within cosine 0.999 of fp32 on the corpus's own frames (`precision:
auto`; see avtool/features/pretrained.py). bench/vgg16.py measures it against a per-frame
fp32 loop: 2.9x frames per CPU-second on an AVX2 CPU.
The network is a plain torch module whose state-dict keys are torchvision's `vgg16`, so
`vgg16-397923af.pth` (`avtool models fetch vgg16`) loads strictly.
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
FPS = 15.1
HIDDEN = 4096
IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
# torchvision's configuration "D": channels per conv, "M" a 2x2 max pool.
_LAYERS = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M")


@dataclass(frozen=True)
class VGG16Params:
    weights: str = ""  # checkpoint file or folder; empty: the `avtool models fetch` cache
    allow_random_weights: bool = False
    fps: float = FPS
    image_size: int = 224
    precision: str = "auto"  # auto (bf16 on AMX CPUs, else int8 if faithful) | fp32 | bf16 | int8
    batch_size: int = 32  # frames per forward pass
    calibration_clips: int = 2  # int8: the manifest's first N readable videos set its ranges

    def __post_init__(self) -> None:
        if self.fps <= 0:
            raise ConfigError(f"fps={self.fps}: must be positive")
        if not 32 <= self.image_size <= 1024:
            raise ConfigError(f"image_size={self.image_size}: must lie in 32..1024 (224: VGG16's)")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size={self.batch_size}: must be at least 1")
        check_precision(self.precision, self.calibration_clips)


def build_vgg16():
    """VGG16 with torchvision's module names; `forward` returns fc7 (post-ReLU) [N, 4096]."""
    import torch
    from torch import nn

    class VGG16(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layers: list[nn.Module] = []
            channels = 3
            for width in _LAYERS:
                if width == "M":
                    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
                else:
                    layers += [nn.Conv2d(channels, width, kernel_size=3, padding=1), nn.ReLU(True)]
                    channels = width
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            # classifier.6 (the 1000 ImageNet logits) is kept so the checkpoint loads strictly;
            # the features stop before it.
            self.classifier = nn.Sequential(
                nn.Linear(512 * 7 * 7, HIDDEN),
                nn.ReLU(True),
                nn.Dropout(),
                nn.Linear(HIDDEN, HIDDEN),
                nn.ReLU(True),
                nn.Dropout(),
                nn.Linear(HIDDEN, 1000),
            )

        def forward(self, images: torch.Tensor) -> torch.Tensor:
            """[N, 3, H, W] normalised images -> [N, 4096] fc7 activations."""
            x = self.avgpool(self.features(images)).flatten(1)
            return self.classifier[:5](x)

    return VGG16()


def load_vgg16(params: VGG16Params):
    """(model in eval mode, whether its weights are random, sha256 of its state dict).

    Cached per process (the stage's pre-check, the store attributes and the worker share one
    network), and never pickled with a worker.
    """
    return _load(params.weights, params.allow_random_weights)


@functools.lru_cache(maxsize=1)
def _load(weights: str, allow_random: bool):
    from avtool.features.pretrained import load_weights

    model, random, sha256 = load_weights(build_vgg16, weights, "vgg16", allow_random)
    return model.eval(), random, sha256


def sample_frames(path: str | Path, fps: float = FPS, image_size: int = 224) -> np.ndarray:
    """[T, S, S, 3] uint8 RGB frames at `fps`, resized to S = `image_size` while converting;
    frames the rate skips are decoded (inter-coded streams need them) but never converted."""
    from avtool.core.video import read_frames

    return read_frames(path, fps=fps, size=(image_size, image_size))


def normalise(frames: np.ndarray) -> np.ndarray:
    """[T, 3, S, S] float32: ImageNet mean/std normalisation of uint8 RGB [T, S, S, 3]."""
    scaled = (frames.astype(np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
    return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))


def embed(model, images: np.ndarray, precision: str = "fp32", batch_size: int = 32) -> np.ndarray:
    """[T, 4096] float32 fc7 activations of [T, 3, S, S] images, in batches, channels-last."""
    from avtool.features.pretrained import embed_in_batches

    return embed_in_batches(model, images, precision, batch_size)


@functools.lru_cache(maxsize=1)
def quantized_vgg16(params: VGG16Params, videos: tuple[str, ...]) -> tuple[Any, float]:
    """(int8 VGG16, the smallest cosine of its fc7 outputs with fp32's), calibrated on frames
    of the first `params.calibration_clips` readable `videos`."""
    from torch import nn

    from avtool.features.pretrained import calibration_inputs, quantize_int8

    model, _, _ = load_vgg16(params)
    frames = calibration_inputs(
        videos,
        lambda video: normalise(sample_frames(video, params.fps, params.image_size)),
        params.calibration_clips,
    )
    # The layers `forward` runs, as one module that torch.fx can trace.
    layers = nn.Sequential(model.features, model.avgpool, nn.Flatten(1), *model.classifier[:5])
    return quantize_int8(model, layers, frames, params.batch_size)


@dataclass
class VGG16Worker(PretrainedWorker):
    params: VGG16Params
    calibration_videos: tuple[str, ...] = field(default_factory=tuple)
    can_quantize = True
    extractor = "vgg16"

    def load_network(self) -> tuple[Any, bool, str]:
        return load_vgg16(self.params)

    def quantized(self) -> tuple[Any, float]:
        return quantized_vgg16(self.params, self.calibration_videos)

    def __call__(self, item: dict[str, Any]) -> np.ndarray:
        frames = sample_frames(video_of(item), self.params.fps, self.params.image_size)
        return embed(self._model, normalise(frames), self._precision, self.params.batch_size)


def video_of(item: dict[str, Any]) -> str:
    """An item's video: the DCASE manifest's `video` (mp4), else its `path`."""
    return item.get("video") or item["path"]


def extract_vgg16(
    manifest: Path, out: Path, params: VGG16Params, **options: Any
) -> ItemStageResult:
    """[frames, 4096] VGG16 fc7 activations of every manifest item's video into the store `out`.

    Items are read from their `video` field (the DCASE manifest's mp4), else from `path`.
    """
    from avtool.features.pretrained import calibration_candidates

    videos = calibration_candidates(manifest, params.calibration_clips, "video")
    worker = VGG16Worker(params, videos)
    return run_manifest_stage(
        "features.vgg16", STAGE_VERSION, manifest, out, params, worker, **options
    )
