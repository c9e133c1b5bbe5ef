"""Crash recovery (guarantee 7): a ``sync`` killed with SIGKILL mid-run, then started again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

SOURCE = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path

    HERE = Path(__file__).parent

    async def profile(ctx):
        await ctx.upsert("profile", [{"id": ctx.target.key, "v": 1}], key="id")
        marker = HERE / f"hung-{ctx.target.key.replace(':', '_')}"
        if ctx.target.key == "dot:2" and not marker.exists():
            marker.write_text("once")
            print("READY", flush=True)      # the test kills the process now
            await asyncio.Event().wait()
    """
)

CONFIG = textwrap.dedent(
    """
    [database]
    url = "sqlite:///crash.db"

    [[sources]]
    name = "profile"
    connector = "crashsources:profile"
    per_target = true
    """
)


def synchestra(folder: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "synchestra", *args, "-c", str(folder / "synchestra.toml")]


def run_json(folder: Path, *args: str) -> Any:
    done = subprocess.run(
        synchestra(folder, *args, "--json"),
        capture_output=True,
        text=True,
        timeout=60,
        env=_env(folder),
    )
    assert done.returncode in (0, 1), done.stderr
    return json.loads(done.stdout)


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(folder)}


def project(folder: Path, targets: list[str], extra_config: str = "") -> None:
    """A config, its connector module and targets in ``folder``."""
    (folder / "crashsources.py").write_text(SOURCE)
    (folder / "synchestra.toml").write_text(CONFIG + extra_config)
    for key in targets:
        subprocess.run(
            synchestra(folder, "targets", "add", key),
            check=True,
            timeout=60,
            env=_env(folder),
            capture_output=True,
        )


def sync_until_hung(folder: Path, signum: signal.Signals) -> tuple[int, str]:
    """Start ``sync``, send ``signum`` once the hanging run has started; exit code, stderr."""
    with subprocess.Popen(
        synchestra(folder, "sync", "--json"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(folder),
    ) as victim:
        assert victim.stdout is not None
        assert victim.stdout.readline().strip() == "READY"
        victim.send_signal(signum)
        _, stderr = victim.communicate(timeout=30)
    return victim.returncode, stderr


def test_killed_sync_recovers_without_duplicates(tmp_path: Path) -> None:
    project(tmp_path, ["dot:1", "dot:2", "dot:3"])
    assert sync_until_hung(tmp_path, signal.SIGKILL)[0] == -signal.SIGKILL

    again = run_json(tmp_path, "sync")
    assert (again["failed"], again["succeeded"]) == (0, 3)

    history = run_json(tmp_path, "runs", "--target", "dot:2")["runs"]
    states = sorted(run["state"] for run in history)
    assert states == ["interrupted", "succeeded"]
    interrupted = next(run for run in history if run["state"] == "interrupted")
    assert "interrupted" in interrupted["error"]

    records = run_json(tmp_path, "records", "profile")["records"]
    assert sorted(r["key"] for r in records) == ["dot:1", "dot:2", "dot:3"]
    status = run_json(tmp_path, "status", "--target", "dot:2")
    assert status["success"] is True
    assert status["sources"]["profile"]["state"] == "succeeded"


def test_sigterm_stops_sync_and_interrupts_running_runs(tmp_path: Path) -> None:
    project(tmp_path, ["dot:2"], '\n[engine]\ngrace = "0s"\n')
    code, stderr = sync_until_hung(tmp_path, signal.SIGTERM)
    assert code == 1
    assert "interrupted" in stderr and "Traceback" not in stderr

    history = run_json(tmp_path, "runs", "--target", "dot:2")["runs"]
    assert [(r["state"], r["error"]) for r in history] == [
        ("queued", None),
        ("interrupted", "interrupted: shutting down"),
    ]
