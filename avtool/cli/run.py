"""`avtool run PIPELINE.yaml`"""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common


def execute_command(argv: list[str]) -> None:
    """Run one avtool command in this process; its AvtoolError propagates."""
    from avtool.cli.main import app

    app(args=argv, standalone_mode=False)


def run_pipeline(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML (see pipelines/)."),
    start: str = typer.Option(None, "--from", help="First stage to run."),
    stop: str = typer.Option(None, "--to", help="Last stage to run."),
    sets: common.SetOption = None,
    dry_run: common.DryRunOption = False,
) -> None:
    """Run every stage of a pipeline in order, skipping what is done."""
    from avtool.recipes.pipeline import run_pipeline as run

    run(
        pipeline,
        execute_command,
        start=start,
        stop=stop,
        dry_run=dry_run,
        sets=sets,
        announce=typer.echo,
    )
