"""LiMuSE's GC-TCN stack for inference through the fused kernels of `limuse_fused.cpp`.

`GCTCN.forward` takes this path when nothing needs a gradient, the tensors are fp32 on the CPU,
the stack's layers all quantize their inputs with the same bits or none do, and the kernels
compiled (`avtool.core.native`); `AVTOOL_NATIVE=0` turns it off, `torch_path()` too within a
block of code. Weights are read through the modules, so quantized weights (parametrizations)
are used as the layers would use them.

Full precision, the outputs equal torch's within float rounding. With 8-bit min-max
activations (the packed model) every layer's input is rounded to a grid spanning the whole
batch, as on torch's path; the kernels find each grid in an extra pass (TAC computes its
transform twice rather than keep it), and where float rounding, which differs between the two
paths, puts a value on a grid boundary it moves by a step: per block under 0.1% of values.
Through 18 blocks of a random K=32 model the two paths end 17 dB SNR apart, about as far as a
1e-6 change of the input moves torch's own output (16 dB; tests and bench/limuse.py). The
kernels split their work (tiles of frames, rows) over torch's thread count, and add every sum
in frame order, so the thread count does not change a bit of the output.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from avtool.core.native import load_library

if TYPE_CHECKING:
    from avtool.models.limuse import GCTCN, TAC, ConvBlock, QuantConv1d

SOURCE = Path(__file__).with_name("limuse_fused.cpp")
_POINTER, _INT, _FLOAT = ctypes.c_void_p, ctypes.c_int, ctypes.c_float


def kernels() -> ctypes.CDLL | None:
    library = load_library(SOURCE)
    if library is not None and library.tac_forward.argtypes is None:
        tac = [_INT] * 4 + [_POINTER, _POINTER, _FLOAT] * 3 + [_POINTER, _POINTER, _FLOAT]
        conv = [_INT] * 6 + [_POINTER, _POINTER, _FLOAT, _POINTER, _POINTER, _POINTER, _POINTER,
                             _FLOAT, _POINTER, _POINTER, _POINTER, _POINTER, _FLOAT]  # fmt: skip
        library.tac_forward.argtypes = [_POINTER] * 2 + tac + [_INT]
        library.conv_block_forward.argtypes = [_POINTER] * 2 + conv + [_INT]
        # The 8-bit versions take the quantized input too, the batch's item count, the levels.
        library.tac_forward_quantized.argtypes = [_POINTER] * 3 + [_INT] + tac + [_INT, _INT]
        library.conv_block_forward_quantized.argtypes = [_POINTER] * 3 + conv + [_INT, _INT]
    return library


_torch_only = False
MAX_DEPTHWISE_TAPS = 16  # the kernel's tap buffer


@contextlib.contextmanager
def torch_path() -> Iterator[None]:
    """Every stack inside runs on torch's path (benchmarks and tests compare the two)."""
    global _torch_only
    saved, _torch_only = _torch_only, True
    try:
        yield
    finally:
        _torch_only = saved


def applies(stack: GCTCN, x: torch.Tensor) -> bool:
    """Whether `stack` can run `x` through the kernels (see the module's docstring)."""
    if _torch_only or x.device.type != "cpu" or x.dtype != torch.float32:
        return False
    if torch.is_grad_enabled() and (
        x.requires_grad or any(p.requires_grad for p in stack.parameters())
    ):
        return False
    from avtool.models.limuse import QuantConv1d

    if len({m.act_bits for m in stack.modules() if isinstance(m, QuantConv1d)}) != 1:
        return False
    if any(block.conv.depthwise.kernel_size[0] > MAX_DEPTHWISE_TAPS for block in stack.blocks):
        return False
    return kernels() is not None


def _pointer(t: torch.Tensor) -> int:
    return t.data_ptr()


def _weights(*tensors: torch.Tensor) -> list[torch.Tensor]:
    return [t.detach().float().contiguous() for t in tensors]


def _slope(prelu: torch.nn.PReLU) -> float:
    return float(prelu.weight)


def _levels(layer: QuantConv1d) -> int:
    return 2**layer.act_bits - 1


def _tac(library: ctypes.CDLL, tac: TAC, x: torch.Tensor, y: torch.Tensor) -> None:
    groups, (width, frames) = tac.groups, x.shape[1:]
    hidden = tac.average.in_channels
    w1, b1, w2, b2, w3, b3, gamma, beta = _weights(
        tac.transform.weight, tac.transform.bias, tac.average.weight, tac.average.bias,
        tac.concat.weight, tac.concat.bias, tac.norm.weight, tac.norm.bias,
    )  # fmt: skip
    layers = (_pointer(w1), _pointer(b1), _slope(tac.transform_act),
              _pointer(w2), _pointer(b2), _slope(tac.average_act),
              _pointer(w3), _pointer(b3), _slope(tac.concat_act),
              _pointer(gamma), _pointer(beta), tac.norm.eps)  # fmt: skip
    threads = torch.get_num_threads()
    if tac.transform.act_bits:
        quantized = tac.transform.quantize_input(x).contiguous()
        library.tac_forward_quantized(
            _pointer(x), _pointer(quantized), _pointer(y), x.shape[0] // groups, groups, width,
            hidden, frames, *layers, _levels(tac.transform), threads,
        )  # fmt: skip
        return
    for item in range(x.shape[0] // groups):
        rows = slice(item * groups, (item + 1) * groups)
        library.tac_forward(_pointer(x[rows]), _pointer(y[rows]), groups, width, hidden, frames,
                            *layers, threads)  # fmt: skip


def _conv_block(library: ctypes.CDLL, block: ConvBlock, x: torch.Tensor, y: torch.Tensor) -> None:
    rows, width, frames = x.shape
    we, be, ge, bte, wd, bd, gd, btd, wp, bp = _weights(
        block.expand.weight, block.expand.bias, block.expand_norm.weight, block.expand_norm.bias,
        block.depthwise.weight, block.depthwise.bias, block.depthwise_norm.weight,
        block.depthwise_norm.bias, block.project.weight, block.project.bias,
    )  # fmt: skip
    shape = (rows, width, block.expand.out_channels, frames, block.depthwise.kernel_size[0],
             block.depthwise.dilation[0])  # fmt: skip
    layers = (_pointer(we), _pointer(be), _slope(block.expand_act), _pointer(ge), _pointer(bte),
              _pointer(wd), _pointer(bd), _slope(block.depthwise_act), _pointer(gd),
              _pointer(btd), _pointer(wp), _pointer(bp), block.expand_norm.eps)  # fmt: skip
    threads = torch.get_num_threads()
    if block.expand.act_bits:
        quantized = block.expand.quantize_input(x).contiguous()
        status = library.conv_block_forward_quantized(
            _pointer(x), _pointer(quantized), _pointer(y), *shape, *layers,
            _levels(block.expand), threads,
        )  # fmt: skip
    else:
        status = library.conv_block_forward(_pointer(x), _pointer(y), *shape, *layers, threads)
    if status:
        raise RuntimeError(f"depthwise kernel wider than {MAX_DEPTHWISE_TAPS} taps")


def gctcn_forward(stack: GCTCN, x: torch.Tensor) -> torch.Tensor:
    """The stack on [B*K, C/K, T] rows (contiguous fp32), as `GCTCN` runs it."""
    library = kernels()
    assert library is not None
    current = x.contiguous()
    buffers = (torch.empty_like(current), torch.empty_like(current))  # the input stays as is
    for block in stack.blocks:
        steps = ((_tac, block.tac),) if block.tac is not None else ()
        for step, module in (*steps, (_conv_block, block.conv)):
            target = buffers[1] if current is buffers[0] else buffers[0]
            step(library, module, current, target)
            current = target
    return current
