"""Scale-out: N carriers synced by 1, 2 and 4 worker processes on one PostgreSQL database.

Two measurements, each side by side in one run:

1. **Scale-out.** The simulator (``synchestra simulate``, its own process)
   answers QCMobile with 50 ms of latency and no rate limit. For each process
   count P, a fresh PostgreSQL database gets N targets, P ``synchestra worker``
   processes are started (each in its own session, stopped by pid with
   SIGTERM), and once all P are registered the benchmark queues one
   ``fmcsa.carrier`` run per carrier and polls the runs until all have ended.
   The API's rate is far above what is reached and its concurrency cap (which
   counts the runs of every process) is P x ``[engine] workers``, so that the
   limit is each process's own workers: P processes can run P times as many
   runs at once. ``--workers`` defaults to 2: with more, a 2-core machine's
   CPU (engine, PostgreSQL, simulator) becomes the limit before the workers. Runs per
   second are first queued to last finished (database timestamps); each P is
   measured ``--repeat`` times, interleaved, and the median kept.
2. **Cost of heartbeats and fencing.** One process's no-op throughput on
   PostgreSQL (``--noop-runs`` per-target runs through the full engine, as
   bench/overhead.py measures it) with this checkout's ``src`` and with the
   revision before the many-processes work (``--baseline``, extracted with
   ``git archive`` into a temporary folder, or ``--baseline-src PATH``): the
   same child script in a fresh process with ``PYTHONPATH`` set to each
   ``src``, interleaved, the median kept.

Prints one JSON document (rates, and the ratios to read on a shared machine).

    .venv/bin/python bench/scaleout.py [--carriers 400] [--processes 1,2,4] [--workers 2]
        [--repeat 2] [--noop-runs 5000] [--noop-repeat 3] [--baseline 29fd496 | --baseline-src PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]

PG_SERVER = "postgresql://postgres@127.0.0.1:5432"
LATENCY = 0.05
FIRST_DOT, DOT_STEP = 1_000_001, 10
CHUNK = 1000
FINAL = {"run.succeeded", "run.failed", "run.skipped", "run.cancelled", "run.interrupted"}
ENDED = ("succeeded", "failed", "skipped", "cancelled", "interrupted")
GOAL_TWO_PROCESSES = 1.7  # the goal: 2 processes at least 1.7x one
GOAL_MAX_SLOWDOWN = 0.10  # heartbeats and fencing cost at most 10 % of no-op throughput
REGISTER_TIMEOUT = 60.0  # seconds for the worker processes to register
POLL = 0.025  # seconds between polls of the runs
CHILD_TIMEOUT = 600.0  # seconds for one no-op child process
ROOT = Path(__file__).resolve().parent.parent
SYNCHESTRA = str(Path(sys.executable).parent / "synchestra")

CONFIG = """\
[database]
url = "{url}"

[engine]
workers = {workers}

[[apis]]
name = "qcmobile"
base_url = "{simulator}/qcmobile"
rate = "100000/s"
concurrency = {cap}

[[sources]]
name = "carrier"
connector = "fmcsa.carrier"
per_target = true
"""


# --- shared --------------------------------------------------------------------------


@asynccontextmanager
async def postgres_database(label: str) -> AsyncIterator[str]:
    """A fresh database on the loopback server, dropped afterwards (connections and all)."""
    name = f"synchestra_bench_{label}_{os.getpid()}"
    admin = await asyncpg.connect(f"{PG_SERVER}/postgres")
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await admin.execute(f"CREATE DATABASE {name}")
        try:
            yield f"{PG_SERVER}/{name}"
        finally:
            await admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    finally:
        await admin.close()


def median_of(rows: Sequence[dict[str, Any]], key: str) -> float:
    return round(statistics.median(float(row[key]) for row in rows), 1)


# --- 1. scale-out ----------------------------------------------------------------------


class Simulator:
    """``synchestra simulate`` in a child process (no rate limit), for as long as the block runs."""

    def __init__(self, carriers: int) -> None:
        self.carriers = carriers
        self.url = ""
        self._process: subprocess.Popen[str] | None = None

    def __enter__(self) -> Simulator:
        command = [SYNCHESTRA, "simulate", "--port", "0", "--carriers", str(self.carriers)]
        command += ["--latency", str(LATENCY), "--duration", "3600"]  # a bound, should we die
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, text=True, start_new_session=True
        )
        assert self._process.stdout is not None
        for line in self._process.stdout:
            found = re.match(r"counters\s+(http://127\.0\.0\.1:\d+)/_counters", line)
            if found:
                self.url = found.group(1)
                return self
        raise RuntimeError("the simulator did not start")

    def __exit__(self, *exc_info: object) -> None:
        if self._process is not None:
            stop_process(self._process)

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid


def stop_process(process: subprocess.Popen[Any]) -> None:
    """SIGTERM by pid, then SIGKILL by pid if it does not end in 30 s."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


@contextmanager
def worker_processes(config: Path, count: int) -> Iterator[list[int]]:
    """``count`` ``synchestra worker`` processes, each in its own session; their pids.

    Their stderr goes to ``workers.log`` beside the config (shown when runs fail).
    """
    environ = {**os.environ, "FMCSA_WEBKEY": webkey()}
    command = [SYNCHESTRA, "worker", "-c", str(config)]
    processes: list[subprocess.Popen[bytes]] = []
    log = (config.parent / "workers.log").open("w")
    try:
        for _ in range(count):
            processes.append(
                subprocess.Popen(
                    command,
                    env=environ,
                    stdout=subprocess.DEVNULL,
                    stderr=log,
                    start_new_session=True,
                )
            )
        yield [process.pid for process in processes]
    finally:
        for process in processes:
            stop_process(process)
        log.close()


def cpu_seconds(pid: int) -> float:
    """A process's user + system CPU time so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def webkey() -> str:
    from synchestra.simulator import DEFAULT_WEBKEY

    return DEFAULT_WEBKEY


async def wait_registered(connection: Any, count: int) -> None:
    """Until ``count`` live processes are in the workers table (bounded in time)."""
    deadline = time.monotonic() + REGISTER_TIMEOUT
    while time.monotonic() < deadline:
        live = await connection.fetchval("SELECT count(*) FROM workers WHERE NOT dead")
        if live >= count:
            return
        await asyncio.sleep(0.1)
    raise RuntimeError(f"{count} worker processes did not register in {REGISTER_TIMEOUT:.0f}s")


async def wait_ended(connection: Any, runs: int, within: float) -> None:
    """Until ``runs`` runs exist and none is queued or running (bounded in time)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        row = await connection.fetchrow(
            "SELECT count(*) AS total, count(*) FILTER (WHERE state = ANY($1::text[])) AS ended"
            " FROM runs",
            list(ENDED),
        )
        if row["total"] >= runs and row["ended"] == row["total"]:
            return
        await asyncio.sleep(POLL)
    raise RuntimeError(f"the runs did not all end within {within:.0f}s")


async def outcome(connection: Any) -> dict[str, Any]:
    """Runs per second from the database's timestamps, and who ran what."""
    span = await connection.fetchrow(
        "SELECT count(*) FILTER (WHERE state = 'succeeded') AS succeeded, count(*) AS runs,"
        " EXTRACT(EPOCH FROM max(finished_at) - min(queued_at)) AS seconds FROM runs"
    )
    owners = await connection.fetch(
        "SELECT count(*) AS runs FROM runs WHERE state = 'succeeded' GROUP BY owner ORDER BY 1 DESC"
    )
    seconds = float(span["seconds"])
    return {
        "runs": span["runs"],
        "succeeded": span["succeeded"],
        "seconds": round(seconds, 3),
        "runs_per_second": round(span["succeeded"] / seconds, 1),
        "runs_by_process": [row["runs"] for row in owners],
    }


async def queue_and_time(
    url: str, config: Path, carriers: int, processes: int, simulator_pid: int
) -> dict[str, Any]:
    """Targets in, ``processes`` workers up, every carrier queued, timed until all ended."""
    from synchestra import Orchestrator, Target

    orc = Orchestrator.from_config(config, environ={"FMCSA_WEBKEY": webkey()})
    async with orc:  # creates the schema; this process never starts its engine
        await orc.add_targets([Target(f"dot:{FIRST_DOT + i * DOT_STEP}") for i in range(carriers)])
        connection = await asyncpg.connect(url)
        try:
            with worker_processes(config, processes) as pids:
                await wait_registered(connection, processes)
                watched = (*pids, simulator_pid)
                cpu = [cpu_seconds(pid) for pid in watched]
                wall = time.perf_counter()
                await orc.request(["carrier"], all_targets=True)
                await wait_ended(connection, carriers, within=max(120.0, carriers / 2))
                wall = time.perf_counter() - wall
                cpu = [cpu_seconds(pid) - was for pid, was in zip(watched, cpu, strict=True)]
            row = await outcome(connection)
        finally:
            await connection.close()
    if row["succeeded"] != carriers:
        sys.stderr.write((config.parent / "workers.log").read_text()[-4000:])
        raise RuntimeError(f"{carriers - row['succeeded']} of {carriers} runs did not succeed")
    return {
        "processes": processes,
        **row,
        "wall_s": round(wall, 3),
        "cpu_s": {"workers": [round(t, 2) for t in cpu[:-1]], "simulator": round(cpu[-1], 2)},
    }


async def scaleout_once(
    simulator: Simulator, carriers: int, processes: int, workers: int
) -> dict[str, Any]:
    async with postgres_database("scaleout") as url:
        with tempfile.TemporaryDirectory() as folder:
            config = Path(folder) / "synchestra.toml"
            cap = workers * processes  # the cap counts every process's runs: never the limit here
            config.write_text(
                CONFIG.format(url=url, simulator=simulator.url, workers=workers, cap=cap)
            )
            return await queue_and_time(url, config, carriers, processes, simulator.pid)


def scaleout(args: argparse.Namespace) -> dict[str, Any]:
    counts = [int(text) for text in args.processes.split(",")]
    measured: dict[int, list[dict[str, Any]]] = {count: [] for count in counts}
    with Simulator(args.carriers) as simulator:
        for _ in range(args.repeat):  # interleaved: a change in load falls on every count
            for count in counts:
                measured[count].append(
                    asyncio.run(scaleout_once(simulator, args.carriers, count, args.workers))
                )
    rates = {count: median_of(rows, "runs_per_second") for count, rows in measured.items()}
    first = rates[counts[0]]
    ratios = {str(count): round(rate / first, 2) for count, rate in rates.items()}
    two = ratios.get("2")
    return {
        "carriers": args.carriers,
        "latency_s": LATENCY,
        "workers_per_process": args.workers,
        "api": "qcmobile: rate 100000/s (not reached), concurrency = workers x processes"
        " (the cap counts the runs of every process)",
        "repeat": f"median of {args.repeat}, interleaved",
        "results": [
            {"processes": count, "runs_per_second": rates[count], "measurements": measured[count]}
            for count in counts
        ],
        "ideal_runs_per_second_per_process": round(args.workers / LATENCY, 1),
        f"ratios_vs_{counts[0]}_process": ratios,
        "goal": {
            "two_processes_at_least": GOAL_TWO_PROCESSES,
            "ratio": two,
            "met": two is not None and two >= GOAL_TWO_PROCESSES,
        },
    }


# --- 2. no-op throughput, this checkout vs the baseline (child processes) -------------


async def noop_measure(size: int, workers: int) -> dict[str, Any]:
    """``size`` no-op per-target runs through one engine on a fresh database (public API only:
    the baseline revision runs this same code)."""
    import synchestra
    from synchestra import Orchestrator, SyncContext, Target
    from synchestra.config import parse_config

    async with postgres_database("noop") as url:
        config = parse_config({"database": {"url": url}, "engine": {"workers": workers}})
        orc = Orchestrator(config)

        @orc.source("noop", per_target=True)
        async def noop(ctx: SyncContext) -> None:
            return None

        keys = [f"t:{i:07d}" for i in range(size)]
        async with orc:
            for start in range(0, size, CHUNK):
                await orc.add_targets([Target(key) for key in keys[start : start + CHUNK]])
            with orc.bus.subscribe(FINAL) as finished:
                started = time.perf_counter()
                orc.start(schedule=False)
                for start in range(0, size, CHUNK):
                    await orc.request(["noop"], targets=keys[start : start + CHUNK])
                succeeded = 0
                for _ in range(size):
                    succeeded += (await finished.get()).type == "run.succeeded"
                elapsed = time.perf_counter() - started
    assert succeeded == size, f"{size - succeeded} runs did not succeed"
    return {
        "seconds": round(elapsed, 3),
        "runs_per_second": round(size / elapsed, 1),
        "src": str(Path(synchestra.__file__).parent.parent),
    }


def noop_child(src: Path, size: int, workers: int) -> dict[str, Any]:
    """One no-op measurement in a fresh process importing synchestra from ``src``."""
    command = [sys.executable, __file__, f"--noop-child={size}", f"--noop-workers={workers}"]
    environ = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run(
        command, env=environ, capture_output=True, text=True, timeout=CHILD_TIMEOUT, check=False
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr[-4000:])
        sys.exit(f"scaleout.py: the no-op child with {src} failed ({done.returncode})")
    row: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(row["src"]).resolve() != src.resolve():
        sys.exit(f"scaleout.py: the child imported synchestra from {row['src']}, not {src}")
    return row


@contextmanager
def baseline_src(args: argparse.Namespace) -> Iterator[Path]:
    """The baseline's ``src``: the one given, or the revision's, extracted for the run."""
    if args.baseline_src:
        yield Path(args.baseline_src)
        return
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", args.baseline, "src"],
        capture_output=True,
        check=False,
    )
    if archive.returncode != 0:
        sys.exit(
            f"scaleout.py: cannot read revision {args.baseline}"
            f" ({archive.stderr.decode().strip()}); use a full clone or --baseline-src PATH"
        )
    with tempfile.TemporaryDirectory() as folder:
        with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
            tar.extractall(folder, filter="data")
        yield Path(folder) / "src"


def heartbeats_and_fencing(args: argparse.Namespace) -> dict[str, Any]:
    rows: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
    with baseline_src(args) as old:
        sources = {"baseline": old, "current": ROOT / "src"}
        for _ in range(args.noop_repeat):  # interleaved old / new
            for name, src in sources.items():
                rows[name].append(noop_child(src, args.noop_runs, args.noop_workers))
    rates = {name: median_of(found, "runs_per_second") for name, found in rows.items()}
    ratio = round(rates["current"] / rates["baseline"], 3)
    return {
        "baseline": args.baseline_src or args.baseline,
        "runs": args.noop_runs,
        "workers": args.noop_workers,
        "database": "postgresql 127.0.0.1:5432, a fresh database per measurement (dropped)",
        "repeat": f"median of {args.noop_repeat}, interleaved",
        "runs_per_second": rates,
        "measurements": {
            name: [row["runs_per_second"] for row in found] for name, found in rows.items()
        },
        "ratio_current_vs_baseline": ratio,
        "goal": {
            "at_most_slower": GOAL_MAX_SLOWDOWN,
            "slower_by": round(1 - ratio, 3),
            "met": ratio >= 1 - GOAL_MAX_SLOWDOWN,
        },
    }


# --- the parent --------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--carriers", type=int, default=400, help="runs per scale-out measurement")
    parser.add_argument("--processes", default="1,2,4", help="worker process counts")
    parser.add_argument(
        "--workers",
        type=int,
        default=2,
        help="[engine] workers per process (small, so that they are the limit, not 2 cores)",
    )
    parser.add_argument("--repeat", type=int, default=2, help="scale-out: median of R")
    parser.add_argument("--noop-runs", type=int, default=5000)
    parser.add_argument("--noop-workers", type=int, default=64)
    parser.add_argument("--noop-repeat", type=int, default=3, help="no-op: median of R")
    parser.add_argument("--baseline", default="29fd496", help="revision before issue 12")
    parser.add_argument("--baseline-src", help="an old checkout's src instead of --baseline")
    parser.add_argument("--parts", default="scaleout,noop", help="which measurements")
    parser.add_argument("--noop-child", type=int, help=argparse.SUPPRESS)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    if args.noop_child:
        print(json.dumps(asyncio.run(noop_measure(args.noop_child, args.noop_workers))))
        return
    parts = set(args.parts.split(","))
    document: dict[str, Any] = {"benchmark": "scaleout", "machine": machine()}
    if "scaleout" in parts:
        document["scaleout"] = scaleout(args)
    if "noop" in parts:
        document["heartbeats_and_fencing"] = heartbeats_and_fencing(args)
    print(json.dumps(document, indent=2))


if __name__ == "__main__":
    main()
