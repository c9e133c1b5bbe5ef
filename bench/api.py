"""HTTP API latency: the read endpoints over a database holding a realistic amount of state.

Sets up an orchestrator on a temporary SQLite database with ``--targets`` targets
and three no-op per-target sources, runs one sync of everything (so statuses and
runs exist: targets x 3 runs), then serves the API with uvicorn on 127.0.0.1 and
measures it from a load generator in a second process (so client and server do
not share an event loop): a fixed number of keep-alive connections each sending
requests back to back, a fixed number of requests per endpoint, bounded in time.

Prints one JSON document: per endpoint, latency p50 / p90 / p99 / max in ms,
requests per second, and whether p99 meets the goal (under 50 ms).

    .venv/bin/python bench/api.py [--targets 10000] [--requests 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from synchestra import Orchestrator, SyncContext, Target
from synchestra.config import parse_config
from synchestra.core.models import RunState
from synchestra.interfaces.http.app import create_app
from synchestra.interfaces.servers import bind_loopback, wait_started

SOURCES = ("alpha", "beta", "gamma")
CHUNK = 1000
GOAL_P99_MS = 50.0
WARMUP = 50  # requests per endpoint before measuring (connections, caches)
ENDPOINT_TIME_LIMIT = 60.0  # seconds per endpoint, whatever --requests says
LOADER_TIME_LIMIT = 300.0  # seconds for the whole load-generator process
SYNC_BUDGET = 60.0  # the setup sync should stay under this (reported, not enforced)
TOKEN_ENV = "SYNCHESTRA_BENCH_TOKEN"


# --- the load generator (child process) ---------------------------------------


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return ordered[rank - 1]


async def hammer(
    client: httpx.AsyncClient, url: str, requests: int, concurrency: int
) -> dict[str, Any]:
    """Send ``requests`` GETs to ``url`` from ``concurrency`` workers; time each one."""
    latencies: list[float] = []
    failures: dict[str, int] = {}
    issued = 0
    deadline = time.perf_counter() + ENDPOINT_TIME_LIMIT

    async def worker() -> None:
        nonlocal issued
        while issued < requests and time.perf_counter() < deadline:
            issued += 1
            started = time.perf_counter()
            response = await client.get(url)
            latencies.append(time.perf_counter() - started)
            if response.status_code != 200:
                failures[str(response.status_code)] = failures.get(str(response.status_code), 0) + 1

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    ordered = sorted(latencies)
    p99_ms = percentile(ordered, 0.99) * 1000
    return {
        "url": url,
        "requests": len(ordered),
        "completed_all": len(ordered) == requests,
        "non_200": failures,
        "seconds": round(elapsed, 3),
        "requests_per_second": round(len(ordered) / elapsed, 1),
        "latency_ms": {
            "p50": round(percentile(ordered, 0.50) * 1000, 2),
            "p90": round(percentile(ordered, 0.90) * 1000, 2),
            "p99": round(p99_ms, 2),
            "max": round(ordered[-1] * 1000, 2),
        },
        "meets_goal": p99_ms < GOAL_P99_MS and not failures,
    }


async def later_cursor(client: httpx.AsyncClient, pages: int) -> tuple[str, int]:
    """Follow ``next_cursor`` through ``pages`` pages of 100; return it and the targets skipped."""
    cursor: str | None = None
    skipped = 0
    for _ in range(pages):
        params = {"limit": "100"} | ({"cursor": cursor} if cursor else {})
        response = await client.get("/api/targets", params=params)
        response.raise_for_status()
        body = response.json()
        skipped += len(body["targets"])
        if body["next_cursor"] is None:
            break
        cursor = body["next_cursor"]
    if cursor is None:
        raise RuntimeError("no later page: too few targets")
    return cursor, skipped


async def load(port: int, requests: int, concurrency: int, skip_pages: int) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {os.environ[TOKEN_ENV]}"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", headers=headers, limits=limits, timeout=30.0
    ) as client:
        cursor, skipped = await later_cursor(client, skip_pages)
        endpoints = {
            "GET /api/sync/status": "/api/sync/status",
            "GET /api/targets?limit=100": "/api/targets?limit=100",
            f"GET /api/targets?limit=100&cursor=... (after {skipped} targets)": (
                f"/api/targets?limit=100&cursor={cursor}"
            ),
        }
        results: dict[str, Any] = {}
        for name, url in endpoints.items():
            await hammer(client, url, WARMUP, concurrency)
            results[name] = await hammer(client, url, requests, concurrency)
    return results


def loader_main(args: argparse.Namespace) -> None:
    results = asyncio.run(load(args.loader, args.requests, args.concurrency, args.skip_pages))
    print(json.dumps(results))


# --- the server side (parent process) -----------------------------------------


async def setup(orc: Orchestrator, targets: int) -> dict[str, Any]:
    """Add the targets and run one sync of every source for every target."""
    for name in SOURCES:

        @orc.source(name, per_target=True)
        async def noop(ctx: SyncContext) -> None:
            return None

    keys = [f"t:{i:07d}" for i in range(targets)]
    started = time.perf_counter()
    for start in range(0, targets, CHUNK):
        await orc.add_targets([Target(key) for key in keys[start : start + CHUNK]])
    added = time.perf_counter() - started
    started = time.perf_counter()
    summary = await asyncio.wait_for(orc.sync(), timeout=10 * SYNC_BUDGET)
    synced = time.perf_counter() - started
    return {
        "targets": targets,
        "sources": len(SOURCES),
        "add_targets_seconds": round(added, 3),
        "sync_runs": len(summary.runs),
        "sync_runs_succeeded": sum(run.state is RunState.SUCCEEDED for run in summary.runs),
        "sync_targets_fully_synced": summary.succeeded,
        "sync_seconds": round(synced, 3),
        "sync_under_budget": synced < SYNC_BUDGET,
    }


async def measure(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    config = parse_config(
        {"database": {"url": f"sqlite:///{folder}/bench.db"}, "engine": {"workers": args.workers}}
    )
    orc = Orchestrator(config)
    token = secrets.token_urlsafe(16)
    async with orc:
        state = await setup(orc, args.targets)
        server = uvicorn.Server(
            uvicorn.Config(
                create_app(orc, token=token),
                lifespan="off",
                log_level="warning",
                access_log=False,
            )
        )
        sock = bind_loopback(0)
        port = sock.getsockname()[1]
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        try:
            await wait_started(server, serving)
            loader = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--loader",
                str(port),
                "--requests",
                str(args.requests),
                "--concurrency",
                str(args.concurrency),
                "--skip-pages",
                str(args.skip_pages),
                stdout=asyncio.subprocess.PIPE,
                env=os.environ | {TOKEN_ENV: token},
            )
            try:
                output, _ = await asyncio.wait_for(loader.communicate(), LOADER_TIME_LIMIT)
            except TimeoutError:
                loader.kill()
                await loader.wait()
                raise
            if loader.returncode != 0:
                raise RuntimeError(f"the load generator exited with {loader.returncode}")
        finally:
            server.should_exit = True
            await asyncio.wait_for(serving, timeout=10)
    return {"state": state, "endpoints": json.loads(output.decode().strip().splitlines()[-1])}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--targets", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=2000, help="per endpoint")
    parser.add_argument("--concurrency", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--workers", type=int, default=64, help="engine workers for the sync")
    parser.add_argument("--skip-pages", type=int, default=50, help="pages before the later one")
    parser.add_argument("--loader", type=int, help=argparse.SUPPRESS)  # internal: the child
    args = parser.parse_args()
    if args.loader:
        loader_main(args)
        return
    with tempfile.TemporaryDirectory() as folder:
        result = asyncio.run(measure(args, Path(folder)))
    print(
        json.dumps(
            {
                "benchmark": "api",
                "goal": f"p99 under {GOAL_P99_MS:g} ms per endpoint",
                "machine": {
                    "cpu_count": os.cpu_count(),
                    "platform": platform.platform(),
                    "python": platform.python_version(),
                    "sqlite": sqlite3.sqlite_version,
                },
                "setup": {
                    "database": "sqlite (temporary file)",
                    "server": "uvicorn, one process, access log off, 127.0.0.1",
                    "client": "httpx.AsyncClient in a second process, keep-alive",
                    "concurrency": args.concurrency,
                    "requests_per_endpoint": args.requests,
                    "warmup_per_endpoint": WARMUP,
                    "time_limit_per_endpoint_s": ENDPOINT_TIME_LIMIT,
                    "auth": "bearer token",
                },
                **result,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
