"""A bit-packed low-bit model file and the loader that rebuilds the model from it.

Layout: `MAGIC`, a little-endian uint32 header length, a JSON header (architecture, model
config, bit widths), then three blocks, all little-endian:
1. every tensor of the model's state that is not a quantized weight, float32, in the order of
   a freshly built model's `state_dict()` (biases, norms, PReLU slopes, the decoder);
2. per quantized layer, in `quantizable_layers()` order: alpha, beta and the thresholds,
   float32;
3. the quantized weights' integer codes, `weight_bits` bits each, concatenated in layer order
   and packed most significant bit first (`numpy.packbits`).
Shapes are not stored: the loader builds the model from the header's config and takes them from
it, so the file is the codes, the full-precision rest and a few hundred bytes of header.

The loaded model carries plain (dequantized) weights alpha * (code - o) and the same
activation quantization; its outputs equal those of the fake-quantized model in eval mode.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from avtool.core.errors import InputError

MAGIC = b"AVTQPACK1\n"


def pack_codes(codes: np.ndarray, bits: int) -> bytes:
    """Unsigned integer codes (< 2^bits) as a packed bit string, most significant bit first."""
    codes = np.asarray(codes, dtype=np.uint8).ravel()
    if codes.size and int(codes.max()) >= 2**bits:
        raise ValueError(f"a code does not fit in {bits} bits")
    shifts = np.arange(bits - 1, -1, -1, dtype=np.uint8)
    return np.packbits(((codes[:, None] >> shifts) & 1).astype(np.uint8).ravel()).tobytes()


def unpack_codes(data: bytes, count: int, bits: int) -> np.ndarray:
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=count * bits)
    weights = (1 << np.arange(bits - 1, -1, -1)).astype(np.uint8)
    return (flat.reshape(count, bits) * weights).sum(axis=1).astype(np.uint8)


def _quantized_keys(model: nn.Module) -> list[str]:
    return [f"{name}.weight" for name, _ in model.quantizable_layers()]


def export_packed(
    model: nn.Module,
    fresh: nn.Module,
    path: str | os.PathLike,
    header: dict[str, Any],
    weight_bits: int,
    act_bits: int,
) -> int:
    """Write quantized `model` (a `quantize_model`-ed network) to `path`; returns its bytes.

    `fresh` is an unquantized model of the same config: it fixes the order of the tensors.
    `header` holds what the loader's `build` needs (architecture and model config).
    """
    from avtool.core import atomic
    from avtool.quant.weights import WeightQuantizer

    quantized = set(_quantized_keys(fresh))
    state = model.state_dict()
    dense = []
    for key in fresh.state_dict():
        if key not in quantized:
            dense.append(state[key].detach().to(torch.float32).cpu().numpy().ravel())
    qparams, codes = [], []
    for name, _ in fresh.quantizable_layers():
        layer = model.get_submodule(name)
        quantizer = layer.parametrizations.weight[0]
        if not isinstance(quantizer, WeightQuantizer) or quantizer.bits != weight_bits:
            raise ValueError(f"layer {name} is not quantized to {weight_bits} bits")
        original = layer.parametrizations.weight.original
        qparams.append(
            np.concatenate(
                [
                    [float(quantizer.alpha.detach()), float(quantizer.beta.detach())],
                    quantizer.thresholds.cpu().numpy(),
                ]
            )
        )
        codes.append(quantizer.codes(original.detach()).cpu().numpy().ravel())
    meta = {**header, "weight_bits": weight_bits, "act_bits": act_bits, "format": 1}
    head = json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
    blobs = [
        MAGIC,
        struct.pack("<I", len(head)),
        head,
        np.concatenate(dense).astype("<f4").tobytes(),
        np.concatenate(qparams).astype("<f4").tobytes(),
        pack_codes(np.concatenate(codes), weight_bits),
    ]
    data = b"".join(blobs)
    atomic.write_bytes(path, data)
    return len(data)


def read_header(path: str | os.PathLike) -> dict[str, Any]:
    data = Path(path).read_bytes()
    return _split(path, data)[0]


def _split(path: str | os.PathLike, data: bytes) -> tuple[dict[str, Any], bytes]:
    if not data.startswith(MAGIC):
        raise InputError(f"{path}: not a packed avtool model (bad magic); export it again")
    (length,) = struct.unpack_from("<I", data, len(MAGIC))
    start = len(MAGIC) + 4
    return json.loads(data[start : start + length]), data[start + length :]


def load_packed(
    path: str | os.PathLike, build: Callable[[dict[str, Any]], nn.Module]
) -> tuple[nn.Module, dict[str, Any]]:
    """(the model rebuilt from the file, in eval mode, the header); `build(header)` makes the
    unquantized network of the header's config."""
    data = Path(path).read_bytes()
    meta, body = _split(path, data)
    model = build(meta)
    bits, act_bits = int(meta["weight_bits"]), int(meta["act_bits"])
    quantized = set(_quantized_keys(model))
    state = model.state_dict()
    dense_keys = [k for k in state if k not in quantized]
    dense_count = sum(state[k].numel() for k in dense_keys)
    layers = model.quantizable_layers()
    thresholds = 2**bits - 2
    qparam_count = len(layers) * (2 + thresholds)
    code_count = sum(layer.weight.numel() for _, layer in layers)
    expected = 4 * (dense_count + qparam_count) + -(-code_count * bits // 8)
    if len(body) != expected:
        raise InputError(
            f"{path}: {len(body)} bytes of tensors, expected {expected} for its config; "
            "the file is truncated or from another version: export it again"
        )
    floats = np.frombuffer(body, dtype="<f4", count=dense_count + qparam_count)
    new_state, at = {}, 0
    for key in dense_keys:
        size = state[key].numel()
        new_state[key] = torch.from_numpy(floats[at : at + size].copy()).view_as(state[key])
        at += size
    params = floats[dense_count:].reshape(len(layers), 2 + thresholds)
    codes = unpack_codes(body[4 * (dense_count + qparam_count) :], code_count, bits)
    at = 0
    offset = float(thresholds) / 2
    for (name, layer), row in zip(layers, params, strict=True):
        size = layer.weight.numel()
        chunk = torch.from_numpy(codes[at : at + size].copy()).view_as(layer.weight)
        alpha = torch.tensor(float(row[0]))
        # The same float32 arithmetic as WeightQuantizer.dequantize, hence the same weights.
        new_state[f"{name}.weight"] = alpha * (chunk.to(torch.float32) - offset)
        layer.act_bits = act_bits
        at += size
    model.load_state_dict(new_state)
    return model.eval(), meta
