"""`avtool evaluate ...`"""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Evaluate commands.")


@app.command("mmt")
def mmt(
    manifest: Path = common.ManifestOption,
    run: list[Path] = typer.Option(..., "--run", help="Segmentation run directory, repeatable."),
    out: Path = common.OutOption,
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
) -> None:
    """Hungarian pixel accuracy and mIoU per method, with the spread over seeds."""
    from avtool.recipes.mmt import evaluate

    result = evaluate(manifest, run, out, force=force, dry_run=dry_run)
    if result["state"] == "dry-run":
        typer.echo(result["message"])
        return
    if result["state"] == "up-to-date":
        typer.echo(f"{out}: up to date; nothing to do")
        return
    for row in result["rows"]:
        typer.echo(
            f"{row['label']}: accuracy {row['accuracy']:.4f} "
            f"(± {row['accuracy_std_per_image']:.4f} over seeds per image), "
            f"mIoU {row['miou']:.4f}, segments {row['segments']:.1f}"
        )


@app.command("demo")
def demo(
    run: Path = typer.Option(..., "--run", help="Run directory of `avtool train demo`."),
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
) -> None:
    """Accuracy of the demo classifier on its held-out clips."""
    from avtool.recipes.demo import evaluate_demo

    result = evaluate_demo(run, force=force, dry_run=dry_run)
    common.report_result(run / "evaluation", result)


@app.command("ser")
def ser(
    run: Path = typer.Option(..., "--run", help="Run directory of `avtool train ser`."),
    force: bool = common.ForceOption,
    dry_run: bool = common.DryRunOption,
) -> None:
    """Test accuracy, classification report, per-class F1 and confusion matrix of a SER run."""
    from avtool.recipes.ser import evaluate_ser

    result = evaluate_ser(run, force=force, dry_run=dry_run)
    common.report_result(run / "evaluation", result)
