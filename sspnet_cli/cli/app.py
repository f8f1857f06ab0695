"""The ``sspnet`` command line: a thin layer over the Python API."""
from __future__ import annotations

import typer

app = typer.Typer(name="sspnet", no_args_is_help=True, add_completion=False)


def main() -> None:
    app()
