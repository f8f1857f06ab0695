"""The ``sspnet`` command line: a thin layer over the Python API.

Exit codes: 0 all done; 1 some inputs failed (the others were processed); 2 usage error or a
fatal problem (nothing could be done); 130 interrupted (Ctrl-C). Errors print as one line;
``--debug`` (or SSPNET_DEBUG=1) shows the traceback instead.
"""
from __future__ import annotations

import os
import signal
import sys
from typing import Optional

import click
import typer

from sspnet_cli.cli import detect, evaluate, export, info, report, train
from sspnet_cli.cli.console import err
from sspnet_cli.errors import SSPNetError

app = typer.Typer(
    name="sspnet",
    help="Find tiny people in large drone images with an SSPNet detector.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # plain click help: hand-written "[default: ...]" texts survive (rich markup would eat them)
    # and on/off flags read as flags, without a <bool> metavar
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
# typer >= 0.20 bundles its own copy of click: usage errors may come from either copy
_CLICK_ERRORS = tuple({click.exceptions.ClickException, *(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException")})
_EXITS = tuple({click.exceptions.Exit, typer.Exit})
_ABORTS = tuple({click.exceptions.Abort, typer.Abort})
_debug = {"on": os.environ.get("SSPNET_DEBUG", "") not in ("", "0")}


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show full tracebacks instead of one-line errors. [default: off]"),
) -> None:
    if debug:
        _debug["on"] = True


app.command()(detect.detect)
app.command("eval")(evaluate.evaluate)
app.command("evaluate", help="The same as `sspnet eval`.")(evaluate.evaluate)
app.command()(train.train)
app.command()(report.report)
app.command()(info.info)
app.command()(export.export)


def _stopped_by_torchrun(signum: int, frame: object) -> None:
    raise SSPNetError("stopped: another process of this torchrun job failed, so this one stops too; no output was written")


def _terminated(signum: int, frame: object) -> None:
    # kill, systemd, batch schedulers and nohup'd jobs stop a run with SIGTERM: treat it like
    # Ctrl-C, so training saves last.pt to resume from and detect leaves no half-written output
    raise KeyboardInterrupt


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``sspnet`` script and ``python -m sspnet_cli``."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # torchrun stops the survivors with SIGTERM when one process dies: say so in one line
        signal.signal(signal.SIGTERM, _stopped_by_torchrun)
    else:
        signal.signal(signal.SIGTERM, _terminated)
    try:
        command = typer.main.get_command(app)
        code = command.main(args=argv, prog_name="sspnet", standalone_mode=False)
        if code == 130:  # typer turns Ctrl-C into Exit(130), which click returns
            err.print("interrupted")
    except _EXITS as exc:
        code = exc.exit_code
    except _ABORTS:
        err.print("interrupted")
        code = 130
    except _CLICK_ERRORS as exc:  # click's own form: a usage line, "Error: ...", exit 2
        exc.show()
        code = exc.exit_code if isinstance(exc.exit_code, int) and exc.exit_code else 2
    except KeyboardInterrupt:
        err.print("interrupted")
        code = 130
    except SSPNetError as exc:
        if _debug["on"]:
            raise
        err.print(f"error: {exc}", markup=False)
        code = 2
    except OSError as exc:  # a full disk, a vanished folder: say which file and what the OS said
        if _debug["on"]:
            raise
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        err.print(f"error: {where}{exc.strerror or exc} (nothing was left half-written)", markup=False)
        code = 2
    except Exception as exc:  # an unexpected failure still gets one line unless --debug
        if _debug["on"]:
            raise
        err.print(f"error: {type(exc).__name__}: {exc} (run with --debug for details)", markup=False)
        code = 2
    sys.exit(int(code or 0))
