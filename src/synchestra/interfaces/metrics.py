"""Prometheus metrics of one orchestrator, in a registry of their own (never the global one).

Read at scrape time from the database, so that they count every process sharing it
and survive restarts:

* ``synchestra_runs_total{source,state}`` (counter): finished runs, by final state;
* ``synchestra_queue_depth{source,state}`` (gauge): runs ``queued`` and ``running``;
* ``synchestra_last_success_timestamp_seconds{source}`` (gauge, unix seconds): only
  for sources that have succeeded at least once;
* ``synchestra_source_consecutive_failures{source}`` (gauge).

Read at scrape time from this process's rate limiters:

* ``synchestra_api_requests_total{api}``, ``synchestra_api_429_total{api}`` (counters),
  ``synchestra_api_peak_in_flight{api}`` (gauge).

Fed by the event bus of this process (runs other processes execute are not in it):

* ``synchestra_run_duration_seconds{source}`` (histogram): from a run's start to its
  end, for runs that ended here after the metrics were created;
* ``synchestra_metrics_events_dropped_total`` (counter): run endings the histogram
  missed because nobody scraped for too long.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from synchestra.core.models import Run, RunState
from synchestra.core.status import SourceRow
from synchestra.engine.orchestrator import Orchestrator

FINISHED: Final = frozenset({"run.succeeded", "run.failed", "run.skipped", "run.cancelled"})
"""The events after which a run's duration is known."""

ACTIVE: Final = (RunState.QUEUED.value, RunState.RUNNING.value)

DURATION_BUCKETS: Final = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

_CHUNK = 500


@dataclass
class Snapshot:
    """What the database and the limiters said at the last scrape."""

    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    sources: dict[str, SourceRow] = field(default_factory=dict)
    apis: dict[str, dict[str, int]] = field(default_factory=dict)
    dropped: int = 0


def families(snapshot: Snapshot) -> Iterator[Metric]:
    """The metric families of ``snapshot``."""
    finished = CounterMetricFamily(
        "synchestra_runs", "Finished runs by source and final state.", labels=["source", "state"]
    )
    depth = GaugeMetricFamily(
        "synchestra_queue_depth", "Runs queued or running, by source.", labels=["source", "state"]
    )
    names = sorted(set(snapshot.sources) | {source for source, _ in snapshot.runs})
    for source in names:
        for state in ACTIVE:
            depth.add_metric([source, state], snapshot.runs.get((source, state), 0))
    for (source, state), count in sorted(snapshot.runs.items()):
        if state not in ACTIVE:
            finished.add_metric([source, state], count)
    last_success = GaugeMetricFamily(
        "synchestra_last_success_timestamp_seconds",
        "When each source last succeeded (unix seconds); absent before its first success.",
        labels=["source"],
    )
    failures = GaugeMetricFamily(
        "synchestra_source_consecutive_failures",
        "Failed runs of each source since its last success.",
        labels=["source"],
    )
    for name, row in sorted(snapshot.sources.items()):
        if row.last_success is not None:
            last_success.add_metric([name], row.last_success.timestamp())
        failures.add_metric([name], row.consecutive_failures)
    yield from (finished, depth, last_success, failures)
    yield from _api_families(snapshot.apis)
    dropped = CounterMetricFamily(
        "synchestra_metrics_events_dropped",
        "Run endings the duration histogram missed (the metrics were not scraped for too long).",
    )
    dropped.add_metric([], snapshot.dropped)
    yield dropped


def _api_families(stats: dict[str, dict[str, int]]) -> Iterator[Metric]:
    requests = CounterMetricFamily(
        "synchestra_api_requests", "HTTP requests started, per API.", labels=["api"]
    )
    throttled = CounterMetricFamily(
        "synchestra_api_429", "HTTP 429 answers received, per API.", labels=["api"]
    )
    peak = GaugeMetricFamily(
        "synchestra_api_peak_in_flight", "Most requests in flight at once, per API.", labels=["api"]
    )
    allowed = GaugeMetricFamily(
        "synchestra_api_allowed_requests_per_period",
        "Requests per period the API's limiter allows now: its rate, or less after a backoff.",
        labels=["api"],
    )
    backoffs = CounterMetricFamily(
        "synchestra_api_backoffs",
        "Times the API's rate was halved (a 429 or a burst of server errors).",
        labels=["api"],
    )
    for api, numbers in sorted(stats.items()):
        requests.add_metric([api], numbers.get("requests", 0))
        throttled.add_metric([api], numbers.get("http_429", 0))
        peak.add_metric([api], numbers.get("peak_in_flight", 0))
        backoffs.add_metric([api], numbers.get("backoffs", 0))
        if "allowed" in numbers:  # only APIs with a rate
            allowed.add_metric([api], numbers["allowed"])
    yield from (requests, throttled, peak, allowed, backoffs)


class _SnapshotCollector(Collector):
    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        return families(self._metrics.snapshot)


class Metrics:
    """The metrics of ``orc``; :meth:`scrape` answers ``GET /metrics``.

    Listens to the bus from its creation (its subscription closes when it is
    garbage-collected), so create it when the orchestrator starts serving.
    """

    def __init__(self, orc: Orchestrator) -> None:
        self._orc = orc
        self._lock = asyncio.Lock()
        self.snapshot = Snapshot()
        self.registry = CollectorRegistry(auto_describe=True)
        self._durations = Histogram(
            "synchestra_run_duration_seconds",
            "How long runs took, from start to end, by source.",
            ["source"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_SnapshotCollector(self))
        self._finished = orc.bus.subscribe(FINISHED)
        self._finished.__enter__()
        weakref.finalize(self, self._finished.__exit__, None, None, None)

    async def scrape(self) -> bytes:
        """The Prometheus text exposition, as of now."""
        async with self._lock:
            await self._observe_finished()
            store = self._orc.store
            self.snapshot = Snapshot(
                runs=await store.run_counts(),
                sources=await store.source_rows(),
                apis=self._orc.limiter_stats(),
                dropped=self._finished.dropped,
            )
            return generate_latest(self.registry)

    async def _observe_finished(self) -> None:
        ids: list[int] = []
        while (event := self._finished.get_nowait()) is not None:
            text = str(event.data.get("id", ""))
            if text.isdigit():
                ids.append(int(text))
        for start in range(0, len(ids), _CHUNK):
            self._observe(await self._orc.store.get_runs(ids[start : start + _CHUNK]))

    def _observe(self, finished: Sequence[Run]) -> None:
        for run in finished:
            if run.started_at is not None and run.finished_at is not None:
                seconds = (run.finished_at - run.started_at).total_seconds()
                self._durations.labels(source=run.source).observe(max(seconds, 0.0))
