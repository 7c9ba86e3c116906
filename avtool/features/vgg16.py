"""VGG16 (Simonyan & Zisserman 2015) frame embeddings as a per-item stage: [frames, 4096].

As in the SED paper: frames sampled from the video at 15.1 fps (the rate that gives the CRNN's
151 time steps: **151 frames for 10 s**), ImageNet normalisation, and the 4096-d output of
VGG16's last hidden layer (fc7, after its ReLU). Frames are resized to `image_size` squared
(224, VGG16's training size; the whole picture is kept, not a centre crop, as the paper does
not say). Where avtool departs: `image_size` below 224 is allowed for the demo (random weights
on tiny synthetic videos); VGG16's adaptive pooling to 7 x 7 keeps the dense layers' shapes.

Cost: ~15.5 GFLOP a frame at 224 x 224. The fast path decodes the stream once and converts
(and rescales, in swscale) only the frames that the 15.1 fps grid picks, and runs a clip's
frames through the network in batches, channels-last. `precision: auto` takes bf16 autocast
where the CPU has AMX tiles, and int8 elsewhere: fp32 runs near the peak of a CPU without a
low-precision matrix unit, and static int8 quantization through oneDNN (per-channel weights,
activation ranges calibrated on frames of the manifest's first `calibration_clips` videos)
is ~2.9x faster there (bench/vgg16.py, against a per-frame fp32 loop). int8 is kept only if
it stays faithful on the corpus's own frames: on the calibration clips' frames that did not
set the ranges, its 4096-d outputs must keep a cosine similarity >= 0.999 (`INT8_MIN_COSINE`)
with fp32's; otherwise `auto` falls back to fp32 with a warning and an explicit `int8` is
refused. The store records the precision used and that cosine. Every shard and worker
calibrates on the same clips, so they quantize alike.
The network is a plain torch module whose state-dict keys are torchvision's `vgg16`, so
`vgg16-397923af.pth` (`avtool models fetch vgg16`) loads strictly.
"""

from __future__ import annotations

import functools
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import ConfigError, InputError, ItemError
from avtool.core.items import ItemStageResult, run_manifest_stage
from avtool.features.pretrained import PretrainedWorker, min_cosine, resolve_precision

log = logging.getLogger(__name__)

STAGE_VERSION = 1
FPS = 15.1
INT8_MIN_COSINE = 0.999
PRECISIONS = ("auto", "fp32", "bf16", "int8")
CALIBRATION_FRAMES = 64  # at most, spread over the calibration clips; half calibrate, half check
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
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision={self.precision!r}: expected one of {', '.join(PRECISIONS)}"
            )
        if self.calibration_clips < 1:
            raise ConfigError(f"calibration_clips={self.calibration_clips}: must be at least 1")


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


def calibration_frames(videos: tuple[str, ...], params: VGG16Params) -> np.ndarray:
    """[N, 3, S, S] normalised frames of the first `params.calibration_clips` readable videos,
    at most CALIBRATION_FRAMES, spread evenly over them."""
    clips = []
    for video in videos:
        try:
            clips.append(sample_frames(video, params.fps, params.image_size))
        except ItemError:
            continue
        if len(clips) == params.calibration_clips:
            break
    if not clips:
        raise InputError(
            f"no readable video among the manifest's first {len(videos)} items to calibrate "
            "int8 VGG16 on; download the clips first, or pass --precision fp32"
        )
    frames = np.concatenate(clips)
    picked = np.unique(np.linspace(0, len(frames) - 1, CALIBRATION_FRAMES).round().astype(int))
    return normalise(frames[picked])


@functools.lru_cache(maxsize=1)
def quantized_vgg16(params: VGG16Params, videos: tuple[str, ...]) -> tuple[Any, float]:
    """(int8 VGG16, the smallest cosine similarity of its fc7 outputs with fp32's).

    Static post-training quantization (torch.ao, oneDNN backend: per-channel int8 weights,
    activation ranges observed on every other calibration frame); the cosine is measured on
    the frames in between, which the ranges never saw.
    """
    import copy

    import torch
    from torch import nn
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    model, _, _ = load_vgg16(params)
    frames = calibration_frames(videos, params)
    calibrate, check = (frames[0::2], frames[1::2]) if len(frames) > 1 else (frames, frames)
    torch.backends.quantized.engine = "onednn"
    # The same layers as `forward`, as one module that torch.fx can trace.
    layers = nn.Sequential(model.features, model.avgpool, nn.Flatten(1), *model.classifier[:5])
    example = (torch.from_numpy(calibrate[:1]),)
    with warnings.catch_warnings():
        # torch.ao announces its own removal (still present in the pinned torch 2.13).
        warnings.filterwarnings("ignore", message=".*(deprecated|reduce_range).*")
        prepared = prepare_fx(
            copy.deepcopy(layers).eval(), get_default_qconfig_mapping("onednn"), example
        )
        with torch.no_grad():
            for start in range(0, len(calibrate), params.batch_size):
                prepared(torch.from_numpy(calibrate[start : start + params.batch_size]))
        quantized = convert_fx(prepared)
    cosine = min_cosine(
        embed(model, check, "fp32", params.batch_size),
        embed(quantized, check, "int8", params.batch_size),
    )
    return quantized, cosine


def choose_network(params: VGG16Params, videos: tuple[str, ...]) -> tuple[Any, str, float | None]:
    """(network, the precision it runs at, int8's calibration cosine or None).

    `auto`: bf16 on AMX CPUs and int8 elsewhere, if int8 keeps cosine >= INT8_MIN_COSINE on the
    calibration clips; fp32 (with a warning) if not. An explicit `int8` that falls short is
    refused.
    """
    import torch

    model, _, _ = load_vgg16(params)
    precision = params.precision
    has_int8 = "onednn" in torch.backends.quantized.supported_engines
    if precision == "auto":
        precision = resolve_precision("auto")
        precision = "int8" if precision == "fp32" and has_int8 else precision
    if precision == "int8" and not has_int8:
        raise ConfigError("precision=int8: this torch build has no oneDNN quantized engine")
    if precision != "int8":
        return model.to(memory_format=torch.channels_last), precision, None
    quantized, cosine = quantized_vgg16(params, videos)
    if cosine >= INT8_MIN_COSINE:
        return quantized, "int8", cosine
    message = (
        f"int8 VGG16 departs from fp32 on the calibration clips (smallest cosine {cosine:.5f} < "
        f"{INT8_MIN_COSINE})"
    )
    if params.precision == "int8":
        raise InputError(f"{message}; pass --precision fp32 (or auto)")
    log.warning("%s; computing in fp32", message)
    return model.to(memory_format=torch.channels_last), "fp32", cosine


@dataclass
class VGG16Worker(PretrainedWorker):
    params: VGG16Params
    calibration_videos: tuple[str, ...] = field(default_factory=tuple)
    extractor = "vgg16"

    def load_network(self) -> tuple[Any, bool, str]:
        return load_vgg16(self.params)

    def load(self) -> None:
        _, self._random, _ = self.load_network()
        self._model, self._precision, _ = choose_network(self.params, self.calibration_videos)

    def store_attrs(self) -> dict[str, Any]:
        attrs = super().store_attrs()
        _, precision, cosine = choose_network(self.params, self.calibration_videos)
        attrs["precision_used"] = precision
        if cosine is not None:
            attrs["int8_min_cosine"] = cosine
        return attrs

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
    from avtool.core.manifest import read_manifest

    # Candidates, in manifest order, so that every shard and worker calibrates on the same clips.
    candidates = read_manifest(manifest)[: 10 * params.calibration_clips]
    worker = VGG16Worker(params, tuple(video_of(item) for item in candidates))
    return run_manifest_stage(
        "features.vgg16", STAGE_VERSION, manifest, out, params, worker, **options
    )
