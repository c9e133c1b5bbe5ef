"""Showing status documents to a person: rich tables shared by the CLI and the demo."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table


def state_markup(state: str) -> str:
    """A state in its colour, as rich markup."""
    colour = {
        "succeeded": "green",
        "completed": "green",
        "failed": "red",
        "error": "red",
        "running": "cyan",
        "queued": "yellow",
        "skipped": "dim",
    }.get(state, "white")
    return f"[{colour}]{state}[/{colour}]"


def print_sources(out: Console, document: Mapping[str, Any]) -> None:
    """The ``status`` document as a table, errors listed below it."""
    health = document["health"]
    table = Table(title=f"sources: {health['status']}", show_edge=False)
    for column in ("source", "status", "healthy", "last success", "next run", "queued/running"):
        table.add_column(column, no_wrap=True)
    for row in document["sources"]:
        verdict = health["sources"][row["source"]]
        table.add_row(
            row["source"],
            state_markup(row["status"]),
            "yes" if verdict["healthy"] else "NO",
            short_time(verdict["last_success"]),
            short_time(row["next_run_at"]),
            f"{row['queued']}/{row['running']}",
        )
    out.print(table)
    for row in document["sources"]:
        if row["error"]:
            out.print(f"{row['source']}: {row['error']}", markup=False, highlight=False)
    if "eta" in document and document["eta"]["runs_left"]:
        out.print(eta_line(document["eta"]), markup=False, highlight=False)


def eta_line(eta: Mapping[str, Any]) -> str:
    """``queue: 900 runs left, empty in ~45s (datahub 45s rate, qcmobile 6s rate)``."""
    apis = ", ".join(
        f"{api} {_seconds(item['seconds'])} {item['bound']}"
        for api, item in eta["by_api"].items()
        if item["runs_left"]
    )
    return f"queue: {eta['runs_left']} runs left, empty in {_seconds(eta['seconds'])} ({apis})"


def _seconds(value: float | None) -> str:
    if value is None:
        return "?"
    if value < 90:
        return f"~{value:.0f}s"
    return f"~{value / 60:.0f}m" if value < 5400 else f"~{value / 3600:.1f}h"


def short_time(value: str | None) -> str:
    """``2026-11-23T06:00:04.123Z`` as ``11-23 06:00:04`` for tables (JSON keeps it whole)."""
    return "-" if value is None else value[5:19].replace("T", " ")


def print_target(out: Console, document: Mapping[str, Any]) -> None:
    """One target's status document as a table."""
    verdict = "ok" if document["success"] else "failing"
    table = Table(title=f"{document['target']} {document['name']}: {verdict}", show_edge=False)
    for column in ("source", "state", "last attempt", "last success", "error"):
        table.add_column(column)
    for name, row in document["sources"].items():
        table.add_row(
            name,
            state_markup(row["state"]),
            row["last_attempt"] or "-",
            row["last_success"] or "-",
            row["error"] or "",
        )
    out.print(table)


def print_workers(out: Console, document: Mapping[str, Any]) -> None:
    """``synchestra workers``: one row per process, live ones first."""
    table = Table(title="workers", show_edge=False)
    for column in ("id", "roles", "live", "scheduler", "running", "heartbeat", "started"):
        table.add_column(column)
    for row in document["workers"]:
        table.add_row(
            row["id"],
            ",".join(row["roles"]),
            "yes" if row["live"] else "[red]no[/red]",
            "yes" if row["scheduler"] else "",
            f"{row['running']}/{row['capacity']}",
            short_time(row["heartbeat_at"]),
            short_time(row["started_at"]),
        )
    out.print(table)
