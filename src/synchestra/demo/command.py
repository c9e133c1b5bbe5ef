"""The ``synchestra demo`` command: options in, :func:`~synchestra.demo.run.run_demo` out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synchestra.interfaces.cli.commands import Exit, out, run_async


def demo(
    carriers: Annotated[int, typer.Option("--carriers", min=1, max=100_000)] = 25,
    duration: Annotated[
        float,
        typer.Option(
            "--duration",
            min=0,
            max=7 * 86_400,
            help="Seconds to serve the dashboard, API and scheduler after the first sync "
            "(0: stop after the first sync; Ctrl-C stops early).",
        ),
    ] = 120,
    workdir: Annotated[Path, typer.Option("--workdir")] = Path("synchestra-demo"),
    port: Annotated[
        int,
        typer.Option("--port", min=0, max=65_535, help="Dashboard and API port (0: a free one)."),
    ] = 8000,
) -> None:
    """The main job on embedded defaults: a simulated FMCSA fleet synced into SQLite.

    Then the dashboard, the HTTP API and the scheduler run on loopback for
    --duration seconds; the URL and the token are printed.
    """
    from synchestra.demo.run import run_demo

    raise Exit(
        run_async(
            lambda: run_demo(workdir, carriers=carriers, duration=duration, port=port, console=out)
        )
    )
