"""`avtool download ...`"""

from pathlib import Path

import typer

from avtool.cli import common

app = typer.Typer(no_args_is_help=True, help="Download commands.")


@app.command("dcase2018")
@common.shared_options
def dcase2018(
    *,
    manifest: Path = typer.Option(
        ..., "--manifest", help="manifest.jsonl of `avtool prepare dcase2018`."
    ),
    out: common.OutOption,
    url_template: str = typer.Option(
        None,
        "--url-template",
        help="Video URL per clip; fields {youtube_id} {id} {start} {end} {serve_url}. "
        "Default: https://www.youtube.com/watch?v={youtube_id}.",
    ),
    serve_dir: Path = typer.Option(
        None,
        "--serve-dir",
        help="Serve this folder of <youtube_id>.mp4 on 127.0.0.1 for the run and download "
        "from it (the synthetic corpus's media/).",
    ),
    split: list[str] = typer.Option(
        None, "--split", help="Split to download, repeatable. Default: every split."
    ),
    min_interval: float = typer.Option(
        None, "--min-interval", min=0.0, help="Seconds between two clips' requests [2]."
    ),
    attempts: int = typer.Option(
        None, "--attempts", min=1, help="Tries per clip for network failures in a run [4]."
    ),
    cookies: Path = typer.Option(
        None, "--cookies", help="Netscape cookies file for yt-dlp (age-gated, bot checks)."
    ),
    settings: common.Settings,
    stage: common.RejectingRun,
) -> None:
    """Each clip's video through yt-dlp, cut to its segment: wav + mp4, journal, coverage."""
    from dataclasses import replace

    from avtool.corpora.dcase2018_download import (
        DownloadConfig,
        FetchOptions,
        describe_coverage,
        download_dcase2018,
    )

    params = settings.resolve(DownloadConfig, {"splits": split or None})
    given = {
        "url_template": url_template,
        "min_interval": min_interval,
        "attempts": attempts,
        "cookies": str(cookies) if cookies else None,
    }
    options = replace(FetchOptions(), **{k: v for k, v in given.items() if v is not None})
    result = download_dcase2018(
        manifest,
        out,
        params,
        options,
        serve_dir=serve_dir,
        **stage.options,
    )
    if result["state"] == "dry-run":
        typer.echo(result["message"])
        return
    verb = "up to date" if result["state"] == "up-to-date" else "done"
    typer.echo(f"{out}: {verb}; {describe_coverage(result['coverage'])}")
