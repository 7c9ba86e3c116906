"""`avtool evaluate ...`"""

from __future__ import annotations

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Evaluate commands.")


@app.command("mmt")
@common.shared_options
def mmt(
    *,
    manifest: common.ManifestOption,
    run: list[Path] = typer.Option(..., "--run", help="Segmentation run directory, repeatable."),
    out: common.OutOption,
    select: str = typer.Option(
        "val", "--select", help="Grid values (k, scale, µ) chosen on: val, test or fixed [val]."
    ),
    fixed: list[str] = typer.Option(
        [],
        "--fixed",
        help="With --select fixed: NAME=VALUE (k=8, scale=500, mu=5, beta=1), repeatable.",
    ),
    on: str = typer.Option("test", "--on", help="Split the table reports [test]."),
    stage: common.StageRun,
) -> None:
    """Hungarian pixel accuracy and mIoU per run and grid value, with the spread over seeds."""
    from avtool.recipes.mmt import evaluate, parse_fixed

    result = evaluate(
        manifest,
        run,
        out,
        select=select,
        fixed=parse_fixed(fixed),
        on=on,
        **stage.options,
    )
    if result["state"] == "dry-run":
        typer.echo(result["message"])
        return
    if result["state"] == "up-to-date":
        typer.echo(f"{out}: up to date; nothing to do")
        return
    for row in result["rows"]:
        mark = " [chosen: " + row["selection"] + "]" if row["chosen"] else ""
        flag = f" [{row['missing']} images missing]" if row["missing"] else ""
        typer.echo(
            f"{row['run_name']}: {row['label']}{mark}{flag}: accuracy {row['accuracy']:.4f} "
            f"(± {row['accuracy_std_per_image']:.4f} over seeds per image), "
            f"mIoU {row['miou']:.4f}, segments {row['segments']:.1f}"
        )


@app.command("demo")
@common.shared_options
def demo(
    *,
    run: Path = typer.Option(..., "--run", help="Run directory of `avtool train demo`."),
    stage: common.StageRun,
) -> None:
    """Accuracy of the demo classifier on its held-out clips."""
    from avtool.recipes.demo import evaluate_demo

    result = evaluate_demo(run, **stage.options)
    common.report_result(run / "evaluation", result)


@app.command("ser")
@common.shared_options
def ser(
    *,
    run: Path = typer.Option(..., "--run", help="Run directory of `avtool train ser`."),
    stage: common.StageRun,
) -> None:
    """Each fold's test accuracy, their mean ± std, and the classification report, per-class F1
    and confusion matrix pooled over the folds of a SER run."""
    from avtool.recipes.ser import evaluate_ser

    result = evaluate_ser(run, **stage.options)
    common.report_result(run / "evaluation", result)


@app.command("lyrics")
@common.shared_options
def lyrics(
    *,
    run: Path = typer.Option(..., "--run", help="Run directory of `avtool train lyrics`."),
    split: str = typer.Option(None, "--split", help="train, valid or test [test]."),
    lines_per_song: int = typer.Option(
        None, "--lines-per-song", help="Sampled lines per song for generated.csv [8]."
    ),
    seed: int = typer.Option(None, "--seed", help="Sampling seed [0]."),
    settings: common.Settings,
    stage: common.StageRun,
) -> None:
    """BLEU (token lists) of the generator's line continuations; sampled lyrics per song."""
    from avtool.recipes.atl.generator import LyricsEvalConfig, evaluate_lyrics, evaluation_dir

    flags = {"split": split, "lines_per_song": lines_per_song, "seed": seed}
    params = settings.resolve(LyricsEvalConfig, flags)
    result = evaluate_lyrics(run, params, **stage.options)
    common.report_result(evaluation_dir(run, params.split), result)


@app.command("genre")
@common.shared_options
def genre(
    *,
    run: Path = typer.Option(..., "--run", help="Run directory of `avtool train genre`."),
    stage: common.StageRun,
) -> None:
    """Accuracy and confusion matrix of a genre classifier on its held-out rows."""
    from avtool.recipes.atl.genre import evaluate_genre

    result = evaluate_genre(run, **stage.options)
    common.report_result(run / "evaluation", result)


@app.command("genre-generated")
@common.shared_options
def genre_generated(
    *,
    run: Path = typer.Option(..., "--run", help="Run directory of `avtool train genre`."),
    generated: Path = typer.Option(
        ..., "--generated", help="generated.csv of `avtool evaluate lyrics`."
    ),
    out: common.OutOption,
    stage: common.StageRun,
) -> None:
    """Classify generated lyrics: predictions.csv (the report's columns) and a confusion PNG."""
    from avtool.recipes.atl.genre import classify_generated

    result = classify_generated(run, generated, out, **stage.options)
    common.report_result(out, result)


@app.command("sed")
@common.shared_options
def sed(
    *,
    reference: Path = typer.Option(
        None, "--reference", help="Reference event list (filename onset offset event_label, TSV)."
    ),
    estimated: Path = typer.Option(None, "--estimated", help="Estimated event list, same format."),
    run: Path = typer.Option(None, "--run", help="Run directory of `avtool train sed`."),
    out: Path = typer.Option(
        None,
        "--out",
        help="Output directory for results.json (with --run, default RUN/evaluation).",
    ),
    stage: common.StageRun,
) -> None:
    """Clip, segment (1 s) and event-based F1 through sed_eval: two event lists, or a run."""
    from avtool.core.errors import InputError

    if run is not None:
        if reference is not None or estimated is not None:
            raise InputError("give either --run, or --reference and --estimated, not both")
        from avtool.recipes.sed import evaluate_run

        result = evaluate_run(run, out, **stage.options)
        common.report_result(out or run / "evaluation", result)
        return
    if reference is None or estimated is None or out is None:
        raise InputError("give --reference FILE --estimated FILE --out DIR, or --run DIR")
    from avtool.metrics.sed import evaluate_files

    result = evaluate_files(reference, estimated, out, **stage.options)
    common.report_result(out, result)


@app.command("limuse")
@common.shared_options
def limuse(
    *,
    run: Path = typer.Option(..., "--run", help="Run of `train limuse` or `quantize limuse`."),
    data: Path = typer.Option(None, "--data", help="Output of `prepare grid` [the run's data]."),
    split: str = typer.Option("test", "--split", help="Mixtures to score: test, valid, train."),
    stage: common.StageRun,
) -> None:
    """SI-SDR and SI-SDRi per mixture (packed model for quantized runs), mean and spread."""
    from avtool.recipes.limuse import evaluate_limuse

    result = evaluate_limuse(run, data, split, **stage.options)
    common.report_result(run / "evaluation", result)
