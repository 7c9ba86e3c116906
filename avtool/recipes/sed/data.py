"""SED data: the paper's feature settings and each clip's network inputs from the stores."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from avtool.core.errors import InputError
from avtool.features.spectral import SpectralParams

CLIP_SECONDS = 10.0
# The paper's log-mel settings (§4.2): 604 frames for 10 s.
SED_LOGMEL = SpectralParams(
    sr=22100, n_fft=2048, hop=366, n_mels=128, power=1.0, peak_normalize=True
)
SPECTRAL_FRAMES = 604
STEPS = SPECTRAL_FRAMES // 4  # the CNN pools time by 4: 151 steps


def spectral_frames(clip_seconds: float = CLIP_SECONDS) -> int:
    """Log-mel frames of a clip of `clip_seconds` (604 for 10 s); the CNN makes a quarter steps."""
    return 1 + round(clip_seconds * SED_LOGMEL.sr) // SED_LOGMEL.hop


STEP_SECONDS = 4 * SED_LOGMEL.hop / SED_LOGMEL.sr
STREAMS = ("spectral", "vggish", "vgg16")
STORE_EXTRACTOR = {"spectral": "logmel", "vggish": "vggish", "vgg16": "vgg16"}
HEADLINE = ("clip_f1_micro", "segment_f1_micro", "event_f1_macro")
# Table 3 of the paper, in its row order: inputs -> (clip F1, segment F1, event F1).
PAPER = {
    ("spectral",): (0.7622, 0.7009, 0.3303),
    ("spectral", "vgg16"): (0.8072, 0.7381, 0.3258),
    ("spectral", "vggish"): (0.8103, 0.7474, 0.3340),
    ("spectral", "vggish", "vgg16"): (0.8372, 0.7686, 0.3265),
    ("vgg16",): (0.6160, 0.5183, 0.1568),
    ("vggish",): (0.7817, 0.7020, 0.1883),
    ("vggish", "vgg16"): (0.8004, 0.7101, 0.2231),
}


def _nominal_steps(attrs: dict[str, Any], clip_seconds: float) -> int:
    """Rows a pretrained store gives a clip under its own parameters (151 for the paper's, 10 s)."""
    params = attrs.get("params", {})
    if attrs.get("extractor") == "vggish":
        from avtool.features.vggish import SR, VGGishParams, n_patches

        hop = VGGishParams(patch_hop_seconds=params.get("patch_hop_seconds", 0.06))
        return n_patches(int(clip_seconds * SR), hop.patch_hop_frames)
    return math.ceil(round(clip_seconds * params.get("fps", 15.1), 6))


def fit_length(array: np.ndarray, length: int) -> np.ndarray:
    """[length, D]: zero-padded at the end or cut (clips shorter or longer than 10 s)."""
    if len(array) >= length:
        return array[:length]
    return np.pad(array, ((0, length - len(array)), (0, 0)))


class ClipInputs:
    """A clip's network inputs from the feature stores: spectral [604, 128] standardised,
    pretrained [151, D], each zero-padded or cut to 10 s (`clip_seconds`); sparser pretrained
    streams (the demo's) are first stretched to 151 rows for 10 s by nearest row."""

    def __init__(
        self,
        stores: dict[str, Path],
        mean: np.ndarray | None = None,
        std: np.ndarray | None = None,
        clip_seconds: float = CLIP_SECONDS,
    ) -> None:
        self.paths = stores
        self.mean, self.std = mean, std
        self.clip_seconds = clip_seconds
        self.frames = spectral_frames(clip_seconds)
        self.steps = self.frames // 4
        self._stores: dict[str, Any] = {}

    def store(self, stream: str):
        from avtool.core.store import FeatureStore

        if stream not in self._stores:
            store = FeatureStore(self.paths[stream])
            extractor = store.attrs.get("extractor")
            if extractor != STORE_EXTRACTOR[stream]:
                raise InputError(
                    f"{self.paths[stream]}: made by {extractor!r}, expected a "
                    f"`features {STORE_EXTRACTOR[stream]}` store for the {stream} stream"
                )
            self._stores[stream] = store
        return self._stores[stream]

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_stores": {}}  # HDF5 handles stay in their process

    def spectral(self, clip_id: str) -> np.ndarray:
        return np.ascontiguousarray(self.store("spectral")[clip_id].T, dtype=np.float32)

    def __call__(self, clip_id: str) -> dict[str, np.ndarray]:
        inputs = {}
        for stream in self.paths:
            if stream == "spectral":
                x = self.spectral(clip_id)
                if self.mean is not None:
                    x = (x - self.mean) / self.std
                inputs[stream] = fit_length(x, self.frames)
                continue
            store = self.store(stream)
            x = np.asarray(store[clip_id], dtype=np.float32)
            nominal = _nominal_steps(store.attrs, self.clip_seconds)
            if nominal != self.steps:
                rows = max(1, round(len(x) * self.steps / nominal))
                x = x[np.minimum(((np.arange(rows) + 0.5) * len(x) / rows).astype(int), len(x) - 1)]
            inputs[stream] = fit_length(x, self.steps)
        return inputs


def read_clips(manifest: Path) -> list[dict[str, Any]]:
    from avtool.core.manifest import read_manifest

    return read_manifest(manifest)


def available_clips(clips: list[dict], loader: ClipInputs) -> list[dict]:
    return [c for c in clips if all(c["id"] in loader.store(s) for s in loader.paths)]


def multi_hot(labels: list[str]) -> np.ndarray:
    from avtool.corpora.dcase2018 import CLASSES

    unknown = sorted(set(labels) - set(CLASSES))
    if unknown:
        raise InputError(f"labels {unknown} are not DCASE 2018 task 4 classes")
    return np.array([c in labels for c in CLASSES], dtype=np.float32)


def fit_scaler(loader: ClipInputs, ids: list[str], limit: int) -> tuple[np.ndarray, np.ndarray]:
    chosen = (
        ids
        if len(ids) <= limit
        else [ids[i] for i in np.linspace(0, len(ids) - 1, limit).astype(int)]
    )
    total = np.zeros(SED_LOGMEL.n_mels)
    squares = np.zeros(SED_LOGMEL.n_mels)
    count = 0
    for clip_id in chosen:
        x = loader.spectral(clip_id).astype(np.float64)
        total += x.sum(axis=0)
        squares += (x * x).sum(axis=0)
        count += len(x)
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - mean * mean, 0.0)) + 1e-5
    return mean.astype(np.float32), std.astype(np.float32)


@contextlib.contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """torch's intra-op threads set to `threads` (0: left as they are) while active."""
    import torch

    previous = torch.get_num_threads()
    if threads > 0:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
