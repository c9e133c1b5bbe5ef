"""Many processes, one engine (issue 12): real ``serve``, ``worker`` and ``sync`` processes.

Each test builds a project folder (a config and a connector module on
PYTHONPATH), starts processes with ``python -m synchestra`` in sessions of
their own, waits for conditions by polling the database or the CLI with a
deadline, and kills what it started by pid. Leases are short (3 s, heartbeat
1 s), so that recovery happens within seconds. Every test runs on a SQLite file
and on PostgreSQL (``database_url``).

The connectors record what they did in files of the folder: ``events.jsonl``
(one line per attempt: pid, source, target, start and end in real time),
``started-<pid>-<target>`` when an attempt has begun, and they wait for
``release-<pid>`` when they are told to block, so the test decides which
process's attempt goes on.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from synchestra.core.models import Run, RunRequest, RunState
from synchestra.store import Store

pytestmark = pytest.mark.slow

CONNECTORS = textwrap.dedent(
    """
    import asyncio, json, os, time
    from pathlib import Path

    HERE = Path(__file__).parent

    def _note(ctx, started):
        line = json.dumps({"pid": os.getpid(), "source": ctx.source, "target": ctx.target.key,
                           "run": ctx.run.id, "start": started, "end": time.time()})
        with open(HERE / "events.jsonl", "a") as out:
            out.write(line + "\\n")

    def _started(ctx):
        (HERE / f"started-{os.getpid()}-{ctx.target.key.replace(':', '_')}").write_text("")

    async def _released():
        gate = HERE / f"release-{os.getpid()}"
        while not gate.exists():
            await asyncio.sleep(0.05)

    async def slow(ctx):
        started = time.time()
        await asyncio.sleep(0.3)
        await ctx.upsert("slow", [{"id": ctx.target.key, "pid": os.getpid()}])
        _note(ctx, started)

    async def dot(ctx):
        started = time.time()
        _started(ctx)
        try:
            await asyncio.sleep(3.0)
        finally:  # an attempt stopped midway ran too
            _note(ctx, started)

    async def tick(ctx):
        started = time.time()
        await asyncio.sleep(0.3)
        _note(ctx, started)

    async def block(ctx):
        pid = os.getpid()
        await ctx.upsert("item", [{"id": "early", "pid": pid}])
        _started(ctx)
        await _released()
        await ctx.upsert("item", [{"id": "early", "pid": pid}, {"id": f"late-{pid}", "pid": pid}])
        ctx.set_watermark({"pid": pid})
    """
)

SOURCES = {
    "slow": "",
    "dot": "",
    "tick": 'every = "2s"\n',
    "block": 'timeout = "2m"\n',
}

LEASE, HEARTBEAT, HOUSEKEEPING = 3.0, 1.0, 10.0
RECOVERY = LEASE + HEARTBEAT + HOUSEKEEPING
"""How long a dead process's run may wait to be queued again, at most."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Project:
    """A folder with a config on one database, its connectors, and the processes it started."""

    def __init__(self, folder: Path, url: str, sources: Sequence[str], engine: str = "") -> None:
        self.folder, self.url = folder, url
        (folder / "procsources.py").write_text(CONNECTORS)
        tables = "".join(
            f'\n[[sources]]\nname = "{name}"\nconnector = "procsources:{name}"\n'
            f"per_target = true\n{SOURCES[name]}"
            for name in sources
        )
        self.base = (
            f'[database]\nurl = "{url}"\n\n[engine]\nlease = "{LEASE:g}s"\n'
            f'heartbeat = "{HEARTBEAT:g}s"\n{engine}{tables}'
        )
        self.config = self.write_config("synchestra.toml")
        self.procs: list[tuple[subprocess.Popen[bytes], Path]] = []

    def write_config(self, name: str, extra: str = "") -> Path:
        path = self.folder / name
        path.write_text(self.base + extra)
        return path

    def env(self) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": str(self.folder)}

    def command(self, *args: str, config: Path | None = None) -> list[str]:
        return [sys.executable, "-m", "synchestra", *args, "-c", str(config or self.config)]

    def run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args), capture_output=True, text=True, timeout=timeout, env=self.env()
        )

    def json(self, *args: str) -> Any:
        done = self.run(*args, "--json")
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    def add_targets(self, keys: Sequence[str]) -> None:
        """Import the targets (this also creates the schema, before any process shares it)."""
        csv = self.folder / "targets.csv"
        csv.write_text("key\n" + "".join(f"{key}\n" for key in keys))
        done = self.run("targets", "import", str(csv))
        assert done.returncode == 0, done.stderr

    def start(self, name: str, *args: str, config: Path | None = None) -> subprocess.Popen[bytes]:
        """Start ``synchestra ARGS`` in a session of its own; output in ``<name>.out/.err``."""
        out = (self.folder / f"{name}.out").open("wb")
        err_path = self.folder / f"{name}.err"
        with out, err_path.open("wb") as err:
            proc = subprocess.Popen(
                self.command(*args, config=config),
                stdout=out,
                stderr=err,
                env=self.env(),
                start_new_session=True,
            )
        self.procs.append((proc, err_path))
        return proc

    def stderr(self, proc: subprocess.Popen[bytes]) -> str:
        path = next(err for started, err in self.procs if started is proc)
        return path.read_text(errors="replace")

    def assert_no_tracebacks(self) -> None:
        for proc, err in self.procs:
            text = err.read_text(errors="replace")
            assert "Traceback" not in text, f"pid {proc.pid}: {text}"

    def kill_all(self) -> None:
        for proc, _ in self.procs:
            if proc.poll() is None:
                os.kill(proc.pid, signal.SIGCONT)  # a stopped process dies on SIGKILL too
                os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)

    def release(self, pid: int) -> None:
        (self.folder / f"release-{pid}").write_text("")

    def started(self, pid: int, target: str) -> bool:
        return (self.folder / f"started-{pid}-{target.replace(':', '_')}").exists()

    def attempts(self) -> list[dict[str, Any]]:
        path = self.folder / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines()]


@contextmanager
def project(folder: Path, url: str, sources: Sequence[str], engine: str = "") -> Iterator[Project]:
    made = Project(folder, url, sources, engine)
    try:
        yield made
    finally:
        made.kill_all()


@asynccontextmanager
async def reading(url: str) -> AsyncIterator[Store]:
    """The test's own view of the database (it never runs work)."""
    store = await Store.open(url)
    try:
        yield store
    finally:
        await store.close()


async def until(condition: Callable[[], Any], within: float, what: str) -> Any:
    """Poll ``condition`` (sync or async) until it is truthy; its value. Fails at the deadline."""
    deadline = time.monotonic() + within
    while True:
        value = condition()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g}s waiting for {what}")
        await asyncio.sleep(0.1)


def pid_of(worker_id: str | None) -> int | None:
    """The pid in a worker id (``host:pid:nonce``)."""
    return int(worker_id.split(":")[-2]) if worker_id else None


def live_workers(proj: Project) -> list[dict[str, Any]]:
    return [w for w in proj.json("workers")["workers"] if w["live"]]


def assert_no_overlap(attempts: Sequence[dict[str, Any]]) -> None:
    """No two attempts of one (source, target) ran at the same time."""
    by_pair: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for item in attempts:
        by_pair.setdefault((item["source"], item["target"]), []).append(
            (item["start"], item["end"])
        )
    for pair, spans in by_pair.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"{pair} ran twice at once: {spans}"


async def all_runs(url: str) -> list[Run]:
    async with reading(url) as store:
        return await store.list_runs(limit=10_000)


# --- 1. sync beside serve -----------------------------------------------------------


async def test_sync_beside_serve_returns_whoever_ran_the_runs(
    tmp_path: Path, database_url: str
) -> None:
    keys = [f"dot:{n}" for n in range(40)]
    with project(tmp_path, database_url, ["slow"], "workers = 4\n") as proj:
        proj.add_targets(keys)
        port = f"\n[api_server]\nport = {free_port()}\n"
        server = proj.start("serve", "serve", "--no-auth", config=proj.write_config("s.toml", port))
        await until(lambda: live_workers(proj), 30, "serve to register")

        began = time.monotonic()
        done = proj.run("sync", "slow", "--json", timeout=90)
        took = time.monotonic() - began
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        assert (summary["succeeded"], summary["failed"], summary["total"]) == (40, 0, 40)
        assert took < 60
        assert {run["state"] for run in summary["runs"]} == {"succeeded"}
        assert sorted(run["target"] for run in summary["runs"]) == sorted(keys)
        runners = Counter(pid_of(run["worker"]) for run in summary["runs"])
        assert None not in runners
        # serve claims from the start: with 4 workers each, both processes ran some
        assert runners[server.pid] > 0, runners
        assert sum(runners.values()) == 40
        records = proj.json("records", "slow", "--limit", "1000")["records"]
        assert sorted(r["key"] for r in records) == sorted(keys)
        proj.assert_no_tracebacks()


# --- 2. two syncs of one target ---------------------------------------------------


async def exit_times(procs: Sequence[subprocess.Popen[bytes]], within: float) -> list[float]:
    """When each process exited (real time), polled; fails if one is still running."""
    ended: dict[int, float] = {}

    def all_ended() -> bool:
        for proc in procs:
            if proc.pid not in ended and proc.poll() is not None:
                ended[proc.pid] = time.time()
        return len(ended) == len(procs)

    await until(all_ended, within, "the syncs to return")
    return [ended[proc.pid] for proc in procs]


async def test_two_syncs_of_one_target_never_overlap(tmp_path: Path, database_url: str) -> None:
    with project(tmp_path, database_url, ["dot"]) as proj:
        proj.add_targets(["dot:1"])
        syncs = [
            proj.start(f"sync{n}", "sync", "dot", "--target", "dot:1", "--json") for n in (1, 2)
        ]
        await until(
            lambda: any(proj.started(proc.pid, "dot:1") for proc in syncs), 30, "a first attempt"
        )
        syncs.append(proj.start("sync3", "sync", "dot", "--target", "dot:1", "--json"))
        exited = await exit_times(syncs, 60)
        attempts = proj.attempts()
        runs = await all_runs(database_url)
        for n, (proc, at) in enumerate(zip(syncs, exited, strict=True), start=1):
            assert proc.returncode == 0, proj.stderr(proc)
            summary = json.loads((tmp_path / f"sync{n}.out").read_text())
            assert (summary["succeeded"], summary["failed"]) == (1, 0), summary
            (own,) = [run for run in runs if str(run.id) == summary["runs"][0]["id"]]
            assert own.state is RunState.SUCCEEDED and own.finished_at is not None
            # it returns when its run ends, not when runs it took for others end
            assert at - own.finished_at.timestamp() < 2.0, (n, at, own, attempts)
        assert_no_overlap(attempts)
        assert len(attempts) == len(runs)
        for run in runs:  # any run handed back by a sync that returned was run again
            assert run.state is RunState.SUCCEEDED or (
                run.state is RunState.INTERRUPTED and run.continued_by is not None
            ), runs
        proj.assert_no_tracebacks()


# --- 3. two serve processes, one schedule ---------------------------------------------


async def test_two_servers_fire_each_schedule_once(tmp_path: Path, database_url: str) -> None:
    keys = ["dot:1", "dot:2", "dot:3"]
    with project(tmp_path, database_url, ["tick"]) as proj:
        proj.add_targets(keys)
        for name in ("a", "b"):
            config = proj.write_config(f"{name}.toml", f"\n[api_server]\nport = {free_port()}\n")
            proj.start(name, "serve", "--no-auth", config=config)
        await until(lambda: len(live_workers(proj)) == 2, 30, "both servers to register")

        schedulers: list[int] = []
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:
            listed = live_workers(proj)
            schedulers.append(sum(1 for w in listed if w["scheduler"]))
        assert max(schedulers) == 1, schedulers
        assert schedulers.count(1) >= len(schedulers) - 1, schedulers  # at most the first: 0

        runs = [run for run in await all_runs(database_url) if run.trigger == "schedule"]
        per_fire = Counter((run.source, run.target, run.not_before) for run in runs)
        assert per_fire and max(per_fire.values()) == 1, per_fire
        fires = {run.not_before for run in runs}
        assert len(fires) >= 4, sorted(fires)
        for fire in sorted(fires)[:-1]:  # each fire queued every target (the last may be due)
            assert sorted(str(r.target) for r in runs if r.not_before == fire) == keys
        assert_no_overlap(proj.attempts())
        proj.assert_no_tracebacks()


# --- 4. kill -9 of a worker mid-run --------------------------------------------------


async def enqueue_block(url: str) -> int:
    async with reading(url) as store:
        answers = await store.enqueue(
            [RunRequest(source="block", target="dot:1")], await store.database_now()
        )
    return answers[0].run.id


async def run_of(url: str, run_id: int) -> Run:
    async with reading(url) as store:
        (run,) = await store.get_runs([run_id])
    return run


async def test_a_killed_worker_run_is_run_again(tmp_path: Path, database_url: str) -> None:
    with project(tmp_path, database_url, ["block"]) as proj:
        proj.add_targets(["dot:1"])
        victim = proj.start("victim", "worker")
        await until(lambda: live_workers(proj), 30, "the first worker to register")
        first = await enqueue_block(database_url)
        await until(lambda: proj.started(victim.pid, "dot:1"), 30, "the victim's attempt")
        rescuer = proj.start("rescuer", "worker")
        await until(lambda: len(live_workers(proj)) == 2, 30, "the second worker")

        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(timeout=10)
        killed = time.monotonic()
        await until(lambda: proj.started(rescuer.pid, "dot:1"), RECOVERY + 5, "the re-run")
        assert time.monotonic() - killed <= RECOVERY + 2
        proj.release(rescuer.pid)

        old = await run_of(database_url, first)
        assert old.state is RunState.INTERRUPTED and old.continued_by is not None
        again = await until(lambda: _ended(database_url, old.continued_by), 30, "the re-run to end")
        assert again.state is RunState.SUCCEEDED and pid_of(again.worker) == rescuer.pid
        records = proj.json("records", "item")["records"]
        assert sorted(r["key"] for r in records) == ["early", f"late-{rescuer.pid}"]
        proj.assert_no_tracebacks()


async def _ended(url: str, run_id: int | None) -> Run | None:
    assert run_id is not None
    run = await run_of(url, run_id)
    return run if run.state.terminal else None


# --- 5. a paused worker past its lease --------------------------------------------------


async def test_a_paused_worker_writes_nothing_for_the_run_it_lost(
    tmp_path: Path, database_url: str
) -> None:
    with project(tmp_path, database_url, ["block"]) as proj:
        proj.add_targets(["dot:1"])
        paused = proj.start("paused", "worker")
        await until(lambda: live_workers(proj), 30, "the first worker to register")
        first = await enqueue_block(database_url)
        await until(lambda: proj.started(paused.pid, "dot:1"), 30, "the first attempt")
        rescuer = proj.start("rescuer", "worker")
        await until(lambda: len(live_workers(proj)) == 2, 30, "the second worker")

        os.kill(paused.pid, signal.SIGSTOP)
        await until(lambda: proj.started(rescuer.pid, "dot:1"), RECOVERY + 5, "the re-run")
        proj.release(rescuer.pid)
        old = await run_of(database_url, first)
        assert old.state is RunState.INTERRUPTED and old.continued_by is not None
        again = await until(lambda: _ended(database_url, old.continued_by), 30, "the re-run")
        assert again.state is RunState.SUCCEEDED

        proj.release(paused.pid)  # the paused attempt may go on as soon as it wakes up
        os.kill(paused.pid, signal.SIGCONT)
        await until(
            lambda: f"lease lost: run {first} " in proj.stderr(paused), 30, "the lease lost"
        )
        assert paused.poll() is None, proj.stderr(paused)

        assert (await run_of(database_url, first)).state is RunState.INTERRUPTED
        records = proj.json("records", "item")["records"]
        assert sorted(r["key"] for r in records) == ["early", f"late-{rescuer.pid}"]
        assert {r["data"]["pid"] for r in records} == {rescuer.pid}
        status = proj.json("status", "--target", "dot:1")["sources"]["block"]
        assert status["state"] == "succeeded"
        async with reading(database_url) as store:
            (pair,) = [p for p in await store.pair_statuses("dot:1") if p.source == "block"]
        assert pair.watermark == {"pid": rescuer.pid}
        proj.assert_no_tracebacks()
