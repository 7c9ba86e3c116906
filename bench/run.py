"""Run every benchmark (or one named, with its own options) and print one JSON line each.

`python bench/run.py` runs them all with their defaults; `python bench/run.py vgg16 --seconds 2`
runs one and hands it the options after its name.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

BENCHMARKS = [
    "logmel",
    "crash_resume",
    "mmt",
    "limuse_data",
    "face",
    "limuse",
    "ser",
    "ser_real",
    "vgg16",
]


def main() -> None:
    if len(sys.argv) > 1:
        name, options = sys.argv[1], sys.argv[2:]
        if name not in BENCHMARKS:
            sys.exit(f"bench/run.py: no benchmark {name!r}; benchmarks are {', '.join(BENCHMARKS)}")
        sys.argv = [f"{name}.py", *options]
        importlib.import_module(name).main()
        return
    for name in BENCHMARKS:
        sys.argv = [f"{name}.py"]
        importlib.import_module(name).main()


if __name__ == "__main__":
    main()
