"""`avtool report ...`"""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Report commands.")


@app.command("mmt")
def mmt(
    evaluation: Path = typer.Option(..., "--eval", help="Output of `avtool evaluate mmt`."),
    out: Path = common.OutOption,
    max_figures: int = typer.Option(20, "--max-figures", help="Images with a figure."),
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
) -> None:
    """Paper-style table of every method and a figure per image."""
    from avtool.recipes.mmt import report

    result = report(evaluation, out, max_figures=max_figures, force=force, dry_run=dry_run)
    if result["state"] == "dry-run":
        typer.echo(result["message"])
    elif result["state"] == "up-to-date":
        typer.echo(f"{out}: up to date; nothing to do")
    else:
        typer.echo(result["table"])
        typer.echo(f"{out}: table.md and {result['figures']} figures")


@app.command("ser")
def ser(
    run: list[Path] = typer.Option(..., "--run", help="Evaluated SER run, repeatable."),
    out: Path = common.OutOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
) -> None:
    """The SER report's comparison table (table.md, table.html) with confusion figures."""
    from avtool.recipes.ser import report_ser

    result = report_ser(run, out, force=force, dry_run=dry_run)
    if result["state"] == "dry-run":
        typer.echo(result["message"])
    else:
        typer.echo(result["table"])
        typer.echo(f"{out}: table.md, table.html ({result['state']})")
