"""Celery peer of bench/overhead.py: N no-op tasks through Redis, end to end.

This file is both the Celery app (the worker imports it with ``celery -A
celery_peer``) and the driver: ``python bench/peers/celery_peer.py --n 1000``
starts a real worker process on loopback, waits until it answers a warm-up
task, then times enqueueing N no-op tasks and collecting all N results (the
result backend is on, as synchestra persists every run's status), stops the
worker and deletes every key it made. Prints one JSON line.

Everything lives in Redis database ``REDIS_DB`` under ``KEY_PREFIX`` so that it
never touches another user's keys.
"""

# Celery ships no type information; the bench type-checks whether or not the
# bench extras are installed, hence the "unused-ignore" beside each code.
from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from celery import Celery  # type: ignore[import-untyped,import-not-found,unused-ignore]

REDIS_DB = 11
KEY_PREFIX = "synchestra-bench:"
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
READY_TIMEOUT = 60.0  # seconds for the worker to answer its warm-up task
STOP_TIMEOUT = 30.0  # seconds for a warm shutdown before SIGKILL
POLL = 0.05  # seconds between reads of the result keys
TASK = "bench.noop"
HERE = Path(__file__).resolve().parent

app = Celery("synchestra_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    broker_transport_options={"global_keyprefix": KEY_PREFIX},
    result_backend_transport_options={"global_keyprefix": KEY_PREFIX},
    task_ignore_result=False,
    result_expires=3600,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)


# Publishes without a result backend: see measure().
client = Celery("synchestra_bench_client", broker=REDIS_URL)
client.conf.update(broker_transport_options={"global_keyprefix": KEY_PREFIX})


@app.task(name=TASK)
def noop() -> None:
    """The task: does nothing, so what is measured is Celery's own cost."""
    return None


# --- the driver ----------------------------------------------------------------


def start_worker(pool: str, concurrency: int, prefetch: int) -> subprocess.Popen[bytes]:
    """A real worker process in its own session, so its pool children stop with it.

    Its output goes to stderr: stdout carries only the driver's JSON.
    """
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "celery_peer",
        "worker",
        f"--pool={pool}",
        f"--concurrency={concurrency}",
        f"--prefetch-multiplier={prefetch}",
        "--loglevel=WARNING",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        f"--hostname=bench{os.getpid()}@127.0.0.1",
    ]
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.Popen(command, cwd=HERE, env=env, stdout=sys.stderr, start_new_session=True)


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown (SIGTERM) of the worker's process group, SIGKILL if it hangs."""
    if worker.poll() is not None:
        return
    os.killpg(worker.pid, signal.SIGTERM)
    try:
        worker.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(STOP_TIMEOUT)


def tree_peak_rss_mb(root: int) -> float:
    """Sum of the peak RSS (VmHWM) of ``root`` and its child processes, from /proc.

    The sum is an upper bound of the tree's simultaneous peak.
    """
    pids = [root, *children_of(root)]
    total_kb = 0
    for pid in pids:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                total_kb += int(line.split()[1])
    return round(total_kb / 1024, 1)


def children_of(parent: int) -> list[int]:
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == parent:
            found.append(int(entry.name))
    return found


def delete_bench_keys() -> int:
    """Delete this benchmark's keys (and only them); returns how many."""
    redis = app.backend.client  # a plain client: the broker's would prefix the pattern again
    deleted = 0
    for _ in range(10_000):  # bounded: each round deletes up to 1,000 keys
        keys = list(redis.scan_iter(match=f"{KEY_PREFIX}*", count=1000))[:1000]
        if not keys:
            break
        deleted += int(redis.delete(*keys))
    return deleted


def wait_ready(worker: subprocess.Popen[bytes]) -> None:
    """Block until the worker ran one task end to end (connections open, pool up)."""
    deadline = time.monotonic() + READY_TIMEOUT
    result = noop.delay()
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(f"the celery worker exited with {worker.returncode}")
        if result.ready():
            result.get(timeout=1)
            return
        time.sleep(POLL)
    raise TimeoutError(f"the celery worker did not answer within {READY_TIMEOUT:.0f}s")


def measure(size: int, timeout: float) -> float:
    """Enqueue ``size`` tasks on one producer and wait until all their results are stored.

    The tasks are published through ``client``, an app without a result
    backend: Celery's default client subscribes to a Redis channel per task
    (one round trip each), which made the client, not Celery, the bottleneck.
    Completion is read from the result keys the worker writes.
    """
    started = time.perf_counter()
    with client.producer_or_acquire() as producer:
        ids = [client.send_task(TASK, producer=producer).id for _ in range(size)]
    wait_for_results(ids, started + timeout)
    return time.perf_counter() - started


def wait_for_results(ids: list[str], deadline: float) -> None:
    """Poll the result keys (MGET, 1,000 at a time) until every task succeeded."""
    backend = app.backend
    pending = [backend.get_key_for_task(task_id) for task_id in ids]
    while pending:
        if time.perf_counter() > deadline:
            raise TimeoutError(f"{len(pending)} celery results missing at the deadline")
        still: list[bytes] = []
        for start in range(0, len(pending), 1000):
            chunk = pending[start : start + 1000]
            for key, value in zip(chunk, backend.client.mget(chunk), strict=True):
                if value is None:
                    still.append(key)
                elif b'"SUCCESS"' not in value:
                    raise RuntimeError(f"a celery task did not succeed: {value!r}")
        pending = still
        if pending:
            time.sleep(POLL)


def run(size: int, pool: str, concurrency: int, prefetch: int, timeout: float) -> dict[str, Any]:
    delete_bench_keys()
    worker = start_worker(pool, concurrency, prefetch)
    try:
        wait_ready(worker)
        elapsed = measure(size, timeout)
        worker_rss = tree_peak_rss_mb(worker.pid)
    finally:
        stop_worker(worker)
        delete_bench_keys()
    return {
        "n": size,
        "seconds": round(elapsed, 3),
        "tasks_per_second": round(size / elapsed, 1),
        "worker_peak_rss_mb": worker_rss,
        "client_peak_rss_mb": peak_rss_mb(),
    }


def peak_rss_mb() -> float:
    """This process's peak RSS since it started (VmHWM; ``ru_maxrss`` would include
    the parent's, which a spawned child inherits on Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def stop_on_signal(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--pool", default="solo", choices=["prefork", "threads", "solo"])
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--prefetch", type=int, default=64)
    parser.add_argument("--timeout", type=float, default=300.0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, stop_on_signal)  # so that ``finally`` stops the worker
    result = run(args.n, args.pool, args.concurrency, args.prefetch, args.timeout)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
