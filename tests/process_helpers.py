"""Real processes for multi-process tests: ``synchestra serve``, a throw-away PostgreSQL cluster.

Every process is started in its own session and stopped by its pid; waits poll
a condition until a bounded deadline (the short sleeps between polls are not
waits for time to pass).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any, TypeVar

import pytest

CI = os.environ.get("CI") == "true"
PG_BIN = Path("/usr/lib/postgresql/15/bin")
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(check: Callable[[], T | None], timeout: float, what: str, every: float = 0.1) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(every)


def get_json(port: int, path: str, timeout: float = 5.0) -> tuple[int, Any]:
    """``GET http://127.0.0.1:port/path``: (status, JSON body); (0, None) when it cannot connect."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        body = error.read()
        return error.code, json.loads(body) if body else None
    except (OSError, TimeoutError):
        return 0, None


def post_json(port: int, path: str, body: Any) -> tuple[int, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


class Process:
    """A ``python -m synchestra ...`` child in its own session, its output in a log file.

    The output goes through a pipe that a thread of the test copies to the file:
    a file-size limit set on the child (see test_outage) must not stop its log.
    """

    def __init__(
        self,
        folder: Path,
        *args: str,
        name: str = "serve",
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.log_path = folder / f"{name}-{len(list(folder.glob('*.log')))}.log"
        self._log = self.log_path.open("wb")
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "synchestra", *args, "-c", str(folder / "synchestra.toml")],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=folder,
            env={**os.environ, "PYTHONPATH": str(folder)},
            start_new_session=True,
            preexec_fn=preexec,
        )
        self._copier = threading.Thread(target=self._copy, daemon=True)
        self._copier.start()

    def _copy(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._log.write(line)
            self._log.flush()

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def signal(self, signum: signal.Signals) -> None:
        if self.alive:
            os.kill(self.popen.pid, signum)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGKILL by pid if still running (the tests' own clean-up)."""
        if self.alive:
            os.kill(self.popen.pid, signal.SIGKILL)
            with suppress(subprocess.TimeoutExpired):
                self.popen.wait(timeout=10)
        self._copier.join(timeout=10)
        if self.popen.stdout is not None:
            self.popen.stdout.close()
        self._log.close()


@contextmanager
def processes() -> Iterator[list[Process]]:
    """A list to put started processes in; each is killed (by pid) at the end."""
    started: list[Process] = []
    try:
        yield started
    finally:
        for process in started:
            process.stop()


def healthy(port: int) -> bool:
    return get_json(port, "/api/health")[0] == 200


def runs(port: int, **query: str) -> list[dict[str, Any]]:
    """The runs the API lists (up to 500), [] when it does not answer."""
    text = "&".join(f"{key}={value}" for key, value in {"limit": "500", **query}.items())
    status, body = get_json(port, f"/api/runs?{text}")
    return list(body["runs"]) if status == 200 else []


class Cluster:
    """A throw-away PostgreSQL cluster on a free loopback port, owned by the ``postgres`` user."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="syn-pg-"))
        shutil.chown(self.folder, "postgres", "postgres")
        self.data = self.folder / "data"
        self.port = free_port()
        self._as_postgres(PG_BIN / "initdb", "-A", "trust", "-U", "postgres", "-D", self.data)

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, *command: str | Path) -> None:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", *map(str, command)],
            check=True,
            capture_output=True,
            timeout=120,
        )

    def start(self) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1"
        log = self.folder / "postgres.log"
        self._as_postgres(
            PG_BIN / "pg_ctl", "start", "-w", "-D", self.data, "-l", log, "-o", options
        )

    def stop(self, mode: str = "fast") -> None:
        self._as_postgres(PG_BIN / "pg_ctl", "stop", "-w", "-m", mode, "-D", self.data)

    def remove(self) -> None:
        with suppress(subprocess.CalledProcessError, subprocess.TimeoutExpired):
            self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)


def can_make_clusters() -> str | None:
    """Why a throw-away cluster cannot be made here (None: it can)."""
    if os.geteuid() != 0:
        return "needs root to run initdb as the postgres user"
    if not (PG_BIN / "initdb").exists() or shutil.which("runuser") is None:
        return f"no {PG_BIN / 'initdb'} or runuser"
    return None


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """A started throw-away cluster, stopped and removed at the end (never the 5432 one)."""
    reason = can_make_clusters()
    if reason is not None:
        if CI:
            raise RuntimeError(reason)
        pytest.skip(reason)
    made = Cluster()
    try:
        made.start()
        yield made
    finally:
        made.remove()
