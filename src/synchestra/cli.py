"""The whole ``synchestra`` command line: the product's commands, the demo's and the simulator's.

Assembled here, at the package root, because the demo and the simulator sit
beside the layers the other commands live in (:mod:`synchestra.interfaces.cli`)
and may not be imported from there. Both are imported only when their command
runs: the simulator alone costs a third of the command line's start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from synchestra.interfaces.cli.commands import Exit, app, main, out, run_async

__all__ = ["app", "main"]


@app.command()
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


@app.command()
def simulate(
    port: Annotated[int, typer.Option("--port", min=0, max=65_535, help="0: a free port.")] = 0,
    carriers: Annotated[int, typer.Option("--carriers", min=0, max=1_000_000)] = 25,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    latency: Annotated[float, typer.Option("--latency", min=0, help="Seconds per request.")] = 0,
    rate: Annotated[
        list[str] | None, typer.Option("--rate", help="API=N requests/second (repeatable).")
    ] = None,
    duration: Annotated[
        float | None, typer.Option("--duration", min=0, help="Stop after SECONDS.")
    ] = None,
) -> None:
    """The simulated external APIs alone (FMCSA, DataHub, SaferWebAPI, ERP) on 127.0.0.1."""
    from synchestra.simulator.command import build_config, serve

    config = build_config(
        port=port, carriers=carriers, seed=seed, latency=latency, rates=rate or []
    )
    run_async(lambda: serve(config, duration, lambda line: out.print(line, markup=False)))
