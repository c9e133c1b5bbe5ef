"""Whether and when to retry a failed attempt, as a pure decision.

The runner owns the waiting (on its :class:`~synchestra.core.clock.Clock`); this
module only answers "retry?" and "after how long?". Keeping it free of time and
I/O makes the policy trivial to test and to reason about: the only randomness
(jitter) comes from an injected :class:`random.Random`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

from synchestra.config import RetryConfig
from synchestra.core.errors import HTTPFailure, RetryableError

_DEFAULTS = RetryConfig()  # the defaults are the config's: one place
_MAX_EXPONENT = 62  # 2**62 * any sane backoff is far past any cap; avoids overflow


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently a failing run is retried.

    ``attempts`` counts every attempt including the first, so ``attempts=1``
    means "never retry".
    """

    attempts: int = _DEFAULTS.attempts
    backoff: timedelta = _DEFAULTS.backoff
    max_backoff: timedelta = _DEFAULTS.max_backoff

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("retry attempts must be at least 1")
        if self.backoff < timedelta(0):
            raise ValueError("retry backoff must not be negative")
        if self.max_backoff < self.backoff:
            raise ValueError("retry max_backoff must not be less than backoff")


@dataclass(frozen=True)
class RetryDecision:
    """Retry or give up; ``delay`` is how long to wait first (zero when giving up)."""

    retry: bool
    delay: timedelta


GIVE_UP = RetryDecision(retry=False, delay=timedelta(0))


def is_retryable(error: BaseException) -> bool:
    """Whether ``error`` is transient, i.e. another attempt may well succeed.

    Network errors and throttling/server errors are transient; a missing
    credential, a timeout of the whole run or a bug would fail the same way again.
    """
    if isinstance(error, RetryableError):
        return True
    if isinstance(error, HTTPFailure):
        return error.retryable
    return False


def backoff_ceiling(policy: RetryPolicy, attempt: int) -> timedelta:
    """The un-jittered delay after failed attempt ``attempt``: exponential, capped."""
    exponent = min(max(attempt - 1, 0), _MAX_EXPONENT)
    seconds = min(
        policy.backoff.total_seconds() * 2.0**exponent, policy.max_backoff.total_seconds()
    )
    return min(timedelta(seconds=seconds), policy.max_backoff)


def decide(
    policy: RetryPolicy, attempt: int, error: BaseException, rng: random.Random
) -> RetryDecision:
    """Decide about the attempt numbered ``attempt`` (1-based) that just failed with ``error``.

    The delay uses "equal jitter": uniform between half and all of the capped
    exponential backoff, so concurrent failures spread out but never retry at
    once. An error that says when to come back (a ``retry_after`` timedelta
    attribute, e.g. from a Retry-After header) is waited for at least that long.
    """
    if attempt < 1:
        raise ValueError("attempt numbers start at 1")
    if attempt >= policy.attempts or not is_retryable(error):
        return GIVE_UP
    ceiling = backoff_ceiling(policy, attempt).total_seconds()
    delay = timedelta(seconds=rng.uniform(ceiling / 2, ceiling))
    retry_after = getattr(error, "retry_after", None)
    if isinstance(retry_after, timedelta) and retry_after > delay:
        delay = retry_after
    return RetryDecision(retry=True, delay=delay)
