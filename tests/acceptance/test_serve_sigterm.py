"""SIGTERM stops ``serve`` gracefully: its running run gets the grace, then is handed back."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from process_helpers import Process, free_port, healthy, post_json, processes, wait_for

pytestmark = pytest.mark.slow

SOURCES = textwrap.dedent(
    """
    import asyncio
    from pathlib import Path

    HERE = Path(__file__).parent

    async def hold(ctx):
        (HERE / "started").write_text("yes")
        while not (HERE / "release").exists():   # the test decides when the run ends
            await asyncio.sleep(0.05)
        await ctx.upsert("held", [{"id": "one"}], key="id")
    """
)


def project(folder: Path, port: int, grace: str) -> None:
    (folder / "holdsources.py").write_text(SOURCES)
    config = f"""
        [database]
        url = "sqlite:///held.db"

        [api_server]
        port = {port}

        [engine]
        grace = "{grace}"

        [[sources]]
        name = "hold"
        connector = "holdsources:hold"
        """
    (folder / "synchestra.toml").write_text(textwrap.dedent(config))


def history(folder: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [sys.executable, "-m", "synchestra", "runs", "--json"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return list(json.loads(done.stdout)["runs"])


def start_held_run(folder: Path, grace: str) -> Process:
    port = free_port()
    project(folder, port, grace)
    serve = Process(folder, "serve", "--no-auth")
    wait_for(lambda: healthy(port), 60, "serve to answer")
    assert post_json(port, "/api/sync/hold", {})[0] == 202
    wait_for(lambda: (folder / "started").exists(), 30, "the run to start")
    return serve


@pytest.mark.timeout(120)
def test_sigterm_hands_back_a_run_that_outlasts_its_grace(tmp_path: Path) -> None:
    with processes() as started:
        serve = start_held_run(tmp_path, grace="2s")
        started.append(serve)
        sent = time.monotonic()
        serve.signal(signal.SIGTERM)
        code = serve.wait(timeout=60)
        took = time.monotonic() - sent
    print(f"serve exited {took:.1f}s after SIGTERM")
    assert code == 0, serve.log()
    assert took >= 2  # the run had its grace
    assert [(r["state"], r["error"]) for r in history(tmp_path)] == [
        ("queued", None),
        ("interrupted", "interrupted: shutting down"),
    ]
    assert "Traceback" not in serve.log()


@pytest.mark.timeout(120)
def test_sigterm_lets_a_run_end_within_its_grace(tmp_path: Path) -> None:
    with processes() as started:
        serve = start_held_run(tmp_path, grace="30s")
        started.append(serve)
        serve.signal(signal.SIGTERM)
        wait_for(lambda: "Shutting down" in serve.log(), 30, "the API to stop")
        assert serve.alive  # the run still has its grace
        (tmp_path / "release").write_text("go")
        code = serve.wait(timeout=60)
    assert code == 0, serve.log()
    assert [r["state"] for r in history(tmp_path)] == ["succeeded"]
    assert "Traceback" not in serve.log()


@pytest.mark.timeout(120)
def test_sigterm_to_a_worker_hands_back_its_run_after_the_grace(tmp_path: Path) -> None:
    """``synchestra worker`` drains the same way: grace, then the run is handed back, exit 0."""
    project(tmp_path, free_port(), grace="2s")
    with processes() as started:
        worker = Process(tmp_path, "worker", "--workers", "2")
        started.append(worker)
        enqueue(tmp_path)  # by another process: the worker finds it and claims it
        wait_for(lambda: (tmp_path / "started").exists(), 30, "the worker to run it")
        sent = time.monotonic()
        worker.signal(signal.SIGTERM)
        code = worker.wait(timeout=60)
        took = time.monotonic() - sent
    assert code == 0, worker.log()
    assert took >= 2
    states = [(r["state"], r["error"]) for r in history(tmp_path)]
    assert states == [("queued", None), ("interrupted", "interrupted: shutting down")]
    assert "Traceback" not in worker.log()


def enqueue(folder: Path) -> None:
    """Queue the held run from this test process, as another process would."""
    script = textwrap.dedent(
        """
        import asyncio
        from synchestra import Orchestrator

        async def main():
            orc = Orchestrator.from_config("synchestra.toml")
            async with orc:
                await orc.request(["hold"])

        asyncio.run(main())
        """
    )
    subprocess.run(
        [sys.executable, "-c", script], cwd=folder, check=True, timeout=60, capture_output=True
    )
