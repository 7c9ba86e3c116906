"""The `avtool` command: one Typer app, one sub-app per command group.

Command modules import the library lazily inside their functions so that `avtool --help`
stays instant and loads no torch, librosa, transformers or cv2.
"""

from __future__ import annotations

import logging
import sys

import typer

from avtool import __version__
from avtool.cli import (
    demo,
    download,
    evaluate,
    features,
    models,
    prepare,
    quantize,
    report,
    run,
    status,
    synth,
    train,
)

app = typer.Typer(
    name="avtool",
    help="Rebuild five audio/visual ML systems as resumable pipelines, from raw corpora to tables.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

for module in (prepare, download, synth, features, train, quantize, evaluate, models, report):
    app.add_typer(module.app, name=module.__name__.rsplit(".", 1)[1])
app.command("run")(run.run_pipeline)
app.command("demo")(demo.demo)
app.command("status")(status.status)

_debug = False


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever `sys.stderr` is when a record is emitted, not when it was made.

    Commands also run in-process (pipelines, tests): a handler bound to an earlier stream
    would write to a replaced or closed one.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # type: ignore[override]
        return sys.stderr

    @stream.setter
    def stream(self, value: object) -> None:
        pass


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks of errors."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log more."),
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    global _debug
    _debug = debug
    if version:
        typer.echo(f"avtool {__version__}")
        raise typer.Exit()
    from avtool.core.http import RedactingFilter

    root = logging.getLogger()
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    if not any(isinstance(h, _CurrentStderrHandler) for h in root.handlers):
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        # Third-party loggers (urllib3 at DEBUG) print raw URLs: mask credentials.
        handler.addFilter(RedactingFilter())
        root.addHandler(handler)


def main(argv: list[str] | None = None) -> int:
    """Entry point: runs the app, turning AvtoolError into one line and an exit code."""
    from avtool.core.errors import AvtoolError
    from avtool.core.memory import keep_freed_memory
    from avtool.core.stage import abandon_unfinished, begun_count

    keep_freed_memory()

    # Only this command's stages: earlier in-process commands (tests, pipelines) are not ours.
    begun_before = begun_count()
    try:
        app(args=argv, standalone_mode=False)
    except AvtoolError as exc:
        abandon_unfinished(since=begun_before)
        if _debug:
            raise
        typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("aborted", err=True)
        return 1
    except KeyboardInterrupt:
        typer.echo("interrupted; rerun the same command to resume", err=True)
        return 130
    except typer.TyperException as exc:  # usage errors: unknown option, missing argument
        exc.show()
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
