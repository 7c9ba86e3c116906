"""MMT recipe: segment every image with one method (per-image stage), evaluate, report.

- `segment`: `avtool train mmt`, the per-image stage (label maps in compact HDF5 stores);
- `evaluate`: `avtool evaluate mmt`, scores per run under a stated grid-selection protocol;
- `report`: `avtool report mmt`, the table and figures with matched colours.
"""

from avtool.recipes.mmt import segment as segment_module
from avtool.recipes.mmt.evaluate import (
    DISPLAY,
    EVALUATE_VERSION,
    PAPER_ACCURACY,
    SELECTIONS,
    evaluate,
    parse_fixed,
    variant_label,
)
from avtool.recipes.mmt.report import REPORT_VERSION, matched_colours, report, table_markdown
from avtool.recipes.mmt.segment import (
    METHODS,
    SEGMENT_VERSION,
    SegmentConfig,
    SegmentWorker,
    compact_labels,
    segment,
    stage_params,
)

__all__ = [
    "DISPLAY",
    "EVALUATE_VERSION",
    "METHODS",
    "PAPER_ACCURACY",
    "REPORT_VERSION",
    "SEGMENT_VERSION",
    "SELECTIONS",
    "SegmentConfig",
    "SegmentWorker",
    "compact_labels",
    "evaluate",
    "matched_colours",
    "parse_fixed",
    "report",
    "segment",
    "segment_module",
    "stage_params",
    "table_markdown",
    "variant_label",
]
