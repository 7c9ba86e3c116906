"""avtool.core.memory: freed large arrays stay in the process for reuse (glibc only)."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys

import pytest

PROBE = """
import json, os
import numpy as np
from avtool.core.memory import keep_freed_memory
def resident():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
applied = keep_freed_memory()
before = resident()
np.ones(16_000_000)  # 128 MB, touched, then freed
print(json.dumps({"applied": applied, "kept_bytes": resident() - before}))
"""


def _probe(setting: str) -> dict:
    env = {**os.environ, "AVTOOL_KEEP_FREED_MEMORY": setting}
    run = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_a_freed_large_array_stays_resident_for_reuse():
    kept, default = _probe("1"), _probe("0")
    assert kept["applied"] is True and default["applied"] is False
    # glibc's default unmaps the 128 MB on free (the next one is paged in anew); kept, the
    # pages stay in the heap for the next tensor.
    assert kept["kept_bytes"] > 120e6
    assert default["kept_bytes"] < 10e6
