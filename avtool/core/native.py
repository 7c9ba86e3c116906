"""Native kernels: a C++ source compiled at first use for this CPU, cached, loaded by ctypes.

The library is built with the C++ compiler on PATH (`$CXX`, else `c++`) with `-O3` and the
host's instruction set, into `$AVTOOL_CACHE/native` (else `~/.cache/avtool/native`) under a
name hashing the source, the compiler, the flags and the CPU's features, so a cluster's
different nodes sharing one home folder each get their own build. The build is written to a
temporary file and renamed, so ranks starting together never load half a library. Without a
compiler, or when the build fails or the cache folder cannot be written, `load_library`
returns None and says why once in the log: callers keep their pure-torch path.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
from functools import cache
from pathlib import Path

log = logging.getLogger(__name__)

DISABLE_VARIABLE = "AVTOOL_NATIVE"  # "0" keeps every caller on its torch path
BUILD_TIMEOUT_S = 300


def _cpu_features() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()


def _arch_flag() -> str:
    return "-mcpu=native" if platform.machine().lower() in ("arm64", "aarch64") else "-march=native"


def cache_folder() -> Path:
    env = os.environ.get("AVTOOL_CACHE")
    return (Path(env) if env else Path.home() / ".cache" / "avtool") / "native"


@cache
def load_library(source: Path) -> ctypes.CDLL | None:
    """The compiled `source` (a C++ file exporting extern "C" functions), or None."""
    if os.environ.get(DISABLE_VARIABLE) == "0":
        return None
    compiler = shutil.which(os.environ.get("CXX", "c++"))
    if compiler is None:
        log.warning("no C++ compiler on PATH: %s runs on torch's slower path", source.name)
        return None
    flags = ["-O3", _arch_flag(), "-std=c++17", "-shared", "-fPIC", "-pthread", "-fno-math-errno"]
    digest = hashlib.sha256()
    for part in (source.read_bytes(), compiler.encode(), " ".join(flags).encode(),
                 _cpu_features().encode(), platform.machine().encode()):  # fmt: skip
        digest.update(part)
    target = cache_folder() / f"{source.stem}-{digest.hexdigest()[:16]}.so"
    try:
        if not target.exists():
            _build(compiler, flags, source, target)
        return ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError, RuntimeError) as error:
        log.warning("could not build %s (%s): torch's slower path", source.name, error)
        return None


def _build(compiler: str, flags: list[str], source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        built = Path(tmp) / target.name
        result = subprocess.run(
            [compiler, *flags, str(source), "-o", str(built)],
            capture_output=True, text=True, timeout=BUILD_TIMEOUT_S,
        )  # fmt: skip
        if result.returncode:
            raise RuntimeError((result.stderr.strip().splitlines() or ["no message"])[-1])
        os.replace(built, target)
