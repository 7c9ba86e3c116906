"""Progress: a rich bar on a terminal, periodic log lines elsewhere (batch jobs, pipes)."""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger("avtool.progress")


def track(items: Iterable[T], total: int, description: str, enabled: bool = True) -> Iterator[T]:
    if enabled and sys.stderr.isatty():
        from rich.progress import Progress

        with Progress(transient=True) as bar:
            task = bar.add_task(description, total=total)
            for item in items:
                yield item
                bar.advance(task)
        return
    step = max(1, total // 10)
    start = time.monotonic()
    for done, item in enumerate(items, start=1):
        yield item
        if done % step == 0 or done == total:
            log.info("%s: %d/%d (%.1fs)", description, done, total, time.monotonic() - start)
