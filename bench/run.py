"""Run every benchmark (or those named) and print one JSON line each."""

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
    names = [a for a in sys.argv[1:] if not a.startswith("-")] or BENCHMARKS
    for name in names:
        sys.argv = [sys.argv[0], name]
        importlib.import_module(name).main()


if __name__ == "__main__":
    main()
