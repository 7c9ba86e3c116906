"""Loading a pretrained torch network's weights for a feature extractor, or refusing not to.

`weights` names a checkpoint file, a folder holding the publisher's file, or nothing (the
folder `avtool models fetch NAME` filled). Missing weights are an error unless the caller
allows random weights: then the network keeps a seeded random initialisation and the store
records `random_weights: true` and `weights_sha256: random-seed-N`, so such features can never
pass for real ones; real weights are identified by their file's sha256. Precision "auto" takes bf16 autocast where the CPU has AMX tiles (a bf16
matmul unit: ~2x on conv nets) and fp32 elsewhere; a CUDA device takes bf16 too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from avtool.core.errors import ConfigError, InputError
from avtool.core.items import SingleThreadTorchWorker

if TYPE_CHECKING:
    from torch import nn

PRECISIONS = ("auto", "fp32", "bf16")


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


class PretrainedWorker(SingleThreadTorchWorker):
    """Item worker around a published network: `load_network(params)` gives (model, random,
    sha256); the store records the extractor, its parameters, the weights' hash and whether
    they were random."""

    extractor: str = ""

    def load_network(self) -> tuple[Any, bool, str]:
        raise NotImplementedError

    def load(self) -> None:
        import torch

        model, self._random, _ = self.load_network()
        self._model = model.to(memory_format=torch.channels_last)
        self._precision = resolve_precision(self.params.precision)

    def store_attrs(self) -> dict[str, Any]:
        import dataclasses

        from avtool.core.store import store_attrs

        _, random, sha256 = self.load_network()
        attrs = store_attrs(self.extractor, dataclasses.asdict(self.params), sha256)
        attrs["random_weights"] = random
        return attrs
