"""The live state of one simulated API: its config, counters, limiter and faults.

Kept apart from the ASGI plumbing so the simulator object can reconfigure an
API, inject a burst or reset it between test phases without a restart.
"""

from __future__ import annotations

import asyncio

from synchestra.simulator.config import ApiConfig, ApiName
from synchestra.simulator.counters import ApiCounters
from synchestra.simulator.faults import Burst, Fault, choose_fault
from synchestra.simulator.limits import SlidingWindow
from synchestra.simulator.seeding import rng_for


class ApiRuntime:
    """One API's mutable state; every method runs on the event loop."""

    def __init__(
        self, name: ApiName, config: ApiConfig, seed: int, stopping: asyncio.Event
    ) -> None:
        self.name = name
        self.seed = seed
        self.stopping = stopping
        self.counters = ApiCounters()
        self.released = asyncio.Event()
        self.hold_started = asyncio.Event()
        self.configure(config)

    def configure(self, config: ApiConfig) -> None:
        """Apply a new config: fresh rate window, burst and fault RNG."""
        self.config = config
        self.limiter = (
            None if config.rate is None else SlidingWindow(config.rate, config.rate_window)
        )
        self.burst = Burst(config.faults.burst, config.faults.burst_status)
        self.rng = rng_for(self.seed, "faults", self.name)

    def reset(self) -> None:
        """Counters to zero and the config's faults and limits as at start."""
        self.counters.reset()
        self.configure(self.config)

    def fail_next(self, count: int, status: int = 503, after: int = 0) -> None:
        """Fail ``count`` requests with ``status`` (a 5xx burst) once ``after`` more succeed."""
        self.burst = Burst(count, status, after)

    def release_held(self) -> None:
        """Wake the requests held now; later holds wait on a fresh event."""
        self.released.set()
        self.released = asyncio.Event()

    def over_concurrency(self) -> bool:
        """Whether the request just counted in is above the concurrency cap."""
        cap = self.config.concurrency
        return cap is not None and self.counters.in_flight > cap

    def over_rate(self) -> int | None:
        """Seconds to wait when the rate limit refuses this request, else None."""
        return None if self.limiter is None else self.limiter.admit()

    def fault_for(self, target: str | None) -> Fault | None:
        fault = choose_fault(self.config.faults, target, self.burst, self.rng)
        if fault is not None:
            self.counters.faulted(fault.reason)
        return fault
