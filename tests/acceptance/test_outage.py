"""A ``serve`` process outlives its database: PostgreSQL stopped, SQLite unable to write.

Real processes on real databases: a throw-away PostgreSQL cluster stopped for
15 s under ``serve`` (the wait is the outage itself), and a SQLite file that
``serve`` cannot write (its file-size limit lowered from outside with prlimit).
"""

from __future__ import annotations

import resource
import signal
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from process_helpers import (
    Cluster,
    Process,
    free_port,
    get_json,
    healthy,
    post_json,
    processes,
    runs,
    throwaway_cluster,
    wait_for,
)

pytestmark = pytest.mark.slow

SOURCES = textwrap.dedent(
    """
    import time
    from pathlib import Path

    HERE = Path(__file__).parent

    async def tick(ctx):
        await ctx.upsert("tick", [{"id": "one", "at": time.time()}], key="id")

    async def big(ctx):
        # 4 MiB in one row: more than the file-size limit the test sets
        await ctx.upsert("big", [{"id": str(time.time()), "blob": "x" * (4 << 20)}], key="id")
    """
)


def project(folder: Path, url: str, port: int, extra: str = "") -> None:
    (folder / "outagesources.py").write_text(SOURCES)
    config = f"""
        [database]
        url = "{url}"

        [api_server]
        port = {port}

        [engine]
        grace = "2s"

        [[sources]]
        name = "tick"
        connector = "outagesources:tick"
        every = "2s"
        """
    (folder / "synchestra.toml").write_text(textwrap.dedent(config) + textwrap.dedent(extra))


def succeeded(port: int, source: str = "tick") -> int:
    return len(runs(port, source=source, state="succeeded"))


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as made:
        yield made


@pytest.mark.timeout(240)
def test_serve_outlives_a_postgresql_outage(tmp_path: Path, cluster: Cluster) -> None:
    port = free_port()
    project(tmp_path, cluster.url, port)
    with processes() as started:
        serve = Process(tmp_path, "serve", "--no-auth")
        started.append(serve)
        wait_for(lambda: succeeded(port) >= 2, 60, "two runs before the outage")

        last_before = max(run["id"] for run in runs(port))
        cluster.stop("fast")
        down_since = time.monotonic()
        wait_for(lambda: get_json(port, "/api/health")[0] == 503, 10, "health to answer 503")
        status, body = get_json(port, "/api/health")
        assert status == 503
        assert body == {"status": "down", "all_healthy": False, "sources": {}}
        status, body = get_json(port, "/api/runs")
        assert status == 503
        assert set(body) == {"error", "detail"}
        while time.monotonic() - down_since < 15:  # the outage itself: 15 s
            assert get_json(port, "/api/health")[0] == 503
            assert serve.alive
            time.sleep(1)

        cluster.start()
        back_at = time.monotonic()
        wait_for(lambda: healthy(port), 30, "health back to 200")
        before = succeeded(port)
        wait_for(lambda: succeeded(port) >= before + 2, 60, "new runs after the outage")
        resumed = time.monotonic() - back_at

        assert serve.alive
        assert not [r for r in runs(port) if r["state"] == "running" and r["id"] <= last_before]
        serve.signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
    log = serve.log()
    print(f"runs resumed {resumed:.1f}s after PostgreSQL was back")
    assert "Traceback" not in log
    assert log.count("the database is unavailable; answering 503") == 1
    assert log.count("the synchestra loop retries with backoff") == 1
    assert "the database answers again" in log


def _limit_file_size(pid: int, limit: int) -> None:
    """Set ``serve``'s soft file-size limit from outside: writes past ``limit`` bytes fail."""
    _, hard = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, hard))


def _ignore_sigxfsz() -> None:
    """A write over the file-size limit must fail (EFBIG), not kill the process."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


@pytest.mark.timeout(180)
def test_serve_outlives_a_sqlite_database_it_cannot_write(tmp_path: Path) -> None:
    port = free_port()
    big = """
        [[sources]]
        name = "big"
        connector = "outagesources:big"
        """
    project(tmp_path, "sqlite:///outage.db", port, big)
    with processes() as started:
        serve = Process(tmp_path, "serve", "--no-auth", preexec=_ignore_sigxfsz)
        started.append(serve)
        wait_for(lambda: succeeded(port) >= 1, 60, "a first run")

        # A run whose own write does not fit fails; the engine goes on.
        _limit_file_size(serve.popen.pid, 2 << 20)
        assert post_json(port, "/api/sync/big", {})[0] == 202
        failed = wait_for(lambda: runs(port, source="big", state="failed"), 30, "big fails")
        assert "full" in failed[0]["error"] or "I/O" in failed[0]["error"]
        count = succeeded(port)
        wait_for(lambda: succeeded(port) >= count + 1, 30, "tick runs after the failed run")

        # No write fits at all: the engine waits, the API still reads.
        _limit_file_size(serve.popen.pid, 1)
        wait_for(lambda: "the synchestra loop retries" in serve.log(), 30, "the loop to notice")
        stuck = succeeded(port)
        assert serve.alive and healthy(port)

        _limit_file_size(serve.popen.pid, resource.RLIM_INFINITY)
        wait_for(lambda: succeeded(port) >= stuck + 2, 60, "runs after writes fit again")
        assert serve.alive
        serve.signal(signal.SIGTERM)
        assert serve.wait(timeout=30) == 0
    log = serve.log()
    assert "Traceback" not in log
    assert "the database answers again" in log
