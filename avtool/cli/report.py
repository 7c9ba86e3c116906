"""`avtool report ...`"""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Report commands.")


def _planned(result: dict) -> bool:
    """Print a dry run's plan; say whether the result was one."""
    if result["state"] == "dry-run":
        typer.echo(result["message"])
    return result["state"] == "dry-run"


@app.command("mmt")
@common.shared_options
def mmt(
    *,
    evaluation: Path = typer.Option(..., "--eval", help="Output of `avtool evaluate mmt`."),
    out: common.OutOption,
    max_figures: int = typer.Option(20, "--max-figures", help="Images with a figure."),
    stage: common.StageRun,
) -> None:
    """Paper-style table of every method and a figure per image."""
    from avtool.recipes.mmt import report

    result = report(evaluation, out, max_figures=max_figures, **stage.options)
    if _planned(result):
        return
    if result["state"] == "up-to-date":
        typer.echo(f"{out}: up to date; nothing to do")
    else:
        typer.echo(result["table"])
        typer.echo(f"{out}: table.md and {result['figures']} figures")


@app.command("ser")
@common.shared_options
def ser(
    *,
    run: list[Path] = typer.Option(..., "--run", help="Evaluated SER run, repeatable."),
    out: common.OutOption,
    stage: common.StageRun,
) -> None:
    """The SER comparison table (table.md, table.html), folds' mean ± std per run, the report's
    accuracy only beside runs of its protocol, and one confusion figure per run."""
    from avtool.recipes.ser import report_ser

    result = report_ser(run, out, **stage.options)
    if not _planned(result):
        typer.echo(result["table"])
        typer.echo(f"{out}: table.md, table.html ({result['state']})")


@app.command("atl")
@common.shared_options
def atl(
    *,
    lyrics: Path = typer.Option(..., "--lyrics", help="Evaluated `train lyrics` run."),
    genre: list[Path] = typer.Option(
        [], "--genre", help="Evaluated `train genre` run, repeatable."
    ),
    classified: list[Path] = typer.Option(
        [], "--classified", help="Output of `evaluate genre-generated`, repeatable."
    ),
    out: common.OutOption,
    stage: common.StageRun,
) -> None:
    """ATL on one page: generator loss, BLEU, genre accuracy on real and generated lyrics."""
    from avtool.recipes.atl.report import report_atl

    result = report_atl(lyrics, genre, classified, out, **stage.options)
    if not _planned(result):
        typer.echo(f"{result['report']} ({result['state']})")


@app.command("sed")
@common.shared_options
def sed(
    *,
    run: list[Path] = typer.Option(
        ..., "--run", help="Evaluated `train sed` run, or a folder of them; repeatable."
    ),
    out: common.OutOption,
    clip: list[str] = typer.Option(
        [], "--clip", help="Test clip id for an event timeline, repeatable [3 busiest]."
    ),
    stage: common.StageRun,
) -> None:
    """Table 3 of the SED paper for every run found, per-class F1 bars, event timelines."""
    from avtool.recipes.sed import report_sed

    result = report_sed(run, out, clips=clip, **stage.options)
    if not _planned(result):
        typer.echo(result["table"])
        typer.echo(f"{out}: table.md, figures ({result['state']})")


@app.command("limuse")
@common.shared_options
def limuse(
    *,
    run: list[Path] = typer.Option(
        ..., "--run", help="Evaluated run, or a folder searched for them; repeatable."
    ),
    out: common.OutOption,
    stage: common.StageRun,
) -> None:
    """LiMuSE's Table 2 (table.md) for every evaluated run found, with an SI-SDRi histogram."""
    from avtool.recipes.limuse import report_limuse

    result = report_limuse(run, out, **stage.options)
    if not _planned(result):
        typer.echo(result["table"])
        typer.echo(f"{out}: table.md, si_sdri.png ({result['state']})")
