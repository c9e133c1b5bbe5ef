"""Several ``serve`` processes on one database: the schema created once, no deadlock."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from process_helpers import (
    Cluster,
    Process,
    free_port,
    healthy,
    processes,
    runs,
    throwaway_cluster,
    wait_for,
)
from synchestra.store import Store

pytestmark = pytest.mark.slow

SOURCES = textwrap.dedent(
    """
    import time

    async def tick(ctx):
        key = ctx.target.key if ctx.target else "one"
        # a kind per source: two sources racing on one record is another matter
        await ctx.upsert(ctx.run.source, [{"id": key, "at": time.time()}], key="id")
    """
)


def project(folder: Path, url: str, port: int, every: str | None = None) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "manysources.py").write_text(SOURCES)
    schedule = f'every = "{every}"' if every else ""
    sources = "".join(
        f"""
        [[sources]]
        name = "{name}"
        connector = "manysources:tick"
        {schedule}
        {extra}
        """
        for name, extra in [
            ("alpha", ""),
            ("beta", ""),
            ("gamma", 'group = "pair"'),
            ("delta", 'group = "pair"'),
            ("fleet", 'per_target = true\ngroup = "fleets"'),
        ]
    )
    config = f"""
        [database]
        url = "{url}"

        [api_server]
        port = {port}

        [[groups]]
        name = "fleets"
        max_running = 2
        """
    (folder / "synchestra.toml").write_text(textwrap.dedent(config) + textwrap.dedent(sources))


async def test_processes_starting_together_create_the_schema_once(
    tmp_path: Path, database_url: str
) -> None:
    ports = [free_port() for _ in range(3)]
    folders = [tmp_path / f"p{index}" for index in range(3)]
    for folder, port in zip(folders, ports, strict=True):
        project(folder, database_url, port)
    with processes() as started:
        started += [Process(folder, "serve", "--no-auth") for folder in folders]
        for process, port in zip(started, ports, strict=True):
            wait_for(lambda port=port: healthy(port), 60, f"serve on {port}")  # type: ignore[misc]
            assert process.alive, process.log()
    for process in started:
        assert "Traceback" not in process.log()
    store = await Store.open(database_url)
    try:
        async with store.engine.connect() as conn:
            versions = (await conn.execute(text("SELECT version_num FROM alembic_version"))).all()
            sources = (await conn.execute(text("SELECT count(*) FROM source_state"))).scalar()
    finally:
        await store.close()
    assert len(versions) == 1
    assert sources == 5


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as made:
        yield made


@pytest.mark.timeout(240)
def test_two_serve_processes_on_postgresql_do_not_deadlock(
    tmp_path: Path, cluster: Cluster
) -> None:
    ports = [free_port() for _ in range(2)]
    folders = [tmp_path / "a", tmp_path / "b"]
    for folder, port in zip(folders, ports, strict=True):
        project(folder, cluster.url, port, every="1s")
    for key in ("dot:1", "dot:2", "dot:3", "dot:4", "dot:5"):
        subprocess.run(
            [sys.executable, "-m", "synchestra", "targets", "add", key],
            cwd=folders[0],
            check=True,
            capture_output=True,
            timeout=60,
        )
    with processes() as started:
        started += [Process(folder, "serve", "--no-auth") for folder in folders]
        for port in ports:
            wait_for(lambda port=port: healthy(port), 60, f"serve on {port}")  # type: ignore[misc]
        began = time.monotonic()
        counts = []
        while time.monotonic() - began < 45:  # the load itself: 45 s of schedules every 1 s
            assert all(process.alive for process in started)
            counts.append(len(runs(ports[0], state="succeeded", limit="10000")))
            time.sleep(5)
        last = counts[-1]
        wait_for(
            lambda: len(runs(ports[1], state="succeeded", limit="10000")) > last + 5,
            30,
            "runs still succeeding at the end",
        )
        assert all(process.alive for process in started)
        every_run = runs(ports[0], limit="10000")
    server_log = (cluster.folder / "postgres.log").read_text()
    print(f"succeeded runs every 5 s: {counts}; runs in all: {len(every_run)}")
    print(f"deadlocks PostgreSQL broke: {server_log.count('deadlock detected')}")
    assert "deadlock detected" not in server_log
    failed = [(r["id"], r["source"], r["error"]) for r in every_run if r["state"] == "failed"]
    assert not failed
    for process in started:
        log = process.log()
        assert "Traceback" not in log
        assert "the synchestra loop" not in log  # neither failed nor waited on the database
