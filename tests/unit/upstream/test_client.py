"""The API client: auth, shared limits, 429 handling, error translation, redaction."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Callable, Coroutine
from datetime import timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest

from synchestra.core.clock import FakeClock
from synchestra.core.durations import Rate
from synchestra.core.errors import HTTPFailure, NotConfigured, RetryableError, SyncError
from synchestra.core.redact import MASK, Redactor, redact_url
from synchestra.upstream.client import (
    DEFAULT_RETRY_AFTER,
    MAX_RETRY_AFTER,
    USER_AGENT,
    ApiAuth,
    AuthSpec,
    LimitedTransport,
    build_client,
    get_json,
    retry_after_delay,
)
from synchestra.upstream.ratelimit import ApiLimiter

SECRET = "s3cr3t-Key/42"
BASE = "https://api.example.test"
Handler = Callable[[httpx.Request], Coroutine[None, None, httpx.Response]]


async def _settle(turns: int = 50) -> None:
    for _ in range(turns):
        await asyncio.sleep(0)


async def drive(clock: FakeClock, *tasks: asyncio.Task[Any]) -> None:
    """Advance the fake clock deadline by deadline until the tasks are done."""
    for _ in range(10_000):
        await _settle()
        if all(task.done() for task in tasks):
            return
        deadline = clock.next_deadline
        assert deadline is not None, "deadlock: tasks wait but no one sleeps"
        await clock.advance((deadline - clock.now()).total_seconds())
    raise AssertionError("tasks did not finish")


class Api:
    """A fake API: answers from a queue of responses (then 200 {"ok": true}), logs requests."""

    def __init__(self, clock: FakeClock, *responses: httpx.Response) -> None:
        self.clock = clock
        self.responses = list(responses)
        self.requests: list[httpx.Request] = []
        self.times: list[float] = []
        self.start = clock.now()

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.times.append((self.clock.now() - self.start).total_seconds())
        if self.responses:
            return self.responses.pop(0)
        return httpx.Response(200, json={"ok": True})


def make_client(
    handler: Handler,
    limiter: ApiLimiter,
    *,
    auth: AuthSpec | None = None,
    environ: dict[str, str] | None = None,
    redactor: Redactor | None = None,
) -> httpx.AsyncClient:
    return build_client(
        api="datahub",
        base_url=BASE,
        auth=auth,
        limiter=limiter,
        environ=environ if environ is not None else {"DATAHUB_KEY": SECRET},
        redactor=redactor if redactor is not None else Redactor(),
        transport=httpx.MockTransport(handler),
    )


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def limiter(clock: FakeClock) -> ApiLimiter:
    return ApiLimiter("datahub", None, None, clock)


# -- auth -------------------------------------------------------------------------------------


async def test_header_auth_and_user_agent(clock: FakeClock, limiter: ApiLimiter) -> None:
    api = Api(clock)
    auth = AuthSpec(env="DATAHUB_KEY", header="X-Api-Key", required=True)
    async with make_client(api, limiter, auth=auth) as client:
        assert await get_json(client, "datahub", "/items", {"page": 2}) == {"ok": True}
    [request] = api.requests
    assert request.headers["X-Api-Key"] == SECRET
    assert request.headers["User-Agent"] == USER_AGENT
    assert request.url == httpx.URL(f"{BASE}/items?page=2")
    assert limiter.requests_started == 1


async def test_query_auth_keeps_other_params(clock: FakeClock, limiter: ApiLimiter) -> None:
    api = Api(clock)
    auth = AuthSpec(env="DATAHUB_KEY", query="webKey")
    async with make_client(api, limiter, auth=auth) as client:
        await get_json(client, "datahub", "/qc", {"day": "2026-01-05"})
    params = api.requests[0].url.params
    assert params["webKey"] == SECRET
    assert params["day"] == "2026-01-05"
    assert "X-Api-Key" not in api.requests[0].headers


@pytest.mark.parametrize("environ", [{}, {"DATAHUB_KEY": ""}])
def test_missing_required_credential_is_not_configured(
    limiter: ApiLimiter, environ: dict[str, str]
) -> None:
    auth = AuthSpec(env="DATAHUB_KEY", header="X-Api-Key", required=True)
    with pytest.raises(NotConfigured, match=r"^not configured: DATAHUB_KEY is not set$"):
        make_client(Api(FakeClock()), limiter, auth=auth, environ=environ)


async def test_missing_optional_credential_sends_no_auth(
    clock: FakeClock, limiter: ApiLimiter
) -> None:
    api = Api(clock)
    auth = AuthSpec(env="DATAHUB_KEY", query="token")
    async with make_client(api, limiter, auth=auth, environ={}) as client:
        await get_json(client, "datahub", "/x")
    assert "token" not in api.requests[0].url.params


def test_credential_is_registered_with_the_redactor(limiter: ApiLimiter) -> None:
    redactor = Redactor()
    auth = AuthSpec(env="DATAHUB_KEY", header="Authorization")
    make_client(Api(FakeClock()), limiter, auth=auth, redactor=redactor)
    assert redactor.redact(f"failed with {SECRET}") == f"failed with {MASK}"


@pytest.mark.parametrize(("header", "query"), [(None, None), ("X-Key", "key")])
def test_auth_spec_needs_exactly_one_place(header: str | None, query: str | None) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        AuthSpec(env="K", header=header, query=query)


def test_api_auth_repr_hides_the_credential() -> None:
    auth = ApiAuth(AuthSpec(env="K", header="X-Key"), SECRET)
    assert SECRET not in repr(auth)


# -- limiter integration ----------------------------------------------------------------------


async def test_slot_is_held_while_the_request_is_in_flight(clock: FakeClock) -> None:
    limiter = ApiLimiter("datahub", None, 1, clock)
    times: list[float] = []
    start = clock.now()

    async def slow(request: httpx.Request) -> httpx.Response:
        times.append((clock.now() - start).total_seconds())
        await clock.sleep(2)
        return httpx.Response(200, json=[1])

    async with make_client(slow, limiter) as a, make_client(slow, limiter) as b:
        tasks = [asyncio.create_task(get_json(c, "datahub", "/x")) for c in (a, b)]
        await _settle()
        assert limiter.in_flight == 1
        await drive(clock, *tasks)
    assert times == [0, 2]
    assert limiter.peak_in_flight == 1


async def test_rate_is_shared_by_clients_of_one_api(clock: FakeClock) -> None:
    limiter = ApiLimiter("datahub", Rate(2, timedelta(seconds=1)), None, clock, guard=timedelta(0))
    api = Api(clock)
    async with make_client(api, limiter) as a, make_client(api, limiter) as b:
        tasks = [asyncio.create_task(get_json(c, "datahub", "/x")) for c in (a, b, a, b, a)]
        await drive(clock, *tasks)
    assert api.times == [0, 0, 1, 1, 2]


async def test_compressed_body_is_decoded_once(clock: FakeClock, limiter: ApiLimiter) -> None:
    body = gzip.compress(json.dumps({"rows": [1, 2, 3]}).encode())

    async def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Encoding": "gzip"})

    async with make_client(handler, limiter) as client:
        assert await get_json(client, "datahub", "/x") == {"rows": [1, 2, 3]}


# -- 429 --------------------------------------------------------------------------------------


async def test_429_pauses_the_api_for_everyone_and_retries(clock: FakeClock) -> None:
    limiter = ApiLimiter("datahub", None, None, clock)
    t0 = clock.now()
    api = Api(clock, httpx.Response(429, headers={"Retry-After": "5"}))
    async with make_client(api, limiter) as a, make_client(api, limiter) as b:
        first = asyncio.create_task(get_json(a, "datahub", "/x"))
        await _settle()
        assert limiter.paused_until == t0 + timedelta(seconds=5)
        assert limiter.http_429 == 1
        assert not limiter.has_room(clock.now())
        other = asyncio.create_task(get_json(b, "datahub", "/y"))  # another source, same API
        await clock.advance(4.9)
        assert not first.done()
        assert not other.done()
        assert len(api.requests) == 1
        await drive(clock, first, other)
    assert first.result() == other.result() == {"ok": True}
    assert api.times == [0, 5, 5]
    assert limiter.requests_started == 3


async def test_429_retries_are_bounded(clock: FakeClock, limiter: ApiLimiter) -> None:
    api = Api(clock, *[httpx.Response(429) for _ in range(10)])
    transport = LimitedTransport(limiter, httpx.MockTransport(api), max_429_retries=2)
    async with httpx.AsyncClient(base_url=BASE, transport=transport) as client:
        task = asyncio.create_task(get_json(client, "datahub", "/x"))
        await drive(clock, task)
    with pytest.raises(HTTPFailure) as info:
        task.result()
    assert info.value.status == 429
    assert info.value.retryable
    assert api.times == [0, 1, 2]  # no Retry-After: the 1 s default
    assert transport.http_429 == 3
    assert limiter.http_429 == 3
    assert limiter.paused_until == clock.now() + timedelta(seconds=1)  # the last 429 too


async def test_default_client_retries_429_three_times(
    clock: FakeClock, limiter: ApiLimiter
) -> None:
    api = Api(clock, *[httpx.Response(429, headers={"Retry-After": "2"}) for _ in range(10)])
    async with make_client(api, limiter) as client:
        task = asyncio.create_task(get_json(client, "datahub", "/x"))
        await drive(clock, task)
    assert isinstance(task.exception(), HTTPFailure)
    assert api.times == [0, 2, 4, 6]


async def test_request_body_is_sent_again_after_429(clock: FakeClock, limiter: ApiLimiter) -> None:
    api = Api(clock, httpx.Response(429, headers={"Retry-After": "0"}))
    async with make_client(api, limiter) as client:
        task = asyncio.create_task(client.post("/q", json={"where": "x"}))
        await drive(clock, task)
    assert task.result().status_code == 200
    assert [json.loads(r.content) for r in api.requests] == [{"where": "x"}] * 2


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("5", timedelta(seconds=5)),
        (" 120 ", timedelta(seconds=120)),
        ("1.5", timedelta(seconds=1.5)),
        ("0", timedelta(0)),
        (None, DEFAULT_RETRY_AFTER),
        ("", DEFAULT_RETRY_AFTER),
        ("soon", DEFAULT_RETRY_AFTER),
        ("-3", DEFAULT_RETRY_AFTER),
        ("nan", DEFAULT_RETRY_AFTER),
        ("99999999999999", MAX_RETRY_AFTER),
    ],
)
def test_retry_after_seconds(value: str | None, expected: timedelta) -> None:
    assert retry_after_delay(value, FakeClock().now()) == expected


@pytest.mark.parametrize(("offset", "expected"), [(30, 30), (-30, 0)])
def test_retry_after_http_date(offset: int, expected: int) -> None:
    now = FakeClock().now()
    header = format_datetime(now + timedelta(seconds=offset), usegmt=True)
    assert retry_after_delay(header, now) == timedelta(seconds=expected)


# -- error translation ------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "retryable"), [(503, True), (500, True), (404, False)])
async def test_error_status_is_http_failure(
    clock: FakeClock, limiter: ApiLimiter, status: int, retryable: bool
) -> None:
    api = Api(clock, httpx.Response(status, text="nope"))
    async with make_client(api, limiter) as client:
        with pytest.raises(HTTPFailure) as info:
            await get_json(client, "datahub", "/x")
    assert str(info.value) == f"HTTP {status} from datahub"
    assert info.value.retryable is retryable


@pytest.mark.parametrize("error", [httpx.ConnectError, httpx.ReadTimeout, httpx.ReadError])
async def test_network_error_is_retryable(
    limiter: ApiLimiter, error: type[httpx.TransportError]
) -> None:
    async def handler(request: httpx.Request) -> httpx.Response:
        raise error(f"failed for {request.url}", request=request)

    auth = AuthSpec(env="DATAHUB_KEY", query="webKey")
    async with make_client(handler, limiter, auth=auth) as client:
        with pytest.raises(RetryableError) as info:
            await get_json(client, "datahub", "/x")
    assert str(info.value) == f"network error from datahub: {error.__name__}"
    assert SECRET not in repr(info.value)
    assert limiter.in_flight == 0


async def test_invalid_json_is_a_final_error(clock: FakeClock, limiter: ApiLimiter) -> None:
    api = Api(clock, httpx.Response(200, text="<html>maintenance</html>"))
    async with make_client(api, limiter) as client:
        with pytest.raises(SyncError) as info:
            await get_json(client, "datahub", "/x")
    assert type(info.value) is SyncError
    assert str(info.value) == "invalid JSON from datahub"


@pytest.mark.parametrize(
    "response",
    [httpx.Response(401), httpx.Response(503), httpx.Response(200, text="{")],
)
async def test_secret_never_in_error_messages(
    clock: FakeClock, limiter: ApiLimiter, response: httpx.Response
) -> None:
    api = Api(clock, response)
    auth = AuthSpec(env="DATAHUB_KEY", query="webKey")
    async with make_client(api, limiter, auth=auth) as client:
        with pytest.raises(SyncError) as info:
            await get_json(client, "datahub", f"/x?webKey={SECRET}")
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value)


# -- redaction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://x/qc?webKey=abc123", "https://x/qc?webKey=***"),
        ("https://x/qc?day=1&WEBKEY=abc123&n=2", "https://x/qc?day=1&WEBKEY=***&n=2"),
        (
            "https://x/?api_key=a&apikey=b&api-key=c",
            "https://x/?api_key=***&apikey=***&api-key=***",
        ),
        ("https://x/?key=k1#frag", "https://x/?key=***#frag"),
        ("https://x/?token=t&access_token=u", "https://x/?token=***&access_token=***"),
        ("https://x/r.json?$$app_token=abcd", "https://x/r.json?$$app_token=***"),
        ("https://x/r.json?%24%24app_token=abcd", "https://x/r.json?%24%24app_token=***"),
        ("https://x/?monkey=1&keys=2&key=", "https://x/?monkey=1&keys=2&key="),
        ("GET https://x/?key=abc failed", "GET https://x/?key=*** failed"),
        ("https://x/plain", "https://x/plain"),
    ],
)
def test_redact_url(url: str, expected: str) -> None:
    assert redact_url(url) == expected


def test_redactor_masks_known_secrets_and_credential_params() -> None:
    redactor = Redactor()
    redactor.add(SECRET)
    redactor.add("abc")  # too short to be a secret: ignored
    redactor.add("")
    encoded = httpx.URL("https://x/", params={"p": SECRET}).query.decode()
    assert "%2F" in encoded
    text = f"auth {SECRET} failed; url https://x/?token=zzz&q=abc; enc {encoded}"
    redacted = redactor.redact(text)
    assert SECRET not in redacted
    assert "s3cr3t" not in redacted  # the URL-encoded form is masked too
    assert "token=***" in redacted
    assert "q=abc" in redacted
    assert SECRET not in repr(redactor)


def test_redactor_without_secrets_only_masks_params() -> None:
    assert Redactor().redact("nothing ?key=1 here") == "nothing ?key=*** here"


async def test_responses_teach_the_limiter_a_lower_rate(clock: FakeClock) -> None:
    """A 429 and a burst of 5xx each halve the API's rate for every client of it."""
    limiter = ApiLimiter("datahub", Rate(8, timedelta(seconds=1)), None, clock)
    api = Api(
        clock,
        httpx.Response(429, headers={"Retry-After": "0"}),
        httpx.Response(200, json={"ok": True}),
        *(httpx.Response(503) for _ in range(3)),
    )
    async with make_client(api, limiter) as client:
        first = asyncio.create_task(get_json(client, "datahub", "/x"))
        await drive(clock, first)
        assert first.result() == {"ok": True}  # sent again after the 429
        assert limiter.allowed == 4
        await clock.advance(1.5)  # a new period: the next signal counts again
        failing = [asyncio.create_task(get_json(client, "datahub", "/x")) for _ in range(3)]
        await drive(clock, *failing)
    assert all(isinstance(task.exception(), HTTPFailure) for task in failing)
    assert limiter.backoffs == 2  # the burst of 503s halved the rate again
    assert limiter.allowed == 2  # 4, one step of recovery to 5, halved to 2
