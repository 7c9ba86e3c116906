"""`avtool run PIPELINE.yaml`"""

from pathlib import Path

import typer


def run_pipeline(
    pipeline: Path = typer.Argument(..., help="Pipeline YAML."),
) -> None:
    """Run every stage of a pipeline, skipping what is done."""
    raise NotImplementedError
