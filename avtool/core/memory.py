"""Keep freed memory in the process instead of mapping fresh pages for every large tensor.

glibc's malloc serves large requests (from 128 KB, rising to 32 MB) with a fresh mmap and
unmaps them on free, so every large tensor of every step is paged in anew: each of its pages
faults and is zeroed by the kernel. A CPU training step makes hundreds of such tensors (62 MB
each for a 100-channel map of a 481x321 image), and the faults took over 40% of an MMT
iteration (bench/mmt.py --cost: 17.8 against 10.2 CPU-s). With mmap off and the heap's top kept, freed blocks are reused: the
process keeps its peak resident size until it exits, which a stage process can afford.

`AVTOOL_KEEP_FREED_MEMORY=0` leaves malloc as it is (for measuring, or a memory-tight host).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

M_TRIM_THRESHOLD = -1  # mallopt parameters, glibc's malloc.h
M_MMAP_MAX = -4
_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to serve every request from its heap and never shrink it; True when
    it did (glibc, not switched off), False elsewhere (musl, macOS, Windows: left alone)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get("AVTOOL_KEEP_FREED_MEMORY", "1") == "0":
        return False
    try:
        mallopt = ctypes.CDLL(ctypes.util.find_library("c")).mallopt
    except (OSError, AttributeError, TypeError):  # no libc to load, or one without mallopt
        return False
    _applied = bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, 2**31 - 1))
    log.debug("malloc keeps freed memory: %s", _applied)
    return _applied
