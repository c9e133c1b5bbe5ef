"""When will the queue be empty? An estimate from the backlog and the APIs' quotas.

APIs work in parallel, so the queue drains when its slowest API is done. For
each API, the runs left (queued, and half of those running) need

- ``runs x requests per run / allowed rate`` by the rate (the limiter's current
  ``allowed``, so a backoff lengthens the estimate), and
- ``runs x seconds per run / concurrency cap`` by the cap,

whichever is longer; runs of sources without an API need ``runs x seconds per
run / workers``. Requests and seconds per run are learnt from the runs this
process finished (a moving average); before the first one, a run counts as
one request and the cap is not estimated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from synchestra.core.models import Backlog
from synchestra.upstream.ratelimit import ApiLimiter

SMOOTHING = 0.2
"""Weight of the newest run in the moving averages."""

Bound = Literal["rate", "concurrency", "workers", "unknown"]


@dataclass
class RunCost:
    """What one run of an API costs on average: requests made, seconds taken."""

    requests: float = 1.0
    seconds: float | None = None
    observed: int = 0

    def observe(self, requests: int, seconds: float) -> None:
        if self.observed == 0:
            self.requests, self.seconds = float(requests), seconds
        else:
            assert self.seconds is not None
            self.requests += SMOOTHING * (requests - self.requests)
            self.seconds += SMOOTHING * (seconds - self.seconds)
        self.observed += 1


@dataclass(frozen=True)
class ApiEta:
    runs_left: int
    seconds: float | None
    bound: Bound


@dataclass(frozen=True)
class QueueEta:
    """When the whole queue should be empty: ``seconds`` None when it cannot be estimated yet."""

    runs_left: int
    seconds: float | None
    finishes_at: datetime | None
    by_api: Mapping[str | None, ApiEta]
    """Per API, sorted by name; the key None stands for sources without an API."""


@dataclass
class CostBook:
    """The learnt cost of a run per API (``None``: sources without an API)."""

    costs: dict[str | None, RunCost] = field(default_factory=dict)

    def observe(self, api: str | None, requests: int, seconds: float) -> None:
        self.costs.setdefault(api, RunCost()).observe(requests, max(seconds, 0.0))

    def of(self, api: str | None) -> RunCost:
        return self.costs.get(api, RunCost())


def api_eta(backlog: Backlog, cost: RunCost, limiter: ApiLimiter | None, workers: int) -> ApiEta:
    runs = backlog.queued + backlog.running
    if runs == 0:
        return ApiEta(0, 0.0, "rate" if limiter and limiter.rate else "workers")
    candidates: list[tuple[float, Bound]] = []
    if limiter is not None and limiter.rate is not None:
        per_second = limiter.allowed / limiter.rate.period.total_seconds()
        candidates.append((backlog.left * cost.requests / per_second, "rate"))
    if cost.seconds is not None:
        cap = limiter.concurrency if limiter is not None else None
        if cap is not None and cap < workers:
            candidates.append((backlog.left * cost.seconds / cap, "concurrency"))
        else:
            candidates.append((backlog.left * cost.seconds / workers, "workers"))
    if not candidates:
        return ApiEta(runs, None, "unknown")
    seconds, bound = max(candidates)
    return ApiEta(runs, seconds, bound)


def estimate(
    backlogs: Mapping[str | None, Backlog],
    limiters: Mapping[str, ApiLimiter],
    book: CostBook,
    *,
    workers: int,
    now: datetime,
) -> QueueEta:
    """The queue's ETA: overall (its slowest API) and per API."""
    per_api = {
        api: api_eta(backlog, book.of(api), limiters.get(api) if api else None, workers)
        for api, backlog in backlogs.items()
    }
    known = [item.seconds for item in per_api.values() if item.seconds is not None]
    unknown = any(item.seconds is None for item in per_api.values())
    seconds = None if unknown else max(known, default=0.0)
    return QueueEta(
        runs_left=sum(item.runs_left for item in per_api.values()),
        seconds=seconds,
        finishes_at=now + timedelta(seconds=seconds) if seconds is not None else None,
        by_api=dict(sorted(per_api.items(), key=lambda pair: pair[0] or "")),
    )
