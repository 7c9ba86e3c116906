"""Loading a pretrained torch network's weights for a feature extractor, or refusing not to.

`weights` names a checkpoint file, a folder holding the publisher's file, or nothing (the
folder `avtool models fetch NAME` filled). Missing weights are an error unless the caller
allows random weights: then the network keeps a seeded random initialisation and the store
records `random_weights: true` and `weights_sha256: random-seed-N`, so such features can never
pass for real ones; real weights are identified by their file's sha256.

Precision "auto" takes bf16 autocast where the CPU has AMX tiles (a bf16 matmul unit: ~2x on
conv nets) or on CUDA. On other CPUs an extractor that can quantize (VGG16, VGGish) runs int8:
fp32 runs near the peak of a CPU without a low-precision matrix unit, and static int8
quantization through oneDNN (per-channel weights, activation ranges observed on inputs of the
manifest's first `calibration_clips` items) is 2-3x faster there (bench/vgg16.py). int8 is
kept only if it stays faithful on the corpus's own inputs: on the calibration inputs that did
not set the ranges, its outputs must keep a cosine similarity >= INT8_MIN_COSINE with fp32's;
otherwise "auto" falls back to fp32 with a warning and an explicit "int8" is refused. The store
records the precision used and that cosine. Every shard and worker calibrates on the same
items, so they quantize alike.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avtool.core.errors import ConfigError, InputError
from avtool.core.items import SingleThreadTorchWorker

if TYPE_CHECKING:
    from torch import nn

PRECISIONS = ("auto", "fp32", "bf16")
QUANTIZABLE_PRECISIONS = (*PRECISIONS, "int8")
INT8_MIN_COSINE = 0.999
CALIBRATION_INPUTS = 64  # at most, spread over the calibration items; half calibrate, half check

log = logging.getLogger(__name__)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def find_checkpoint(weights: str, registry_name: str) -> Path | None:
    """The checkpoint file `weights` names (a file, or a folder with the registered file name),
    or the cached one when `weights` is empty; None when there is none."""
    from avtool.models.registry import cached_folder, lookup

    file_name = lookup(registry_name).files[0].name
    if weights:
        path = Path(weights)
        if path.is_dir():
            path = path / file_name
        if not path.is_file():
            raise InputError(
                f"--weights {weights}: no {registry_name} checkpoint there (expected a .pth file "
                f"or a folder holding {file_name}); run `avtool models fetch {registry_name}`"
            )
        return path
    folder = cached_folder(registry_name)
    return folder / file_name if folder is not None else None


def load_weights(
    build: Callable[[], nn.Module],
    weights: str,
    registry_name: str,
    allow_random: bool,
    seed: int = 0,
) -> tuple[nn.Module, bool, str]:
    """(network, whether its weights are random, their identity): `build()` with the checkpoint
    loaded strictly (every key must match) and the sha256 of the file, or, when there is none
    and `allow_random` permits, as `build()` initialises it under `seed` and "random-seed-N"
    (hashing 138 M random parameters would take longer than the demo's extraction)."""
    import torch

    checkpoint = find_checkpoint(weights, registry_name)
    if checkpoint is None:
        if not allow_random:
            raise InputError(
                f"no {registry_name} weights: run `avtool models fetch {registry_name}`, pass "
                "--weights FILE, or --allow-random-weights for features from a random network "
                "(tests and the demo only; the store records it)"
            )
        torch.manual_seed(seed)
        return build(), True, f"random-seed-{seed}"
    # Built on the meta device, the layers skip an initialisation that the load overwrites
    # (seconds for VGG16's 138 M parameters).
    with torch.device("meta"):
        model = build()
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(
            f"{checkpoint}: not a {registry_name} checkpoint ({first}); "
            f"fetch it again with `avtool models fetch {registry_name} --force`"
        ) from None
    return model, False, file_sha256(checkpoint)


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """ "fp32" or "bf16": what "auto" means on this machine (bf16 on AMX CPUs and CUDA)."""
    import torch

    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device.startswith("cuda"):
        return "bf16"
    return "bf16" if torch.cpu._is_amx_tile_supported() else "fp32"


def autocast(precision: str, device: str = "cpu") -> Any:
    import contextlib

    import torch

    if precision == "bf16":
        return torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
    return contextlib.nullcontext()


def min_cosine(a: np.ndarray, b: np.ndarray) -> float:
    """The smallest cosine similarity between matching rows of [N, D] `a` and `b`."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    numerator = (a * b).sum(axis=1)
    denominator = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12
    return float((numerator / denominator).min())


def embed_in_batches(model, inputs: np.ndarray, precision: str, batch_size: int) -> np.ndarray:
    """float32 outputs of `model` over `inputs` [N, C, ...], in batches, channels-last."""
    import torch

    outputs = []
    with torch.inference_mode(), autocast(precision):
        for start in range(0, len(inputs), batch_size):
            batch = torch.from_numpy(inputs[start : start + batch_size])
            batch = batch.contiguous(memory_format=torch.channels_last)
            outputs.append(model(batch).float())
    return torch.cat(outputs).numpy()


def check_precision(precision: str, calibration_clips: int) -> None:
    """ConfigError unless `precision` is one a quantizable extractor takes."""
    if precision not in QUANTIZABLE_PRECISIONS:
        raise ConfigError(
            f"precision={precision!r}: expected one of {', '.join(QUANTIZABLE_PRECISIONS)}"
        )
    if calibration_clips < 1:
        raise ConfigError(f"calibration_clips={calibration_clips}: must be at least 1")


def calibration_candidates(manifest: Path, clips: int, field: str) -> tuple[str, ...]:
    """The files int8 calibrates on, in manifest order (so every shard and worker calibrates on
    the same ones): `field` of the first 10 x `clips` items (else `path`); unreadable ones are
    skipped later."""
    from avtool.core.manifest import read_manifest

    return tuple(item.get(field) or item["path"] for item in read_manifest(manifest)[: 10 * clips])


def calibration_inputs(
    paths: tuple[str, ...], read: Callable[[str], np.ndarray], clips: int
) -> np.ndarray:
    """What `read` gives for the first `clips` readable paths, concatenated along axis 0 and
    thinned evenly to at most CALIBRATION_INPUTS rows."""
    from avtool.core.errors import ItemError

    parts = []
    for path in paths:
        try:
            parts.append(read(path))
        except ItemError:
            continue
        if len(parts) == clips:
            break
    if not parts:
        raise InputError(
            f"no readable file among the manifest's first {len(paths)} items to calibrate int8 "
            "on; make them readable, or pass --precision fp32"
        )
    inputs = np.concatenate(parts)
    picked = np.unique(np.linspace(0, len(inputs) - 1, CALIBRATION_INPUTS).round().astype(int))
    return inputs[picked]


def quantize_int8(
    model: nn.Module, traceable: nn.Module, inputs: np.ndarray, batch_size: int
) -> tuple[nn.Module, float]:
    """(int8 copy of `traceable`, the smallest cosine similarity of its outputs with `model`'s).

    `traceable` computes what `model` does, as a module torch.fx can trace. Static
    post-training quantization (torch.ao, oneDNN: per-channel int8 weights), activation ranges
    observed on every other row of `inputs`; the cosine is measured on the rows in between,
    which the ranges never saw.
    """
    import copy

    import torch
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    calibrate, check = (inputs[0::2], inputs[1::2]) if len(inputs) > 1 else (inputs, inputs)
    torch.backends.quantized.engine = "onednn"
    with warnings.catch_warnings():
        # torch.ao announces its own removal (still present in the pinned torch 2.13).
        warnings.filterwarnings("ignore", message=".*(deprecated|reduce_range).*")
        prepared = prepare_fx(
            copy.deepcopy(traceable).eval(),
            get_default_qconfig_mapping("onednn"),
            (torch.from_numpy(calibrate[:1]),),
        )
        with torch.no_grad():
            for start in range(0, len(calibrate), batch_size):
                prepared(torch.from_numpy(calibrate[start : start + batch_size]))
        quantized = convert_fx(prepared)
    cosine = min_cosine(
        embed_in_batches(model, check, "fp32", batch_size),
        embed_in_batches(quantized, check, "int8", batch_size),
    )
    return quantized, cosine


def choose_network(
    model: nn.Module, precision: str, int8: Callable[[], tuple[nn.Module, float]]
) -> tuple[nn.Module, str, float | None]:
    """(network, the precision it runs at, int8's calibration cosine or None).

    "auto": bf16 on AMX CPUs, else int8 (built by `int8()`) if it keeps INT8_MIN_COSINE, else
    fp32 with a warning; an explicit "int8" that falls short is refused.
    """
    import torch

    has_int8 = "onednn" in torch.backends.quantized.supported_engines
    chosen = precision
    if precision == "auto":
        chosen = resolve_precision("auto")
        chosen = "int8" if chosen == "fp32" and has_int8 else chosen
    if chosen == "int8" and not has_int8:
        raise ConfigError("precision=int8: this torch build has no oneDNN quantized engine")
    if chosen != "int8":
        return model.to(memory_format=torch.channels_last), chosen, None
    quantized, cosine = int8()
    if cosine >= INT8_MIN_COSINE:
        return quantized, "int8", cosine
    message = (
        f"int8 departs from fp32 on the calibration items (smallest cosine {cosine:.5f} < "
        f"{INT8_MIN_COSINE})"
    )
    if precision == "int8":
        raise InputError(f"{message}; pass --precision fp32 (or auto)")
    log.warning("%s; computing in fp32", message)
    return model.to(memory_format=torch.channels_last), "fp32", cosine


class PretrainedWorker(SingleThreadTorchWorker):
    """Item worker around a published network: `load_network(params)` gives (model, random,
    sha256); the store records the extractor, its parameters, the weights' hash, whether they
    were random and the precision the network runs at."""

    extractor: str = ""
    can_quantize = False  # whether `quantized` builds an int8 network (precision auto|int8)

    def load_network(self) -> tuple[Any, bool, str]:
        raise NotImplementedError

    def quantized(self) -> tuple[Any, float]:
        """(int8 network, its calibration cosine), where `can_quantize`."""
        raise NotImplementedError

    def choose_network(self) -> tuple[Any, str, float | None]:
        """(network, the precision it runs at, int8's calibration cosine or None)."""
        import torch

        model, _, _ = self.load_network()
        if not self.can_quantize:
            precision = resolve_precision(self.params.precision)
            return model.to(memory_format=torch.channels_last), precision, None
        return choose_network(model, self.params.precision, self.quantized)

    def load(self) -> None:
        _, self._random, _ = self.load_network()
        self._model, self._precision, _ = self.choose_network()

    def store_attrs(self) -> dict[str, Any]:
        import dataclasses

        from avtool.core.store import store_attrs

        _, random, sha256 = self.load_network()
        attrs = store_attrs(self.extractor, dataclasses.asdict(self.params), sha256)
        attrs["random_weights"] = random
        _, attrs["precision_used"], cosine = self.choose_network()
        if cosine is not None:
            attrs["int8_min_cosine"] = cosine
        return attrs
