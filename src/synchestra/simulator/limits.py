"""A sliding-window request limiter: at most N admissions in any window.

Only admitted requests enter the window, so a client that keeps hammering
while refused does not lock itself out forever (it still gets its 429s).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """Admit at most ``limit`` requests in any ``window`` seconds."""

    def __init__(
        self, limit: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit, self.window, self._clock = limit, window, clock
        self._admitted: deque[float] = deque(maxlen=limit)

    def admit(self) -> int | None:
        """None when admitted; else whole seconds until a slot frees (``Retry-After``)."""
        now = self._clock()
        while self._admitted and self._admitted[0] <= now - self.window:
            self._admitted.popleft()
        if len(self._admitted) < self.limit:
            self._admitted.append(now)
            return None
        wait = self._admitted[0] + self.window - now
        return max(1, math.ceil(wait))
