"""`avtool status DIR... | PIPELINE.yaml`"""

from __future__ import annotations

from pathlib import Path

import typer


def status(
    paths: list[Path] = typer.Argument(..., help="Output directories to scan, or pipeline YAMLs."),
) -> None:
    """Table of the stages found: state (done, partial, stale, missing), items, why it would rerun."""
    from rich.console import Console
    from rich.table import Table

    from avtool.core.stage import describe_directory, find_stage_dirs
    from avtool.recipes.pipeline import pipeline_statuses

    rows = []
    for path in paths:
        if path.suffix in (".yaml", ".yml") and path.is_file():
            rows.extend(pipeline_statuses(path))
        else:
            rows.extend(describe_directory(d) for d in find_stage_dirs([path]))
    table = Table(title="avtool stages")
    for column in ("stage", "directory", "state", "done", "rejected", "why"):
        table.add_column(column)
    colours = {"done": "green", "partial": "yellow", "stale": "red", "missing": "dim"}
    for row in rows:
        table.add_row(
            row.name,
            str(row.out_dir),
            f"[{colours.get(row.state, 'white')}]{row.state}[/]",
            str(row.counts.get("done", "")),
            str(row.counts.get("rejected", "")),
            row.reason,
        )
    Console(width=160).print(table)
    if not rows:
        typer.echo("no stages found")
