"""The ``synchestra`` command line.

Exit codes: 0 everything asked succeeded; 1 the command ran but some syncs
failed; 2 bad usage, config or input (one line on stderr, no traceback).
Every listing has ``--json``: one JSON document on stdout and nothing else.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from contextlib import suppress
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from synchestra.config import resolve_config_path
from synchestra.config.targets_csv import read_targets_csv
from synchestra.core.errors import InputError, SynchestraError, UnknownTarget
from synchestra.core.models import (
    Mode,
    RunState,
    Target,
    parse_instant,
    parse_mode,
    validate_target_key,
)
from synchestra.core.records import RecordQuery
from synchestra.core.workers import WorkerStatus
from synchestra.engine import status as views
from synchestra.engine.orchestrator import Orchestrator
from synchestra.engine.summary import SyncSummary
from synchestra.interfaces.cli.display import (
    eta_line,
    print_sources,
    print_target,
    print_workers,
    state_markup,
)
from synchestra.interfaces.documents import (
    eta_document,
    record_document,
    run_document,
    sync_status_document,
    target_document,
    target_status_document,
    workers_document,
)

app = typer.Typer(
    name="synchestra",
    help="Keep local copies of external APIs' data fresh.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
targets_app = typer.Typer(help="Manage targets.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")

out = Console()
err = Console(stderr=True)
T = TypeVar("T")

ConfigOption = Annotated[
    Path | None, typer.Option("-c", "--config", help="Config file (default ./synchestra.toml).")
]
JsonOption = Annotated[bool, typer.Option("--json", help="One JSON document on stdout.")]


class Exit(Exception):
    def __init__(self, code: int) -> None:
        self.code = code


def main() -> None:
    """Entry point: map our errors to exit code 2 with one line on stderr."""
    try:
        app()  # usage errors: typer prints them and exits 2
    except SynchestraError as error:
        message = "; ".join(line.strip() for line in str(error).splitlines() if line.strip())
        sys.stderr.write(f"synchestra: error: {message}\n")
        sys.exit(2)
    except Exit as done:
        sys.exit(done.code)


def _open(config: Path | None, *, read_only: bool = False) -> Orchestrator:
    """The config's orchestrator; ``read_only`` for commands that change nothing."""
    path = resolve_config_path(config, os.environ, Path.cwd())
    return Orchestrator.from_config(path, read_only=read_only)


def run_async(work: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(work())  # type: ignore[arg-type]


def _print_json(document: Any) -> None:
    sys.stdout.write(json.dumps(document, indent=2, default=str) + "\n")


# --- sync -----------------------------------------------------------------


@app.command()
def sync(
    sources: Annotated[
        list[str] | None, typer.Argument(help="Sources to sync (default: all).")
    ] = None,
    target: Annotated[
        list[str] | None, typer.Option("--target", help="Target key (repeatable).")
    ] = None,
    all_targets: Annotated[bool, typer.Option("--all-targets", help="Every target.")] = False,
    mode: Annotated[str, typer.Option("--mode", help="full, incremental or auto.")] = "auto",
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Run these syncs now, in this process, and print the summary."""
    chosen_mode = parse_mode(mode)
    orchestrator = _open(config)
    summary = run_async(
        lambda: _sync(orchestrator, sources, target, all_targets, chosen_mode, as_json)
    )
    if as_json:
        _print_json(summary.as_dict())
    else:
        _print_summary(summary)
    raise Exit(summary.exit_code)


async def _sync(
    orc: Orchestrator,
    sources: list[str] | None,
    targets: list[str] | None,
    all_targets: bool,
    mode: Mode,
    as_json: bool,
) -> SyncSummary:
    async with orc:
        _stop_on_signals(orc)
        with orc.bus.subscribe() as events:
            job = asyncio.create_task(
                orc.sync(sources, targets=targets, all_targets=all_targets, mode=mode)
            )
            if not as_json and out.is_terminal:
                await _show_progress(orc, job, events)
            stopper = asyncio.create_task(orc.stopped())
            await asyncio.wait({job, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if not job.done():  # stopped by a signal: the unfinished runs are interrupted
                job.cancel()
                await orc.stop()
                err.print("synchestra: stopped; unfinished runs were interrupted")
                raise Exit(1)
            summary = job.result()
            # Its own runs have ended. Runs this process claimed meanwhile for others
            # (it is a worker while it runs) are handed back at once, not awaited:
            # `sync` returns when its runs end.
            await orc.stop(grace=timedelta(0))
            return summary


async def _show_progress(orc: Orchestrator, job: asyncio.Task[SyncSummary], events: Any) -> None:
    """A bar of finished / queued runs, and the queue's ETA from the quotas (every second)."""
    columns = (
        TextColumn("syncing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[eta]}"),
    )
    with Progress(*columns, console=out, transient=True) as progress:
        bar = progress.add_task("sync", total=None, eta="")
        queued = finished = 0
        eta_due = orc.clock.now()
        while not job.done():
            getter = asyncio.create_task(events.get())
            await asyncio.wait({job, getter}, return_when=asyncio.FIRST_COMPLETED)
            if not getter.done():
                getter.cancel()
                break
            event = getter.result()
            if event.type == "run.queued":
                queued += 1
            elif event.type in _FINAL_EVENTS:
                finished += 1
            progress.update(bar, total=max(queued, finished) or None, completed=finished)
            if orc.clock.now() >= eta_due:
                eta_due = orc.clock.now() + ETA_EVERY
                progress.update(bar, eta=eta_line(eta_document(await orc.eta())))


ETA_EVERY = timedelta(seconds=1)
_FINAL_EVENTS = {f"run.{state.value}" for state in RunState if state.terminal}


def _stop_on_signals(orc: Orchestrator) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, orc.request_stop)


def _print_summary(summary: SyncSummary) -> None:
    table = Table(title="sync", show_edge=False)
    for column in ("run", "source", "target", "state", "attempts", "result / error"):
        table.add_column(column)
    for run in summary.runs:
        detail = run.error or ", ".join(f"{k} {v}" for k, v in run.result.items() if v) or "-"
        table.add_row(
            str(run.id),
            run.source,
            run.target or "-",
            state_markup(run.state.value),
            str(run.attempts),
            detail,
        )
    out.print(table)
    out.print(
        f"{summary.total} total: {summary.succeeded} succeeded, {summary.failed} failed, "
        f"{summary.skipped} skipped"
    )


# --- status ---------------------------------------------------------------


@app.command()
def status(
    target: Annotated[str | None, typer.Option("--target", help="One target's status.")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Per-source status and health; with --target, that target's status."""
    orc = _open(config, read_only=True)

    async def read() -> dict[str, Any]:
        async with orc:
            if target is not None:
                return target_status_document(
                    await views.target_status(orc.store, orc.sources, target)
                )
            return sync_status_document(await orc.sync_status())

    document = run_async(read)
    if as_json:
        _print_json(document)
    elif target is not None:
        print_target(out, document)
    else:
        print_sources(out, document)


# --- targets --------------------------------------------------------------


@targets_app.command("add")
def targets_add(
    key: str,
    name: Annotated[str, typer.Option("--name", help="Display name.")] = "",
    attr: Annotated[list[str] | None, typer.Option("--attr", help="k=v (repeatable).")] = None,
    config: ConfigOption = None,
) -> None:
    """Add a target (or update its name and attrs)."""
    attrs = dict(_split_attr(item) for item in attr or [])
    target = Target(key=validate_target_key(key), name=name, attrs=attrs)
    orc = _open(config)

    async def add() -> None:
        async with orc:
            await orc.add_targets([target])

    run_async(add)
    out.print(f"added {key}")


def _split_attr(item: str) -> tuple[str, str]:
    name, sep, value = item.partition("=")
    if not sep or not name:
        raise InputError(f"invalid --attr {item!r}: expected key=value")
    return name, value


@targets_app.command("import")
def targets_import(file: Path, config: ConfigOption = None) -> None:
    """Add the targets of a CSV file (header: key, name, then attrs)."""
    items = read_targets_csv(file)
    orc = _open(config)

    async def put() -> None:
        async with orc:
            await orc.add_targets(items)

    run_async(put)
    out.print(f"imported {len(items)} targets")


@targets_app.command("list")
def targets_list(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """List every target."""
    orc = _open(config, read_only=True)

    async def read() -> list[Target]:
        async with orc:
            found: list[Target] = []
            after: str | None = None
            while page := await orc.store.list_targets(limit=1000, after=after):
                found += page
                after = page[-1].key
            return found

    found = run_async(read)
    if as_json:
        _print_json({"targets": [target_document(t) for t in found]})
        return
    table = Table(show_edge=False)
    for column in ("key", "name", "attrs"):
        table.add_column(column)
    for t in found:
        table.add_row(t.key, t.name, " ".join(f"{k}={v}" for k, v in t.attrs.items()))
    out.print(table)


@targets_app.command("remove")
def targets_remove(key: str, config: ConfigOption = None) -> None:
    """Remove a target and its status; queued runs for it are cancelled."""
    orc = _open(config)

    async def remove() -> bool:
        async with orc:
            return await orc.store.remove_target(key, orc.clock.now())

    if not run_async(remove):
        raise UnknownTarget(key)
    out.print(f"removed {key}")


# --- history --------------------------------------------------------------


@app.command()
def runs(
    source: Annotated[str | None, typer.Option("--source")] = None,
    target: Annotated[str | None, typer.Option("--target")] = None,
    state: Annotated[str | None, typer.Option("--state")] = None,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 50,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """Run history, newest first."""
    chosen = _parsestate_markup(state) if state else None
    orc = _open(config, read_only=True)

    async def read() -> list[dict[str, Any]]:
        async with orc:
            found = await orc.store.list_runs(
                source=source, target=target, state=chosen, limit=limit
            )
            return [run_document(run) for run in found]

    found = run_async(read)
    if as_json:
        _print_json({"runs": found})
        return
    table = Table(show_edge=False)
    for column in ("run", "source", "target", "state", "attempts", "finished", "error"):
        table.add_column(column)
    for run in found:
        table.add_row(
            run["id"],
            run["source"],
            run["target"] or "-",
            state_markup(run["state"]),
            str(run["attempts"]),
            run["finished_at"] or "-",
            run["error"] or "",
        )
    out.print(table)


def _parsestate_markup(text: str) -> RunState:
    try:
        return RunState(text)
    except ValueError:
        names = ", ".join(s.value for s in RunState)
        raise InputError(f"invalid state {text!r}: expected one of {names}") from None


@app.command()
def records(
    kind: str,
    target: Annotated[str | None, typer.Option("--target")] = None,
    changed_since: Annotated[str | None, typer.Option("--changed-since", help="ISO 8601")] = None,
    include_deleted: Annotated[bool, typer.Option("--include-deleted")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1)] = 100,
    cursor: Annotated[str | None, typer.Option("--cursor")] = None,
    as_json: JsonOption = False,
    config: ConfigOption = None,
) -> None:
    """The synced records of a kind, paged."""
    query = RecordQuery(
        kind=kind,
        target=target,
        changed_since=parse_instant(changed_since) if changed_since else None,
        include_deleted=include_deleted,
        limit=limit,
        cursor=cursor,
    )
    orc = _open(config, read_only=True)

    async def read() -> dict[str, Any]:
        async with orc:
            rows, next_cursor = await orc.store.list_records(query)
            return {"records": [record_document(row) for row in rows], "next_cursor": next_cursor}

    document = run_async(read)
    if as_json:
        _print_json(document)
        return
    table = Table(show_edge=False)
    for column in ("key", "target", "source", "changed", "data"):
        table.add_column(column, overflow="fold")
    for row in document["records"]:
        table.add_row(
            row["key"],
            row["target"] or "-",
            row["source"],
            row["changed_at"],
            json.dumps(row["data"])[:120],
        )
    out.print(table)
    if document["next_cursor"]:
        out.print(f"more: --cursor {document['next_cursor']}")


# --- config ---------------------------------------------------------------


@app.command()
def check(config: ConfigOption = None) -> None:
    """Validate a config and resolve every connector."""
    orc = _open(config, read_only=True)
    names = ", ".join(orc.sources) or "none"
    out.print(f"ok: {len(orc.sources)} sources ({names})", markup=False)


@app.command()
def serve(
    no_auth: Annotated[
        bool, typer.Option("--no-auth", help="Serve the API without a token (loopback only).")
    ] = False,
    no_scheduler: Annotated[
        bool, typer.Option("--no-scheduler", help="Never fire schedules in this process.")
    ] = False,
    no_workers: Annotated[
        bool, typer.Option("--no-workers", help="Never run syncs in this process.")
    ] = False,
    config: ConfigOption = None,
) -> None:
    """Scheduler, workers and the HTTP API in one process, until SIGINT/SIGTERM."""
    from synchestra.interfaces.serve import Roles, api_token
    from synchestra.interfaces.serve import serve as run_server

    orc = _open(config)
    token = api_token(orc.config.api_server, os.environ, no_auth=no_auth)
    roles = Roles(scheduler=not no_scheduler, workers=not no_workers)
    run_async(lambda: run_server(orc, orc.config.api_server, token, roles))


@app.command()
def worker(
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers", min=1, max=10_000, help="Runs at once (default [engine] workers)."
        ),
    ] = None,
    config: ConfigOption = None,
) -> None:
    """Claim and run queued runs only (no scheduler, no HTTP API), until SIGINT/SIGTERM.

    SIGTERM lets running runs finish within [engine] grace, then hands the rest back.
    """
    orc = _open(config)
    if workers is not None:
        orc.config = orc.config.model_copy(
            update={"engine": orc.config.engine.model_copy(update={"workers": workers})}
        )

    async def work() -> None:
        async with orc:
            _stop_on_signals(orc)
            orc.start(schedule=False)
            await orc.stopped()
            await orc.stop()

    run_async(work)


@app.command("workers")
def workers_list(as_json: JsonOption = False, config: ConfigOption = None) -> None:
    """The processes sharing the database: live ones first, which one is the scheduler."""
    orc = _open(config, read_only=True)

    async def read() -> list[WorkerStatus]:
        async with orc:
            return await orc.workers()

    found = run_async(read)
    if as_json:
        _print_json(workers_document(found))
    else:
        print_workers(out, workers_document(found))
