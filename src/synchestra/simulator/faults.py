"""Which failure, if any, a request gets.

Precedence: maintenance, then a fault aimed at the request's target, then a
pending burst, then one draw from the API's seeded RNG against the random
rates. A single draw per request keeps a given request sequence reproducible.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from synchestra.simulator.config import FaultConfig, FaultKind


@dataclass(frozen=True)
class Fault:
    """What to do instead of (or to) the normal answer; ``reason`` is counted."""

    kind: FaultKind
    status: int
    reason: str


@dataclass
class Burst:
    """Requests still to fail: ``remaining`` of them with ``status``, after ``skip`` good ones.

    ``skip`` lets a test fail, say, the third page of a read and no other.
    """

    remaining: int = 0
    status: int = 503
    skip: int = 0


def choose_fault(
    faults: FaultConfig, target: str | None, burst: Burst, rng: random.Random
) -> Fault | None:
    """The fault for one request; consumes one burst slot when it applies."""
    if faults.maintenance:
        return Fault("maintenance", 200, "maintenance")
    for aimed in faults.targets:
        if target is not None and aimed.target == target:
            return Fault(aimed.kind, aimed.status, "target")
    if burst.remaining > 0 and burst.skip > 0:
        burst.skip -= 1
    elif burst.remaining > 0:
        burst.remaining -= 1
        return Fault("status", burst.status, "burst")
    return _random_fault(faults, rng)


def _random_fault(faults: FaultConfig, rng: random.Random) -> Fault | None:
    chances: tuple[tuple[FaultKind, float], ...] = (
        ("status", faults.error_rate),
        ("timeout", faults.timeout_rate),
        ("malformed", faults.malformed_rate),
        ("truncated", faults.truncated_rate),
    )
    if not any(rate for _, rate in chances):
        return None
    draw = rng.random()
    for kind, rate in chances:
        if draw < rate:
            if kind == "status":
                return Fault("status", rng.choice(faults.error_statuses), "error")
            return Fault(kind, 504 if kind == "timeout" else 200, kind)
        draw -= rate
    return None
