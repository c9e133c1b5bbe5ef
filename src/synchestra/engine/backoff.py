"""How the dispatcher's loop waits after a turn that failed (a database outage, or a bug)."""

from __future__ import annotations

from datetime import timedelta

STOP_PATIENCE = timedelta(seconds=15)
"""How long a stopping loop keeps trying to record its finished runs while the database is away."""


class Backoff:
    """Seconds to wait after each failed turn: 0.5 s, doubling, at most 15 s."""

    FIRST = 0.5
    MOST = 15.0

    def __init__(self) -> None:
        self.failures = 0
        self.outage = False
        self._last: tuple[type[BaseException], str] | None = None

    def next(self) -> float:
        self.failures += 1
        return float(min(self.FIRST * 2.0 ** (self.failures - 1), self.MOST))

    def note(self, error: BaseException) -> bool:
        """Remember ``error``; True when it differs from the last one (worth a traceback)."""
        key = (type(error), str(error))
        fresh, self._last = key != self._last, key
        return fresh

    def reset(self) -> None:
        self.failures = 0
        self.outage = False
        self._last = None
