"""What each simulated API saw: requests, 429s, faults and peak concurrency.

Peaks count every request in flight at once, including the ones about to be
refused, because the point is to catch a client that sends more than it
should (per API and per target: a DOT number or an ERP collection).
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class ApiCounters:
    """Counters of one API; :meth:`snapshot` gives a detached copy."""

    requests: int = 0
    too_many_requests: int = 0
    rate_limited: int = 0
    over_concurrency: int = 0
    in_flight: int = 0
    held: int = 0
    peak_concurrency: int = 0
    responses: dict[int, int] = field(default_factory=dict)
    faults: dict[str, int] = field(default_factory=dict)
    requests_by_target: dict[str, int] = field(default_factory=dict)
    in_flight_by_target: dict[str, int] = field(default_factory=dict)
    peak_concurrency_by_target: dict[str, int] = field(default_factory=dict)

    def enter(self, target: str | None) -> None:
        """A request arrived (and is now in flight)."""
        self.requests += 1
        self.in_flight += 1
        self.peak_concurrency = max(self.peak_concurrency, self.in_flight)
        if target is not None:
            self.requests_by_target[target] = self.requests_by_target.get(target, 0) + 1
            now = self.in_flight_by_target.get(target, 0) + 1
            self.in_flight_by_target[target] = now
            self.peak_concurrency_by_target[target] = max(
                self.peak_concurrency_by_target.get(target, 0), now
            )

    def leave(self, target: str | None) -> None:
        """A request finished, however it ended."""
        self.in_flight -= 1
        if target is not None:
            left = self.in_flight_by_target.get(target, 1) - 1
            if left:
                self.in_flight_by_target[target] = left
            else:
                self.in_flight_by_target.pop(target, None)

    def responded(self, status: int) -> None:
        self.responses[status] = self.responses.get(status, 0) + 1
        if status == 429:
            self.too_many_requests += 1

    def faulted(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1

    def reset(self) -> None:
        """Zero everything but what is in flight right now (peaks restart from it)."""
        in_flight, by_target = self.in_flight, dict(self.in_flight_by_target)
        fresh = ApiCounters(in_flight=in_flight, held=self.held, peak_concurrency=in_flight)
        fresh.in_flight_by_target = by_target
        fresh.peak_concurrency_by_target = dict(by_target)
        self.__dict__.update(fresh.__dict__)

    def snapshot(self) -> ApiCounters:
        return copy.deepcopy(self)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (status codes as string keys)."""
        document = asdict(self)
        document["responses"] = {str(k): v for k, v in sorted(self.responses.items())}
        return document
