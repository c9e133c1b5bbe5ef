"""Retry decisions: which errors are transient, how many attempts, how long to wait."""

from __future__ import annotations

import random
from datetime import timedelta

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from synchestra.core.errors import (
    ConfigError,
    HTTPFailure,
    NotConfigured,
    RetryableError,
    SyncError,
    SyncTimeout,
)
from synchestra.engine.retry import (
    RetryDecision,
    RetryPolicy,
    backoff_ceiling,
    decide,
    is_retryable,
)
from synchestra.upstream.errors import from_httpx

MICROSECOND = timedelta(microseconds=1)


class Throttled(RetryableError):
    """A retryable error that says when to come back, like a 429 with Retry-After."""

    def __init__(self, retry_after: timedelta | None) -> None:
        super().__init__("throttled")
        self.retry_after = retry_after


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (RetryableError("flaky"), True),
        (HTTPFailure(429, "api"), True),
        (HTTPFailure(500, "api"), True),
        (HTTPFailure(503, "api"), True),
        (HTTPFailure(400, "api"), False),
        (HTTPFailure(401, "api"), False),
        (HTTPFailure(404, "api"), False),
        (from_httpx(httpx.ConnectError("refused")), True),
        (from_httpx(httpx.ReadTimeout("slow")), True),
        (from_httpx(httpx.RemoteProtocolError("bad")), True),
        (from_httpx(httpx.DecodingError("garbled")), False),
        (httpx.ConnectError("untranslated: the engine translates before deciding"), False),
        (NotConfigured("not configured: KEY is not set"), False),
        (SyncTimeout("ran past 10m"), False),
        (SyncError("invalid JSON from api"), False),
        (ConfigError("bad"), False),
        (ValueError("bug"), False),
        (KeyError("bug"), False),
    ],
)
def test_is_retryable(error: BaseException, expected: bool) -> None:
    assert is_retryable(error) is expected


@pytest.mark.parametrize(
    ("attempt", "retry", "ceiling"),
    [(1, True, 2), (2, True, 4), (3, True, 8), (4, False, 0)],
)
def test_retries_until_attempts_are_used_up(attempt: int, retry: bool, ceiling: float) -> None:
    policy = RetryPolicy(attempts=4)
    decision = decide(policy, attempt, RetryableError("x"), random.Random(1))
    assert decision.retry is retry
    if retry:
        assert timedelta(seconds=ceiling / 2) <= decision.delay <= timedelta(seconds=ceiling)
    else:
        assert decision.delay == timedelta(0)


def test_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.backoff, policy.max_backoff) == (
        3,
        timedelta(seconds=2),
        timedelta(minutes=5),
    )
    error = HTTPFailure(503, "api")
    assert decide(policy, 2, error, random.Random(0)).retry
    assert decide(policy, 3, error, random.Random(0)) == RetryDecision(False, timedelta(0))


def test_single_attempt_never_retries() -> None:
    assert not decide(RetryPolicy(attempts=1), 1, RetryableError("x"), random.Random(0)).retry


def test_non_retryable_error_is_final_at_once() -> None:
    decision = decide(RetryPolicy(attempts=5), 1, NotConfigured("x"), random.Random(0))
    assert decision == RetryDecision(False, timedelta(0))


@pytest.mark.parametrize(
    ("attempt", "ceiling"),
    [(1, 10), (2, 20), (3, 30), (4, 30), (100, 30), (10_000, 30)],
)
def test_backoff_is_capped(attempt: int, ceiling: float) -> None:
    policy = RetryPolicy(
        attempts=20_000, backoff=timedelta(seconds=10), max_backoff=timedelta(seconds=30)
    )
    assert backoff_ceiling(policy, attempt) == timedelta(seconds=ceiling)


def test_jitter_comes_from_the_injected_rng() -> None:
    policy = RetryPolicy(attempts=10)
    delays = {
        decide(policy, 3, RetryableError("x"), random.Random(seed)).delay for seed in range(5)
    }
    assert len(delays) > 1
    same = [decide(policy, 3, RetryableError("x"), random.Random(7)).delay for _ in range(3)]
    assert len(set(same)) == 1


@pytest.mark.parametrize(
    ("retry_after", "expected_at_least"),
    [(timedelta(seconds=90), timedelta(seconds=90)), (None, timedelta(seconds=1))],
)
def test_retry_after_is_a_floor(
    retry_after: timedelta | None, expected_at_least: timedelta
) -> None:
    decision = decide(RetryPolicy(), 1, Throttled(retry_after), random.Random(0))
    assert decision.retry
    assert decision.delay >= expected_at_least
    if retry_after is not None:
        assert decision.delay == retry_after  # 90 s is above the 2 s backoff


def test_retry_after_does_not_revive_a_final_attempt() -> None:
    decision = decide(RetryPolicy(attempts=2), 2, Throttled(timedelta(seconds=5)), random.Random(0))
    assert not decision.retry


@pytest.mark.parametrize(
    "kwargs",
    [
        {"attempts": 0},
        {"backoff": timedelta(seconds=-1)},
        {"backoff": timedelta(minutes=10), "max_backoff": timedelta(minutes=5)},
    ],
)
def test_policy_validation(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="retry"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_attempt_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="start at 1"):
        decide(RetryPolicy(), 0, RetryableError("x"), random.Random(0))


@given(
    backoff_ms=st.integers(0, 60_000),
    extra_ms=st.integers(0, 600_000),
    attempts=st.integers(1, 80),
    seed=st.integers(0, 2**32),
)
def test_delays_stay_within_equal_jitter_bounds(
    backoff_ms: int, extra_ms: int, attempts: int, seed: int
) -> None:
    policy = RetryPolicy(
        attempts=attempts,
        backoff=timedelta(milliseconds=backoff_ms),
        max_backoff=timedelta(milliseconds=backoff_ms + extra_ms),
    )
    rng = random.Random(seed)
    previous_ceiling = timedelta(0)
    for attempt in range(1, attempts + 1):
        decision = decide(policy, attempt, RetryableError("x"), rng)
        ceiling = backoff_ceiling(policy, attempt)
        assert previous_ceiling <= ceiling <= policy.max_backoff  # grows, never past the cap
        previous_ceiling = ceiling
        if attempt == attempts:
            assert decision == RetryDecision(False, timedelta(0))
        else:
            assert decision.retry
            assert ceiling / 2 - MICROSECOND <= decision.delay <= ceiling


def test_httpx_errors_become_ours_without_the_url() -> None:
    secret_url = "https://api.example/x?webKey=SECRET"
    request = httpx.Request("GET", secret_url)
    refused = from_httpx(httpx.ConnectError(f"refused {secret_url}", request=request), "qcmobile")
    assert isinstance(refused, RetryableError)
    assert str(refused) == "network error from qcmobile: ConnectError"
    garbled = from_httpx(httpx.DecodingError(f"bad {secret_url}", request=request))
    assert type(garbled) is SyncError
    assert str(garbled) == "DecodingError (network error)"
    other = ValueError("not httpx's")
    assert from_httpx(other) is other
