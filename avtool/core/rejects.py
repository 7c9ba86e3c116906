"""One reject contract for every stage: counted over the whole stage, summarised, then judged.

Every stage that rejects items writes `rejects.jsonl` (or one `rejects-TAG.jsonl` per shard) with
`{"id", "path", "reason"}` lines. The verdict is taken over all of them together, against the
number of items the whole stage was given, so `--jobs`, `--shard` and SLURM arrays reach the same
verdict as one process. A thousand identical failures make one summary line, not a thousand
warnings: the reasons are grouped with the item's own id and path taken out.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from avtool.core.errors import StageFailed
from avtool.core.journal import read_jsonl

log = logging.getLogger(__name__)

REJECTS_GLOB = "rejects*.jsonl"
_SHOWN_REASONS = 3
_PATH = re.compile(r"(?:/[^/\s:'\"]+)+")


def reason_pattern(reject: dict[str, Any]) -> str:
    """The reason with this item's path and id replaced, so alike failures group together."""
    reason = str(reject.get("reason", "?"))
    path = reject.get("path")
    if path:
        reason = reason.replace(str(path), "<file>")
    reason = _PATH.sub("<file>", reason)
    item_id = reject.get("id")
    if item_id:
        reason = reason.replace(str(item_id), "<id>")
    return reason


@dataclass
class RejectSummary:
    items: int
    rejects: list[dict[str, Any]]
    files: list[Path] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return len(self.rejects)

    @property
    def rate(self) -> float:
        return self.rejected / self.items if self.items else 0.0

    def commonest(self, count: int = _SHOWN_REASONS) -> list[tuple[str, int]]:
        return Counter(reason_pattern(r) for r in self.rejects).most_common(count)

    def describe(self) -> str:
        """`N of M items rejected (P%); commonest: ...; see FILES`: one line."""
        if not self.rejected:
            return f"0 of {self.items} items rejected"
        reasons = "; ".join(f"{n} x {reason}" for reason, n in self.commonest())
        where = ", ".join(str(f) for f in self.files)
        return (
            f"{self.rejected} of {self.items} items rejected ({100 * self.rate:.1f}%); "
            f"commonest: {reasons}; all reasons in {where}"
        )


def summarise(out_dir: Path, items: int, ids: set[str] | None = None) -> RejectSummary:
    """Every reject recorded in `out_dir` (all shards), limited to `ids` when given."""
    files = sorted(Path(out_dir).glob(REJECTS_GLOB))
    rejects: dict[str, dict[str, Any]] = {}
    for path in files:
        for entry in read_jsonl(path):
            if ids is None or entry.get("id") in ids:
                rejects[entry.get("id", "")] = entry
    return RejectSummary(items, list(rejects.values()), [f for f in files if f.stat().st_size])


def enforce(summary: RejectSummary, stage_name: str, max_reject_rate: float) -> None:
    """Raise StageFailed when the whole stage's rate is past the limit, else log the summary."""
    if summary.items and summary.rate > max_reject_rate:
        raise StageFailed(
            f"{stage_name}: {summary.describe()}; more than --max-reject-rate "
            f"{max_reject_rate}: fix or remove those inputs, or raise --max-reject-rate"
        )
    if summary.rejected:
        log.warning("%s: %s", stage_name, summary.describe())
